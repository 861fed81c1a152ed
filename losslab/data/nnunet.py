"""nnU-Net v2 raw dataset folders: ``dataset.json`` v2, ``imagesTr`` and ``labelsTr``.

A raw dataset folder ``DatasetXXX_Name`` (Isensee et al., Nature Methods 2021) holds
``dataset.json`` (keys ``channel_names``, ``labels`` name -> value, ``numTraining``,
``file_ending``), one image file per case and channel ``imagesTr/CASE_XXXX<file_ending>``
(``XXXX`` the 4-digit channel index) and one label per case ``labelsTr/CASE<file_ending>``;
or, instead of the file names, a ``dataset`` key listing each case's ``images`` and ``label``
relative to the folder. The folder is parsed into the case list every layout shares
(``losslab.data.manifest``): the channels of a case become its input channels.

losslab reads what it can train on: NIfTI files (``file_ending`` ``.nii.gz`` or ``.nii``) and
one class per label value. Region-based labels (a list of values per name, with
``regions_class_order``) and other file endings are refused with a problem naming the key;
nnU-Net's ``ignore`` label is refused unless the ``labels`` data option maps the values.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from losslab.data.errors import DatasetProblem
from losslab.data.export import phantom_affine, save_volume
from losslab.data.labels import LabelMap
from losslab.data.manifest import (
    NIFTI_SUFFIXES,
    DatasetCase,
    DatasetManifest,
    class_names_of,
    problems_error,
    read_json_manifest,
)
from losslab.data.phantom import (
    PHANTOM_CLASSES,
    PHANTOM_VERSION,
    make_phantom_case,
    phantom_case_seed,
)

REQUIRED_KEYS = ("channel_names", "labels", "numTraining", "file_ending")
IGNORE_LABEL = "ignore"
DEFAULT_PHANTOM_ID = 990
DEFAULT_PHANTOM_NAME = "LosslabPhantom"
_DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_CHANNEL_FILE = re.compile(r"(?P<case>.+)_(?P<channel>[0-9]{4})")


def _parse_channels(
    raw: object, key: str, path: Path, problems: list[DatasetProblem]
) -> dict[int, str]:
    if isinstance(raw, dict) and raw and all(str(k).isdigit() for k in raw):
        channels = {int(k): str(v) for k, v in raw.items()}
        if sorted(channels) == list(range(len(channels))):
            return channels
    problems.append(
        DatasetProblem(
            path,
            f"'{key}' must be an object channel index -> name with indices 0..K-1, like "
            f"{{'0': 'CT'}} or {{'0': 'T1', '1': 'T2'}}; got {raw!r}",
        )
    )
    return {}


def _parse_labels(
    raw: object, path: Path, problems: list[DatasetProblem], label_map: LabelMap | None
) -> tuple[str, ...]:
    if not isinstance(raw, dict) or not raw:
        problems.append(DatasetProblem(path, "'labels' must be a non-empty object name -> value"))
        return ()
    names: dict[int, str] = {}
    before = len(problems)
    for name, value in raw.items():
        where = f"'labels'[{name!r}]"
        if isinstance(value, list | tuple):
            problems.append(
                DatasetProblem(
                    path,
                    f"{where} is {value!r}: region-based labels (a list of label values per "
                    f"name) are not supported; losslab trains one class per label value",
                )
            )
        elif isinstance(value, bool) or not isinstance(value, int):
            problems.append(DatasetProblem(path, f"{where} must be an integer, got {value!r}"))
        elif name == IGNORE_LABEL and label_map is None:
            problems.append(
                DatasetProblem(
                    path,
                    f"{where}: nnU-Net's ignore label (voxels left out of the loss) is not "
                    f"supported; list the classes to train with the data option 'labels' "
                    f"(values not listed count as background)",
                )
            )
        elif value in names:
            problems.append(
                DatasetProblem(path, f"{where}: value {value} is also given to {names[value]!r}")
            )
        else:
            names[value] = str(name)
    if len(problems) > before:
        return ()
    return class_names_of(names, path, problems, label_map, noun="values")


def _parse_file_ending(raw: object, path: Path, problems: list[DatasetProblem]) -> str | None:
    if raw in NIFTI_SUFFIXES:
        return str(raw)
    problems.append(
        DatasetProblem(
            path,
            f"'file_ending' is {raw!r}: only NIfTI files are read ('.nii.gz' or '.nii'); "
            f"convert the images and labels to NIfTI",
        )
    )
    return None


def _parse_num_training(raw: object, path: Path, problems: list[DatasetProblem]) -> int | None:
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 1:
        return raw
    problems.append(DatasetProblem(path, f"'numTraining' must be a positive integer, got {raw!r}"))
    return None


def _is_nifti(name: str) -> bool:
    return name.endswith(NIFTI_SUFFIXES)


def _found_cases(
    root: Path, ending: str, channels: int, problems: list[DatasetProblem]
) -> tuple[DatasetCase, ...] | None:
    """The cases of ``imagesTr`` (sorted by id, as nnU-Net sorts them), None without
    ``imagesTr`` or ``labelsTr``; files named wrongly and labels without an image are
    problems. A missing channel or label file is left in the case, for the reader to report."""
    images, labels = root / "imagesTr", root / "labelsTr"
    absent = [folder for folder in (images, labels) if not folder.is_dir()]
    for folder in absent:
        problems.append(DatasetProblem(folder, "folder is missing"))
    if absent:
        return None
    found: set[str] = set()
    last = f"{channels - 1:04d}"
    for path in sorted(p for p in images.iterdir() if _is_nifti(p.name)):
        match = _CHANNEL_FILE.fullmatch(path.name[: -len(ending)])
        if not path.name.endswith(ending):
            problems.append(DatasetProblem(path, f"does not end in file_ending {ending!r}"))
        elif match is None:
            problems.append(
                DatasetProblem(
                    path, f"not named CASE_XXXX{ending} (XXXX: the 4-digit channel index)"
                )
            )
        elif int(match["channel"]) >= channels:
            problems.append(
                DatasetProblem(
                    path,
                    f"channel {match['channel']}, but 'channel_names' lists {channels} "
                    f"channel(s) (0000..{last})",
                )
            )
        else:
            found.add(match["case"])
    for path in sorted(p for p in labels.iterdir() if _is_nifti(p.name)):
        if not path.name.endswith(ending):
            problems.append(DatasetProblem(path, f"does not end in file_ending {ending!r}"))
        elif path.name[: -len(ending)] not in found:
            case = path.name[: -len(ending)]
            problems.append(
                DatasetProblem(path, f"label without image: imagesTr has no {case}_0000{ending}")
            )
    return tuple(
        DatasetCase(
            case,
            tuple(images / f"{case}_{k:04d}{ending}" for k in range(channels)),
            labels / f"{case}{ending}",
        )
        for case in sorted(found)
    )


def _resolve(root: Path, name: str) -> Path:
    """A path of the ``dataset`` key: variables expanded, relative to the folder (as nnU-Net)."""
    return root / os.path.expandvars(name)


def _listed_cases(
    raw: object, root: Path, path: Path, channels: int, problems: list[DatasetProblem]
) -> tuple[DatasetCase, ...]:
    """The cases of the ``dataset`` key: case id -> ``{"images": [...], "label": ...}``."""
    if not isinstance(raw, dict) or not raw:
        problems.append(DatasetProblem(path, "'dataset' must be an object case -> files"))
        return ()
    cases = []
    for case, entry in raw.items():
        where = f"'dataset'[{case!r}]"
        images = entry.get("images") if isinstance(entry, dict) else None
        label = entry.get("label") if isinstance(entry, dict) else None
        if not (
            isinstance(images, list)
            and all(isinstance(i, str) for i in images)
            and isinstance(label, str)
        ):
            problems.append(
                DatasetProblem(path, f"{where} must have a list 'images' and a string 'label'")
            )
        elif len(images) != channels:
            problems.append(
                DatasetProblem(
                    path, f"{where} lists {len(images)} image(s) for {channels} channel(s)"
                )
            )
        else:
            images_of = tuple(_resolve(root, i) for i in images)
            cases.append(DatasetCase(str(case), images_of, _resolve(root, label)))
    return tuple(cases)


def parse_manifest(
    data_dir: str | Path, labels: LabelMap | None = None
) -> tuple[DatasetManifest | None, list[DatasetProblem]]:
    """Read an nnU-Net v2 raw folder's ``dataset.json`` and case list, with every problem.

    Checks the keys (``channel_names``, or the older ``modality``; ``labels`` name -> value,
    values ``0..C-1`` unless ``labels`` maps them; ``numTraining``; ``file_ending``), the file
    names of ``imagesTr`` and ``labelsTr`` (channel indices within ``channel_names``, no label
    without an image) and that ``numTraining`` is the number of cases found. The volumes are
    not opened: a missing channel or label file is found by the reader
    (``volumes.read_case``, ``inspect_folder``).

    Returns:
        ``(manifest, problems)`` as ``decathlon.parse_manifest`` returns them.
    """
    root = Path(data_dir)
    path = root / "dataset.json"
    raw, problems = read_json_manifest(root)
    if raw is None:
        return None, problems
    key = "modality" if "channel_names" not in raw and "modality" in raw else "channel_names"
    missing = [k for k in REQUIRED_KEYS if k not in raw and not (k == "channel_names" and key != k)]
    if missing:
        hint = ""
        if "training" in raw:
            hint = (
                "; it has the 'training' list of a Decathlon folder: read it with the decathlon "
                "source (--data decathlon, data: {source: decathlon})"
            )
        problems.append(DatasetProblem(path, f"missing required key(s) {missing}{hint}"))
    if "regions_class_order" in raw:
        problems.append(
            DatasetProblem(
                path,
                "'regions_class_order': region-based training is not supported; losslab "
                "trains one class per label value",
            )
        )
    modality = _parse_channels(raw[key], key, path, problems) if key in raw else {}
    class_names = _parse_labels(raw["labels"], path, problems, labels) if "labels" in raw else ()
    ending = (
        _parse_file_ending(raw["file_ending"], path, problems) if "file_ending" in raw else None
    )
    expected = None
    if "numTraining" in raw:
        expected = _parse_num_training(raw["numTraining"], path, problems)
    cases: tuple[DatasetCase, ...] | None = None
    if "dataset" in raw and modality:
        cases = _listed_cases(raw["dataset"], root, path, len(modality), problems)
    elif ending is not None and modality:
        cases = _found_cases(root, ending, len(modality), problems)
    if expected is not None and cases is not None and len(cases) != expected:
        where = "'dataset' lists" if "dataset" in raw else "imagesTr holds"
        problems.append(
            DatasetProblem(path, f"'numTraining' is {expected}, but {where} {len(cases)} case(s)")
        )
    name = str(raw.get("name") or root.resolve().name)
    manifest = DatasetManifest(root, name, modality, class_names, cases or (), labels, "nnunet")
    return manifest, problems


def read_manifest(data_dir: str | Path, labels: LabelMap | None = None) -> DatasetManifest:
    """Read an nnU-Net raw folder; raise ``DatasetError`` listing its problems if it has any."""
    manifest, problems = parse_manifest(data_dir, labels)
    if manifest is None or problems:
        raise problems_error(problems)
    return manifest


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
