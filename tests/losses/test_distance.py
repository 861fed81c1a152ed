"""The signed distance map of the boundary loss: torch (on the device) against SciPy."""

from __future__ import annotations

import math

import pytest
import torch

import losslab.losses.distance as distance
from losslab.losses import signed_distance
from losslab.losses.distance import (
    signed_distance_scipy,
    signed_distance_torch,
    squared_distance_to_seeds,
)


def random_masks(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Masks ``[B, C, *spatial]`` of several densities per class, with an empty and a full one."""
    g = torch.Generator().manual_seed(seed)
    density = torch.tensor([0.02, 0.3, 0.7, 0.98])[torch.arange(shape[1]) % 4]
    density = density.reshape(1, -1, *([1] * (len(shape) - 2)))
    masks = (torch.rand(shape, generator=g) < density).float()
    masks[0, 0] = 0.0  # a class absent from an image
    masks[-1, -1] = 1.0  # a class covering all of it
    return masks


SHAPES = [
    (2, 4, 7, 12, 9),  # anisotropic
    (2, 3, 1, 10, 13),  # 2-D-like: a spatial dimension of 1
    (1, 3, 9, 1, 1),  # 1-D-like
    (2, 4, 11, 6),  # two spatial dimensions
    (3, 2, 5),  # one
    (1, 4, 16, 16, 16),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("seed", [0, 1])
def test_torch_equals_scipy_exactly(shape, seed):
    masks = random_masks(shape, seed)
    ours, scipy = signed_distance_torch(masks), signed_distance_scipy(masks)
    assert ours.dtype == torch.float32 and ours.shape == masks.shape
    assert torch.equal(ours, scipy)


def test_torch_equals_scipy_on_a_one_hot_label_map():
    g = torch.Generator().manual_seed(3)
    labels = (torch.rand(2, 3, 5, 4, generator=g) * 4).long().repeat_interleave(3, dim=1)
    onehot = torch.nn.functional.one_hot(labels, 5).movedim(-1, 1).float()  # class 4: absent
    ours = signed_distance_torch(onehot)
    assert torch.equal(ours, signed_distance_scipy(onehot))
    assert torch.equal(ours[:, 4], torch.zeros_like(ours[:, 4]))


def test_sign_convention_on_a_line():
    # outside: the distance to the class; inside: 1 - the distance to the outside (0 on its rim)
    line = torch.tensor([0, 0, 1, 1, 1, 0, 0, 0], dtype=torch.float32).reshape(1, 1, -1)
    expected = [2.0, 1.0, 0.0, -1.0, 0.0, 1.0, 2.0, 3.0]
    for backend in distance.BACKENDS:
        assert signed_distance(line, backend)[0, 0].tolist() == expected


def test_empty_and_full_classes_give_zero_maps():
    masks = torch.zeros(2, 2, 4, 5, 3)
    masks[1] = 1.0
    assert torch.equal(signed_distance_torch(masks), torch.zeros_like(masks))


def test_squared_distance_is_zero_on_seeds_and_inf_without_any():
    seeds = torch.zeros(2, 5, 6, dtype=torch.bool)
    seeds[0, 1, 2] = True
    d2 = squared_distance_to_seeds(seeds, ndim=2)
    assert d2[0, 1, 2] == 0 and d2[0, 4, 5] == 3**2 + 3**2 and d2[0, 0, 0] == 1 + 4
    assert torch.isinf(d2[1]).all()
    with pytest.raises(ValueError, match="ndim"):
        squared_distance_to_seeds(seeds, ndim=4)


def test_blocks_of_lines_give_the_same_map(monkeypatch):
    masks = random_masks((2, 3, 6, 9, 7), seed=5)
    whole = signed_distance_torch(masks)
    monkeypatch.setattr(distance, "BLOCK_ELEMENTS", 100)  # a few lines per block
    assert torch.equal(signed_distance_torch(masks), whole)


def test_backend_by_device_and_a_bad_name(monkeypatch):
    calls = []
    monkeypatch.setattr(distance, "signed_distance_scipy", lambda m: calls.append("scipy"))
    monkeypatch.setattr(distance, "signed_distance_torch", lambda m: calls.append("torch"))
    masks = torch.ones(1, 1, 3)
    distance.signed_distance(masks)
    monkeypatch.setattr(distance, "CPU_BACKEND", "torch")
    distance.signed_distance(masks)
    distance.signed_distance(masks, "scipy")
    assert calls == ["scipy", "torch", "scipy"]
    with pytest.raises(ValueError, match="backend"):
        distance.signed_distance(masks, "numpy")


def test_large_distances_stay_exact():
    # the farthest voxel of a 40 x 40 x 40 cube from its corner: 3 * 39^2, exact in float32
    masks = torch.zeros(1, 1, 40, 40, 40)
    masks[0, 0, 0, 0, 0] = 1.0
    ours = signed_distance_torch(masks)
    assert ours[0, 0, -1, -1, -1].item() == pytest.approx(math.sqrt(3 * 39**2), rel=1e-7)
    assert torch.equal(ours, signed_distance_scipy(masks))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_on_the_gpu_the_map_is_made_there_without_a_sync():
    masks = random_masks((2, 4, 12, 16, 10), seed=7)
    expected = signed_distance_scipy(masks)
    onehot = masks.cuda()
    signed_distance(onehot)  # warm-up
    torch.cuda.set_sync_debug_mode("error")
    try:
        ours = signed_distance(onehot)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert ours.is_cuda
    assert torch.equal(ours.cpu(), expected)
