"""The cost of a network does not grow with the number of classes: only the output head does."""

from __future__ import annotations

import pytest
import torch

from losslab.models import ModelSpec, count_parameters, list_models, list_sizes

# A small valid patch per size (the parameter count of unetr and lambda3d depends on the patch
# through the position embedding, the same at every class count).
PATCH = {"tiny": (16, 16, 16), "base": (32, 32, 32)}
FEW, MANY = 3, 117  # a small class count / TotalSegmentator's 117 classes


def _head_input(name: str, params: dict) -> int:
    """Width of the feature map the 1x1x1 output head reads."""
    return params["channels"][0] if name == "unet3d" else params["feature_size"]


def _shapes(name: str, size: str, num_classes: int) -> tuple[dict[str, tuple], int, dict]:
    patch = PATCH[size]
    spec = ModelSpec.create(name, num_classes=num_classes, patch_size=patch, size=size)
    with torch.device("meta"):  # counts without allocating the 93 M parameters of unetr base
        model = spec.build()
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    return shapes, count_parameters(model, trainable_only=False), spec.params


@pytest.mark.parametrize("size", ["tiny", "base"])
@pytest.mark.parametrize("name", list_models())
def test_only_the_output_head_depends_on_the_number_of_classes(name: str, size: str) -> None:
    assert size in list_sizes(name)
    few, n_few, params = _shapes(name, size, FEW)
    many, n_many, _ = _shapes(name, size, MANY)
    width = _head_input(name, params)
    assert n_many - n_few == (MANY - FEW) * (width + 1), (n_few, n_many)
    assert few.keys() == many.keys()
    changed = {n for n in few if few[n] != many[n]}
    assert len(changed) == 2, changed  # the head's weight and bias
    for n in changed:
        assert few[n][0] == FEW and many[n][0] == MANY and few[n][1:] == many[n][1:]
