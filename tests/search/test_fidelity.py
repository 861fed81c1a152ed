"""Fidelity: overrides of the train config, the training split cut, and validation."""

from __future__ import annotations

import dataclasses

import pytest

from losslab.search.fidelity import Fidelity
from losslab.training import TrainConfig

BASE = TrainConfig(epochs=7, steps_per_epoch=30, val_every=2, patch_size=(32, 32, 32), lr=0.01)


def test_empty_fidelity_keeps_the_train_config():
    assert Fidelity().apply(BASE) == BASE
    assert Fidelity().describe() == "the train config's"


def test_apply_overrides_only_the_given_fields():
    changed = Fidelity(epochs=2).apply(BASE)
    assert changed.epochs == 2
    assert changed == dataclasses.replace(BASE, epochs=2)  # nothing else moved
    assert BASE.epochs == 7  # the original is untouched


def test_apply_every_field():
    fidelity = Fidelity(epochs=1, steps_per_epoch=3, val_every=1, patch_size=(16, 24, 8))
    changed = fidelity.apply(BASE)
    assert (changed.epochs, changed.steps_per_epoch, changed.val_every) == (1, 3, 1)
    assert changed.patch_size == (16, 24, 8)
    assert (changed.lr, changed.model, changed.batch_size) == (BASE.lr, BASE.model, BASE.batch_size)


def test_train_cases_does_not_touch_the_train_config():
    assert Fidelity(train_cases=2).apply(BASE) == BASE


def test_patch_size_list_becomes_a_tuple():
    fidelity = Fidelity(patch_size=[16, 16, 16])
    assert fidelity.patch_size == (16, 16, 16)
    assert fidelity.to_dict()["patch_size"] == [16, 16, 16]


def test_apply_data_cuts_the_training_split(tiny_phantom):
    train = tiny_phantom.splits["train"]
    assert len(train) > 2  # the fixture leaves room to cut
    cut = Fidelity(train_cases=2).apply_data(tiny_phantom)
    assert cut.splits["train"] == list(train[:2])
    assert cut.splits["val"] == tiny_phantom.splits["val"]
    assert cut.splits["test"] == tiny_phantom.splits["test"]
    assert cut.fingerprint != tiny_phantom.fingerprint
    # The cases themselves are shared, not copied or changed.
    assert len(cut) == len(tiny_phantom)
    assert cut.images[0] is tiny_phantom.images[0]
    assert cut.class_names == tiny_phantom.class_names and cut.case_ids == tiny_phantom.case_ids
    # ... and the parent keeps its full split.
    assert tiny_phantom.splits["train"] == train


def test_different_cuts_have_different_fingerprints(tiny_phantom):
    one = Fidelity(train_cases=1).apply_data(tiny_phantom)
    two = Fidelity(train_cases=2).apply_data(tiny_phantom)
    again = Fidelity(train_cases=2).apply_data(tiny_phantom)
    assert len({one.fingerprint, two.fingerprint, tiny_phantom.fingerprint}) == 3
    assert again.fingerprint == two.fingerprint


@pytest.mark.parametrize("train_cases", [None, 4, 100])
def test_apply_data_without_a_cut_returns_the_dataset(tiny_phantom, train_cases):
    assert len(tiny_phantom.splits["train"]) == 4
    assert Fidelity(train_cases=train_cases).apply_data(tiny_phantom) is tiny_phantom


@pytest.mark.parametrize("name", ["epochs", "steps_per_epoch", "val_every", "train_cases"])
@pytest.mark.parametrize("value", [0, -1, 2.0, True, "3"])
def test_non_positive_or_non_integer_counts_are_errors(name, value):
    with pytest.raises(ValueError) as info:
        Fidelity(**{name: value})
    assert f"Fidelity.{name}=" in str(info.value)


@pytest.mark.parametrize(
    "patch",
    [(16, 16), (16, 16, 16, 16), (16, 0, 16), (16, -8, 16), (16.0, 16, 16), (16, True, 16)],
)
def test_bad_patch_size(patch):
    with pytest.raises(ValueError, match="patch_size"):
        Fidelity(patch_size=patch)


def test_from_dict_builds_and_names_an_unknown_key():
    fidelity = Fidelity.from_dict({"epochs": 2, "patch_size": [8, 8, 8]})
    assert fidelity == Fidelity(epochs=2, patch_size=(8, 8, 8))
    with pytest.raises(ValueError) as info:
        Fidelity.from_dict({"epochs": 2, "epoch": 3})
    assert "'epoch'" in str(info.value)
    with pytest.raises(ValueError, match="mapping"):
        Fidelity.from_dict([2])


def test_key_and_describe_follow_the_fields():
    assert Fidelity(epochs=2).key == Fidelity.from_dict({"epochs": 2}).key
    assert Fidelity(epochs=2).key != Fidelity(epochs=3).key
    assert Fidelity(epochs=2, train_cases=3).describe() == "epochs=2, train_cases=3"
