"""Broken nnU-Net v2 raw folders: every problem reported naming the file (or the
``dataset.json`` key) at fault, by ``inspect_folder`` and by the loader."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from losslab.data import DatasetError, DatasetProblem, inspect_folder, load_dataset

from .helpers import tiny_case, write_nifti


def _two_channels(seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    image, label = tiny_case(seed)
    return [image, image * 0.5 + 100.0], label


DELETE = object()
"""A value of ``_edit_json`` that removes its key."""


def _edit_json(root: Path, **changes: object) -> None:
    manifest = json.loads((root / "dataset.json").read_text())
    manifest.update(changes)
    manifest = {k: v for k, v in manifest.items() if v is not DELETE}
    (root / "dataset.json").write_text(json.dumps(manifest))


def _missing_channel(root: Path) -> Path:
    (root / "imagesTr" / "c1_0001.nii.gz").unlink()
    return root / "imagesTr" / "c1_0001.nii.gz"


def _image_without_label(root: Path) -> Path:
    (root / "labelsTr" / "c2.nii.gz").unlink()
    return root / "labelsTr" / "c2.nii.gz"


def _label_without_image(root: Path) -> Path:
    shutil.copy(root / "labelsTr" / "c0.nii.gz", root / "labelsTr" / "c9.nii.gz")
    return root / "labelsTr" / "c9.nii.gz"


def _num_training(root: Path) -> Path:
    _edit_json(root, numTraining=4)
    return root / "dataset.json"


def _channel_beyond_channel_names(root: Path) -> Path:
    shutil.copy(root / "imagesTr" / "c0_0001.nii.gz", root / "imagesTr" / "c0_0002.nii.gz")
    return root / "imagesTr" / "c0_0002.nii.gz"


def _no_channel_index(root: Path) -> Path:
    shutil.copy(root / "imagesTr" / "c0_0001.nii.gz", root / "imagesTr" / "c0_T2.nii.gz")
    return root / "imagesTr" / "c0_T2.nii.gz"


def _other_ending(root: Path) -> Path:
    write_nifti(root / "imagesTr" / "c3_0000.nii", np.zeros((10, 9, 8), dtype=np.float32))
    return root / "imagesTr" / "c3_0000.nii"


def _label_shape(root: Path) -> Path:
    write_nifti(root / "labelsTr" / "c1.nii.gz", np.zeros((10, 9, 7), dtype=np.uint8))
    return root / "labelsTr" / "c1.nii.gz"


def _channel_shifted(root: Path) -> Path:
    affine = np.eye(4)
    affine[:3, 3] = [2.0, 0.0, 0.0]
    image = np.asarray(tiny_case(1)[0], dtype=np.float32)
    return write_nifti(root / "imagesTr" / "c1_0001.nii.gz", image, affine)


def _label_out_of_range(root: Path) -> Path:
    label = tiny_case(2)[1]
    label[0, 0, 0] = 7
    return write_nifti(root / "labelsTr" / "c2.nii.gz", label)


def _channel_not_finite(root: Path) -> Path:
    image = np.asarray(tiny_case(0)[0], dtype=np.float32)
    image[1, 1, 1] = np.nan
    return write_nifti(root / "imagesTr" / "c0_0001.nii.gz", image)


def _no_labels_folder(root: Path) -> Path:
    shutil.rmtree(root / "labelsTr")
    return root / "labelsTr"


BROKEN: dict[str, tuple[Callable[[Path], Path], str, bool]] = {
    # name: (break the folder and return the file at fault, its problem, the loader names it)
    "missing channel": (_missing_channel, "file is missing", True),
    "image without label": (_image_without_label, "file is missing", True),
    "label without image": (
        _label_without_image,
        "label without image: imagesTr has no c9_0000",
        True,
    ),
    "numTraining": (_num_training, "'numTraining' is 4, but imagesTr holds 3 case", True),
    "channel index": (
        _channel_beyond_channel_names,
        "channel 0002, but 'channel_names' lists 2",
        True,
    ),
    "no channel index": (_no_channel_index, r"not named CASE_XXXX\.nii\.gz", True),
    "other ending": (_other_ending, "does not end in file_ending '.nii.gz'", True),
    "label shape": (_label_shape, r"label shape \(10, 9, 7\) differs from image shape", True),
    "channel grid": (_channel_shifted, "channel origin is 2 mm from that of image", True),
    "label values": (_label_out_of_range, r"label value\(s\)? .*7", True),
    "channel NaN": (_channel_not_finite, "image has 1 NaN voxel", True),
    "no labelsTr": (_no_labels_folder, "folder is missing", True),
}


@pytest.mark.parametrize("broken", BROKEN, ids=list(BROKEN))
def test_a_broken_folder_is_reported_naming_the_file(make_nnunet, broken):
    root = make_nnunet([_two_channels(i) for i in range(3)])
    assert inspect_folder(root, source="nnunet").ok
    breaker, problem, loader_names_it = BROKEN[broken]
    at_fault = breaker(root)
    problems = inspect_folder(root, source="nnunet").problems
    assert [p.path for p in problems] == [at_fault], problems
    assert re.search(problem, problems[0].problem), problems[0].problem
    if loader_names_it:
        with pytest.raises(DatasetError) as info:
            load_dataset("nnunet", data_dir=root, use_cache=False)
        assert info.value.path == at_fault


REFUSED = {
    "region-based labels": (
        {"labels": {"background": 0, "liver": [1, 2], "tumour": 2}},
        r"'labels'\['liver'\] is \[1, 2\]: region-based labels",
    ),
    "regions_class_order": (
        {"regions_class_order": [1, 2]},
        "'regions_class_order': region-based training is not supported",
    ),
    "png ending": ({"file_ending": ".png"}, "'file_ending' is '.png': only NIfTI files"),
    "ignore label": (
        {"labels": {"background": 0, "organ": 1, "ignore": 2}},
        r"'labels'\['ignore'\]: nnU-Net's ignore label",
    ),
    "shared value": (
        {"labels": {"background": 0, "organ": 1, "spleen": 1}},
        r"'labels'\['spleen'\]: value 1 is also given to 'organ'",
    ),
    "text value": ({"labels": {"background": 0, "organ": "1"}}, r"'labels'\['organ'\] must be an"),
    "values not 0..C-1": (
        {"labels": {"background": 0, "organ": 2}},
        r"'labels' values must be 0..1, got \[0, 2\]",
    ),
    "channel_names": ({"channel_names": {"1": "CT"}}, "'channel_names' must be an object"),
    "missing key": ({"numTraining": DELETE}, r"missing required key\(s\) \['numTraining'\]"),
    "dataset listing": (
        {"dataset": {"c0": {"images": ["imagesTr/c0_0000.nii.gz"], "label": "labelsTr/c0.nii.gz"}}},
        r"'dataset'\['c0'\] lists 1 image\(s\) for 2 channel\(s\)",
    ),
}


@pytest.mark.parametrize("refused", REFUSED, ids=list(REFUSED))
def test_what_losslab_cannot_train_on_is_refused_naming_the_key(make_nnunet, refused):
    changes, problem = REFUSED[refused]
    root = make_nnunet([_two_channels(i) for i in range(3)])
    _edit_json(root, **changes)
    problems = inspect_folder(root, source="nnunet").problems
    assert problems and all(p.path == root / "dataset.json" for p in problems), problems
    assert any(re.search(problem, p.problem) for p in problems), problems
    with pytest.raises(DatasetError, match=problem) as info:
        load_dataset("nnunet", data_dir=root, use_cache=False)
    assert info.value.path == root / "dataset.json"


def test_the_labels_option_maps_the_ignore_label_away(make_nnunet):
    cases = [_two_channels(i) for i in range(3)]
    cases[0][1][0, 0, 0] = 2
    root = make_nnunet(cases, labels={"background": 0, "organ": 1, "ignore": 2})
    labels = {0: "background", 1: "organ"}
    report = inspect_folder(root, labels=labels, source="nnunet")
    assert report.ok and report.manifest.class_names == ("background", "organ")
    assert any("2" in w.problem for w in report.warnings)  # its voxels counted as background
    dataset = load_dataset("nnunet", data_dir=root, labels=labels, use_cache=False)
    assert int(dataset.labels[0][0, 0, 0]) == 0


def test_problems_of_several_files_are_all_named(make_nnunet):
    root = make_nnunet([_two_channels(i) for i in range(3)])
    broken = [_missing_channel(root), _label_without_image(root), _no_channel_index(root)]
    problems = inspect_folder(root, source="nnunet").problems
    assert sorted(p.path for p in problems) == sorted(broken)
    assert DatasetProblem(broken[0], "file is missing") in problems
