"""ML3: N loss networks meta-trained as one group against one at a time, seconds per outer step.

    python scripts/bench_ml3_group.py [--networks 1 2 4] [--patch 16] [--batch 1] [--classes 3]
        [--inner-steps 2] [--steps 3] [--model-size tiny] [--device cpu|cuda|auto] [--threads N]

For each N it times ``--steps`` outer steps (after one warm-up step) of ``meta_train`` run for
each of N networks in turn and of ``meta_train_group`` over the same N networks (each with its
own models and random patches, as in a study), on ``unet3d`` at ``--model-size``. "per outer
step" is the time of one outer step of all N networks together; the speed-up is in turn /
grouped. On CUDA the timings synchronise the device. The default is the CPU (where the
convolutions' backward dominates and grouping is not expected to pay); ``--device cuda``
measures where it is meant to.
"""

from __future__ import annotations

import argparse
import time

import torch
from bench_ml3_memory import _device  # a script beside this one

from losslab.losses.learned import LossNetwork
from losslab.models import get_model
from losslab.search.ml3.group import meta_train_group
from losslab.search.ml3.meta import MetaConfig, meta_train


def _functions(args: argparse.Namespace, device: torch.device, i: int):
    """Network ``i``'s model factory and samplers (its own seed, its own random patches)."""
    patch = (args.patch,) * 3

    def make_model(step: int) -> torch.nn.Module:
        torch.manual_seed(1000 * i + step)
        return get_model(
            "unet3d",
            in_channels=1,
            num_classes=args.classes,
            patch_size=patch,
            size=args.model_size,
        ).to(device)

    generator = torch.Generator(device="cpu").manual_seed(i)

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(args.batch, 1, *patch, generator=generator)
        y = torch.randint(0, args.classes, (args.batch, *patch), generator=generator)
        return x.to(device), y.to(device)

    return make_model, lambda s: [batch() for _ in range(args.inner_steps)], lambda s: batch()


def _clock(stamps: dict[int, float]):
    """An ``on_step`` that stamps the time of its step (the last call of a step wins)."""

    def on_step(*args) -> None:  # (step, outer, value, skipped), in a group (i, step, ...)
        stamps[args[-4]] = time.perf_counter()

    return on_step


def measure(args: argparse.Namespace, n: int, device: torch.device) -> tuple[float, float]:
    """Seconds per outer step of N networks: (in turn, grouped), the first step excluded.

    A step's time is read between the ``on_step`` calls of consecutive outer steps (each
    reads the outer loss back to the host, which synchronises a GPU), so start-up costs
    (building the networks, the first step's allocations) stay out of it.
    """
    config = MetaConfig(inner_steps=args.inner_steps, inner_lr=0.1, outer_lr=0.01)
    functions = [_functions(args, device, i) for i in range(n)]
    steps = 1 + args.steps

    def nets() -> list[LossNetwork]:
        torch.manual_seed(0)
        return [LossNetwork(base="dice").to(device) for _ in range(n)]

    def in_turn() -> float:
        total = 0.0
        for net, (make, train, val) in zip(nets(), functions):
            stamps: dict[int, float] = {}
            meta_train(
                net,
                make,
                train,
                val,
                steps,
                config,
                on_step=_clock(stamps),
            )
            total += (stamps[steps - 1] - stamps[0]) / args.steps
        return total

    def grouped() -> float:
        makes, trains, vals = (list(f) for f in zip(*functions))
        stamps: dict[int, float] = {}  # the last member's call of each step
        meta_train_group(
            nets(),
            makes,
            trains,
            vals,
            steps,
            config,
            on_step=_clock(stamps),
        )
        return (stamps[steps - 1] - stamps[0]) / args.steps

    return in_turn(), grouped()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--patch", type=int, default=16)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--inner-steps", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--model-size", default="tiny")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    args = parser.parse_args()
    device = _device(args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print(
        f"device {device}, unet3d {args.model_size}, patch {args.patch}^3, batch {args.batch}, "
        f"{args.classes} classes, K = {args.inner_steps}, {args.steps} timed outer steps"
    )
    measure(argparse.Namespace(**{**vars(args), "steps": 1}), 1, device)  # lazy set-up, untimed
    print("| N | in turn (s/step) | grouped (s/step) | speed-up |")
    print("|---|---|---|---|")
    for n in args.networks:
        alone, together = measure(args, n, device)
        print(f"| {n} | {alone:.3f} | {together:.3f} | {alone / together:.2f}x |")


if __name__ == "__main__":
    main()
