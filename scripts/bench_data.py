"""Data benchmarks: phantom generation time and patch sampling throughput against MONAI.

    python scripts/bench_data.py [--cases 8] [--shape 96] [--patch 64] [--batch 2]
                                 [--batches 60] [--threads 1]

1. Phantom generation: seconds per case at 96^3 and 64^3 (median over ``--gen-cases`` cases).
2. Patch sampling: patches per second of ``PatchSampler`` (balanced and uniform) on phantom
   cases of ``--shape``^3 with a ``--patch``^3 patch and batch ``--batch``, on the CPU and on the
   GPU when ``torch.cuda.is_available()``. The peer is MONAI on the same tensors on the same
   device: ``RandCropByLabelClassesd`` (equal class ratios, ``num_samples=batch``) with the
   voxel indices precomputed by ``ClassesToIndicesd`` (its fastest use) and, for reference,
   without them; ``RandSpatialCropSamplesd`` for uniform crops. Each MONAI call crops one case,
   its samples are stacked into a batch. The ratio is ours / peer (higher is better).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=8, help="phantom cases to sample from")
    parser.add_argument("--shape", type=int, default=96, help="case size (cube)")
    parser.add_argument("--patch", type=int, default=64, help="patch size (cube)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--batches", type=int, default=60, help="timed batches per sampler")
    parser.add_argument("--gen-cases", type=int, default=10, help="timed phantom cases per shape")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (numpy and torch)")
    return parser.parse_args()


ARGS = _parse()
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(ARGS.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from monai.transforms import (  # noqa: E402
    ClassesToIndicesd,
    RandCropByLabelClassesd,
    RandSpatialCropSamplesd,
)

from losslab.data import PatchSampler, load_dataset, make_phantom_case  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(draw: Callable[[], object], batches: int, batch: int, device: torch.device) -> float:
    """Patches per second of ``draw`` (one batch per call) after 5 warm-up calls."""
    for _ in range(5):
        draw()
    _sync(device)
    start = time.perf_counter()
    for _ in range(batches):
        draw()
    _sync(device)
    return batches * batch / (time.perf_counter() - start)


def bench_phantom() -> list[str]:
    rows = []
    for size in (96, 64):
        make_phantom_case(0, (size,) * 3)
        times = []
        for seed in range(1, ARGS.gen_cases + 1):
            start = time.perf_counter()
            make_phantom_case(seed, (size,) * 3)
            times.append(time.perf_counter() - start)
        rows.append(
            f"| phantom case {size}^3 | {statistics.median(times) * 1e3:.0f} ms "
            f"(min {min(times) * 1e3:.0f}, max {max(times) * 1e3:.0f}) |"
        )
    return rows


def _monai_peers(dataset, device: torch.device) -> dict[str, Callable[[], object]]:
    patch, batch, c = (ARGS.patch,) * 3, ARGS.batch, dataset.num_classes
    rng = np.random.default_rng(0)
    items = [
        {"image": im.to(device), "label": lab[None].to(device)}
        for im, lab in zip(dataset.images, dataset.labels)
    ]
    with_indices = ClassesToIndicesd(keys="label", num_classes=c)
    indexed = [with_indices(dict(item)) for item in items]
    by_class_fast = RandCropByLabelClassesd(
        keys=["image", "label"],
        label_key="label",
        spatial_size=patch,
        num_classes=c,
        num_samples=batch,
        indices_key="label_cls_indices",
        warn=False,
    )
    by_class = RandCropByLabelClassesd(
        keys=["image", "label"],
        label_key="label",
        spatial_size=patch,
        num_classes=c,
        num_samples=batch,
        warn=False,
    )
    spatial = RandSpatialCropSamplesd(
        keys=["image", "label"], roi_size=patch, num_samples=batch, random_size=False
    )
    for t in (by_class_fast, by_class, spatial):
        t.set_random_state(seed=0)

    def draw(transform, pool) -> Callable[[], object]:
        def run() -> object:
            samples = transform(pool[int(rng.integers(len(pool)))])
            images = torch.stack([torch.as_tensor(s["image"]) for s in samples])
            labels = torch.stack([torch.as_tensor(s["label"])[0] for s in samples]).long()
            return images, labels

        return run

    return {
        "balanced": draw(by_class_fast, indexed),
        "balanced, no precomputed indices": draw(by_class, items),
        "uniform": draw(spatial, items),
    }


def bench_sampling(device: torch.device) -> list[str]:
    dataset = load_dataset(
        "phantom", cases=ARGS.cases, shape=(ARGS.shape,) * 3, split_fractions=(1, 0, 0)
    )
    dataset = dataset.to(device)
    peers = _monai_peers(dataset, device)
    rows = []
    slow_batches = max(5, ARGS.batches // 6)
    for mode in ("balanced", "uniform"):
        start = time.perf_counter()
        sampler = PatchSampler(
            dataset, patch_size=(ARGS.patch,) * 3, batch_size=ARGS.batch, mode=mode, device=device
        )
        _sync(device)
        setup = time.perf_counter() - start
        ours = _rate(sampler.sample, ARGS.batches, ARGS.batch, device)
        peer = _rate(peers[mode], ARGS.batches, ARGS.batch, device)
        rows.append(
            f"| {device.type} | {mode} | {ours:.0f} | {peer:.0f} | {ours / peer:.1f}x "
            f"| {setup:.2f} s |"
        )
        if mode == "balanced":
            slow = _rate(
                peers["balanced, no precomputed indices"], slow_batches, ARGS.batch, device
            )
            rows.append(
                f"| {device.type} | balanced (MONAI without precomputed indices) | {ours:.0f} "
                f"| {slow:.1f} | {ours / slow:.0f}x | |"
            )
    return rows


def main() -> None:
    torch.set_num_threads(ARGS.threads)
    print(
        f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"threads {ARGS.threads}, torch {torch.__version__}, "
        f"GPU {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}"
    )
    print("\n| what | time per case |\n|---|---|")
    print("\n".join(bench_phantom()))
    print(
        f"\n{ARGS.cases} cases {ARGS.shape}^3, patch {ARGS.patch}^3, batch {ARGS.batch}\n"
        "\n| device | mode | losslab patches/s | MONAI patches/s | ratio | sampler setup |"
        "\n|---|---|---|---|---|---|"
    )
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        print("\n".join(bench_sampling(device)))


if __name__ == "__main__":
    main()
