from __future__ import annotations

import pytest
import torch

from losslab.data import DataConfig, SegmentationDataset, build_dataset, load_dataset


@pytest.fixture(scope="module")
def phantom() -> SegmentationDataset:
    return load_dataset("phantom", cases=5, shape=(24, 24, 16), seed=1)


def test_phantom_dataset_types_shapes_and_split(phantom: SegmentationDataset):
    assert len(phantom) == 5 and phantom.num_classes == 14 and phantom.name == "phantom"
    assert all(im.shape == (1, 24, 24, 16) and im.dtype == torch.float32 for im in phantom.images)
    assert all(lab.shape == (24, 24, 16) and lab.dtype == torch.int64 for lab in phantom.labels)
    assert min(im.min().item() for im in phantom.images) >= 0.0
    assert max(im.max().item() for im in phantom.images) <= 1.0  # CT window scaled to [0, 1]
    assert [len(phantom.splits[k]) for k in ("train", "val", "test")] == [3, 1, 1]
    assert phantom.spacing == (1.5, 1.5, 1.5) and phantom.case_ids[4] == "case_004"


def test_fingerprint_is_stable_and_follows_data_and_settings(phantom: SegmentationDataset):
    same = load_dataset("phantom", cases=5, shape=(24, 24, 16), seed=1)
    assert same.fingerprint == phantom.fingerprint
    assert all(torch.equal(a, b) for a, b in zip(same.images, phantom.images))
    others = [
        load_dataset("phantom", cases=5, shape=(24, 24, 16), seed=2),
        load_dataset("phantom", cases=4, shape=(24, 24, 16), seed=1),
        load_dataset("phantom", cases=5, shape=(24, 24, 16), seed=1, normalization="zscore"),
    ]
    assert len({phantom.fingerprint, *(o.fingerprint for o in others)}) == 4


def test_split_seed_changes_the_split_not_the_data():
    a = load_dataset("phantom", cases=6, shape=(16, 16, 16), split_seed=0)
    b = load_dataset("phantom", cases=6, shape=(16, 16, 16), split_seed=3)
    assert a.splits != b.splits and a.fingerprint == b.fingerprint


def test_to_moves_every_tensor_and_keeps_statistics(phantom: SegmentationDataset):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    counts = phantom.class_voxel_counts
    moved = phantom.to(device)
    assert moved is not phantom and moved.device.type == device
    assert all(t.device.type == device for t in (*moved.images, *moved.labels))
    assert torch.equal(moved.class_voxel_counts, counts)
    assert moved.fingerprint == phantom.fingerprint and moved.splits == phantom.splits


def test_subset_by_indices(phantom: SegmentationDataset):
    part = phantom.subset([4, 1])
    assert part.case_ids == ["case_004", "case_001"] and part.splits["subset"] == [0, 1]
    assert torch.equal(part.labels[0], phantom.labels[4])
    with pytest.raises(KeyError, match="nope"):
        phantom.subset("nope")


def test_inconsistent_dataset_is_refused():
    image = torch.zeros(1, 4, 4, 4)
    with pytest.raises(ValueError, match="must be"):
        SegmentationDataset(
            "x", ("bg",), [image], [torch.zeros(4, 4, 5, dtype=torch.int64)], {}, "", (1, 1, 1)
        )
    with pytest.raises(ValueError, match="out of range"):
        SegmentationDataset(
            "x",
            ("bg",),
            [image],
            [torch.zeros(4, 4, 4, dtype=torch.int64)],
            {"train": [1]},
            "",
            (1, 1, 1),
        )


def test_data_config_names_unknown_keys_and_bad_values():
    with pytest.raises(ValueError, match=r"unknown data config key\(s\) \['shapes'\]"):
        DataConfig.from_dict({"source": "phantom", "shapes": [32, 32, 32]})
    with pytest.raises(ValueError, match="data_dir is required"):
        DataConfig(source="decathlon")
    with pytest.raises(ValueError, match="normalization"):
        DataConfig(normalization="minmax")
    with pytest.raises(ValueError, match="source"):
        DataConfig(source="btcv")
    config = DataConfig.from_dict({"cases": 3, "shape": [16, 16, 16], "spacing": [3, 3, 3]})
    assert config.shape == (16, 16, 16) and config.spacing == (3, 3, 3)
    dataset = build_dataset(config)
    assert len(dataset) == 3 and dataset.images[0].shape == (1, 8, 8, 8)


def test_too_few_phantom_cases_for_the_split_are_refused():
    with pytest.raises(ValueError, match=r"2 case\(s\) cannot give the train/val/test splits"):
        load_dataset("phantom", cases=2, shape=(8, 8, 8))
    only_train = load_dataset("phantom", cases=1, shape=(8, 8, 8), split_fractions=(1, 0, 0))
    assert only_train.splits == {"train": [0], "val": [], "test": []}
