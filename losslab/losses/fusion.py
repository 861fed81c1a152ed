"""Cross-entropy-like sums computed at the labels only: ``vsum(y * G)`` and ``vmean(y * G)``.

The one-hot target ``y`` is 0 at every voxel of every class but the voxel's own label, so a sum
over the voxels of ``y * G`` (``-y * logp`` of cross-entropy, ``-(1 - p) ** gamma * y * logp``
of focal, the weighted and asymmetric forms) only reads ``G`` at the label of each voxel:

    vsum(y * G)[c] = sum of G[b, c, n] over the voxels (b, n) whose label is c.

The compiler (``compile_program(..., fuse_labels=True)``) evaluates such an argument on the
*gathered* terminals, one value per voxel (``[B, 1, *spatial]``: ``logp`` at the label, ``p`` as
its exponential, ``y = 1``, ``fg = label != 0``; a non-elementwise sub-tree such as
``log_softmax(...)`` is computed whole and gathered), with the very operations of the tree,
then adds the values up per label. That is C times fewer elementwise passes than over
``[B, C, *spatial]``, and the ``log_softmax`` is the one every term of the candidate shares.

When is the argument ``X`` of a sum such a product? When ``X`` vanishes, with its gradient,
wherever ``y = 0``: ``y`` itself, ``-A``, ``A * B`` with either factor vanishing, ``A / B`` with
``A`` vanishing (the protected division of 0 is 0). Every operation of the language is finite,
so ``0 * G`` is 0 there; a power is left out (a protected real power of 0 is not 0). Values and
gradients equal the unfused program's to rounding (``tests/losses/test_fusion.py``).

Which sums are taken to the labels depends on what their gathered values cost. ``p`` at the
labels is the exponential of ``logp`` at the labels, so it needs the whole ``log_softmax``:

- a sum that reads ``logp`` (or a ``log_softmax``) is taken to the labels: the ``log_softmax``
  is computed anyway and ``G`` is several passes;
- any other sum (the true positives ``vsum(p * y)`` and the class sizes ``vsum(y)`` of the
  region losses) is taken only when the candidate reads ``logp`` elsewhere (Dice + CE, Dice +
  focal): the ``log_softmax`` is there, ``p`` at the labels is its exponential, and on the CPU
  the one-hot ``y`` is then never built. Dice + CE's forward and backward went from 4.1x to
  2.8-3.2x the fused ``F.cross_entropy`` (``scripts/bench_overhead.py``). Alone, Dice needs only
  a ``softmax``: taken to the labels its forward and backward measured 1.5x slower on the CPU,
  so there they stay whole.

The per-label sums are a ``scatter_add`` on the CPU and a batched product with ``y`` on CUDA
(no atomic additions: the sum is the same on every run).
"""

from __future__ import annotations

from typing import Any

import torch

from losslab.losses.nodes import BinOp, Call, Neg, Node, Var, children
from losslab.losses.ops import Kind
from losslab.losses.vocabulary import Vocabulary

__all__ = [
    "GATHERED_READS",
    "VoxelNodes",
    "gather_at_labels",
    "gathered_terminal",
    "is_elementwise",
    "label_sum_argument",
    "label_sums",
    "reads_log_softmax",
]

# The full terminal each gathered terminal is computed from (None: from the labels alone).
GATHERED_READS: dict[str, str | None] = {
    "p": "logp",
    "logp": "logp",
    "z": "z",
    "dist": "dist",
    "y": None,
    "fg": None,
}
_ACROSS_CLASSES = frozenset({"softmax", "log_softmax"})
_REDUCTIONS = frozenset({"vsum", "vmean", "topk_mean", "csum", "cmean", "cmax", "cmin"})


class VoxelNodes:
    """``voxel(node)``: whether a sub-tree's value is a voxel tensor (memoised per node)."""

    def __init__(self, vocabulary: Vocabulary):
        self.vocabulary = vocabulary
        self._memo: dict[Node, bool] = {}

    def __call__(self, node: Node) -> bool:
        if node not in self._memo:
            self._memo[node] = self._voxel(node)
        return self._memo[node]

    def _voxel(self, node: Node) -> bool:
        if isinstance(node, Var):
            terminal = self.vocabulary.terminals.get(node.name)
            return terminal is not None and terminal[0] is Kind.VOXEL
        if isinstance(node, Call) and node.fn in _REDUCTIONS:
            return False
        return any(self(child) for child in children(node))


