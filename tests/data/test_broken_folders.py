"""Broken Decathlon folders: ``inspect`` lists the problem and exits 1, the loader and
``losslab train`` refuse it, and every message names the file at fault."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from losslab.cli.main import main
from losslab.data import DatasetError, inspect_decathlon, load_dataset

from .helpers import tiny_case

Builder = Callable[..., Path]


def _cut(path: Path, keep: int) -> None:
    """Keep the first ``keep`` bytes of a file (all but ``-keep`` when negative)."""
    path.write_bytes(path.read_bytes()[:keep])


def _truncated_image(make_folder: Builder) -> Path:
    root = make_folder([tiny_case(i) for i in range(3)])
    image = root / "imagesTr" / "c0.nii.gz"
    _cut(image, len(image.read_bytes()) // 2)  # the header survives, the voxels do not
    return root


def _truncated_label(make_folder: Builder) -> Path:
    root = make_folder([tiny_case(i) for i in range(3)])
    _cut(root / "labelsTr" / "c0.nii.gz", -12)  # drop the end of the gzip stream
    return root


def _with_image(make_folder: Builder, change: Callable[[np.ndarray], None]) -> Path:
    cases = [tiny_case(i) for i in range(3)]
    change(cases[0][0])
    return make_folder(cases)


def _nan(image: np.ndarray) -> None:
    image[0, 0, :3] = np.nan


def _inf(image: np.ndarray) -> None:
    image[1, 1, 1], image[2, 2, 2] = np.inf, -np.inf


def _all_nan(image: np.ndarray) -> None:
    image[...] = np.nan


def _tiny(make_folder: Builder) -> Path:
    cases = [tiny_case(i) for i in range(3)]
    label = np.zeros((2, 2, 2), dtype=np.uint8)
    label[0, 0, 0] = 1
    cases[0] = (np.zeros((2, 2, 2), dtype=np.float32), label)
    return make_folder(cases)


def _with_label(make_folder: Builder, value: int, dtype: type) -> Path:
    cases = [tiny_case(i) for i in range(3)]
    label = cases[0][1].astype(dtype)
    label[0, 0, 0] = value
    cases[0] = (cases[0][0], label)
    return make_folder(cases)


def _background_only(make_folder: Builder) -> Path:
    return make_folder([(tiny_case(i)[0], np.zeros((10, 9, 8), np.uint8)) for i in range(3)])


IMAGE, LABEL, MANIFEST = "imagesTr/c0.nii.gz", "labelsTr/c0.nii.gz", "dataset.json"
BROKEN = {
    "truncated image": (
        _truncated_image,
        IMAGE,
        "the file is truncated or corrupt",
    ),
    "truncated label": (
        _truncated_label,
        LABEL,
        "the file is truncated or corrupt",
    ),
    "nan image": (
        lambda mf: _with_image(mf, _nan),
        IMAGE,
        "image has 3 NaN voxel(s) (of 720); intensities must be finite numbers",
    ),
    "inf image": (
        lambda mf: _with_image(mf, _inf),
        IMAGE,
        "image has 2 infinite voxel(s) (of 720)",
    ),
    "all-nan image": (
        lambda mf: _with_image(mf, _all_nan),
        IMAGE,
        "image is NaN in every voxel (720 voxels)",
    ),
    "2x2x2 case": (_tiny, IMAGE, "case is 2x2x2 voxels; every side needs at least 8 voxels"),
    "single case": (
        lambda mf: mf([tiny_case(0)]),
        MANIFEST,
        "1 case(s) cannot give the train/val/test splits of split_fractions "
        "(train 0.6, val 0.2, test 0.2)",
    ),
    "background-only labels": (
        _background_only,
        MANIFEST,
        "every label is background only (3 case(s): labelsTr/c0.nii.gz, labelsTr/c1.nii.gz, "
        "labelsTr/c2.nii.gz); there is nothing to segment",
    ),
    "label -1 (int8)": (
        lambda mf: _with_label(mf, -1, np.int8),
        LABEL,
        "label value(s) [-1] not in dataset.json labels (0..1)",
    ),
    "label -1 (int16)": (
        lambda mf: _with_label(mf, -1, np.int16),
        LABEL,
        "label value(s) [-1] not in dataset.json labels (0..1)",
    ),
    "label -1 (float32)": (
        lambda mf: _with_label(mf, -1, np.float32),
        LABEL,
        "label value(s) [-1] not in dataset.json labels (0..1)",
    ),
    "label 2 of 2 classes": (
        lambda mf: _with_label(mf, 2, np.uint8),
        LABEL,
        "label value(s) [2] not in dataset.json labels (0..1)",
    ),
}


@pytest.fixture(params=list(BROKEN), ids=list(BROKEN))
def broken(request, make_folder: Builder) -> tuple[Path, Path, str]:
    """``(folder, file at fault, problem text)`` of one kind of broken folder."""
    build, where, problem = BROKEN[request.param]
    root = build(make_folder)
    return root, root / where, problem


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich wraps at the terminal width; long paths must stay on one line."""
    monkeypatch.setenv("COLUMNS", "500")


def test_inspect_lists_the_problem_on_the_file(broken):
    root, path, problem = broken
    report = inspect_decathlon(root)
    found = [p.problem for p in report.problems if p.path == path]
    assert not report.ok
    assert len(found) == 1 and found[0].startswith(problem), report.problems


def test_inspect_command_exits_1_and_prints_the_file(broken, capsys):
    root, path, problem = broken
    assert main(["data", "inspect", str(root)]) == 1
    out = capsys.readouterr().out
    assert f"{path}: {problem}" in out


def test_loader_refuses_with_the_file(broken):
    root, path, problem = broken
    with pytest.raises(DatasetError) as info:
        load_dataset("decathlon", data_dir=root, use_cache=False)
    assert info.value.path == path
    assert str(info.value).startswith(f"{path}: {problem}")


def test_train_command_exits_2_and_names_the_file(broken, tmp_path, monkeypatch, capsys):
    root, path, problem = broken
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--data", "decathlon", "--data-dir", str(root), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"error: {path}: {problem}" in err


def test_a_case_made_tiny_by_resampling_is_refused(make_folder):
    root = make_folder([tiny_case(i) for i in range(3)])  # 10x9x8 voxels of 1 mm
    with pytest.raises(DatasetError) as info:
        load_dataset("decathlon", data_dir=root, spacing=(4, 4, 4), use_cache=False)
    assert info.value.path == root / "imagesTr" / "c0.nii.gz"
    assert info.value.problem == (
        "case is 2x2x2 voxels; every side needs at least 8 voxels after preprocessing "
        "(spacing=[4.0, 4.0, 4.0]); use a finer spacing or turn cropping off"
    )


def test_too_few_selected_cases_name_the_setting(phantom_folder):
    with pytest.raises(DatasetError, match=r"1 case\(s\) cannot give .* \(cases=1\)$") as info:
        load_dataset("decathlon", data_dir=phantom_folder, cases=1, use_cache=False)
    assert info.value.path == phantom_folder / "dataset.json"
