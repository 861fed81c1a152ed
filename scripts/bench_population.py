"""Population training against one run at a time: N candidates per step, batched or in turn.

    python scripts/bench_population.py [--sizes tiny] [--patches 32] [--population 2 4 8]
        [--steps 10] [--warmup 3] [--repeat 2] [--seeds shared|distinct] [--conv] [--threads 2]

For every network size, patch and population size N, N candidates (dice, dice_ce, tversky,
focal, ... in turn) are trained for ``warmup + steps`` steps with ``PopulationTrainer`` (one
batched network) and each alone with ``Trainer``; validation never runs. Seconds per step: on
the CPU the median of the timed steps (robust to other processes taking the cores for a
while), on CUDA the mean between two synchronisations; each figure is the best of
``--repeat`` runs. Printed per configuration: the seconds of one population step, of the N
runs' steps in turn, and the ratio sequential / population (higher is better: 3.0 means the
population trains N candidates in a third of the time the N runs take one after another).
``--seeds shared`` (the default, a study at one seed) feeds every member the same patches;
``distinct`` gives each member its own.

``--conv`` also times one 3^3 convolution layer (forward and backward) of N members three ways:
N separate convolutions, ``vmap`` over the stacked weights, and the grouped convolution written
by hand (one ``conv3d`` with ``groups=N`` on inputs stacked along the channels; with a shared
input, one convolution with N times the output channels), to see whether vmap's batching rule
costs anything over the grouped convolution it lowers to.

unet3d has the sizes ``tiny`` (39 k parameters) and ``base`` (12.9 M, the papers'); the CPU
default is the reduced grid tiny at 32^3 with N = 2, 4, 8, which takes a few minutes.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch.func import vmap

from losslab.candidate import Candidate
from losslab.data import load_dataset
from losslab.training import Hook, PopulationTrainer, StopTraining, TrainConfig, Trainer

LOSSES = ("dice", "dice_ce", "tversky", "focal", "gdl", "ce", "iou", "dice_focal")


class _Clock(Hook):
    """Times steps ``warmup + 1 .. warmup + steps``; stops the run at the end of the epoch.

    ``seconds``: per step, the median of the steps' durations on the CPU (robust to other
    processes taking the cores for a while), the mean between two synchronisations on CUDA (a
    synchronisation per step would change what is timed).
    """

    population_safe = True

    def __init__(self, warmup: int, steps: int, device: torch.device):
        self.warmup, self.steps, self.device = warmup, steps, device
        self.times: list[float] = []

    def on_step_end(self, state) -> None:
        if self.warmup <= state.step <= self.warmup + self.steps:
            cuda = self.device.type == "cuda"
            if cuda and state.step in (self.warmup, self.warmup + self.steps):
                torch.cuda.synchronize()
            if not cuda or state.step in (self.warmup, self.warmup + self.steps):
                self.times.append(time.perf_counter())

    def on_epoch_end(self, state, record) -> None:
        raise StopTraining("benchmark done")

    @property
    def seconds(self) -> float:
        if self.device.type == "cuda":
            return (self.times[-1] - self.times[0]) / self.steps
        return statistics.median(b - a for a, b in zip(self.times, self.times[1:]))


def _config(args, size: str, patch: int) -> TrainConfig:
    return TrainConfig(
        model="unet3d",
        model_size=size,
        epochs=2,  # the first is timed, then the clock stops the run (no validation before)
        steps_per_epoch=args.warmup + args.steps,
        batch_size=args.batch,
        patch_size=(patch,) * 3,
        device=args.device,
        val_every=10**6,
        hd95=False,
    )


def _candidates(n: int) -> list[Candidate]:
    return [Candidate.from_loss(name) for name in itertools.islice(itertools.cycle(LOSSES), n)]


def alone_seconds(args, config, dataset, candidate: Candidate) -> float:
    """Seconds per timed step of one run alone (the best of ``--repeat`` runs)."""
    best = math.inf
    for _ in range(args.repeat):
        clock = _Clock(args.warmup, args.steps, torch.device(args.device))
        result = Trainer(config, [clock]).fit(candidate, dataset)
        assert result.status == "pruned", result.reason
        best = min(best, clock.seconds)
    return best


def population_seconds(args, config, dataset, n: int) -> float:
    """Seconds per timed step of a population of ``n`` (the best of ``--repeat`` runs)."""
    seeds = list(range(n)) if args.seeds == "distinct" else [config.seed] * n
    best = math.inf
    for _ in range(args.repeat):
        clocks = [_Clock(args.warmup, args.steps, torch.device(args.device)) for _ in range(n)]
        trainer = PopulationTrainer(config, max_size=n)
        hooks = [[c] for c in clocks]
        results = trainer.fit_many(_candidates(n), dataset, hooks=hooks, seeds=seeds)
        assert all(r.status == "pruned" for r in results), [r.reason for r in results]
        assert trainer.sizes == [n], f"not one population: {trainer.sizes}"
        best = min(best, clocks[0].seconds)
    return best


def train_grid(args, dataset) -> None:
    print(
        f"{'size':<6} {'patch':>5} {'N':>3} {'population s/step':>18} {'N alone s/step':>15} {'ratio':>6}"
    )
    for size, patch in itertools.product(args.sizes, args.patches):
        config = _config(args, size, patch)
        alone: dict[str, float] = {}  # seconds per step of each loss alone, measured once
        for n in args.population:
            for candidate in _candidates(n):
                if candidate.name not in alone:
                    alone[candidate.name] = alone_seconds(args, config, dataset, candidate)
            sequential = sum(alone[c.name] for c in _candidates(n))
            together = population_seconds(args, config, dataset, n)
            print(
                f"{size:<6} {patch:>4}^3 {n:>3} {together:18.3f} {sequential:15.3f} "
                f"{sequential / together:6.2f}",
                flush=True,
            )


def _time(fn, repeats: int, device: torch.device) -> float:
    for _ in range(2):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def _conv_ways(n: int, channels: int, batch: int, patch: int, shared: bool, device):
    """Forward and backward of one 3^3 convolution of ``n`` members: in turn, by ``vmap``,
    and as the grouped convolution written by hand."""
    shape = (batch, channels, patch, patch, patch)
    w = torch.randn(n, channels, channels, 3, 3, 3, device=device, requires_grad=True)
    x = torch.randn(shape if shared else (n, *shape), device=device)
    flat = (n * channels, channels, 3, 3, 3)

    def loop():
        outs = [F.conv3d(x if shared else x[j], w[j], padding=1) for j in range(n)]
        torch.stack(outs).sum().backward()

    def batched():
        conv = vmap(lambda wj, xj: F.conv3d(xj, wj, padding=1), in_dims=(0, None if shared else 0))
        conv(w, x).sum().backward()

    def grouped():
        if shared:  # one convolution with N x the output channels
            out = F.conv3d(x, w.reshape(flat), padding=1)
        else:  # [N, B, C, ...] -> [B, N*C, ...], one group per member
            xs = x.transpose(0, 1).reshape(batch, n * channels, *shape[2:])
            out = F.conv3d(xs, w.reshape(flat), padding=1, groups=n)
        out.sum().backward()

    return loop, batched, grouped


def conv_grid(args) -> None:
    """One 3^3 convolution layer, forward and backward, of N members three ways."""
    device, channels = torch.device(args.device), args.channels
    print(f"\nconv3d {channels}->{channels}, 3^3, batch {args.batch}: ms per forward+backward")
    print(f"{'patch':>5} {'N':>3} {'input':<8} {'N convs':>8} {'vmap':>8} {'grouped':>8}")
    for patch, n, shared in itertools.product(args.patches, args.population, (True, False)):
        ways = _conv_ways(n, channels, args.batch, patch, shared, device)
        times = [1000 * _time(fn, 5, device) for fn in ways]
        kind = "shared" if shared else "stacked"
        print(f"{patch:>4}^3 {n:>3} {kind:<8} " + " ".join(f"{t:8.1f}" for t in times), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny"], help="unet3d sizes: tiny base")
    parser.add_argument("--patches", nargs="+", type=int, default=None, help="default: 32")
    parser.add_argument("--population", nargs="+", type=int, default=None, help="default 2 4 8")
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=2, help="runs per figure (the best)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seeds", choices=("shared", "distinct"), default="shared")
    parser.add_argument("--shape", type=int, default=None, help="phantom edge (default: patch)")
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("--conv", action="store_true", help="also time one conv layer")
    parser.add_argument("--channels", type=int, default=16, help="channels of the --conv layer")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    gpu = args.device.startswith("cuda")
    args.patches = args.patches or ([32, 64, 96] if gpu else [32])
    args.population = args.population or ([2, 4, 8, 16] if gpu else [2, 4, 8])
    if args.threads:
        torch.set_num_threads(args.threads)
    edge = args.shape or max(args.patches)
    dataset = load_dataset("phantom", cases=args.cases, shape=(edge,) * 3, seed=0)
    name = torch.cuda.get_device_name() if gpu else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"unet3d, phantom {edge}^3 x {args.cases}, batch {args.batch}, {args.steps} timed steps "
        f"after {args.warmup}, best of {args.repeat}, seeds {args.seeds}, on {name}, "
        f"torch {torch.__version__}"
    )
    train_grid(args, dataset)
    if args.conv:
        conv_grid(args)


if __name__ == "__main__":
    main()
