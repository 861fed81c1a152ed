from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from losslab.data import write_phantom_decathlon

from .helpers import PHANTOM_SHAPE, write_nifti


@pytest.fixture(scope="session")
def phantom_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shared Decathlon folder of 4 phantom cases; tests must not write into it."""
    out = tmp_path_factory.mktemp("phantom")
    write_phantom_decathlon(out, cases=4, shape=PHANTOM_SHAPE, seed=3)
    return out


@pytest.fixture
def phantom_copy(phantom_folder: Path, tmp_path: Path) -> Path:
    """A private copy of ``phantom_folder`` that a test may change."""
    return Path(shutil.copytree(phantom_folder, tmp_path / "dataset"))


def _label_array(label: np.ndarray) -> np.ndarray:
    wider = {np.dtype(np.float64): np.float32, np.dtype(np.int64): np.int16}
    return label.astype(wider.get(label.dtype, label.dtype))


@pytest.fixture
def make_folder(tmp_path: Path) -> Callable[..., Path]:
    """Build a Decathlon folder from ``[(image, label), ...]`` (files ``c<i>.nii.gz``).

    Images are written as float32. Labels keep their dtype (a signed or float label keeps its
    negative values: casting -1 to uint8 would write 255), except float64 and int64, which
    NIfTI tools handle badly and which are written as float32 and int16.
    """

    def build(cases: list[tuple[np.ndarray, np.ndarray]], labels: dict | None = None) -> Path:
        root = tmp_path / "folder"
        training = []
        for i, (image, label) in enumerate(cases):
            name = f"c{i}.nii.gz"
            write_nifti(root / "imagesTr" / name, image.astype(np.float32))
            write_nifti(root / "labelsTr" / name, _label_array(label))
            training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
        manifest = {
            "name": "tiny",
            "modality": {"0": "CT"},
            "labels": labels or {"0": "background", "1": "organ"},
            "numTraining": len(cases),
            "training": training,
        }
        (root / "dataset.json").write_text(json.dumps(manifest))
        return root

    return build
