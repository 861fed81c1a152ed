"""Numerics the library must get right at real sizes and on absent classes."""

from __future__ import annotations

import pytest
import torch
from monai.losses import GeneralizedDiceLoss

from losslab.candidate import Candidate
from losslab.losses import (
    CompoundLoss,
    LossSyntaxError,
    Terminals,
    get_loss,
    parse_loss,
    present_classes,
    reduce,
    resolve_loss,
)
from losslab.losses.bounds import bounds, exact_power_is_safe, integer_exponent


@pytest.mark.slow
def test_gdl_matches_monai_at_paper_patch_size():
    """2 x 128^3 puts > 10^6 voxels in a class: its weight 1 / count^2 must not saturate."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 128, 128, 128, generator=generator).requires_grad_()
    labels = torch.randint(0, 3, (2, 128, 128, 128), generator=generator)
    labels[:, :20] = 0  # unequal classes: 1.8 M, 1.2 M and 1.2 M voxels
    assert (labels == 1).sum() > 10**6
    ours = get_loss("gdl").compile()(logits, labels)
    monai = GeneralizedDiceLoss(batch=True, softmax=True, to_onehot_y=True)(
        logits, labels.unsqueeze(1)
    )
    torch.testing.assert_close(ours, monai, rtol=1e-4, atol=1e-6)
    (ours_grad,) = torch.autograd.grad(ours, logits)
    (monai_grad,) = torch.autograd.grad(monai, logits)
    scale = monai_grad.abs().max()
    assert float((ours_grad - monai_grad).abs().max() / scale) < 1e-3


def test_integer_powers_of_bounded_bases_are_exact():
    count = parse_loss("vsum(y) ** 2").tree
    assert exact_power_is_safe(bounds(count.left), integer_exponent(count.right))
    # a count squared far beyond the old saturation at 1e12 comes out exact
    y = torch.zeros(1, 2, 1, 1, 2_000_000)
    y[:, 1] = 1.0
    spec = parse_loss("vsum(y) ** 2")
    value = spec.compile().evaluate(Terminals(probs=y, onehot=y))[0]
    assert float(value[1]) == pytest.approx(4e12, rel=1e-6)
    # an unbounded base keeps the protected, saturating power
    logits = parse_loss("vmean(exp(z) ** 3)").tree.args[0]
    assert not exact_power_is_safe(bounds(logits.left), integer_exponent(logits.right))


def test_products_that_could_overflow_are_saturated():
    logits = torch.full((1, 2, 2, 2, 2), 30.0)
    labels = torch.zeros(1, 2, 2, 2, dtype=torch.long)
    spec = parse_loss("vmean(exp(z) * exp(z) * exp(z) * exp(z))")
    assert torch.isfinite(spec.compile()(logits, labels)).all()


def test_single_spec_returns_its_value_and_compound_a_list(batch):
    logits, labels = batch
    value = parse_loss("1 - (2 * vsum(p * y) + eps) / (vsum(p) + vsum(y) + eps)").compile()(
        logits, labels
    )
    assert isinstance(value, torch.Tensor) and value.shape == (4,)
    compound = get_loss("dice_ce")
    assert isinstance(compound, CompoundLoss)
    values = compound.compile()(logits, labels)
    assert isinstance(values, list) and len(values) == 2


def test_absent_classes_can_be_left_out_of_the_class_mean(batch):
    logits, labels = batch  # class 3 is absent
    dice = get_loss("dice").compile()
    per_class = dice(logits, labels)
    assert per_class[3] > 0.99  # absent: about 1, as MONAI gives
    present = present_classes(labels, 4)
    assert present.tolist() == [True, True, True, False]
    weights = torch.tensor([1.0, 2.0, 1.0, 5.0])
    torch.testing.assert_close(
        reduce(per_class, weights, present), (weights * per_class)[:3].sum() / 3
    )
    torch.testing.assert_close(reduce(per_class, weights), (weights * per_class).mean())
    ignored = dice.total(logits, labels, absent_classes="ignore")
    torch.testing.assert_close(ignored, per_class[:3].mean())


def test_candidate_with_ignored_absent_classes_keeps_old_keys():
    plain = Candidate.from_loss("dice")
    ignoring = Candidate.from_loss("dice", absent_classes="ignore")
    assert "absent_classes" not in plain.canonical_json()
    assert ignoring.key != plain.key
    assert Candidate.from_json(ignoring.to_json()) == ignoring
    with pytest.raises(ValueError, match="absent_classes must be one of keep, ignore"):
        Candidate.from_loss("dice", absent_classes="drop")


@pytest.mark.parametrize("text", ["vsum(y)", "1", "cmean(w) * 2", "vsum(where(p > 0.5, y, 0))"])
def test_a_loss_without_gradient_path_is_refused(text):
    spec = parse_loss(text)
    assert not spec.trainable
    with pytest.raises(LossSyntaxError, match="no gradient path"):
        Candidate.from_loss(text)


def test_library_losses_are_trainable():
    for name in ("dice", "gdl", "boundary", "wce", "dice_ce", "asymmetric_large_margin"):
        assert all(term.trainable for term in get_loss(name).terms), name


@pytest.mark.parametrize("text", ["p * y", "p", "y", "logp"])
def test_a_voxel_expression_is_not_called_an_unknown_loss(text):
    with pytest.raises(LossSyntaxError) as info:
        resolve_loss(text)
    assert "unknown loss" not in str(info.value)


def test_a_typo_of_a_name_lists_the_known_losses():
    with pytest.raises(KeyError, match="unknown loss 'dcie'.*dice"):
        resolve_loss("dcie")
