"""``CompiledLoss.reduce_terms``: the one reduction of term values, shared by total() and the
trainer."""

from __future__ import annotations

import pytest
import torch

from losslab.losses import CompiledLoss, compile_terms, get_loss, reduce

WEIGHTS = torch.tensor([1.0, 2.0, 0.5, 3.0])


def compound():
    """A per-class term (dice) beside a class-coupled one (gdl)."""
    return compile_terms([get_loss("dice"), get_loss("gdl")])


@pytest.mark.parametrize("absent_classes", ["keep", "ignore"])
def test_reduce_terms_is_one_value_per_term(batch, absent_classes):
    logits, labels = batch  # class 3 absent
    loss = compound()
    values = loss(logits, labels, WEIGHTS)
    reduced = CompiledLoss.reduce_terms(
        values, WEIGHTS, labels=labels, absent_classes=absent_classes
    )
    assert reduced.shape == (2,) and reduced.dtype == torch.float32
    present = torch.tensor([True, True, True, False]) if absent_classes == "ignore" else None
    torch.testing.assert_close(reduced[0], reduce(values[0], WEIGHTS, present))
    torch.testing.assert_close(reduced[1], values[1])  # class-coupled: as it is
    given = CompiledLoss.reduce_terms(values, WEIGHTS, present=present)
    torch.testing.assert_close(given, reduced)


def test_total_is_the_alpha_weighted_sum_of_the_reduced_terms(batch):
    logits, labels = batch
    loss = compound()
    values = loss(logits, labels, WEIGHTS)
    reduced = CompiledLoss.reduce_terms(values, WEIGHTS, labels=labels, absent_classes="ignore")
    total = loss.total(logits, labels, WEIGHTS, [0.25, 2.0], absent_classes="ignore")
    torch.testing.assert_close(total, 0.25 * reduced[0] + 2.0 * reduced[1])
    torch.testing.assert_close(
        loss.total(logits, labels, WEIGHTS), reduce(values[0], WEIGHTS) + values[1]
    )
    with pytest.raises(ValueError, match="term_weights must have 2 entries, got 3"):
        loss.total(logits, labels, WEIGHTS, [1.0, 1.0, 1.0])


def test_reduce_terms_keeps_the_gradient(batch):
    logits, labels = batch
    logits = logits.clone().requires_grad_()
    values = compound()(logits, labels, WEIGHTS)
    reduced = CompiledLoss.reduce_terms(values, WEIGHTS)
    (grad,) = torch.autograd.grad(reduced.sum(), logits)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_reduce_terms_checks_the_absent_classes_mode(batch):
    logits, labels = batch
    values = compound()(logits, labels)
    with pytest.raises(ValueError, match="absent_classes must be one of keep, ignore"):
        CompiledLoss.reduce_terms(values, absent_classes="drop")
    with pytest.raises(ValueError, match="needs the labels"):
        CompiledLoss.reduce_terms(values, absent_classes="ignore")
