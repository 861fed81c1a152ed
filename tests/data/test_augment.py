from __future__ import annotations

import pytest
import torch

from losslab.data import augment


def _batch(b: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.randint(0, 5, (b, 6, 5, 4), generator=torch.Generator().manual_seed(0))
    return labels[:, None].float(), labels


def test_flips_keep_labels_aligned_with_images():
    images, labels = _batch(32)
    out_images, out_labels = augment(
        images, labels, torch.Generator().manual_seed(1), scale=0, shift=0
    )
    assert torch.equal(out_images[:, 0].long(), out_labels)
    changed = (out_labels != labels).flatten(1).any(dim=1)
    assert 0 < changed.sum() < 32  # each sample draws its own flips


def test_flip_probability_one_flips_every_axis_and_zero_none():
    images, labels = _batch()
    g = torch.Generator().manual_seed(0)
    out_images, out_labels = augment(images, labels, g, flip_prob=1.0, scale=0, shift=0)
    assert torch.equal(out_labels, labels.flip(1, 2, 3))
    assert torch.equal(out_images, images.flip(2, 3, 4))
    out_images, out_labels = augment(images, labels, g, flip_prob=0.0, scale=0, shift=0)
    assert torch.equal(out_labels, labels) and torch.equal(out_images, images)


def test_intensity_scale_and_shift_stay_within_bounds_per_sample():
    images = torch.ones(64, 1, 4, 4, 4)
    labels = torch.zeros(64, 4, 4, 4, dtype=torch.int64)
    out, _ = augment(
        images, labels, torch.Generator().manual_seed(3), flip_prob=0, scale=0.2, shift=0.1
    )
    per_sample = out.flatten(1)
    assert torch.all(per_sample == per_sample[:, :1])  # one affine map per sample
    values = per_sample[:, 0]
    assert values.min() >= 0.7 - 1e-6 and values.max() <= 1.3 + 1e-6
    assert values.std() > 0.05


def test_deterministic_given_the_generator():
    images, labels = _batch()
    a = augment(images, labels, torch.Generator().manual_seed(9))
    b = augment(images, labels, torch.Generator().manual_seed(9))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="expected images"):
        augment(torch.zeros(2, 1, 4, 4, 4), torch.zeros(3, 4, 4, 4), torch.Generator())
    with pytest.raises(ValueError, match="differ"):
        augment(torch.zeros(2, 1, 4, 4, 4), torch.zeros(2, 4, 4, 5), torch.Generator())


def test_cpu_and_device_flip_paths_agree():
    from losslab.data.augment import _flip_masked, _flip_selected

    generator = torch.Generator().manual_seed(3)
    images = torch.rand(4, 1, 5, 6, 7, generator=generator)
    labels = torch.randint(0, 5, (4, 5, 6, 7), generator=generator)
    flips = torch.rand(4, 3, generator=generator) < 0.5
    assert flips.any() and not flips.all()
    for a, b in zip(_flip_masked(images, labels, flips), _flip_selected(images, labels, flips)):
        assert torch.equal(a, b)
