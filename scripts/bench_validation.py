"""Seconds per validation pass: full sliding window against fixed validation patches.

    python scripts/bench_validation.py [--shape 256 256 108] [--cases 1] [--patch 64]
        [--per-class 2] [--repeats 2] [--threads 2]

Same network (``unet3d``, ``tiny``, random weights, eval mode), same validation cases (phantom
cases of the given shape, preprocessed as the trainer gets them), same patch and batch (the
``TrainConfig`` defaults: ``sw_batch_size`` 4, ``sw_overlap`` 0.25), on the CPU:

- ``sliding_window``: :func:`losslab.training.inference.evaluate_split` over every case, Dice
  only (``TrainConfig(validation="sliding_window")``, the per-epoch default).
- ``patches``: :func:`losslab.training.validation.evaluate_patches` on the patches
  :func:`~losslab.training.validation.choose_validation_patches` draws once per run
  (``TrainConfig(validation="patches", val_patches_per_class=...)``); choosing them is timed
  apart, since a run does it once.

Each pass is timed ``--repeats`` times after one warm-up pass of each; the median is printed,
with the ratio sliding window / patches (the speed-up, higher is better).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from losslab.data import load_dataset
from losslab.models import get_model
from losslab.training.inference import evaluate_split
from losslab.training.validation import choose_validation_patches, evaluate_patches


def timed(fn, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(256, 256, 108))
    parser.add_argument("--cases", type=int, default=1, help="validation cases")
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--per-class", type=int, default=2, help="val_patches_per_class")
    parser.add_argument("--batch", type=int, default=4, help="sw_batch_size")
    parser.add_argument("--overlap", type=float, default=0.25, help="sw_overlap")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model-size", default="tiny")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shape, patch = tuple(args.shape), (args.patch,) * 3

    start = time.perf_counter()
    data = load_dataset("phantom", cases=max(args.cases, 3), shape=shape, seed=0)
    images, labels = data.images[: args.cases], data.labels[: args.cases]
    print(
        f"{args.cases} phantom case(s) of {'x'.join(map(str, shape))} "
        f"({data.num_classes} classes) made in {time.perf_counter() - start:.1f} s; "
        f"patch {args.patch}^3, batch {args.batch}, {args.threads} thread(s), "
        f"unet3d {args.model_size}"
    )
    torch.manual_seed(0)
    model = get_model(
        "unet3d", num_classes=data.num_classes, patch_size=patch, size=args.model_size
    )
    model.eval()

    start = time.perf_counter()
    patches = choose_validation_patches(labels, data.num_classes, patch, args.per_class, seed=0)
    choose = time.perf_counter() - start

    def window():
        return evaluate_split(
            model,
            images,
            labels,
            data.num_classes,
            patch_size=patch,
            sw_batch_size=args.batch,
            overlap=args.overlap,
        )["dice"]

    def cheap():
        return evaluate_patches(
            model,
            images,
            labels,
            data.num_classes,
            patches,
            patch_size=patch,
            batch_size=args.batch,
        )["dice"]

    window_s, _ = timed(window, args.repeats)
    patches_s, _ = timed(cheap, args.repeats)
    windows = 1
    for n, p in zip(shape, patch):
        step = max(1, int(p * (1 - args.overlap)))
        windows *= max(1, -(-(n - p) // step) + 1) if n > p else 1
    print(f"sliding window: {window_s:8.2f} s per pass ({windows * args.cases} windows)")
    print(
        f"patches:        {patches_s:8.2f} s per pass ({len(patches)} patches, "
        f"{args.per_class} per class and case; chosen once in {choose:.2f} s)"
    )
    print(f"ratio sliding window / patches: {window_s / patches_s:.1f}x")


if __name__ == "__main__":
    main()