def is_elementwise(node: Node) -> bool:
    """False for the operations that mix classes (``softmax``, ``log_softmax``)."""
    return not (isinstance(node, Call) and node.fn in _ACROSS_CLASSES)


def _vanishes_off_label(node: Node) -> bool:
    """Whether ``node`` is 0, with its gradient, wherever ``y`` is 0 (see the module doc)."""
    if isinstance(node, Var):
        return node.name == "y"
    if isinstance(node, Neg):
        return _vanishes_off_label(node.operand)
    if isinstance(node, BinOp) and node.op == "*":
        return _vanishes_off_label(node.left) or _vanishes_off_label(node.right)
    if isinstance(node, BinOp) and node.op == "/":
        return _vanishes_off_label(node.left)
    return False


def _reads_log_probabilities(node: Node) -> bool:
    if isinstance(node, Var):
        return node.name == "logp"
    if isinstance(node, Call) and node.fn == "log_softmax":
        return True
    return any(_reads_log_probabilities(child) for child in children(node))


def _reads(node: Node, name: str) -> bool:
    if isinstance(node, Var):
        return node.name == name
    return any(_reads(child, name) for child in children(node))


def reads_log_softmax(trees: Any) -> bool:
    """Whether any of ``trees`` reads the terminal ``logp`` (the shared ``log_softmax``)."""
    return any(_reads(tree, "logp") for tree in trees)


def label_sum_argument(node: Node, logp_computed: bool = False) -> Node | None:
    """The argument ``X`` of ``vsum(X)`` / ``vmean(X)`` when it is summed at the labels, else
    ``None``: ``X`` vanishes off the label and reads ``logp`` or a ``log_softmax``, or
    ``logp_computed`` (the candidate reads ``logp`` elsewhere; see the module docstring)."""
    if not (isinstance(node, Call) and node.fn in ("vsum", "vmean")):
        return None
    (argument,) = node.args
    if _vanishes_off_label(argument) and (logp_computed or _reads_log_probabilities(argument)):
        return argument
    return None


def _index(terminals: Any) -> torch.Tensor:
    return terminals.labels.unsqueeze(1).long()


def gather_at_labels(terminals: Any, value: torch.Tensor) -> torch.Tensor:
    """``[B, 1, *spatial]``: a voxel value ``[B, C, *spatial]`` (or one that broadcasts to it)
    at each voxel's label."""
    labels = terminals.labels
    full = (labels.shape[0], terminals.num_classes, *labels.shape[1:])
    return value.expand(full).gather(1, _index(terminals))


def gathered_terminal(terminals: Any, name: str) -> torch.Tensor:
    """The terminal ``name`` at each voxel's label, ``[B, 1, *spatial]`` (cached per call).

    ``p`` is the exponential of the gathered ``logp`` (the full probabilities are not needed
    for it), ``y`` is 1 and ``fg`` is ``label != 0``.
    """
    key = f"gathered:{name}"
    cache = terminals._cache
    if key in cache:
        return cache[key]
    labels = terminals.labels
    if name == "p":
        value = gathered_terminal(terminals, "logp").exp()
    elif name == "y":
        value = torch.ones(labels.unsqueeze(1).shape, dtype=torch.float32, device=labels.device)
    elif name == "fg":
        value = (labels != 0).unsqueeze(1).float()
    elif name in GATHERED_READS:
        value = gather_at_labels(terminals, terminals.get(name))
    else:
        raise KeyError(name)
    cache[key] = value
    return value


def label_sums(terminals: Any, value: torch.Tensor, mean: bool) -> torch.Tensor:
    """``[C]``: the sum (``mean``: the mean over batch and voxels, as ``vmean``) of a gathered
    value ``[B, 1, *spatial]`` per label."""
    labels = terminals.labels
    value = value.expand(labels.unsqueeze(1).shape)
    if value.is_cuda:  # a batched product with the one-hot target: no atomics, deterministic
        y = terminals.get("y").to(value.dtype)
        batch = labels.shape[0]
        per_batch = torch.bmm(y.reshape(batch, y.shape[1], -1), value.reshape(batch, -1, 1))
        sums = per_batch.sum((0, 2))
    else:
        sums = torch.zeros(terminals.num_classes, dtype=value.dtype, device=value.device)
        sums = sums.scatter_add(0, labels.reshape(-1).long(), value.reshape(-1))
    return sums / labels.numel() if mean else sums
