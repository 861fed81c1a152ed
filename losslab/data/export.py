"""Write phantom cases as a Medical Segmentation Decathlon folder (``dataset.json`` + NIfTI).

The nnU-Net v2 raw layout of the same cases is written by ``losslab.data.nnunet``.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from losslab.data.phantom import (
    PHANTOM_CLASSES,
    PHANTOM_SPACING,
    PHANTOM_VERSION,
    make_phantom_case,
    phantom_case_seed,
)


def phantom_affine(shape: tuple[int, int, int]) -> np.ndarray:
    """RAS+ affine ``[4, 4]`` of a phantom volume: 1.5 mm isotropic, centred on the origin."""
    affine = np.diag([*PHANTOM_SPACING, 1.0])
    affine[:3, 3] = [-(n - 1) * s / 2 for n, s in zip(shape, PHANTOM_SPACING)]
    return affine


def save_volume(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    """Write ``array [D, H, W]`` as NIfTI with ``affine`` as both qform and sform, in mm."""
    nifti = nib.Nifti1Image(array, affine)
    nifti.header.set_xyzt_units("mm")
    nifti.header.set_qform(affine, code=1)
    nifti.header.set_sform(affine, code=1)
    nib.save(nifti, path)


def write_phantom_decathlon(
    out_dir: str | Path,
    cases: int,
    shape: tuple[int, int, int] = (96, 96, 96),
    seed: int = 0,
) -> Path:
    """Generate ``cases`` phantom cases and write them as a Decathlon folder.

    Case ``i`` is ``make_phantom_case(phantom_case_seed(seed, i), shape)``, the same arrays
    ``load_dataset("phantom", ...)`` builds in memory. Images are float32 Hounsfield units,
    labels uint8.

    Args:
        out_dir: folder to create (may exist; files of the same name are overwritten).
        cases: number of cases, at least 1.
        shape: ``(D, H, W)`` of each case.
        seed: dataset seed.

    Returns:
        The path of the written ``dataset.json``.
    """
    if cases < 1:
        raise ValueError(f"cases must be at least 1, got {cases}")
    out = Path(out_dir)
    (out / "imagesTr").mkdir(parents=True, exist_ok=True)
    (out / "labelsTr").mkdir(parents=True, exist_ok=True)
    affine = phantom_affine(shape)
    training = []
    for i in range(cases):
        image, label = make_phantom_case(phantom_case_seed(seed, i), shape)
        name = f"case_{i:03d}.nii.gz"
        save_volume(out / "imagesTr" / name, image, affine)
        save_volume(out / "labelsTr" / name, label, affine)
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    manifest = {
        "name": "losslab-phantom",
        "description": f"Synthetic abdominal CT phantom with the BTCV organ classes "
        f"(generator {PHANTOM_VERSION}, seed {seed}, shape {list(shape)})",
        "reference": "losslab",
        "licence": "CC-BY-4.0",
        "release": PHANTOM_VERSION,
        "tensorImageSize": "3D",
        "modality": {"0": "CT"},
        "labels": {str(i): name for i, name in enumerate(PHANTOM_CLASSES)},
        "numTraining": cases,
        "numTest": 0,
        "training": training,
        "test": [],
    }
    path = out / "dataset.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path
