"""Exact rewrites before compiling (``losslab.losses.rewrites``): what the bounds decide, ``abs``
for ``min(x, -x)``, negations moved outwards. Each compiles to fewer passes and gives the values
and gradients of the tree as written (float64, ties included); the random trees of
``test_protected_ops`` are compared with and without them there."""

from __future__ import annotations

import pytest
import torch

from losslab.losses import parse_loss, rewrites
from losslab.losses.compiler import Terminals, compile_program

from .test_protected_ops import _batch, _run, _trees, _use_reference


def _ops(text: str) -> list[str]:
    program = compile_program([parse_loss(text).tree])
    return [getattr(payload, "__name__", "") for kind, payload, _ in program.steps if kind == "op"]


@pytest.mark.parametrize(
    "text,gone",
    [
        ("vmean(min(logp, 1) * y)", "_min"),  # logp <= 0 < 1
        ("vmean(max(p, -0.5) - logp)", "_max"),  # p >= 0 > -0.5
        ("vmean(where(logp <= 0, -y * logp, p))", "_where"),  # always true
        ("vmean(where(p > 1.5, z, -y * logp))", "_where"),  # never true
    ],
)
def test_what_the_bounds_decide_is_not_computed(monkeypatch, text, gone):
    assert gone not in _ops(text)
    tree = parse_loss(text).tree
    logits, labels = _batch(torch.float64)
    with monkeypatch.context() as patch:
        _use_reference(patch)
        expected, expected_grad = _run(compile_program([tree]), logits, labels)
    value, grad = _run(compile_program([tree]), logits, labels)
    torch.testing.assert_close(value, expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    "text,kept",
    [
        (
            "vmean(min(logp, -2 * logp))",
            "_min",
        ),  # they touch at logp = 0: a tie halves the gradient
        ("vmean(max(p, y + 2))", "_max"),  # y + 2 has no gradient path: p's zero one is kept
        ("vmean(max(logp, 2) * y)", "_max"),  # 2 is a number, the max a voxel tensor
        ("vmean(where(p >= 0.5, logp, y))", "_where"),  # undecided
    ],
)
def test_what_the_bounds_do_not_decide_is_computed(text, kept):
    assert kept in _ops(text)


def test_a_tie_at_the_bounds_keeps_torchs_half_gradient():
    """``min(logp, -2 * logp)`` at a voxel whose ``logp`` is exactly 0 (a certain prediction)."""
    tree = parse_loss("vmean(min(logp, -2 * logp))").tree
    logits = torch.tensor([[[0.0], [-800.0]]], dtype=torch.float64)  # p = (1, 0): logp_0 = 0
    labels = torch.zeros(1, 1, dtype=torch.long)
    z = logits.clone().requires_grad_()
    (value,) = compile_program([tree]).run(Terminals(logits=z, labels=labels))
    (grad,) = torch.autograd.grad(value[0], z)
    reference = torch.minimum(torch.log_softmax(z, 1), -2 * torch.log_softmax(z, 1))[:, 0].mean()
    (expected,) = torch.autograd.grad(reference, z)
    torch.testing.assert_close(grad, expected)


def test_random_trees_have_decisions_to_take(monkeypatch):
    """The random-tree comparison above exercises the decisions: GP trees often hold them."""
    fewer = 0
    for tree in _trees(150):
        with monkeypatch.context() as patch:
            patch.setattr(rewrites, "simplify", lambda node, vocabulary: node)
            undecided = compile_program([tree])
        fewer += len(compile_program([tree]).steps) < len(undecided.steps)
    assert fewer >= 10


@pytest.mark.parametrize(
    "text",
    [
        "vmean(min(logp, -logp))",
        "vmean(min(-(z * 2), z * 2))",
        "vmean(max(p - 0.5, -(p - 0.5)))",
        "vmean(min(min(logp, 1), -logp))",  # once the bounds have taken min(logp, 1)
    ],
)
def test_min_and_max_of_x_and_minus_x_are_abs(monkeypatch, text):
    """Two passes instead of eight, the same values and gradients, ties (x = 0) included."""
    tree = parse_loss(text).tree
    names = _ops(text)
    assert "_min" not in names and "_max" not in names
    logits, labels = _batch(torch.float64)
    logits[0, :, 0, 0, 0] = 0.0  # p = 1/4 exactly: p - 0.5 != 0, but z * 2 = 0, a tie
    logits[1, :, 0, 0, 0] = torch.tensor([0.0, -800.0, -800.0, -800.0])  # logp_0 = 0: a tie
    with monkeypatch.context() as patch:
        _use_reference(patch)
        reference, reference_grad = _run(compile_program([tree]), logits, labels)
    value, grad = _run(compile_program([tree]), logits, labels)
    torch.testing.assert_close(value, reference, rtol=1e-12, atol=0)
    torch.testing.assert_close(grad, reference_grad, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize(
    "text,voxel_negations",
    [
        ("vmean(where(p > 0.5, 2, -logp))", 0),  # -where(p > 0.5, -2, logp)
        ("vmean(-y * logp) + vsum(-(p * z) / (y + 1))", 0),  # out of products and numerators
        ("vmean((-p) * (-z) - (-logp))", 0),  # two negations cancel; a - (-b) is a + b
        ("vmean(abs(-z) * y)", 0),
        ("vmean(log(-logp + 1) * y)", 0),  # 1 - logp
        ("vmean(exp(-z) * y)", 1),  # not through exp
        ("vmean(where(p > 0.5, z, -logp))", 1),  # a voxel branch that is not negated
    ],
)
def test_negations_move_out_of_the_voxels(monkeypatch, text, voxel_negations):
    tree = parse_loss(text).tree
    program = compile_program([tree])
    negations = [
        i
        for i, (kind, payload, _) in enumerate(program.steps)
        if kind == "op"
        and getattr(payload, "__name__", "") == "<lambda>"
        and payload.__code__.co_names == ()
        and payload.__code__.co_argcount == 1
    ]
    voxel = [i for i in negations if i not in _scalar_steps(program)]
    assert len(voxel) == voxel_negations, program.steps
    logits, labels = _batch(torch.float64)
    with monkeypatch.context() as patch:
        _use_reference(patch)
        expected, expected_grad = _run(compile_program([tree]), logits, labels)
    value, grad = _run(program, logits, labels)
    torch.testing.assert_close(value, expected, rtol=0, atol=0)  # the same numbers
    torch.testing.assert_close(grad, expected_grad, rtol=0, atol=0)


def _scalar_steps(program) -> set[int]:
    """Steps whose value is a class vector or a number (after a reduction)."""
    logits, labels = _batch(torch.float64)
    terminals = Terminals(logits=logits, labels=labels)
    terminals.share_log = {"p", "logp"} <= program.terminals
    small = set()
    values = []
    for index, (kind, payload, slots) in enumerate(program.steps):
        args = [values[s] if isinstance(s, int) else s for s in slots]
        if kind == "terminal":
            values.append(terminals.get(payload))
        elif kind == "op":
            values.append(payload(*args))
        else:
            values.append(None)
        value = values[-1]
        if not isinstance(value, torch.Tensor) or value.dim() <= 1:
            small.add(index)
    return small
