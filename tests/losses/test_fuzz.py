"""The loss language under fuzzing: what a genetic search will throw at it.

For any input string the parser raises nothing but ``LossSyntaxError``; it accepts no ill-typed
expression; and every accepted expression compiles and gives finite values and gradients on
inputs in range (logits within ±30, a class absent from the batch).
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from losslab.losses import LossSyntaxError, parse_loss, resolve_loss

from .grammar import expressions, garbage

FUZZ = settings(
    derandomize=True,  # seeded: the same expressions on every run
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: thread start-up would cost more than the work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _inputs(seed: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = (torch.randn(2, 4, 4, 3, 3, generator=generator) * scale).clamp(-30, 30)
    labels = torch.randint(0, 3, (2, 4, 3, 3), generator=generator)  # class 3 is absent
    labels[0, 0, 0, 0] = 0
    if seed % 4 == 0:
        labels.zero_()  # background only: every foreground class absent
    return logits.requires_grad_(), labels


def check_expression(text: str, well_typed: bool, seed: int, scale: float) -> str:
    """Parse, compile and run one expression; returns 'accepted' or 'rejected'."""
    try:
        spec = parse_loss(text)
    except LossSyntaxError as exc:
        assert not well_typed or "nodes" in exc.reason, f"well typed, refused: {text}\n{exc}"
        return "rejected"
    assert well_typed, f"ill-typed expression accepted: {text}"
    assert parse_loss(str(spec)) == spec, text
    logits, labels = _inputs(seed, scale)
    value = spec.compile()(logits, labels)
    assert torch.isfinite(value).all(), f"non-finite value of {text}: {value}"
    if value.requires_grad:
        (grad,) = torch.autograd.grad(value.sum(), logits, allow_unused=True)
        assert grad is None or torch.isfinite(grad).all(), f"non-finite gradient of {text}"
    return "accepted"


@pytest.mark.slow
@settings(FUZZ, max_examples=10_000)
@given(expressions(), st.integers(0, 2**31 - 1), st.sampled_from([0.1, 3.0, 30.0]))
def test_ten_thousand_expressions(case, seed, scale):
    text, well_typed = case
    check_expression(text, well_typed, seed, scale)


@settings(FUZZ, max_examples=300)
@given(expressions(), st.integers(0, 2**31 - 1), st.sampled_from([0.1, 3.0, 30.0]))
def test_expressions_quick(case, seed, scale):
    text, well_typed = case
    check_expression(text, well_typed, seed, scale)


@settings(FUZZ, max_examples=1_000)
@given(garbage())
def test_any_text_raises_only_loss_syntax_errors(text):
    try:
        spec = parse_loss(text)
    except LossSyntaxError:
        return
    spec.compile()  # what parses compiles


@settings(FUZZ, max_examples=500)
@given(garbage())
def test_resolve_raises_only_named_errors(text):
    with contextlib.suppress(LossSyntaxError, KeyError):
        resolve_loss(text)


@pytest.mark.parametrize(
    "text",
    [
        "#",
        "# only a comment",
        "-" * 5_000 + "vsum(p)",
        "+".join(["vsum(p)"] * 100_000),
        "(" * 200 + "vsum(p)" + ")" * 200,
        "vsum(p) \x00",
        "vsum(p) * 1e39",
        "1e300",
        "vsum(p) ** 1e300",
        "clamp(vsum(p), 0, 1e300)",
        "topk_mean(p, 1e9)",
        "topk_mean(p, 0)",
    ],
)
def test_pathological_texts_are_syntax_errors(text):
    with pytest.raises(LossSyntaxError):
        parse_loss(text)


@pytest.mark.parametrize(
    "text",
    [
        "where(2.0 > 0.5, 10.0, 9.0) + vsum(p)",
        "where(alpha > 0.5, vsum(p), vsum(y)); alpha=0.7",
        "where(0.1 > 0.5, 10, vsum(p)) * where(3 <= nc, vmean(logp), 1)",
        "vsum(p) * where(2 > 1, 1, 0)",
        "topk_mean(p, k * 50); k=0.5",
    ],
)
def test_constant_conditions_and_computed_fractions_compile_and_run(text):
    value = check_expression(text, True, seed=1, scale=3.0)
    assert value == "accepted"


def test_constant_condition_picks_its_branch():
    logits, labels = _inputs(1, 3.0)
    chosen = parse_loss("where(2 > 0.5, vsum(p), vsum(y))").compile()(logits, labels)
    torch.testing.assert_close(chosen, logits.softmax(1).sum((0, 2, 3, 4)))
