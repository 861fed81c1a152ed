from __future__ import annotations

import pytest
import torch

from losslab.data import PatchSampler, SegmentationDataset, load_dataset

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def phantom() -> SegmentationDataset:
    return load_dataset(
        "phantom", cases=6, shape=(32, 32, 32), seed=2, split_fractions=(1.0, 0.0, 0.0)
    )


def _label_as_image(shapes: list[tuple[int, int, int]]) -> SegmentationDataset:
    """Cases whose image is the voxel's own flat index: a crop tells where it came from."""
    labels, images = [], []
    for i, shape in enumerate(shapes):
        index = torch.arange(torch.Size(shape).numel()).reshape(shape)
        labels.append((index % 3).long())
        images.append((index + 1000 * i).float()[None])
    return SegmentationDataset(
        "grid", ("bg", "a", "b"), images, labels, {"train": list(range(len(shapes)))}, "", (1, 1, 1)
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["balanced", "uniform"])
def test_shapes_dtypes_and_device(phantom, mode, device):
    sampler = PatchSampler(phantom, patch_size=(16, 12, 8), batch_size=3, mode=mode, device=device)
    images, labels = sampler.sample()
    assert images.shape == (3, 1, 16, 12, 8) and images.dtype == torch.float32
    assert labels.shape == (3, 16, 12, 8) and labels.dtype == torch.int64
    assert images.device.type == labels.device.type == device


@pytest.mark.parametrize("mode", ["balanced", "uniform"])
def test_same_seed_same_batches_other_seed_differs(phantom, mode):
    a = PatchSampler(phantom, patch_size=(8, 8, 8), mode=mode, seed=4)
    b = PatchSampler(phantom, patch_size=(8, 8, 8), mode=mode, seed=4)
    c = PatchSampler(phantom, patch_size=(8, 8, 8), mode=mode, seed=5)
    batches_a = [a.sample() for _ in range(3)]
    batches_b = [b.sample() for _ in range(3)]
    batches_c = [c.sample() for _ in range(3)]
    for (ia, la), (ib, lb) in zip(batches_a, batches_b):
        assert torch.equal(ia, ib) and torch.equal(la, lb)
    assert any(not torch.equal(ia, ic) for (ia, _), (ic, _) in zip(batches_a, batches_c))


def test_balanced_centres_on_every_class_alike_uniform_follows_voxel_shares(phantom):
    # a 1-voxel patch is its own centre voxel
    draws = {}
    for mode in ("balanced", "uniform"):
        sampler = PatchSampler(phantom, patch_size=(1, 1, 1), batch_size=500, mode=mode, seed=0)
        labels = torch.cat([sampler.sample()[1].flatten() for _ in range(6)])
        draws[mode] = torch.bincount(labels, minlength=14).double() / labels.numel()
    assert draws["balanced"].min() > 0.5 / 14 and draws["balanced"].max() < 1.5 / 14
    assert draws["uniform"][0] > 0.8  # mostly background
    rare = [4, 5, 10, 12, 13]  # gallbladder, oesophagus, veins, adrenals
    assert draws["uniform"][rare].sum() < 0.02 < 0.3 < draws["balanced"][rare].sum()


def test_balanced_patches_contain_rare_classes_more_often(phantom):
    hits = {}
    for mode in ("balanced", "uniform"):
        sampler = PatchSampler(phantom, patch_size=(4, 4, 4), batch_size=400, mode=mode, seed=1)
        _, labels = sampler.sample()
        hits[mode] = (labels == 12).flatten(1).any(dim=1).float().mean().item()  # right adrenal
    assert hits["balanced"] > 3 * hits["uniform"]
    assert hits["balanced"] > 1 / 14 - 0.03


@pytest.mark.parametrize("mode", ["balanced", "uniform"])
def test_crops_are_contiguous_blocks_of_one_case_with_aligned_labels(mode):
    dataset = _label_as_image([(12, 10, 9), (9, 11, 12)])
    sampler = PatchSampler(dataset, patch_size=(5, 4, 3), batch_size=64, mode=mode)
    images, labels = sampler.sample()
    for image, label in zip(images[:, 0], labels):
        case = int(image[0, 0, 0].item()) // 1000
        shape = dataset.labels[case].shape
        index = image.long() - 1000 * case
        x, y, z = index // (shape[1] * shape[2]), (index // shape[2]) % shape[1], index % shape[2]
        assert torch.all(x == x[0, 0, 0] + torch.arange(5)[:, None, None])
        assert torch.all(y == y[0, 0, 0] + torch.arange(4)[None, :, None])
        assert torch.all(z == z[0, 0, 0] + torch.arange(3)[None, None, :])
        assert torch.equal(label, index % 3)


def test_cases_smaller_than_the_patch_are_padded():
    dataset = _label_as_image([(4, 6, 5)])
    sampler = PatchSampler(dataset, patch_size=(8, 6, 7), batch_size=2, mode="uniform")
    images, labels = sampler.sample()
    assert images.shape == (2, 1, 8, 6, 7)
    # centred padding: 2 before and 2 after on axis 0, 1 and 1 on axis 2
    assert torch.all(labels[:, :2] == 0) and torch.all(labels[:, 6:] == 0)
    assert torch.all(images[:, 0, :2] == 0) and torch.all(images[:, 0, :, :, 0] == 0)
    assert torch.equal(labels[0, 2:6, :, 1:6], dataset.labels[0])
    assert torch.equal(images[0, 0, 2:6, :, 1:6], dataset.images[0][0])


def test_bad_arguments_are_refused(phantom):
    with pytest.raises(ValueError, match="mode"):
        PatchSampler(phantom, mode="random")
    with pytest.raises(ValueError, match="no cases"):
        PatchSampler(phantom, split="test")
    with pytest.raises(ValueError, match="patch_size"):
        PatchSampler(phantom, patch_size=(8, 8))


def test_device_gather_matches_host_slicing(phantom):
    # the accelerator path (torch.take) and the CPU path (slices) must cut the same crops
    sampler = PatchSampler(phantom, patch_size=(9, 7, 5), batch_size=4)
    case = torch.tensor([0, 5, 2, 5])
    origin = torch.tensor([[0, 0, 0], [23, 25, 27], [3, 11, 7], [10, 1, 20]])
    taken, sliced = sampler._gather_take(case, origin), sampler._gather_slices(case, origin)
    assert torch.equal(taken[0], sliced[0]) and torch.equal(taken[1], sliced[1])
    assert torch.equal(
        sliced[1][1], phantom.labels[phantom.splits["train"][5]][23:32, 25:32, 27:32]
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("mode", ["balanced", "uniform"])
def test_sampling_and_augmentation_do_not_synchronise_the_gpu(phantom, mode):
    from losslab.data import augment

    sampler = PatchSampler(phantom, patch_size=(8, 8, 8), mode=mode, device="cuda")
    generator = torch.Generator(device="cuda").manual_seed(0)
    augment(*sampler.sample(), generator)  # warm-up
    torch.cuda.set_sync_debug_mode("error")
    try:
        images, labels = augment(*sampler.sample(), generator)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert images.is_cuda and labels.is_cuda
