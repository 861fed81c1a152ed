"""Sliding-window validation sees a small case exactly as training patches show it."""

from __future__ import annotations

import torch

from losslab.data import PatchSampler, SegmentationDataset
from losslab.training.inference import evaluate_split


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
