"""``SegmentationDataset.foreground_shares``: the voxel share column of the Table 1 layout."""

from __future__ import annotations

import math

import pytest
import torch

from losslab.data import SegmentationDataset


def dataset(flat: list[list[int]], classes: int) -> SegmentationDataset:
    labels = [torch.tensor(v).reshape(2, 2, 2) for v in flat]
    return SegmentationDataset(
        name="tiny",
        class_names=("background", *(f"c{k}" for k in range(1, classes))),
        images=[lab[None].float() for lab in labels],
        labels=labels,
        splits={"train": list(range(len(flat))), "val": [], "test": []},
        fingerprint="f" * 64,
        spacing=(1.0, 1.0, 1.0),
    )


def test_shares_are_over_foreground_voxels_of_all_cases():
    # Foreground voxels: class 1 x 3, class 2 x 4, class 3 absent; background never counts.
    tiny = dataset([[0] * 6 + [1] * 2, [0] * 4 + [2] * 4, [0] * 7 + [1]], classes=4)
    assert tiny.foreground_shares() == pytest.approx([3 / 7, 4 / 7, 0.0])


def test_without_foreground_every_share_is_nan():
    empty = dataset([[0] * 8], classes=3)
    shares = empty.foreground_shares()
    assert len(shares) == 2 and all(math.isnan(s) for s in shares)
