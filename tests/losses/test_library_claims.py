"""What the library's help says where users compare with torch and MONAI holds in numbers:
class-weighted ce averages over all voxels (torch's cross_entropy divides by the total weight),
and dice_focal's focal term is over the softmax, not MONAI's DiceFocalLoss (sigmoid)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.losses import DiceFocalLoss, FocalLoss

from losslab.losses import compile_terms, get_loss
from losslab.losses.library import LIBRARY


def _batch():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 8, 8, 8, generator=generator)
    labels = torch.randint(0, 4, (2, 8, 8, 8), generator=generator)
    return logits, labels


def test_class_weighted_ce_averages_over_all_voxels_not_the_total_weight() -> None:
    logits, labels = _batch()
    weights = torch.tensor([0.5, 1.0, 2.0, 4.0])
    ours = compile_terms([get_loss("ce")]).total(logits, labels, class_weights=weights)
    torch_ce = F.cross_entropy(logits, labels, weight=weights)
    total_weight, voxels = weights[labels].sum(), labels.numel()
    assert torch.allclose(ours, torch_ce * total_weight / voxels, rtol=1e-5)
    assert not torch.allclose(ours, torch_ce, rtol=1e-2)  # the scales do differ
    uniform = compile_terms([get_loss("ce")]).total(logits, labels)
    assert torch.allclose(uniform, F.cross_entropy(logits, labels), rtol=1e-5)
    assert "divides by the total weight" in LIBRARY["ce"].doc


def test_dice_focal_is_not_monais_dice_focal_loss() -> None:
    logits, labels = _batch()
    onehot = F.one_hot(labels, 4).permute(0, 4, 1, 2, 3).float()
    focal = get_loss("focal").compile()(logits, labels).mean()  # the engine's mean_c
    softmax_focal = FocalLoss(use_softmax=True, gamma=2.0)(logits, onehot)
    assert torch.allclose(focal, 4 * softmax_focal, rtol=1e-4)  # ours: C x MONAI's softmax one
    sigmoid_focal = DiceFocalLoss(softmax=True, lambda_dice=0.0)(logits, onehot)
    assert not torch.allclose(focal, sigmoid_focal, rtol=1e-2)
    assert not torch.allclose(softmax_focal, sigmoid_focal, rtol=1e-2)
    assert "Not MONAI's DiceFocalLoss" in LIBRARY["dice_focal"].doc
