"""Peak memory and time of per-class HD95 on a whole brain-sized volume.

    python scripts/bench_hd95.py [--classes 49] [--shape 181 217 181] [--spacing 1 1 1]

The reference is an ellipsoid cut into ``classes - 1`` Voronoi regions (a parcellation-like
label map, background around it); the prediction is the reference moved by one voxel along each
axis with a few spurious blobs of other classes. Each implementation runs in a fresh process on
the same label maps (read from a temporary file, so that making them does not count), and
reports its peak resident memory (``VmHWM``, reset just before the call) and how much of it is
above what the process held before the call:

- ``losslab``: :func:`losslab.training.hd95_per_class` (one class bounding box at a time).
- ``monai``: the peer and the previous implementation: whole-volume int64 one-hot tensors of
  every class handed to MONAI's ``compute_hausdorff_distance(percentile=95)``.

The two results are compared class by class (largest relative difference printed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree


def make_labels(
    shape: tuple[int, int, int], classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    centre, radii = np.array(shape) / 2, np.array(shape) * 0.45
    inside = (((grid - centre) / radii) ** 2).sum(-1) <= 1
    points = grid[inside]
    seeds = points[rng.choice(len(points), classes - 1, replace=False)]
    target = np.zeros(shape, dtype=np.uint8)
    target[inside] = cKDTree(seeds).query(points)[1] + 1
    pred = np.roll(target, (1, 1, 1), axis=(0, 1, 2))
    for _ in range(6):
        corner = rng.integers(0, np.array(shape) - 4)
        box = tuple(slice(c, c + 4) for c in corner)
        pred[box] = rng.integers(1, classes)
    return target, pred


def losslab_hd95(pred, target, classes, spacing) -> list[float]:
    from losslab.training import hd95_per_class

    return hd95_per_class(pred, target, classes, spacing).tolist()


def monai_hd95(pred, target, classes, spacing) -> list[float]:
    """The previous losslab implementation (whole-volume one-hot, MONAI on every class)."""
    from monai.metrics import compute_hausdorff_distance

    onehot_pred = torch.nn.functional.one_hot(pred, classes).movedim(-1, 0)[None]
    onehot_ref = torch.nn.functional.one_hot(target, classes).movedim(-1, 0)[None]
    out = [math.nan] * classes
    present = onehot_ref.flatten(2).any(-1)[0] & onehot_pred.flatten(2).any(-1)[0]
    both = [c for c in range(1, classes) if present[c]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        distances = compute_hausdorff_distance(
            onehot_pred[:, both],
            onehot_ref[:, both],
            include_background=True,
            percentile=95,
            spacing=list(spacing),
        )[0]
    for c, d in zip(both, distances.tolist()):
        out[c] = d
    return out


def _status_mb(field: str) -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process, in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> None:
    """Start the peak (``VmHWM``) afresh from the current resident memory (Linux >= 4.0)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def child(args) -> None:
    # imported before the measurement: they belong to what the process holds, not to the peak
    import monai.metrics  # noqa: F401

    import losslab.training  # noqa: F401

    data = np.load(args.data)
    target = torch.from_numpy(data["target"].astype(np.int64))
    pred = torch.from_numpy(data["pred"].astype(np.int64))
    fn = losslab_hd95 if args.child == "losslab" else monai_hd95
    _reset_peak()
    before = _status_mb("VmRSS")
    start = time.perf_counter()
    values = fn(pred, target, args.classes, tuple(args.spacing))
    seconds = time.perf_counter() - start
    peak = _status_mb("VmHWM")
    print(json.dumps({"seconds": seconds, "before_mb": before, "peak_mb": peak, "hd95": values}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=49)
    parser.add_argument("--shape", type=int, nargs=3, default=(181, 217, 181))
    parser.add_argument("--spacing", type=float, nargs=3, default=(1.0, 1.0, 1.0))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--impl", nargs="+", default=["losslab", "monai"])
    parser.add_argument("--child", choices=["losslab", "monai"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    torch.set_num_threads(1)
    target, pred = make_labels(tuple(args.shape), args.classes, args.seed)
    print(
        f"{args.classes} classes, volume {'x'.join(map(str, args.shape))}, "
        f"spacing {args.spacing}, {np.prod(args.shape) / 1e6:.1f} M voxels"
    )
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "labels.npz"
        np.savez(path, target=target, pred=pred)
        for impl in args.impl:
            command = [sys.executable, __file__, "--child", impl, "--data", str(path)]
            command += ["--classes", str(args.classes), "--spacing", *map(str, args.spacing)]
            run = subprocess.run(command, capture_output=True, text=True)
            if run.returncode != 0:
                print(f"{impl}: failed (exit {run.returncode})\n{run.stderr[-2000:]}")
                continue
            results[impl] = json.loads(run.stdout.strip().splitlines()[-1])
            r = results[impl]
            print(
                f"{impl:8s} {r['seconds']:7.2f} s   peak RSS {r['peak_mb'] / 1024:6.2f} GB "
                f"({(r['peak_mb'] - r['before_mb']) / 1024:6.2f} GB above the "
                f"{r['before_mb'] / 1024:.2f} GB held before the call)"
            )
    if len(results) == 2:
        ours, peer = (np.array(r["hd95"], dtype=float) for r in results.values())
        both = ~np.isnan(ours) & ~np.isnan(peer)
        worst = np.max(np.abs(ours[both] - peer[both]) / np.maximum(np.abs(peer[both]), 1e-12))
        same_nan = bool((np.isnan(ours) == np.isnan(peer)).all())
        print(f"largest relative difference {worst:.2e} over {both.sum()} classes; ", end="")
        print(f"NaN in the same classes: {same_nan}")


if __name__ == "__main__":
    main()
