"""The library against MONAI (the numerical oracle), the papers' formulas, and each other."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss, DiceLoss, FocalLoss, GeneralizedDiceLoss, TverskyLoss

from losslab.losses import CompoundLoss, LossSpec, Terminals, get_loss, list_losses, parse_loss

EXPECTED = {
    "ce", "wce", "topk_ce", "focal", "dice", "dl2", "iou", "tversky", "f_beta", "gdl", "ss",
    "boundary", "asymmetric_focal", "asymmetric_large_margin", "dice_ce", "dice_focal",
    "tversky_focal",
}  # fmt: skip


def value(name: str, logits: torch.Tensor, labels: torch.Tensor, **params) -> torch.Tensor:
    spec = get_loss(name, **params)
    assert isinstance(spec, LossSpec)
    return spec.compile()(logits, labels)


def test_list_losses_names_every_loss_of_the_papers():
    assert set(list_losses()) >= EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_library_loss_round_trips_through_its_text(name):
    for term in get_loss(name).terms:
        assert parse_loss(str(term)) == term
        assert str(parse_loss(str(term))) == str(term)


def test_dice_matches_monai(batch):
    logits, labels = batch
    monai = DiceLoss(batch=True, softmax=True, to_onehot_y=True, reduction="none")
    expected = monai(logits, labels.unsqueeze(1)).flatten()
    torch.testing.assert_close(value("dice", logits, labels), expected, atol=1e-5, rtol=0)


def test_iou_matches_monai_jaccard(batch):
    logits, labels = batch
    monai = DiceLoss(batch=True, softmax=True, to_onehot_y=True, jaccard=True, reduction="none")
    expected = monai(logits, labels.unsqueeze(1)).flatten()
    torch.testing.assert_close(value("iou", logits, labels), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("alpha", "beta"), [(0.3, 0.7), (0.5, 0.5), (0.9, 0.1)])
def test_tversky_matches_monai(batch, alpha, beta):
    logits, labels = batch
    monai = TverskyLoss(
        batch=True, softmax=True, to_onehot_y=True, alpha=alpha, beta=beta, reduction="none"
    )
    expected = monai(logits, labels.unsqueeze(1)).flatten()
    ours = value("tversky", logits, labels, alpha=alpha, beta=beta)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


def test_gdl_matches_monai_with_an_absent_class(batch):
    logits, labels = batch
    assert not (labels == 3).any()  # MONAI's infinite weight of an absent class is exercised
    monai = GeneralizedDiceLoss(batch=True, softmax=True, to_onehot_y=True, reduction="none")
    expected = monai(logits, labels.unsqueeze(1)).flatten()
    ours = value("gdl", logits, labels)
    assert ours.dim() == 0  # class-coupled
    torch.testing.assert_close(ours.reshape(1), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("gamma", [0.0, 2.0, 3.5])
def test_focal_matches_monai_per_class(batch, gamma):
    logits, labels = batch
    onehot = F.one_hot(labels, 4).movedim(-1, 1).float()
    monai = FocalLoss(use_softmax=True, gamma=gamma, reduction="none")
    per_class = monai(logits, onehot).mean(dim=(0, 2, 3, 4))
    ours = value("focal", logits, labels, gamma=gamma)
    torch.testing.assert_close(ours / 4, per_class, atol=1e-5, rtol=0)


def test_dice_ce_matches_monai_dice_ce(batch):
    logits, labels = batch
    expected = DiceCELoss(batch=True, softmax=True, to_onehot_y=True)(logits, labels.unsqueeze(1))
    compound = get_loss("dice_ce")
    assert isinstance(compound, CompoundLoss)
    total = compound.compile().total(logits, labels, term_weights=compound.weights)
    torch.testing.assert_close(total, expected, atol=1e-5, rtol=0)


def test_ce_reduces_to_torch_cross_entropy(batch):
    logits, labels = batch
    ours = get_loss("ce").compile().total(logits, labels)
    torch.testing.assert_close(ours, F.cross_entropy(logits, labels), atol=1e-6, rtol=0)


def test_focal_with_gamma_zero_is_ce_and_topk_with_k_one_is_ce(batch):
    logits, labels = batch
    ce = value("ce", logits, labels)
    torch.testing.assert_close(value("focal", logits, labels, gamma=0), ce)
    torch.testing.assert_close(value("topk_ce", logits, labels, k=1.0), ce)


def test_topk_ce_keeps_the_hardest_voxels(batch):
    logits, labels = batch
    # With a smaller fraction the kept voxels are the worst ones, so the mean can only grow.
    assert (
        value("topk_ce", logits, labels, k=0.05) >= value("topk_ce", logits, labels, k=0.5)
    ).all()


def test_asymmetric_focal_modulates_the_background_only(batch):
    logits, labels = batch
    asym = value("asymmetric_focal", logits, labels, gamma=2)
    torch.testing.assert_close(asym[1:], value("ce", logits, labels)[1:])
    torch.testing.assert_close(asym[0], value("focal", logits, labels, gamma=2)[0])


def test_asymmetric_large_margin_with_zero_margin_is_ce_and_raises_foreground_loss(batch):
    logits, labels = batch
    ce = value("ce", logits, labels)
    torch.testing.assert_close(value("asymmetric_large_margin", logits, labels, margin=0), ce)
    margin = value("asymmetric_large_margin", logits, labels, margin=2)
    torch.testing.assert_close(margin[0], ce[0])  # no margin on the background
    assert (margin[1:3] > ce[1:3]).all()


def test_wce_uses_sudre_weight_on_the_foreground_only(batch):
    logits, labels = batch
    counts = torch.stack([(labels == c).sum() for c in range(4)]).float()
    ce = value("ce", logits, labels)
    expected = ce * (counts.sum() - counts) / counts
    expected[0] = ce[0]  # the background keeps weight 1
    expected[3] = 0.0  # absent class: no voxel carries its loss
    torch.testing.assert_close(value("wce", logits, labels), expected, atol=1e-5, rtol=1e-5)


def test_two_class_wce_is_sudre_formula():
    """WCE = -1/N sum_n (w r_n log p_n + (1 - r_n) log(1 - p_n)), w = (N - sum r) / sum r."""
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(1, 2, 6, 5, 4, generator=generator, dtype=torch.float64)
    labels = (torch.rand(1, 6, 5, 4, generator=generator) > 0.8).long()
    p = logits.softmax(1)[:, 1]
    r = labels.double()
    n = r.numel()
    w = (n - r.sum()) / r.sum()
    expected = -(w * r * p.log() + (1 - r) * (1 - p).log()).sum() / n
    ours = get_loss("wce").compile().total(logits, labels)
    torch.testing.assert_close(ours.double(), expected, atol=1e-5, rtol=1e-5)


def test_ss_matches_formula(batch):
    logits, labels = batch
    p = logits.softmax(1)
    y = F.one_hot(labels, 4).movedim(-1, 1).float()
    dims = (0, 2, 3, 4)
    sens = ((y - p) ** 2 * y).sum(dims) / (y.sum(dims) + 1e-5)
    spec = ((y - p) ** 2 * (1 - y)).sum(dims) / ((1 - y).sum(dims) + 1e-5)
    torch.testing.assert_close(value("ss", logits, labels), 0.05 * sens + 0.95 * spec)


def test_perfect_prediction_zeroes_dice_family_and_makes_boundary_negative():
    labels = torch.zeros(1, 8, 8, 8, dtype=torch.long)
    labels[:, 2:6, 2:6, 2:6] = 1
    logits = F.one_hot(labels, 2).movedim(-1, 1).float() * 40
    for name in ("dice", "iou", "tversky", "f_beta", "dl2"):
        assert value(name, logits, labels).abs().max() < 1e-4, name
    assert float(value("gdl", logits, labels)) < 1e-4
    boundary = value("boundary", logits, labels)
    assert boundary[0] == 0  # background excluded
    assert boundary[1] < 0  # all the mass inside the object, where the distance is negative


def gdl_gradient_two_class(q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Sudre et al. (2017), dGDL/dp_i for two classes, with w_l = 1 / (sum_n r_ln)^2.

    The paper prints a leading ``-2``; differentiating its GDL gives ``+2`` (with ``-2`` a
    foreground voxel would be pushed away from the target), so the sign is corrected here.
    """
    n = q.numel()
    w1, w2 = 1 / r.sum() ** 2, 1 / (1 - r).sum() ** 2
    s = (q + r).sum()
    numerator = (w1**2 - w2**2) * ((q * r).sum() - r * s) + n * w2 * (w1 + w2) * (1 - 2 * r)
    return 2 * numerator / ((w1 - w2) * s + 2 * n * w2) ** 2


