from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from losslab.data import DatasetError, load_dataset, make_phantom_case, phantom_case_seed

from .helpers import PHANTOM_SHAPE, tiny_case, write_nifti


def test_phantom_folder_layout_and_affine(phantom_folder: Path):
    manifest = json.loads((phantom_folder / "dataset.json").read_text())
    assert manifest["modality"] == {"0": "CT"} and manifest["numTraining"] == 4
    assert manifest["labels"]["10"] == "portal_splenic_veins" and len(manifest["labels"]) == 14
    assert manifest["training"][1] == {
        "image": "./imagesTr/case_001.nii.gz",
        "label": "./labelsTr/case_001.nii.gz",
    }
    image = nib.load(phantom_folder / "imagesTr" / "case_001.nii.gz")
    assert nib.aff2axcodes(image.affine) == ("R", "A", "S")
    np.testing.assert_allclose(image.header.get_zooms(), (1.5, 1.5, 1.5))
    assert image.shape == PHANTOM_SHAPE


def test_round_trip_phantom_folder_loader_gives_the_same_voxels(phantom_folder: Path):
    from_folder = load_dataset(
        "decathlon", data_dir=phantom_folder, normalization="none", use_cache=False
    )
    assert from_folder.class_names[6] == "liver" and len(from_folder) == 4
    for i in range(4):
        image, label = make_phantom_case(phantom_case_seed(3, i), PHANTOM_SHAPE)
        assert torch.equal(from_folder.labels[i], torch.from_numpy(label.astype(np.int64)))
        assert torch.equal(from_folder.images[i][0], torch.from_numpy(image))
    in_memory = load_dataset("phantom", cases=4, shape=PHANTOM_SHAPE, seed=3)
    windowed = load_dataset("decathlon", data_dir=phantom_folder, use_cache=False)
    assert all(torch.equal(a, b) for a, b in zip(in_memory.images, windowed.images))
    assert windowed.spacing == (1.5, 1.5, 1.5)
    first_three = load_dataset("decathlon", data_dir=phantom_folder, cases=3, use_cache=False)
    assert first_three.case_ids == ["case_000", "case_001", "case_002"]
    assert torch.equal(first_three.labels[1], windowed.labels[1])


def test_volumes_are_reoriented_to_ras(tmp_path: Path, make_folder):
    image, label = make_phantom_case(0, (20, 16, 12))
    root = make_folder([(image, label)], labels={str(i): f"c{i}" for i in range(14)})
    # the same volume stored left-posterior-superior with axes 0 and 1 swapped
    lps = np.zeros((4, 4))
    lps[0, 1], lps[1, 0], lps[2, 2], lps[3, 3] = -1.5, -1.5, 1.5, 1.0
    stored_image = np.ascontiguousarray(np.transpose(image[::-1, ::-1, :], (1, 0, 2)))
    stored_label = np.ascontiguousarray(np.transpose(label[::-1, ::-1, :], (1, 0, 2)))
    write_nifti(root / "imagesTr" / "c0.nii.gz", stored_image, lps)
    write_nifti(root / "labelsTr" / "c0.nii.gz", stored_label, lps)
    dataset = load_dataset(
        "decathlon",
        data_dir=root,
        normalization="none",
        use_cache=False,
        split_fractions=(1, 0, 0),  # one case: train only
    )
    assert torch.equal(dataset.labels[0], torch.from_numpy(label.astype(np.int64)))
    assert torch.equal(dataset.images[0][0], torch.from_numpy(image))


