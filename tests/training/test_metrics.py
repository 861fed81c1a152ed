"""Per-class metrics against MONAI's metrics (the oracle) and hand-counted cases."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from monai.metrics import DiceMetric, compute_hausdorff_distance

from losslab.training.metrics import confusion_matrix, hd95_per_class, overlap_metrics


def onehot(x: torch.Tensor, c: int) -> torch.Tensor:
    return F.one_hot(x, c).movedim(-1, 0)[None].float()


def test_overlap_metrics_by_hand():
    target = torch.tensor([0, 0, 1, 1, 1, 2, 2, 0])
    pred = torch.tensor([0, 1, 1, 1, 0, 2, 0, 0])
    m = overlap_metrics(confusion_matrix(pred, target, 4))
    # class 1: tp 2, reference 3, predicted 3
    assert math.isclose(m["dice"][1], 2 * 2 / 6)
    assert math.isclose(m["iou"][1], 2 / 4)
    assert math.isclose(m["sensitivity"][2], 1 / 2)
    assert math.isclose(m["precision"][2], 1.0)
    assert all(math.isnan(m[k][3]) for k in m)  # absent: excluded, neither 0 nor 1


def test_dice_matches_monai_dice_metric():
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (9, 10, 11), generator=generator)
    pred = torch.where(torch.rand(9, 10, 11, generator=generator) < 0.7, target, 1)
    ours = overlap_metrics(confusion_matrix(pred, target, 4))["dice"]
    metric = DiceMetric(include_background=True, reduction="none")
    expected = metric(onehot(pred, 4), onehot(target, 4))[0]
    torch.testing.assert_close(ours, expected.double())


def test_hd95_matches_monai_and_handles_missing_prediction():
    target = torch.zeros(16, 16, 16, dtype=torch.long)
    target[4:10, 4:10, 4:10] = 1
    target[12:14, 2:4, 2:4] = 2
    pred = torch.zeros_like(target)
    pred[5:11, 4:10, 4:10] = 1  # shifted by one voxel; class 2 never predicted
    spacing = (2.0, 1.0, 1.0)
    hd = hd95_per_class(pred, target, 3, spacing)
    expected = compute_hausdorff_distance(
        onehot(pred, 3)[:, 1:2], onehot(target, 3)[:, 1:2], percentile=95, spacing=list(spacing)
    )
    assert math.isnan(hd[0])
    assert math.isclose(hd[1], float(expected), rel_tol=1e-6)
    assert hd[1] > 0
    assert math.isclose(hd[2], math.sqrt((16 * 2) ** 2 + 16**2 + 16**2))
