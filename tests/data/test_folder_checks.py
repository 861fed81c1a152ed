"""Warnings (data that trains, with a caveat), a file given as the folder, truncated plain
``.nii`` files and the cheap ``check_dataset_folder``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from losslab.cli.main import main
from losslab.data import (
    DatasetError,
    DatasetProblem,
    check_dataset_folder,
    inspect_decathlon,
    load_dataset,
    volumes,
)

from .helpers import tiny_case, write_nifti


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich wraps at the terminal width; long paths must stay on one line."""
    monkeypatch.setenv("COLUMNS", "500")


def _load(root: Path, **settings) -> object:
    return load_dataset("decathlon", data_dir=root, use_cache=False, **settings)


def _edit_manifest(root: Path, **changes) -> None:
    manifest = json.loads((root / "dataset.json").read_text())
    manifest.update(changes)
    (root / "dataset.json").write_text(json.dumps(manifest))


# --- warnings: inspect exits 0 and lists them, the loader trains and logs them ------------


def test_one_background_only_label_among_others_is_a_warning(make_folder, capsys, caplog):
    cases = [tiny_case(i) for i in range(3)]
    cases[1] = (cases[1][0], np.zeros_like(cases[1][1]))
    root = make_folder(cases)
    label = root / "labelsTr" / "c1.nii.gz"
    warning = DatasetProblem(label, "label is background only (no voxel of classes 1..1)")
    report = inspect_decathlon(root)
    assert report.ok and report.warnings == [warning]
    assert main(["data", "inspect", str(root)]) == 0
    out = capsys.readouterr().out
    assert "1 warning(s):" in out and str(warning) in out and "no problems found" in out
    with caplog.at_level(logging.WARNING, logger="losslab.data.loading"):
        assert len(_load(root)) == 3
    assert [r.getMessage() for r in caplog.records] == [str(warning)]


def test_a_class_in_no_label_is_a_warning(make_folder, caplog, capsys):
    labels = {"0": "background", "1": "organ", "2": "tumour"}
    root = make_folder([tiny_case(i) for i in range(3)], labels=labels)
    expected = (
        f"{root / 'dataset.json'}: class(es) 2 'tumour' occur in no label: their Dice cannot "
        f"be measured and their weight is 0"
    )
    report = inspect_decathlon(root)
    assert report.ok and [str(w) for w in report.warnings] == [expected]
    assert main(["data", "inspect", str(root)]) == 0
    out = capsys.readouterr().out
    assert "1 warning(s):" in out and expected in out and "no problems found" in out
    with caplog.at_level(logging.WARNING, logger="losslab.data.loading"):
        _load(root)
    assert [r.getMessage() for r in caplog.records] == [expected]


def test_labels_must_name_a_class_to_segment(make_folder):
    root = make_folder([tiny_case(i) for i in range(3)], labels={"0": "background"})
    problem = "'labels' must name background (0) and at least one class (1)"
    assert DatasetProblem(root / "dataset.json", problem) in inspect_decathlon(root).problems
    with pytest.raises(DatasetError, match=r"'labels' must name background") as info:
        _load(root)
    assert info.value.path == root / "dataset.json"


# --- a file where the folder should be ------------------------------------------------------


@pytest.mark.parametrize("which", ["dataset.json", "other file"])
def test_a_file_given_as_the_dataset_folder_is_called_a_file(make_folder, capsys, which):
    root = make_folder([tiny_case(i) for i in range(3)])
    if which == "dataset.json":
        given = root / "dataset.json"
        problem = f"is a file, not a folder: give the folder that holds it ({root})"
    else:
        given = root / "imagesTr" / "c0.nii.gz"
        problem = "is a file, not a folder: give the dataset folder (the one holding dataset.json)"
    assert inspect_decathlon(given).problems == [DatasetProblem(given, problem)]
    assert main(["data", "inspect", str(given)]) == 1
    assert f"{given}: {problem}" in capsys.readouterr().out
    for call in (_load, check_dataset_folder):
        with pytest.raises(DatasetError) as info:
            call(given)
        assert str(info.value) == f"{given}: {problem}"


def test_a_missing_folder_still_says_it_does_not_exist(tmp_path):
    with pytest.raises(DatasetError, match="dataset folder does not exist"):
        check_dataset_folder(tmp_path / "nowhere")


# --- truncated plain .nii files --------------------------------------------------------------


def _plain_nii_folder(make_folder) -> tuple[Path, Path]:
    root = make_folder([tiny_case(i) for i in range(3)])
    image = write_nifti(root / "imagesTr" / "c0.nii", tiny_case(0)[0])
    training = json.loads((root / "dataset.json").read_text())["training"]
    training[0]["image"] = "./imagesTr/c0.nii"
    _edit_manifest(root, training=training)
    return root, image


@pytest.mark.parametrize(
    ("keep", "problem"),
    [
        (100, "the file is truncated or corrupt: 100 bytes, less than a NIfTI header"),
        (600, "the file is truncated or corrupt: its voxel data cannot be read (OSError: "),
    ],
)
def test_a_truncated_plain_nii_names_the_file(make_folder, keep, problem):
    root, image = _plain_nii_folder(make_folder)
    image.write_bytes(image.read_bytes()[:keep])
    (found,) = [p for p in inspect_decathlon(root).problems if p.path == image]
    assert found.problem.startswith(problem) and "\n" not in found.problem
    with pytest.raises(DatasetError) as info:
        _load(root)
    assert info.value.path == image and info.value.problem.startswith(problem)


# --- check_dataset_folder: cheap, before any long work --------------------------------------


def test_check_dataset_folder_opens_no_volume(make_folder, monkeypatch):
    root = make_folder([tiny_case(i) for i in range(3)])
    for image in (root / "imagesTr").iterdir():
        image.write_text("not read by the check")

    def no_volume(path):
        raise AssertionError(f"opened {path}")

    monkeypatch.setattr(volumes, "load_nifti", no_volume)
    monkeypatch.setattr(volumes.nib, "load", no_volume)
    manifest = check_dataset_folder(root)
    assert manifest.root == root and len(manifest.cases) == 3
    assert manifest.class_names == ("background", "organ")


def test_check_dataset_folder_names_what_is_wrong(make_folder):
    root = make_folder([tiny_case(i) for i in range(3)])
    (root / "labelsTr" / "c2.nii.gz").unlink()
    with pytest.raises(DatasetError, match="file is missing") as info:
        check_dataset_folder(root)
    assert info.value.path == root / "labelsTr" / "c2.nii.gz"
    check_dataset_folder(root, cases=2, split_fractions=(0.5, 0.5, 0.0))  # c2 not selected
    with pytest.raises(DatasetError, match=r"2 case\(s\) cannot give") as info:
        check_dataset_folder(root, cases=2)
    assert info.value.path == root / "dataset.json"
    (root / "dataset.json").write_text("{oops")
    with pytest.raises(DatasetError, match="not valid JSON") as info:
        check_dataset_folder(root)
    assert info.value.path == root / "dataset.json"
    (root / "dataset.json").unlink()
    with pytest.raises(DatasetError, match="file is missing") as info:
        check_dataset_folder(root)
    assert info.value.path == root / "dataset.json"