def test_resampling_to_a_coarser_spacing(phantom_folder: Path):
    native = load_dataset("decathlon", data_dir=phantom_folder, use_cache=False)
    coarse = load_dataset(
        "decathlon", data_dir=phantom_folder, spacing=(3.0, 3.0, 3.0), use_cache=False
    )
    assert coarse.spacing == (3.0, 3.0, 3.0)
    assert tuple(coarse.labels[0].shape) == tuple(n // 2 for n in PHANTOM_SHAPE)
    assert coarse.labels[0].dtype == torch.int64
    assert set(coarse.labels[0].unique().tolist()) <= set(native.labels[0].unique().tolist())
    share_native = (native.labels[0] == 6).float().mean()
    share_coarse = (coarse.labels[0] == 6).float().mean()
    assert abs(share_coarse - share_native) < 0.1 * share_native  # nearest keeps the liver
    raw = load_dataset("decathlon", data_dir=phantom_folder, normalization="none", use_cache=False)
    raw_coarse = load_dataset(
        "decathlon",
        data_dir=phantom_folder,
        normalization="none",
        spacing=(3, 3, 3),
        use_cache=False,
    )
    # trilinear at exactly half the resolution averages each 2x2x2 block
    block_mean = torch.nn.functional.avg_pool3d(raw.images[0][None], 2)[0]
    torch.testing.assert_close(raw_coarse.images[0], block_mean, rtol=1e-5, atol=1e-3)


def test_crop_to_the_body_keeps_every_label(phantom_folder: Path):
    full = load_dataset("decathlon", data_dir=phantom_folder, use_cache=False)
    cropped = load_dataset(
        "decathlon", data_dir=phantom_folder, crop_foreground=True, use_cache=False
    )
    for a, b in zip(full.labels, cropped.labels):
        assert b.numel() < a.numel()
        assert torch.equal(
            torch.bincount(a.flatten())[1:], torch.bincount(b.flatten(), minlength=14)[1:]
        )


def test_normalisation_ct_window_and_mri_nonzero_zscore(make_folder):
    image, label = tiny_case(0)
    image[0] = -1000.0
    image[1] = 1000.0
    root = make_folder([(image, label), tiny_case(1), tiny_case(2)])
    ct = load_dataset("decathlon", data_dir=root, use_cache=False).images[0]
    assert ct.min() == 0.0 and ct.max() == 1.0
    assert torch.all(ct[0, 0] == 0) and torch.all(ct[0, 1] == 1)
    expected = (np.clip(image[5, 5, 5], -175, 250) + 175) / 425
    assert ct[0, 5, 5, 5].item() == pytest.approx(expected, rel=1e-5)
    manifest = json.loads((root / "dataset.json").read_text())
    manifest["modality"] = {"0": "MRI"}
    (root / "dataset.json").write_text(json.dumps(manifest))
    image[:, :, 0] = 0.0
    write_nifti(root / "imagesTr" / "c0.nii.gz", image)
    mri = load_dataset("decathlon", data_dir=root, use_cache=False).images[0][0]
    nonzero = mri[mri != 0]
    assert torch.all(mri[:, :, 0] == 0)
    assert nonzero.mean().abs() < 1e-5 and nonzero.std(unbiased=False) == pytest.approx(
        1.0, rel=1e-4
    )


# --- bad input: each error names the file and the problem ---------------------------------


def _load(root: Path) -> None:
    load_dataset("decathlon", data_dir=root, use_cache=False)


def test_missing_file(make_folder):
    root = make_folder([tiny_case(0), tiny_case(1)])
    (root / "labelsTr" / "c1.nii.gz").unlink()
    with pytest.raises(DatasetError, match="file is missing") as info:
        _load(root)
    assert info.value.path == root / "labelsTr" / "c1.nii.gz"
    assert "c1.nii.gz" in str(info.value)


def test_image_and_label_of_different_shapes(make_folder):
    image, _ = tiny_case(0)
    root = make_folder([(image, np.zeros((10, 9, 7))), tiny_case(1), tiny_case(2)])
    with pytest.raises(
        DatasetError, match=r"label shape \(10, 9, 7\) differs from image shape"
    ) as info:
        _load(root)
    assert str(root / "labelsTr" / "c0.nii.gz") in str(info.value)


def test_label_value_not_in_dataset_json(make_folder):
    image, label = tiny_case(0)
    label[0, 0, 0] = 3
    root = make_folder([(image, label), tiny_case(1), tiny_case(2)])
    with pytest.raises(DatasetError, match=r"label value\(s\) \[3\] not in dataset.json") as info:
        _load(root)
    assert info.value.path.name == "c0.nii.gz" and "labelsTr" in str(info.value)


def test_non_nifti_files(make_folder):
    root = make_folder([tiny_case(i) for i in range(3)])
    (root / "imagesTr" / "c0.nii.gz").write_text("not an image")
    with pytest.raises(DatasetError, match="cannot be read as NIfTI") as info:
        _load(root)
    assert info.value.path == root / "imagesTr" / "c0.nii.gz"
    manifest = json.loads((root / "dataset.json").read_text())
    manifest["training"][0]["image"] = "./imagesTr/c0.png"
    (root / "imagesTr" / "c0.png").write_bytes(b"\x89PNG")
    (root / "dataset.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="not a NIfTI file") as info:
        _load(root)
    assert info.value.path.name == "c0.png"


def test_empty_training_list(make_folder):
    root = make_folder([tiny_case(0)])
    manifest = json.loads((root / "dataset.json").read_text())
    manifest["training"] = []
    (root / "dataset.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="'training' list is empty") as info:
        _load(root)
    assert info.value.path == root / "dataset.json"


def test_dataset_json_missing_keys_or_not_json(make_folder):
    root = make_folder([tiny_case(0)])
    (root / "dataset.json").write_text(json.dumps({"name": "x", "training": []}))
    with pytest.raises(
        DatasetError, match=r"missing required key\(s\) \['labels', 'modality'\]"
    ) as info:
        _load(root)
    assert "dataset.json" in str(info.value)
    (root / "dataset.json").write_text("{labels: oops")
    with pytest.raises(DatasetError, match="not valid JSON") as info:
        _load(root)
    assert info.value.path == root / "dataset.json"


def test_missing_folder(tmp_path: Path):
    with pytest.raises(DatasetError, match="does not exist") as info:
        _load(tmp_path / "nowhere")
    assert info.value.path == tmp_path / "nowhere"


def test_non_contiguous_labels_are_refused(make_folder):
    root = make_folder([tiny_case(0)], labels={"0": "background", "2": "organ"})
    with pytest.raises(DatasetError, match=r"'labels' keys must be 0..1"):
        _load(root)


def test_each_case_keeps_its_native_spacing(tmp_path):
    """Kept at native spacing, cases differ; resampled, they share the target (HD95 reads it)."""
    root = tmp_path / "folder"
    training = []
    for i, z in enumerate((1.0, 2.0, 3.0)):
        image, label = tiny_case(i, shape=(20, 20, 20))
        affine = np.diag([1.0, 1.0, z, 1.0])
        write_nifti(root / "imagesTr" / f"c{i}.nii.gz", image, affine)
        write_nifti(root / "labelsTr" / f"c{i}.nii.gz", label, affine)
        training.append({"image": f"./imagesTr/c{i}.nii.gz", "label": f"./labelsTr/c{i}.nii.gz"})
    (root / "dataset.json").write_text(
        json.dumps({"name": "s", "modality": {"0": "CT"}, "labels": {"0": "bg", "1": "a"},
                    "training": training})
    )  # fmt: skip
    native = load_dataset("decathlon", data_dir=root, use_cache=False)
    assert sorted(s[2] for s in native.spacings) == [1.0, 2.0, 3.0]
    assert native.subset("train").spacings == [native.spacings[i] for i in native.splits["train"]]
    resampled = load_dataset("decathlon", data_dir=root, use_cache=False, spacing=(1.0, 1.0, 1.0))
    assert resampled.spacings == [(1.0, 1.0, 1.0)] * 3
