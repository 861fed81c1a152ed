"""Per-class metrics against MONAI's metrics (the oracle) and hand-counted cases."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from monai.metrics import DiceMetric, compute_hausdorff_distance

from losslab.training import metrics
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


def blobs(shape: tuple[int, int, int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A reference of four boxes of various sizes and a prediction that moves and trims them."""
    target = torch.zeros(shape, dtype=torch.long)
    target[2:12, 3:9, 4:15] = 1
    target[14:17, 12:20, 2:6] = 2
    target[5:7, 15:18, 14:18] = 3
    target[1:4, 1:3, 18:20] = 4
    generator = torch.Generator().manual_seed(seed)
    pred = torch.roll(target, shifts=(1, 0, -1), dims=(0, 1, 2))
    noise = torch.rand(shape, generator=generator) < 0.05
    pred = torch.where(noise, torch.randint(0, 5, shape, generator=generator), pred)
    return pred, target


def monai_hd95(pred, target, c, num_classes, spacing):
    return float(
        compute_hausdorff_distance(
            onehot(pred, num_classes)[:, c : c + 1],
            onehot(target, num_classes)[:, c : c + 1],
            include_background=True,
            percentile=95,
            spacing=list(spacing),
        )
    )


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (3.0, 0.7, 1.25)])
def test_hd95_matches_monai_for_every_class(spacing):
    pred, target = blobs((20, 22, 21), seed=1)
    hd = hd95_per_class(pred, target, 5, spacing)
    for c in range(1, 5):
        assert math.isclose(hd[c], monai_hd95(pred, target, c, 5, spacing), rel_tol=1e-6), c
    assert len(set(hd[1:].tolist())) > 1  # the classes differ: one number for all would show


def test_hd95_of_an_absent_class_is_nan_even_when_predicted():
    pred, target = blobs((20, 22, 21), seed=2)
    pred[10:13, 10:13, 10:13] = 5  # a false positive of a class absent from the reference
    hd = hd95_per_class(pred, target, 7, (2.0, 1.0, 1.0))
    assert math.isnan(hd[0]) and math.isnan(hd[5]) and math.isnan(hd[6])
    assert math.isclose(hd[1], monai_hd95(pred, target, 1, 7, (2.0, 1.0, 1.0)), rel_tol=1e-6)


def test_hd95_of_an_empty_prediction_is_the_diagonal():
    _, target = blobs((20, 22, 21), seed=3)
    hd = hd95_per_class(torch.zeros_like(target), target, 5, (2.0, 0.5, 1.0))
    diagonal = math.sqrt((20 * 2.0) ** 2 + (22 * 0.5) ** 2 + 21**2)
    assert math.isnan(hd[0])
    assert all(math.isclose(v, diagonal) for v in hd[1:].tolist())


def test_hd95_hands_only_class_bounding_boxes_to_the_distance_transform(monkeypatch):
    """Memory is bounded by the largest organ: no whole-volume (let alone per-class) array."""
    shape = (40, 44, 42)
    target = torch.zeros(shape, dtype=torch.long)
    target[5:11, 6:10, 7:12] = 1
    target[30:33, 20:30, 0:4] = 2
    pred = torch.zeros_like(target)
    pred[6:12, 6:10, 7:12] = 1  # box of class 1: union [5, 12) x [6, 10) x [7, 12)
    pred[30:33, 21:31, 0:4] = 2  # class 2: [30, 33) x [20, 31) x [0, 4), at the border
    seen: list[tuple[int, ...]] = []
    real = metrics.distance_transform_edt

    def spy(array, *args, **kwargs):
        seen.append(tuple(array.shape))
        return real(array, *args, **kwargs)

    monkeypatch.setattr(metrics, "distance_transform_edt", spy)
    hd = hd95_per_class(pred, target, 3, (1.0, 2.0, 1.5))
    # union box padded by one voxel, clipped to the volume
    assert sorted(set(seen)) == [(5, 13, 5), (9, 6, 7)]
    assert len(seen) == 4  # two directions per class
    for c in (1, 2):
        assert math.isclose(hd[c], monai_hd95(pred, target, c, 3, (1.0, 2.0, 1.5)), rel_tol=1e-6)
