"""Time of the boundary loss's signed distance map: torch (on the device) against SciPy (host).

    python scripts/bench_distance.py [--sizes 32 64] [--classes 4] [--batch 2] [--repeats 5]
                                     [--threads 0]

The target is a batch of ``--batch`` label maps of ``size^3`` voxels with ``--classes`` classes
(nested random ellipsoids, so that every class is partial, as in a training patch), one-hot.
Each backend of :func:`losslab.losses.distance.signed_distance` is timed on the CPU (median of
``--repeats`` calls after one warm-up) and, when CUDA is available, on the GPU (``scipy`` there
includes its copies to the host and back); the maps of the two backends are compared exactly.
``--threads 0`` keeps torch's default number of CPU threads.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from losslab.losses.distance import signed_distance


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64], help="cube sizes")
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    return parser.parse_args()


def onehot_target(batch: int, classes: int, size: int, seed: int = 0) -> torch.Tensor:
    """``[batch, classes, size, size, size]`` float32 one-hot of nested random ellipsoids."""
    g = torch.Generator().manual_seed(seed)
    axes = torch.arange(size, dtype=torch.float32)
    grid = torch.stack(torch.meshgrid(axes, axes, axes, indexing="ij"))  # [3, S, S, S]
    labels = torch.zeros(batch, size, size, size, dtype=torch.long)
    for b in range(batch):
        for c in range(1, classes):
            centre = size * (0.3 + 0.4 * torch.rand(3, 1, 1, 1, generator=g))
            radii = size * (0.45 - 0.35 * c / classes) * (0.7 + 0.3 * torch.rand(3, 1, 1, 1))
            inside = (((grid - centre) / radii) ** 2).sum(0) <= 1
            labels[b][inside] = c
    return torch.nn.functional.one_hot(labels, classes).movedim(-1, 1).float()


def _time(onehot: torch.Tensor, backend: str, repeats: int) -> tuple[float, torch.Tensor]:
    cuda = onehot.is_cuda
    out = signed_distance(onehot, backend)  # warm-up
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = signed_distance(onehot, backend)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    args = _parse()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    for size in args.sizes:
        target = onehot_target(args.batch, args.classes, size)
        for device in devices:
            onehot = target.to(device)
            t_torch, a = _time(onehot, "torch", args.repeats)
            t_scipy, b = _time(onehot, "scipy", args.repeats)
            print(
                f"{device:4s} {args.batch}x{args.classes}x{size}^3: torch {t_torch * 1e3:8.1f} ms, "
                f"scipy {t_scipy * 1e3:8.1f} ms, torch/scipy {t_torch / t_scipy:5.2f}, "
                f"equal {torch.equal(a.cpu(), b.cpu())}"
            )


if __name__ == "__main__":
    main()
