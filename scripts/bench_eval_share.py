"""Where an evaluation's time goes: setup, training steps, per-epoch validation, final test.

    python scripts/bench_eval_share.py [--device cpu|cuda] [--validation sliding_window,patches]
        [--shape 96] [--cases 10] [--patch 32] [--model-size tiny] [--epochs 4] [--steps 25]
        [--loss dice_ce] [--no-hd95] [--repeats 1] [--threads N]

Runs a whole ``Trainer.fit`` of one small evaluation on the phantom for each validation mode
(``TrainConfig.validation``: ``sliding_window``, the default, or ``patches``) and prints the
share of the fit's wall time (``Result.wall_time``) spent in:

- setup: ``Trainer._setup`` (the network, the data on the device, the patch sampler, the
  validation patches in ``patches`` mode);
- training: the epochs' wall time (``EpochRecord.wall_time``, read by a hook at
  ``on_epoch_end``) less their validation: the steps and the per-step bookkeeping, with the
  end-of-epoch read of the losses;
- validation: ``Trainer._validate``, every epoch (``val_every`` 1);
- test: ``Trainer._test``, the sliding window over the test split with every test metric (HD95
  included unless ``--no-hd95``);
- other: the rest (class-schedule updates, hooks, the Result).

A subclass of the trainer times ``_setup``, ``_validate`` and ``_test`` (with
``torch.cuda.synchronize()`` at both ends on CUDA; nothing is added inside a training step).
The phantom is made once before the runs and is not counted, nor are two one-time costs of a
process or a dataset that a study pays once, not per evaluation: the dataset's per-case class
counts (``SegmentationDataset.case_class_counts``, computed on first use) and a first untimed
``fit`` of one step (lazy imports, allocator and thread-pool warm-up; ``--no-warmup`` skips it).
With ``--repeats`` above 1 the modes alternate, run after run.

Defaults: on the CPU ``tiny`` at a 32^3 patch on 96^3 cases; on CUDA ``base`` at 96^3 on
192^3 cases; 10 cases (6 train, 2 validation, 2 test), 4 epochs of 25 steps, batch 2.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch

from losslab.candidate import Candidate
from losslab.data import load_dataset
from losslab.training import Hook, TrainConfig, Trainer

MODES = ("sliding_window", "patches")
PARTS = ("setup", "training", "validation", "test", "other")


class _Epochs(Hook):
    """Collects each epoch's wall time (validation included) at ``on_epoch_end``."""

    def __init__(self) -> None:
        self.wall: list[float] = []

    def on_epoch_end(self, state, record) -> None:
        self.wall.append(record.wall_time)


class TimedTrainer(Trainer):
    """The trainer, with its setup, validation and test timed (seconds, summed per part)."""

    def __init__(self, config: TrainConfig, hooks=()):
        super().__init__(config, hooks)
        self.seconds: dict[str, float] = defaultdict(float)

    def _timed(self, part: str, fn, *args):
        cuda = self.config.device.startswith("cuda")
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            if cuda:
                torch.cuda.synchronize()
            self.seconds[part] += time.perf_counter() - start

    def _setup(self, candidate, dataset):
        return self._timed("setup", super()._setup, candidate, dataset)

    def _validate(self, state):
        return self._timed("validation", super()._validate, state)

    def _test(self, state):
        return self._timed("test", super()._test, state)


def _config(args, device: torch.device, mode: str, **overrides) -> TrainConfig:
    settings = dict(
        model="unet3d",
        model_size=args.model_size,
        epochs=args.epochs,
        steps_per_epoch=args.steps,
        batch_size=args.batch,
        patch_size=(args.patch,) * 3,
        device=str(device),
        validation=mode,
        hd95=args.hd95,
    )
    return TrainConfig(**{**settings, **overrides})


def run(dataset, mode: str, args, device: torch.device) -> dict[str, float]:
    """Seconds of each part of one ``Trainer.fit`` (and ``total``)."""
    epochs = _Epochs()
    trainer = TimedTrainer(_config(args, device, mode), [epochs])
    result = trainer.fit(Candidate.from_loss(args.loss), dataset)
    if result.status != "ok":
        raise RuntimeError(f"the evaluation did not finish: {result.status} {result.reason}")
    seconds = dict(trainer.seconds)
    seconds["training"] = sum(epochs.wall) - seconds["validation"]
    seconds["total"] = result.wall_time
    seconds["other"] = result.wall_time - sum(seconds[p] for p in PARTS if p != "other")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--validation", default=",".join(MODES), help="modes, comma-separated")
    parser.add_argument("--shape", type=int, default=None, help="default: 96 CPU, 192 CUDA")
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--patch", type=int, default=None, help="default: 32 CPU, 96 CUDA")
    parser.add_argument("--model-size", default=None, help="default: tiny CPU, base CUDA")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=25, help="steps per epoch")
    parser.add_argument("--loss", default="dice_ce")
    parser.add_argument("--no-hd95", dest="hd95", action="store_false")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-warmup", dest="warmup", action="store_false")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    args.shape = args.shape or (192 if cuda else 96)
    args.patch = args.patch or (96 if cuda else 32)
    args.model_size = args.model_size or ("base" if cuda else "tiny")
    modes = [m.strip() for m in args.validation.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown validation mode(s) {', '.join(unknown)}: {', '.join(MODES)}")

    start = time.perf_counter()
    dataset = load_dataset("phantom", cases=args.cases, shape=(args.shape,) * 3, seed=0)
    made = time.perf_counter() - start
    start = time.perf_counter()
    dataset.case_class_counts  # noqa: B018 - computed once per dataset, kept
    counted = time.perf_counter() - start
    if args.warmup:
        warm = _config(args, device, modes[0], epochs=1, steps_per_epoch=1, hd95=False)
        Trainer(warm).fit(Candidate.from_loss(args.loss), dataset)
    splits = "/".join(str(len(dataset.splits.get(s, []))) for s in ("train", "val", "test"))
    name = torch.cuda.get_device_name(device) if cuda else "CPU"
    print(
        f"{args.cases} phantom cases of {args.shape}^3 (train/val/test {splits}, made in "
        f"{made:.1f} s, class counts in {counted:.2f} s, not counted), unet3d-{args.model_size}, patch {args.patch}^3, batch "
        f"{args.batch}, {args.epochs} epochs x {args.steps} steps, loss {args.loss}, HD95 "
        f"{'on' if args.hd95 else 'off'}, {name} ({torch.get_num_threads()} threads)"
    )
    header = f"{'validation':<15} {'run':>3} {'total s':>8} " + " ".join(f"{p:>15}" for p in PARTS)
    print(header)
    for repeat in range(args.repeats):
        for mode in modes if repeat % 2 == 0 else modes[::-1]:
            s = run(dataset, mode, args, device)
            cells = " ".join(f"{s[p]:6.2f} s {100 * s[p] / s['total']:4.1f}%" for p in PARTS)
            print(f"{mode:<15} {repeat + 1:>3} {s['total']:8.2f} {cells}", flush=True)


if __name__ == "__main__":
    main()
