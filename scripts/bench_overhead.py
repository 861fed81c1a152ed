"""Trainer overhead: losslab's training step against the bare network's step on the same batch.

    python scripts/bench_overhead.py [--device cpu|cuda] [--model-size tiny] [--patch 32]
        [--batch 2] [--steps 30] [--block 5] [--compile off|on|both]
        [--losses dice,dice_ce,gdl,boundary,random] [--amp on|off] [--seed 0] [--threads N]

Overhead = time of one ``Trainer.step(state)`` / time of one bare step, for each loss and with
and without ``torch.compile`` of the network (lower is better; the goal is <= 1.2 on a GPU).

- Trainer step: ``Trainer.step`` on a state built by the trainer's own ``_setup`` (as
  ``Trainer.fit`` builds it, optimiser ``adam``): patch sampling, augmentation, forward under
  the run's autocast, the compiled loss and its reduction, the term schedule, backward,
  gradient-norm clipping and the optimiser step. The per-step bookkeeping of
  ``Trainer._train_epoch`` (loss sum, finiteness flags, hooks) is not included.
- Bare step: a fixed batch sampled once beforehand and already on the device, ``model(x)``
  under the same autocast, mean cross-entropy of the logits (``F.cross_entropy``, the
  cheapest reasonable loss: the point is the network's own cost), ``backward``, ``Adam.step``
  (same learning rate and weight decay), ``zero_grad``.

Both sides use the same network type and size (``unet3d``) in the same layout (the trainer's:
channels-last 3D convolutions on the CPU, ``training.setup.fastest_layout``), the same patch,
batch, device and AMP setting (bf16 on CUDA when ``--amp on``, as ``TrainConfig.amp``; none on the CPU) and, with
compile, the same ``torch.compile(model)``. They run in the same process, interleaved in blocks
of ``--block`` steps (the side that goes first alternates), timed per block (with
``torch.cuda.synchronize()`` on CUDA at both ends, so a host-sync-free step can queue ahead
inside a block, as it does in training); the figure is the median over blocks of the mean step
time, after ``--warmup`` steps of each (compilation happens there). The ratio of the fastest
blocks is printed beside it: on a shared machine it is the less disturbed of the two.

``random`` is a loss expression of about 40 nodes drawn by the genetic backend's own random
tree generator (``losslab.search.gp``) with a fixed seed: the first tree of 36 to 44 nodes
(canonical form) whose value and gradient are finite on a probe batch; it is printed.

A breakdown follows (``--no-breakdown`` skips it): milliseconds of the parts the trainer adds,
each timed alone on the trainer's state: sampling + augmentation, the loss's forward + backward
on the network's logits against the bare cross-entropy's, and gradient clipping.

Defaults: on the CPU ``tiny`` at a 32^3 patch, batch 2; on CUDA ``base`` at 96^3, batch 2.
The phantom has ``--cases`` cases of ``--shape``^3 (default: patch + 32). ``boundary`` computes
its signed distance map on the host with SciPy every step (seconds per step at 96^3): on a GPU,
give it its own run with fewer ``--steps`` if a run must stay short. On a shared CPU,
``--threads 1`` keeps other jobs from stretching a step at random.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from bench_trees import random_trees  # a script beside this one

from losslab.candidate import Candidate
from losslab.data import augment, load_dataset
from losslab.losses import LossSpec
from losslab.losses.nodes import iter_nodes
from losslab.models import get_model
from losslab.training import TrainConfig, Trainer
from losslab.training.determinism import TorchFlags
from losslab.training.setup import fastest_layout

LOSSES = ("dice", "dice_ce", "gdl", "boundary", "random")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_expression(seed: int, lo: int = 36, hi: int = 44, tries: int = 400) -> LossSpec:
    """The first random loss tree of ``lo`` to ``hi`` nodes whose value and gradient are finite
    (heights 4 to 6, a 16^3 probe: ``bench_trees.random_trees``)."""
    found = random_trees(1, lo, hi, seed, max_height=6, probe=16, tries=tries)
    if not found:
        raise RuntimeError(f"no random expression of {lo} to {hi} nodes in {tries} trees")
    return found[0]


def blocks(
    sides: dict[str, Callable[[], object]],
    device: torch.device,
    steps: int,
    block: int,
    warmup: int,
) -> dict[str, float]:
    """Median over blocks of the mean seconds per call of each side, interleaved (and the
    fastest block of each, as ``<side>_min``)."""
    for fn in sides.values():
        for _ in range(warmup):
            fn()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for round_ in range(max(1, steps // block)):
        for name in names if round_ % 2 == 0 else names[::-1]:
            fn = sides[name]
            _sync(device)
            start = time.perf_counter()
            for _ in range(block):
                fn()
            _sync(device)
            times[name].append((time.perf_counter() - start) / block)
    out = {name: statistics.median(t) for name, t in times.items()}
    out.update({f"{name}_min": min(t) for name, t in times.items()})
    return out


def median_ms(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def measure(dataset, candidate: Candidate, compiled: bool, args, device) -> dict[str, float]:
    """Trainer and bare step seconds for one loss and compile setting (and the breakdown)."""
    config = TrainConfig(
        model="unet3d",
        model_size=args.model_size,
        epochs=1,
        steps_per_epoch=args.warmup + args.steps,
        batch_size=args.batch,
        patch_size=(args.patch,) * 3,
        optimizer="adam",
        amp=args.amp == "on",
        device=str(device),
        seed=args.seed,
        hd95=False,
    )
    trainer = Trainer(config)
    state = trainer._setup(candidate, dataset)  # exactly what Trainer.fit trains with
    state.model.train()
    state.epoch = 1
    images, labels = state.sampler.sample()  # the bare step's fixed batch, on the device
    images, labels = images.clone(), labels.long().clone()

    torch.manual_seed(config.seed)
    model = get_model(
        "unet3d",
        in_channels=images.shape[1],
        num_classes=dataset.num_classes,
        patch_size=config.patch_size,
        size=config.model_size,
    ).to(device)
    model = fastest_layout(model, device)  # the trainer's network layout (channels-last on CPU)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if compiled:
        model = torch.compile(model)
        state.model = torch.compile(state.model)
    amp = state.amp_dtype

    def bare() -> None:
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            logits = model(images)
        F.cross_entropy(logits.float(), labels).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    out = blocks(
        {"trainer": lambda: trainer.step(state), "bare": bare},
        device,
        args.steps,
        args.block,
        args.warmup,
    )
    if args.breakdown and not compiled:
        out.update(breakdown(state, images, labels, args, device))
    return out


def breakdown(state, images, labels, args, device) -> dict[str, float]:
    """Milliseconds of the parts the trainer adds to the bare step, each timed alone."""
    amp = state.amp_dtype
    with (
        torch.no_grad(),
        torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None),
    ):
        logits = state.model(images)
    logits.requires_grad_()

    def sample() -> None:
        x, y = state.sampler.sample()
        augment(x, y, state.augment_generator)

    def loss() -> None:
        logits.grad = None
        state.loss.total(logits, labels, state.class_weights, state.term_weights).backward()

    def cross_entropy() -> None:
        logits.grad = None
        F.cross_entropy(logits.float(), labels).backward()

    def clip() -> None:
        torch.nn.utils.clip_grad_norm_(state.trainable, state.config.grad_clip)

    repeats = max(5, args.steps // 2)
    return {
        "sample_ms": median_ms(sample, device, repeats),
        "loss_ms": median_ms(loss, device, repeats),
        "ce_ms": median_ms(cross_entropy, device, repeats),
        "clip_ms": median_ms(clip, device, repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model-size", default=None, help="default: tiny on CPU, base on CUDA")
    parser.add_argument("--patch", type=int, default=None, help="default: 32 on CPU, 96 on CUDA")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per side")
    parser.add_argument("--block", type=int, default=5, help="steps per interleaved block")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--compile", choices=("off", "on", "both"), default="both")
    parser.add_argument("--losses", default=",".join(LOSSES))
    parser.add_argument("--amp", choices=("on", "off"), default="on")
    parser.add_argument("--shape", type=int, default=None, help="phantom edge (patch + 32)")
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="run seed and random tree seed")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    args.model_size = args.model_size or ("base" if cuda else "tiny")
    args.patch = args.patch or (96 if cuda else 32)
    shape = args.shape or args.patch + 32
    losses = [name.strip() for name in args.losses.split(",") if name.strip()]
    unknown = [name for name in losses if name not in LOSSES]
    if unknown:
        parser.error(f"unknown loss(es) {', '.join(unknown)}; choose from {', '.join(LOSSES)}")
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.compile]

    dataset = load_dataset("phantom", cases=args.cases, shape=(shape,) * 3, seed=0)
    candidates = {}
    for name in losses:
        if name == "random":
            spec = random_expression(args.seed)
            nodes = sum(1 for _ in iter_nodes(spec.tree))
            print(f"random expression (seed {args.seed}, {nodes} nodes): {spec}")
            candidates[f"random ({nodes} nodes)"] = Candidate.from_loss(spec, name="random")
        else:
            candidates[name] = Candidate.from_loss(name)

    name = torch.cuda.get_device_name(device) if cuda else "CPU"
    amp = "bf16 autocast" if cuda and args.amp == "on" else "no AMP"
    print(
        f"unet3d-{args.model_size}, patch {args.patch}^3, batch {args.batch}, {args.cases} "
        f"phantom cases of {shape}^3, {name} ({torch.get_num_threads()} threads), {amp}; "
        f"median of {max(1, args.steps // args.block)} blocks of {args.block} steps per side"
    )
    print(
        f"{'loss':<20} {'compile':<8} {'bare ms':>9} {'trainer ms':>11} {'overhead':>9} "
        f"{'fastest blocks':>15}"
    )
    rows, errors = [], {}
    flags = TorchFlags.save()  # the trainer's setup sets process-wide flags: put them back
    try:
        for compiled in modes:
            for label, candidate in candidates.items():
                if compiled and "compile" in errors:
                    continue
                try:
                    out = measure(dataset, candidate, compiled, args, device)
                except Exception as exc:
                    if not compiled:
                        raise
                    errors["compile"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
                    print(f"torch.compile failed: {errors['compile']}")
                    continue
                rows.append((label, out))
                print(
                    f"{label:<20} {'on' if compiled else 'off':<8} {out['bare'] * 1e3:9.1f} "
                    f"{out['trainer'] * 1e3:11.1f} {out['trainer'] / out['bare']:8.2f}x "
                    f"{out['trainer_min'] / out['bare_min']:14.2f}x",
                    flush=True,
                )
    finally:
        flags.restore()
    parts = [(label, out) for label, out in rows if "loss_ms" in out]
    if parts:
        print("\nbreakdown, compile off (ms per call, each part timed alone)")
        print(
            f"{'loss':<20} {'sample+augment':>15} {'loss fwd+bwd':>13} {'bare CE fwd+bwd':>16} "
            f"{'clip':>7}"
        )
        for label, out in parts:
            print(
                f"{label:<20} {out['sample_ms']:15.2f} {out['loss_ms']:13.2f} "
                f"{out['ce_ms']:16.2f} {out['clip_ms']:7.2f}"
            )


if __name__ == "__main__":
    main()
