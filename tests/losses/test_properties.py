"""Property tests over random expressions of the loss language."""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from losslab.losses import LossSpec, parse_loss
from losslab.losses.nodes import BinOp, Call, Compare, Neg, Node, Num, Var

CONSTANTS = st.sampled_from([0.0, 1e-3, 0.5, 1.0, 2.0, 3.0, 100.0]).map(Num)
VOXEL_LEAVES = st.sampled_from(["p", "logp", "z", "y", "fg", "dist"]).map(Var)
ARITHMETIC = st.sampled_from(["+", "-", "*", "/", "**"])
UNARY = st.sampled_from(["log", "sqrt", "exp", "abs"])


def elementwise(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    """Elementwise operators over trees of one kind (mixed with scalars)."""
    operand = st.one_of(children, children, CONSTANTS)
    return st.one_of(
        st.builds(BinOp, ARITHMETIC, children, operand),
        st.builds(BinOp, ARITHMETIC, CONSTANTS, children),
        st.builds(Neg, children),
        st.builds(lambda fn, x: Call(fn, (x,)), UNARY, children),
        st.builds(
            lambda fn, a, b: Call(fn, (a, b)),
            st.sampled_from(["min", "max", "pow"]),
            children,
            operand,
        ),
        st.builds(lambda x, lo, hi: Call("clamp", (x, lo, hi)), children, CONSTANTS, CONSTANTS),
        st.builds(
            lambda op, a, c, t, e: Call("where", (Compare(op, a, c), t, e)),
            st.sampled_from(["<", "<=", ">", ">="]),
            children,
            CONSTANTS,
            children,
            operand,
        ),
    )


VOXEL = st.recursive(
    VOXEL_LEAVES,
    lambda inner: st.one_of(
        elementwise(inner), st.builds(lambda x: Call("log_softmax", (x,)), inner)
    ),
    max_leaves=6,
)
REDUCED = st.one_of(
    st.builds(lambda fn, x: Call(fn, (x,)), st.sampled_from(["vsum", "vmean"]), VOXEL),
    st.builds(
        lambda x, k: Call("topk_mean", (x, Num(k))), VOXEL, st.sampled_from([0.01, 0.3, 1.0])
    ),
)
CLASS = st.recursive(st.one_of(REDUCED, st.just(Var("w"))), elementwise, max_leaves=4)
LOSS = st.one_of(
    CLASS,
    st.builds(
        lambda fn, x: Call(fn, (x,)), st.sampled_from(["csum", "cmean", "cmax", "cmin"]), CLASS
    ),
)


@settings(max_examples=300, deadline=None)
@given(LOSS)
def test_print_then_parse_is_the_identity(tree):
    spec = LossSpec.from_tree(tree, max_nodes=10_000)
    assert spec.tree == tree
    assert parse_loss(str(spec), max_nodes=10_000) == spec


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(LOSS, st.integers(0, 2**31 - 1), st.sampled_from([0.1, 3.0, 30.0]))
def test_values_and_gradients_are_finite(tree, seed, scale):
    spec = LossSpec.from_tree(tree, max_nodes=10_000)
    generator = torch.Generator().manual_seed(seed)
    logits = (torch.randn(2, 4, 4, 4, 3, generator=generator) * scale).requires_grad_()
    labels = torch.randint(0, 3, (2, 4, 4, 3), generator=generator)  # class 3 is absent
    labels[0, 0, 0, 0] = 0  # and the background always present
    value = spec.compile()(logits, labels)
    assert torch.isfinite(value).all(), str(spec)
    if value.requires_grad:  # an expression of y and w alone does not depend on the logits
        (grad,) = torch.autograd.grad(value.sum(), logits, allow_unused=True)
        assert grad is None or torch.isfinite(grad).all(), str(spec)
