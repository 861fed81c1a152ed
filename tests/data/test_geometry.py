"""Image and label geometry: shapes and affines are compared, a mismatch names both files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from losslab.cli.main import main
from losslab.data import DatasetError, inspect_decathlon, load_dataset

from .helpers import tiny_case, write_nifti

IMAGE, LABEL = "imagesTr/c0.nii.gz", "labelsTr/c0.nii.gz"


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich wraps at the terminal width; long paths must stay on one line."""
    monkeypatch.setenv("COLUMNS", "500")


def _with_label_affine(make_folder, affine: np.ndarray) -> Path:
    root = make_folder([tiny_case(i) for i in range(3)])
    write_nifti(root / LABEL, tiny_case(0)[1], affine)
    return root


def _shifted(make_folder) -> Path:
    affine = np.eye(4)
    affine[0, 3] = 20.0
    return _with_label_affine(make_folder, affine)


def _reversed(make_folder) -> Path:
    return _with_label_affine(make_folder, np.diag([-1.0, 1.0, 1.0, 1.0]))


def _other_shape(make_folder) -> Path:
    root = make_folder([tiny_case(i) for i in range(3)])
    write_nifti(root / LABEL, np.zeros((10, 9, 7), np.uint8))
    return root


MISMATCHED = {
    "origin 20 mm off": (_shifted, "label origin is 20 mm from that of image"),
    "first axis reversed": (_reversed, "label origin is 9 mm from that of image"),
    "other shape": (_other_shape, "label shape (10, 9, 7) differs from image shape (10, 9, 8)"),
}


@pytest.fixture(params=list(MISMATCHED), ids=list(MISMATCHED))
def mismatched(request, make_folder) -> tuple[Path, str]:
    build, problem = MISMATCHED[request.param]
    return build(make_folder), problem


def test_inspect_reports_a_geometry_mismatch_naming_both_files(mismatched, capsys):
    root, problem = mismatched
    report = inspect_decathlon(root)
    found = [p.problem for p in report.problems if p.path == root / LABEL]
    assert not report.ok and len(found) == 1, report.problems
    assert found[0].startswith(problem) and str(root / IMAGE) in found[0]
    assert main(["data", "inspect", str(root)]) == 1
    out = capsys.readouterr().out
    assert f"{root / LABEL}: {problem}" in out and "no problems found" not in out


def test_the_loader_refuses_a_geometry_mismatch_naming_both_files(mismatched):
    root, problem = mismatched
    with pytest.raises(DatasetError) as info:
        load_dataset("decathlon", data_dir=root, use_cache=False)
    assert info.value.path == root / LABEL
    assert info.value.problem.startswith(problem) and str(root / IMAGE) in str(info.value)


def test_a_reversed_axis_is_named_with_the_stored_orientations(make_folder):
    root = _reversed(make_folder)
    (problem,) = [p.problem for p in inspect_decathlon(root).problems]
    assert "the label is stored L-A-S and the image R-A-S" in problem


def test_rotated_voxel_axes_are_refused(make_folder):
    rotated = np.eye(4)
    rotated[:2, :2] = [[np.cos(0.1), -np.sin(0.1)], [np.sin(0.1), np.cos(0.1)]]
    root = _with_label_affine(make_folder, rotated)
    (problem,) = [p.problem for p in inspect_decathlon(root).problems]
    assert problem.startswith("label voxel axes differ from those of image")
    assert str(root / IMAGE) in problem


def test_a_tiny_float_difference_passes(make_folder):
    root = make_folder([tiny_case(i) for i in range(3)])
    affine = np.eye(4)
    affine[:3, :3] *= 1 + 2e-6
    affine[:3, 3] = [2e-5, -3e-5, 1e-5]
    write_nifti(root / LABEL, tiny_case(0)[1], affine)
    assert inspect_decathlon(root).ok
    assert len(load_dataset("decathlon", data_dir=root, use_cache=False)) == 3


def test_a_label_stored_in_another_orientation_on_the_same_grid_passes(make_folder):
    root = make_folder([tiny_case(i) for i in range(3)])
    label = tiny_case(0)[1]
    flipped = np.diag([-1.0, 1.0, 1.0, 1.0])
    flipped[0, 3] = label.shape[0] - 1  # voxel i lies at x = 9 - i: the image's voxel 9 - i
    write_nifti(root / LABEL, np.ascontiguousarray(label[::-1]), flipped)
    assert inspect_decathlon(root).ok
    dataset = load_dataset("decathlon", data_dir=root, use_cache=False)
    assert np.array_equal(dataset.labels[0].numpy(), label)
