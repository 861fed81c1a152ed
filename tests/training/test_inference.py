"""Sliding-window validation sees a small case exactly as training patches show it."""

from __future__ import annotations

import math

import pytest
import torch

from losslab.data import PatchSampler, SegmentationDataset
from losslab.training.inference import evaluate_split
from losslab.training.metrics import hd95_per_class


class Spy(torch.nn.Module):
    """Records the windows it is given and predicts background everywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.windows: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.windows.append(x.clone())
        return torch.zeros(x.shape[0], 2, *x.shape[2:])


def test_a_case_smaller_than_the_patch_is_padded_alike_in_training_and_validation():
    # intensities in [1, 2) and odd shapes: padding with 0 or off-centre would show
    image = 1.0 + torch.arange(3 * 4 * 5, dtype=torch.float32).reshape(1, 3, 4, 5) / 60
    label = (image[0] > 1.5).long()
    data = SegmentationDataset(
        name="small",
        class_names=("background", "object"),
        images=[image],
        labels=[label],
        splits={"train": [0], "val": [0], "test": []},
        fingerprint="0" * 64,
        spacing=(1.0, 1.0, 1.0),
    )
    patch = (6, 6, 8)
    train_patch, _ = PatchSampler(data, patch_size=patch, batch_size=1, mode="uniform").sample()
    spy = Spy()
    evaluate_split(spy, [image], [label], 2, patch_size=patch, sw_batch_size=1)
    assert len(spy.windows) == 1
    torch.testing.assert_close(spy.windows[0], train_patch, rtol=0, atol=0)
    assert spy.windows[0].min().item() == 1.0  # the case's minimum, not 0


class Oracle(torch.nn.Module):
    """Predicts the label its input image encodes (the image holds the predicted label)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        label = x[:, 0].round().long()
        return torch.nn.functional.one_hot(label, self.num_classes).movedim(-1, 1).float()


def test_hd95_uses_each_case_its_own_spacing():
    target = torch.zeros(12, 12, 12, dtype=torch.long)
    target[3:8, 3:8, 3:8] = 1
    pred = torch.roll(target, 2, dims=0)  # off by two voxels along the first axis
    image = pred[None].float()
    spacings = [(1.0, 1.0, 1.0), (3.0, 1.0, 1.0)]
    out = evaluate_split(
        Oracle(2),
        [image, image],
        [target, target],
        2,
        patch_size=(12, 12, 12),
        metrics=("hd95",),
        spacing=spacings,
    )
    per_case = [hd95_per_class(pred, target, 2, s)[1].item() for s in spacings]
    assert per_case[1] > per_case[0]  # the spacing matters here
    assert math.isclose(out["hd95"][1], sum(per_case) / 2, rel_tol=1e-9)
    single = evaluate_split(
        Oracle(2),
        [image],
        [target],
        2,
        patch_size=(12, 12, 12),
        metrics=("hd95",),
        spacing=(3.0, 1.0, 1.0),
    )
    assert math.isclose(single["hd95"][1], per_case[1], rel_tol=1e-9)


def test_details_hold_the_per_case_values_and_the_logit_margin_histograms():
    """The per-case values are those the means average; the Oracle's one-hot logits put every
    voxel of class c at margin +1 and every other voxel at margin -1 (or 0 where the Oracle
    predicts c for a voxel that is not c)."""
    from losslab.training.inference import LOGIT_EDGES, SplitDetails

    target = torch.zeros(8, 8, 8, dtype=torch.long)
    target[2:5, 2:5, 2:5] = 1
    target[6:, 6:, 6:] = 2
    wrong = target.clone()
    wrong[2, 2, 2] = 0  # one voxel of class 1 predicted as background in the second case
    details = SplitDetails()
    out = evaluate_split(
        Oracle(3),
        [target[None].float(), wrong[None].float()],
        [target, target],
        3,
        patch_size=(8, 8, 8),
        metrics=("dice", "sensitivity"),
        details=details,
    )
    assert len(details.per_case["dice"]) == 2
    assert details.per_case["dice"][0][1] == 1.0
    assert details.per_case["dice"][1][1] < 1.0
    for metric in ("dice", "sensitivity"):
        mean = [sum(col) / 2 for col in zip(*details.per_case[metric])]
        assert mean == pytest.approx(out[metric])
    hist = details.histograms(["background", "a", "b"])
    assert set(hist) == {"a", "b"}
    edges = hist["a"]["edges"]
    assert edges == LOGIT_EDGES.tolist()

    def count_at(values: list[float], margin: float) -> float:
        return values[int(torch.bucketize(torch.tensor(margin), LOGIT_EDGES[1:-1]))]

    fg, bg = hist["a"]["foreground"], hist["a"]["background"]
    assert sum(fg) == 2 * 27 and sum(bg) == 2 * (512 - 27)
    assert count_at(fg, 1.0) == 2 * 27 - 1  # all of class a's voxels are predicted a ...
    assert count_at(fg, -1.0) == 1  # ... but the one the second case misses (margin -1)
    assert count_at(bg, -1.0) == sum(bg)  # no other voxel is predicted a
