"""Sliding-window validation sees a small case exactly as training patches show it."""

from __future__ import annotations

import math

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
