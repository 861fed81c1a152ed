"""Cheap per-epoch validation on fixed patches, and its place in the trainer."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

import losslab.training.trainer as trainer_module
from losslab.candidate import Candidate
from losslab.models import get_model
from losslab.training import TrainConfig, train
from losslab.training.inference import evaluate_split
from losslab.training.validation import (
    ValidationPatch,
    choose_validation_patches,
    evaluate_patches,
)


class Oracle(torch.nn.Module):
    """Predicts the label its input image encodes (the image holds the predicted label)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        label = x[:, 0].round().long().clamp(0, self.num_classes - 1)
        return torch.nn.functional.one_hot(label, self.num_classes).movedim(-1, 1).float()


def val_labels(phantom) -> list[torch.Tensor]:
    return [phantom.labels[i] for i in phantom.splits["val"]]


def test_the_patch_set_is_fixed_by_the_seed(phantom):
    labels = val_labels(phantom)
    first = choose_validation_patches(labels, phantom.num_classes, (16, 16, 16), 2, seed=0)
    again = choose_validation_patches(labels, phantom.num_classes, (16, 16, 16), 2, seed=0)
    other = choose_validation_patches(labels, phantom.num_classes, (16, 16, 16), 2, seed=1)
    assert first == again
    assert first != other
    assert {p.case for p in first} == set(range(len(labels)))


def test_every_class_of_every_case_is_in_its_patches(phantom):
    labels = val_labels(phantom)
    patch = (12, 12, 12)
    patches = choose_validation_patches(labels, phantom.num_classes, patch, 1, seed=0)
    for case, label in enumerate(labels):
        present = set(label.unique().tolist())
        covered: set[int] = set()
        for p in (p for p in patches if p.case == case):
            box = tuple(slice(o, o + s) for o, s in zip(p.origin, patch))
            assert all(o >= 0 and o + s <= n for o, s, n in zip(p.origin, patch, label.shape))
            covered |= set(label[box].unique().tolist())
        assert present == covered
        assert len([p for p in patches if p.case == case]) <= len(present)


def test_patch_dice_pools_the_counts_of_all_patches():
    label = torch.zeros(8, 8, 8, dtype=torch.long)
    label[0:2, 0:2, 0:4] = 1  # 16 voxels in the first patch
    label[4:6, 4:6, 4:5] = 1  # 4 voxels in the second
    pred = torch.zeros_like(label)
    pred[0:2, 0:2, 0:4] = 1  # first patch perfect: Dice 1; second: missed, Dice 0
    pred[6:8, 6:8, 6:8] = 2  # a class absent from the reference
    patches = [ValidationPatch(0, (0, 0, 0)), ValidationPatch(0, (4, 4, 4))]
    out = evaluate_patches(
        Oracle(3), [pred[None].float()], [label], 3, patches, patch_size=(4, 4, 4), batch_size=1
    )
    assert math.isclose(out["dice"][1], 2 * 16 / (20 + 16))  # pooled, not (1 + 0) / 2
    assert math.isnan(out["dice"][2])


def test_a_case_smaller_than_the_patch_is_padded_and_the_padding_not_scored():
    label = torch.ones(3, 4, 5, dtype=torch.long)
    patches = choose_validation_patches([label], 2, (6, 6, 8), 1, seed=0)
    assert patches == [ValidationPatch(0, (-1, -1, -1))]
    image = 1.0 + torch.zeros(1, 3, 4, 5)  # predicts class 1 inside, 1 also where padded (min)
    out = evaluate_patches(Oracle(2), [image], [label], 2, patches, patch_size=(6, 6, 8))
    assert out["dice"][1] == 1.0 and math.isnan(out["dice"][0])


def test_patches_tiling_the_volume_give_the_sliding_window_dice(phantom):
    torch.manual_seed(0)
    model = get_model("unet3d", num_classes=phantom.num_classes, patch_size=(16, 16, 16))
    case = phantom.splits["val"][0]
    image, label = phantom.images[case], phantom.labels[case]
    tiles = [ValidationPatch(0, (x, y, z)) for x in (0, 16) for y in (0, 16) for z in (0, 16)]
    patched = evaluate_patches(
        model, [image], [label], phantom.num_classes, tiles, patch_size=(16, 16, 16)
    )
    window = evaluate_split(
        model, [image], [label], phantom.num_classes, patch_size=(16, 16, 16), overlap=0.0
    )
    assert len([d for d in window["dice"] if not math.isnan(d)]) > 3
    assert patched["dice"] == pytest.approx(window["dice"], rel=1e-9, nan_ok=True)


@pytest.fixture
def spied(monkeypatch):
    calls: dict[str, list] = {"patches": [], "window": []}
    real_patches, real_window = trainer_module.evaluate_patches, trainer_module.evaluate_split

    def patches_spy(*args, **kwargs):
        calls["patches"].append(list(args[4]))
        return real_patches(*args, **kwargs)

    def window_spy(*args, **kwargs):
        calls["window"].append(kwargs["metrics"])
        return real_window(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "evaluate_patches", patches_spy)
    monkeypatch.setattr(trainer_module, "evaluate_split", window_spy)
    return calls


def test_patch_validation_scores_the_same_patches_every_epoch_and_tests_in_full(
    phantom, tiny_config, spied
):
    config = dataclasses.replace(
        tiny_config,
        epochs=3,
        steps_per_epoch=1,
        patch_size=(16, 16, 16),
        validation="patches",
        val_patches_per_class=1,
    )
    result = train(Candidate.from_loss("dice"), phantom, config)
    assert result.ok, result.reason
    assert len(spied["patches"]) == 3
    assert spied["patches"][0] and all(p == spied["patches"][0] for p in spied["patches"])
    assert spied["window"] == [("dice", "iou", "sensitivity", "precision")]  # the test only
    assert not math.isnan(result.history[-1].val_dice[6])  # the liver is in the patches


def test_sliding_window_validation_is_the_default(phantom, tiny_config, spied):
    config = dataclasses.replace(tiny_config, epochs=1, steps_per_epoch=1)
    assert config.validation == "sliding_window"
    assert train(Candidate.from_loss("dice"), phantom, config).ok
    assert spied["patches"] == [] and spied["window"][0] == ("dice",)


def test_validation_options_are_checked_and_kept_out_of_default_identities():
    with pytest.raises(ValueError, match="TrainConfig.validation='patch' must be one of"):
        TrainConfig(validation="patch")
    with pytest.raises(ValueError, match="TrainConfig.val_patches_per_class=0"):
        TrainConfig(val_patches_per_class=0)
    plain = TrainConfig()
    assert "validation" not in plain.identity()
    assert "val_patches_per_class" not in plain.identity()
    assert TrainConfig(val_patches_per_class=5).identity() == plain.identity()
    patched = TrainConfig(validation="patches").identity()
    assert patched["validation"] == "patches" and patched["val_patches_per_class"] == 2
