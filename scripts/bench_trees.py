"""Forward + backward time of many random loss trees, as the genetic search draws them.

    python scripts/bench_trees.py [--trees 30] [--nodes 20 60] [--shape 2 14 32 32 32]
        [--repeats 7] [--seed 0] [--threads 1] [--device cpu|cuda]

``scripts/bench_overhead.py`` times one random expression; a search evaluates thousands, each
with its own mix of operators. This draws ``--trees`` viable random trees of ``--nodes`` nodes
with the genetic backend's own generator (``losslab.search.gp``: a first generation, ramped
half-and-half; each with a finite value and a non-zero gradient on a probe batch), times the
compiled loss's forward and backward (``CompiledLoss.total`` then ``backward``) on logits of
``--shape`` (median of ``--repeats`` calls after one warm-up), and prints per tree the
milliseconds and the ratio to ``F.cross_entropy``'s forward and backward on the same logits,
timed in alternation; then the median, mean and worst ratio over the trees.

The trees depend only on ``--seed`` and the generator (not on the compiler), so the same
command run against two versions of the package (``PYTHONPATH``) times the same trees.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from losslab.losses import LOSS_VOCABULARY, LossSpec, parse_loss
from losslab.losses.nodes import iter_nodes
from losslab.search.gp.evolution import Breeder, Variation
from losslab.search.gp.language import GpLanguage
from losslab.search.gp.targets import LOSS_TERMINALS, viable_loss


def random_trees(
    count: int,
    lo: int,
    hi: int,
    seed: int,
    *,
    max_height: int = 7,
    probe: int = 8,
    tries: int | None = None,
) -> list[LossSpec]:
    """``count`` viable random trees of ``lo`` to ``hi`` nodes whose value and gradient are
    finite and whose gradient is not zero on a probe batch (``[2, 14, probe^3]``), among the
    first ``tries`` (default ``50 * count``) trees of a first generation drawn as the genetic
    backend draws it (ramped half-and-half, heights 4 to ``max_height``, over the loss
    vocabulary without ``dist``; viable: reads ``y`` and has a gradient path to a prediction).
    """
    language = GpLanguage(LOSS_VOCABULARY, LOSS_TERMINALS)
    breeder = Breeder(
        language,
        Variation(init_min_height=4, init_max_height=max_height),
        canonical=lambda node: str(LossSpec.from_tree(node)),
        viable=viable_loss,
    )
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 14, probe, probe, probe, generator=generator)
    labels = torch.randint(0, 14, (2, probe, probe, probe), generator=generator)
    found: list[LossSpec] = []
    for tree in breeder.random_trees(tries or 50 * count, seed):
        text = breeder.text_of(tree)
        if text is None:
            continue
        spec = parse_loss(text)
        if not lo <= sum(1 for _ in iter_nodes(spec.tree)) <= hi:
            continue
        probe_logits = logits.clone().requires_grad_()
        try:
            value = spec.compile().total(probe_logits, labels)
            value.backward()
        except (RuntimeError, ValueError):
            continue
        grad = probe_logits.grad
        finite = bool(torch.isfinite(value)) and grad is not None and bool(grad.isfinite().all())
        if finite and float(grad.abs().sum()) > 0:  # a gradient that moves the network
            found.append(spec)
        if len(found) == count:
            break
    return found


def _time(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(spec: LossSpec, shape, repeats: int, device: torch.device) -> tuple[float, float]:
    """Median seconds of the tree's forward + backward and of ``F.cross_entropy``'s."""
    generator = torch.Generator().manual_seed(1)
    logits = (torch.randn(*shape, generator=generator) * 2).to(device)
    labels = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=generator).to(device)
    loss = spec.compile()

    def ours() -> None:
        z = logits.detach().requires_grad_()
        loss.total(z, labels).backward()

    def peer() -> None:
        z = logits.detach().requires_grad_()
        F.cross_entropy(z, labels).backward()

    ours(), peer()  # warm-up
    mine, theirs = [], []
    for _ in range(repeats):
        mine.append(_time(ours, device))
        theirs.append(_time(peer, device))
    return statistics.median(mine), statistics.median(theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", type=int, default=30)
    parser.add_argument("--nodes", type=int, nargs=2, default=[20, 60])
    parser.add_argument("--shape", type=int, nargs=5, default=[2, 14, 32, 32, 32])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    trees = random_trees(args.trees, *args.nodes, args.seed)
    print(
        f"{len(trees)} random trees of {args.nodes[0]}-{args.nodes[1]} nodes, logits "
        f"{tuple(args.shape)} on {device} ({torch.get_num_threads()} threads)"
    )
    print(f"{'tree':>4} {'nodes':>5} {'ms':>8} {'CE ms':>7} {'ratio':>6}")
    ratios, times = [], []
    for i, spec in enumerate(trees):
        mine, theirs = measure(spec, args.shape, args.repeats, device)
        nodes = sum(1 for _ in iter_nodes(spec.tree))
        ratios.append(mine / theirs)
        times.append(mine)
        print(f"{i:4d} {nodes:5d} {mine * 1e3:8.2f} {theirs * 1e3:7.2f} {mine / theirs:6.2f}")
    print(
        f"ratio to F.cross_entropy over {len(ratios)} trees: median {statistics.median(ratios):.2f}, "
        f"mean {statistics.mean(ratios):.2f}, worst {max(ratios):.2f}; "
        f"ms: median {statistics.median(times) * 1e3:.2f}, total {sum(times) * 1e3:.1f}"
    )


if __name__ == "__main__":
    main()
