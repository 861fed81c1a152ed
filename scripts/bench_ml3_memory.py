"""ML3 meta-training cost against the number of unrolled inner steps K.

    python scripts/bench_ml3_memory.py [--ks 1 2 4] [--patch 32] [--batch 2] [--classes 4]
        [--steps 3] [--model-size tiny] [--engine torch.func] [--device cpu|cuda|auto] [--threads N]

Each K runs in a fresh subprocess (so one K's high-water mark cannot hide another's): it builds
the segmentation network (``unet3d``), a loss network and random patches, then times
``--steps`` outer steps (meta-gradient and Adam update of the loss network) after one warm-up
step. Peak memory is, on CUDA, ``torch.cuda.max_memory_allocated`` over the outer steps (the
warm-up included) minus what was allocated before them; on the CPU, the growth of the
process's maximum resident set size (``resource.getrusage``) over the same span, which counts
the autograd graph of the unrolled steps and the allocator's caches (``tracemalloc`` does not
see torch's memory). Both grow about linearly in K: every inner step's activations and
gradient graph are kept for the outer backward pass. The table gives each K's ratio to K = 1
measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from losslab.losses.learned import LossNetwork
from losslab.models import get_model
from losslab.search.ml3.meta import MetaConfig, meta_gradient


def _device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available")
    return torch.device(name)


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(args: argparse.Namespace, k: int) -> dict:
    """Measure one K in this process; returns the numbers as a dict."""
    device = _device(args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    patch = (args.patch,) * 3
    model = get_model(
        "unet3d", in_channels=1, num_classes=args.classes, patch_size=patch, size=args.model_size
    ).to(device)
    loss_net = LossNetwork(base="dice").to(device)
    optimizer = torch.optim.Adam(loss_net.parameters(), lr=1e-3)
    config = MetaConfig(inner_steps=k, inner_lr=0.1, engine=args.engine)

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(args.batch, 1, *patch, device=device)
        return x, torch.randint(0, args.classes, (args.batch, *patch), device=device)

    def outer_step() -> None:
        mg = meta_gradient(loss_net, model, [batch() for _ in range(k)], batch(), config)
        for p, g in zip(loss_net.parameters(), mg.grads):
            p.grad = g
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_mib()
    outer_step()  # warm-up: not timed, but its memory counts
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        outer_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = _rss_mib() - base
    seconds = (time.perf_counter() - start) / args.steps
    return {
        "k": k,
        "seconds": seconds,
        "peak_mib": peak,
        "device": str(device),
        "threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--patch", type=int, default=32, help="cubic patch edge (multiple of 4)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="timed outer steps per K")
    parser.add_argument("--model-size", default="tiny")
    parser.add_argument("--engine", default="torch.func", choices=["torch.func", "higher"])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args, args.child)))
        return
    if any(k < 1 for k in args.ks):
        raise SystemExit(f"--ks: every K must be >= 1, got {args.ks}")
    passthrough = list(argv if argv is not None else sys.argv[1:])
    rows = []
    for k in args.ks:
        out = subprocess.run(
            [sys.executable, __file__, *passthrough, "--child", str(k)],
            check=True,
            capture_output=True,
            text=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    first = rows[0]
    memory = (
        "peak CUDA memory (MiB)" if first["device"].startswith("cuda") else "max RSS growth (MiB)"
    )
    print(
        f"ML3 outer step, unet3d {args.model_size}, patch {args.patch}^3, batch {args.batch}, "
        f"{args.classes} classes, engine {args.engine}, device {first['device']}, "
        f"{args.steps} timed steps per K, {first['threads']} CPU threads\n"
    )
    print(f"| K | s / outer step | x K={first['k']} | {memory} | x K={first['k']} |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['k']} | {row['seconds']:.3f} | {row['seconds'] / first['seconds']:.2f} "
            f"| {row['peak_mib']:.1f} | {row['peak_mib'] / max(first['peak_mib'], 1e-9):.2f} |"
        )


if __name__ == "__main__":
    main()