def test_gdl_gradient_matches_sudre_analytic_gradient():
    generator = torch.Generator().manual_seed(1)
    q = torch.rand(1, 1, 5, 6, 4, generator=generator, dtype=torch.float64).requires_grad_()
    r = (torch.rand(1, 1, 5, 6, 4, generator=generator) > 0.7).double()
    gdl = get_loss("gdl", eps=0.0).compile()
    probs = torch.cat([1 - q, q], dim=1)
    onehot = torch.cat([1 - r, r], dim=1)
    (loss,) = gdl.evaluate(Terminals(probs=probs, onehot=onehot))
    (grad,) = torch.autograd.grad(loss, q)
    torch.testing.assert_close(grad, gdl_gradient_two_class(q.detach(), r), rtol=1e-4, atol=1e-9)


def test_unknown_loss_and_parameter_are_named():
    with pytest.raises(KeyError, match="unknown loss 'dicee'.*dice"):
        get_loss("dicee")
    with pytest.raises(ValueError, match="gamma.*not used"):
        get_loss("dice", gamma=2)
    with pytest.raises(ValueError, match="dice_ce.*no parameter.*gamma"):
        get_loss("dice_ce", gamma=2)
    with pytest.raises(ValueError, match=r"gamma=-1 is out of its range"):
        get_loss("focal", gamma=-1)


def test_compound_routes_parameters_to_the_terms_that_use_them():
    compound = get_loss("tversky_focal", gamma=3, alpha=0.2)
    tversky, focal = compound.terms
    assert focal.parameters == {"gamma": 3.0}
    assert tversky.parameters["alpha"] == 0.2 and tversky.parameters["beta"] == 0.7
