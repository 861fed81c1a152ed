from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from losslab.data import write_phantom_decathlon, write_phantom_nnunet

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


@pytest.fixture(scope="session")
def nnunet_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cases of ``phantom_folder`` as an nnU-Net v2 raw dataset; tests must not write in it."""
    return write_phantom_nnunet(
        tmp_path_factory.mktemp("nnunet"), cases=4, shape=PHANTOM_SHAPE, seed=3
    )


@pytest.fixture
def make_nnunet(tmp_path: Path) -> Callable[..., Path]:
    """Build an nnU-Net v2 raw dataset ``Dataset001_Tiny`` from ``[(channels, label), ...]``.

    ``channels`` is one image or a list of images (one per channel), written as float32
    ``c<i>_<XXXX>.nii.gz``; labels as uint8 ``c<i>.nii.gz``; ``channel_names`` names the
    channels ``CT``, ``T2``, ... and ``overrides`` replaces keys of ``dataset.json``.
    """

    def build(cases: list[tuple], **overrides: object) -> Path:
        root = tmp_path / "Dataset001_Tiny"
        channels = 1
        for i, (images, label) in enumerate(cases):
            images = images if isinstance(images, list) else [images]
            channels = len(images)
            for k, image in enumerate(images):
                write_nifti(root / "imagesTr" / f"c{i}_{k:04d}.nii.gz", image.astype(np.float32))
            write_nifti(root / "labelsTr" / f"c{i}.nii.gz", label.astype(np.uint8))
        manifest = {
            "channel_names": {
                str(k): name for k, name in enumerate(["CT", "T2", "ADC"][:channels])
            },
            "labels": {"background": 0, "organ": 1},
            "numTraining": len(cases),
            "file_ending": ".nii.gz",
            **overrides,
        }
        (root / "dataset.json").write_text(json.dumps(manifest))
        return root

    return build
