"""Forward + backward time of compiled losses against MONAI (or plain torch) on the same batch.

    python scripts/bench_losses.py [--shape 2 14 64 64 64] [--device cpu|cuda] [--repeats 10]

Prints one row per loss: median milliseconds of ours and of the peer, and the ratio ours / peer
(lower is better; the goal is <= 1.2); then ours without label sums (the unfused program,
``losslab.losses.fusion``) and its ratio to the peer, all three timed in alternation.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from monai.losses import DiceLoss, FocalLoss, GeneralizedDiceLoss

from losslab.losses import LossSpec, get_loss, parse_loss
from losslab.losses.nodes import iter_nodes

# A 30-node expression of the kind a genetic search produces: focal-like, Dice-like with squared
# probabilities, and an L1 term, sharing sub-expressions.
RANDOM_EXPRESSION = (
    "nc * vmean(-(1 - p) ** gamma * y * logp) "
    "+ 1 - (2 * vsum(p * y) + 1) / (vsum(p ** 2) + vsum(y) + 1) "
    "+ 0.1 * vmean(abs(p - y) * sqrt(p)); gamma=2"
)


def random_expression_in_torch(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The same expression written by hand in torch: the peer of the compiled one."""
    logp = torch.log_softmax(logits, 1)
    p = logp.exp()
    y = torch.zeros_like(p).scatter_(1, labels.unsqueeze(1), 1.0)
    dims = [0, *range(2, p.dim())]
    focal = p.shape[1] * (-((1 - p) ** 2) * y * logp).mean(dims)
    dice = 1 - (2 * (p * y).sum(dims) + 1) / ((p**2).sum(dims) + y.sum(dims) + 1)
    l1 = 0.1 * ((p - y).abs() * p.clamp_min(1e-6).sqrt()).mean(dims)
    return (focal + dice + l1).mean()


def _once(fn: Callable[[], torch.Tensor], logits: torch.Tensor) -> float:
    logits.grad = None
    if logits.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn().backward()
    if logits.is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1e3


def time_all(
    fns: list[Callable[[], torch.Tensor]], logits: torch.Tensor, repeats: int
) -> list[float]:
    """Median milliseconds of forward + backward of each, interleaved so drift hits all alike."""
    for _ in range(2):  # warm-up
        for fn in fns:
            _once(fn, logits)
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times):
            out.append(_once(fn, logits))
    return [statistics.median(t) for t in times]


def time_pair(
    mine: Callable[[], torch.Tensor],
    peer: Callable[[], torch.Tensor],
    logits: torch.Tensor,
    repeats: int,
) -> tuple[float, float]:
    """Median milliseconds of forward + backward of both, interleaved so drift hits both alike."""
    ours, theirs = time_all([mine, peer], logits, repeats)
    return ours, theirs


def _unfused(spec: LossSpec) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``spec``'s compiled loss with the program it had before label sums
    (``losslab.losses.fusion``): the same loss, every sum over ``[B, C, *spatial]``."""
    compiled = spec.compile()
    compiled.program = compiled.unfused_program
    return compiled.total


def loss_cases(
    shape: tuple[int, ...] | list[int], device: torch.device, seed: int = 0
) -> tuple[list[tuple[str, Callable, Callable, str, Callable]], torch.Tensor, int]:
    """The timed cases ``(label, ours, peer, peer name, ours unfused)`` on random logits of ``shape``
    ``[B, C, *spatial]`` (and the logits, whose gradient each call fills, and the random
    expression's node count)."""
    b, c, *spatial = shape
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, c, *spatial, generator=generator).to(device).requires_grad_()
    labels = torch.randint(0, c, (b, *spatial), generator=generator).to(device)
    target = labels.unsqueeze(1)
    onehot = torch.zeros_like(logits).scatter_(1, target, 1.0)

    def ours(name: str | LossSpec) -> Callable[[], torch.Tensor]:
        spec = get_loss(name) if isinstance(name, str) else name
        compiled = spec.compile()
        return lambda: compiled.total(logits, labels)

    def unfused(name: str | LossSpec) -> Callable[[], torch.Tensor]:
        total = _unfused(get_loss(name) if isinstance(name, str) else name)
        return lambda: total(logits, labels)

    dice = DiceLoss(batch=True, softmax=True, to_onehot_y=True)
    gdl = GeneralizedDiceLoss(batch=True, softmax=True, to_onehot_y=True)
    focal = FocalLoss(use_softmax=True, gamma=2.0)
    ce = torch.nn.CrossEntropyLoss()
    random_spec = parse_loss(RANDOM_EXPRESSION)
    nodes = sum(1 for _ in iter_nodes(random_spec.tree))
    cases = [
        ("dice", ours("dice"), lambda: dice(logits, target), "monai DiceLoss", unfused("dice")),
        (
            "gdl",
            ours("gdl"),
            lambda: gdl(logits, target),
            "monai GeneralizedDiceLoss",
            unfused("gdl"),
        ),
        (
            "focal",
            ours("focal"),
            lambda: focal(logits, onehot),
            "monai FocalLoss",
            unfused("focal"),
        ),
        ("ce", ours("ce"), lambda: ce(logits, labels), "torch F.cross_entropy", unfused("ce")),
        (
            f"random ({nodes} nodes)",
            ours(random_spec),
            lambda: random_expression_in_torch(logits, labels),
            "hand-written torch",
            unfused(random_spec),
        ),
    ]
    return cases, logits, nodes


def measure_losses(
    shape: tuple[int, ...] | list[int], device: torch.device, repeats: int
) -> list[dict[str, float | str]]:
    """One row per loss: ``loss``, ``ours_ms``, ``peer_ms``, ``ratio`` (ours / peer), ``peer``,
    and ``unfused_ms`` (ours without label sums, ``losslab.losses.fusion``)."""
    cases, logits, _ = loss_cases(shape, device)
    rows = []
    for label, mine, peer, peer_name, mine_unfused in cases:
        t_ours, t_peer, t_unfused = time_all([mine, peer, mine_unfused], logits, repeats)
        rows.append(
            {
                "loss": label,
                "ours_ms": t_ours,
                "peer_ms": t_peer,
                "ratio": t_ours / t_peer,
                "peer": peer_name,
                "unfused_ms": t_unfused,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=5, default=[2, 14, 64, 64, 64])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"shape {tuple(args.shape)} on {name}, {torch.get_num_threads()} threads")
    print(
        f"{'loss':<20} {'ours ms':>9} {'peer ms':>9} {'ratio':>6} {'unfused ms':>11} "
        f"{'unfused ratio':>14}  peer"
    )
    for row in measure_losses(args.shape, device, args.repeats):
        print(
            f"{row['loss']:<20} {row['ours_ms']:9.1f} {row['peer_ms']:9.1f} "
            f"{row['ratio']:6.2f} {row['unfused_ms']:11.1f} "
            f"{row['unfused_ms'] / row['peer_ms']:14.2f}  {row['peer']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
