"""nnU-Net v2 raw dataset folders: ``dataset.json`` v2, ``imagesTr`` and ``labelsTr``.

A raw dataset folder ``DatasetXXX_Name`` (Isensee et al., Nature Methods 2021) holds
``dataset.json`` (keys ``channel_names``, ``labels`` name -> value, ``numTraining``,
``file_ending``), one image file per case and channel ``imagesTr/CASE_XXXX<file_ending>``
(``XXXX`` the 4-digit channel index) and one label per case ``labelsTr/CASE<file_ending>``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from losslab.data.export import phantom_affine, save_volume
from losslab.data.phantom import (
    PHANTOM_CLASSES,
    PHANTOM_VERSION,
    make_phantom_case,
    phantom_case_seed,
)

DEFAULT_PHANTOM_ID = 990
DEFAULT_PHANTOM_NAME = "LosslabPhantom"
_DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """``DatasetXXX_Name``, the folder name nnU-Net v2 gives dataset ``dataset_id``.

    Raises:
        ValueError: ``dataset_id`` not in 1..999, or ``name`` not letters, digits, ``_``, ``-``.
    """
    if isinstance(dataset_id, bool) or not isinstance(dataset_id, int) or not 0 < dataset_id < 1000:
        raise ValueError(f"dataset_id must be an integer in 1..999, got {dataset_id!r}")
    if not isinstance(name, str) or not _DATASET_NAME.fullmatch(name):
        raise ValueError(
            f"dataset name must be letters, digits, '_' or '-' (no spaces), got {name!r}"
        )
    return f"Dataset{dataset_id:03d}_{name}"


def write_phantom_nnunet(
    out_dir: str | Path,
    *,
    cases: int,
    shape: tuple[int, int, int] = (96, 96, 96),
    seed: int = 0,
    dataset_id: int = DEFAULT_PHANTOM_ID,
    name: str = DEFAULT_PHANTOM_NAME,
) -> Path:
    """Generate ``cases`` phantom cases and write them as an nnU-Net v2 raw dataset.

    The cases are those ``write_phantom_decathlon`` writes for the same ``seed`` and ``shape``
    (same arrays, affine and case names ``case_000``...): one CT channel
    ``imagesTr/case_000_0000.nii.gz`` (float32 Hounsfield units) and
    ``labelsTr/case_000.nii.gz`` (uint8).

    Args:
        out_dir: the nnU-Net raw folder (``nnUNet_raw``); the dataset folder
            ``DatasetXXX_Name`` is created in it (files of the same name are overwritten).
        cases: number of cases, at least 1.
        shape: ``(D, H, W)`` of each case.
        seed: dataset seed.
        dataset_id: nnU-Net dataset id, 1..999.
        name: dataset name (letters, digits, ``_``, ``-``).

    Returns:
        The dataset folder, ``out_dir / "DatasetXXX_Name"``.
    """
    if cases < 1:
        raise ValueError(f"cases must be at least 1, got {cases}")
    folder = Path(out_dir) / dataset_folder_name(dataset_id, name)
    (folder / "imagesTr").mkdir(parents=True, exist_ok=True)
    (folder / "labelsTr").mkdir(parents=True, exist_ok=True)
    affine = phantom_affine(shape)
    for i in range(cases):
        image, label = make_phantom_case(phantom_case_seed(seed, i), shape)
        save_volume(folder / "imagesTr" / f"case_{i:03d}_0000.nii.gz", image, affine)
        save_volume(folder / "labelsTr" / f"case_{i:03d}.nii.gz", label, affine)
    manifest = {
        "name": name,
        "description": f"Synthetic abdominal CT phantom with the BTCV organ classes "
        f"(generator {PHANTOM_VERSION}, seed {seed}, shape {list(shape)})",
        "reference": "losslab",
        "licence": "CC-BY-4.0",
        "release": PHANTOM_VERSION,
        "channel_names": {"0": "CT"},
        "labels": {class_name: i for i, class_name in enumerate(PHANTOM_CLASSES)},
        "numTraining": cases,
        "file_ending": ".nii.gz",
    }
    (folder / "dataset.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return folder
