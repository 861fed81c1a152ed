"""The case list of a dataset folder, whatever its layout.

Both folder layouts losslab reads, the Medical Segmentation Decathlon's (``decathlon``) and
nnU-Net v2's raw datasets (``nnunet``), are parsed into one ``DatasetManifest``: the classes,
the channels and a list of ``DatasetCase`` (case id, one image file per input channel, one
label file). Reading, checking, preprocessing and caching work on that list only, so both
layouts are loaded and inspected by the same code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from losslab.data.errors import DatasetError, DatasetProblem
from losslab.data.labels import LabelMap

NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass(frozen=True)
class DatasetCase:
    """One training case of a dataset folder.

    Attributes:
        case_id: name of the case.
        images: the image file of each input channel, in channel order (one for a Decathlon
            folder).
        label: the label file.
    """

    case_id: str
    images: tuple[Path, ...]
    label: Path

    @property
    def image(self) -> Path:
        """The first channel's image file: the voxel grid every other file must lie on."""
        return self.images[0]


@dataclass(frozen=True)
class DatasetManifest:
    """The parsed ``dataset.json`` of a folder and its case list.

    Attributes:
        root: the dataset folder.
        name: dataset name (``name`` key, else the folder name).
        modality: channel index -> modality name (e.g. ``{0: "CT"}``; ``channel_names`` of an
            nnU-Net dataset).
        class_names: class names, index = class: the ``dataset.json`` labels (index = label
            value), or the classes of ``label_map``.
        cases: training cases in ``dataset.json`` order (Decathlon) or sorted by case id
            (nnU-Net).
        label_map: the ``labels`` option of ``DataConfig`` (label values -> classes), if any.
        layout: ``"decathlon"`` or ``"nnunet"``.
    """

    root: Path
    name: str
    modality: dict[int, str]
    class_names: tuple[str, ...]
    cases: tuple[DatasetCase, ...]
    label_map: LabelMap | None = None
    layout: str = "decathlon"

    @property
    def classes(self) -> int | LabelMap | None:
        """What ``volumes.read_label`` checks label values against (None: no known classes)."""
        return self.label_map or (len(self.class_names) or None)

    @property
    def path(self) -> Path:
        """Path of ``dataset.json``."""
        return self.root / "dataset.json"

    @property
    def is_ct(self) -> bool:
        """Whether the first channel is CT (Hounsfield units)."""
        return self.channel_is_ct[0] if self.channel_is_ct else False

    @property
    def channel_is_ct(self) -> tuple[bool, ...]:
        """Whether each channel is CT, in channel order (its normalisation depends on it)."""
        return tuple(self.modality[k].strip().upper() == "CT" for k in sorted(self.modality)) or (
            False,
        )


def not_a_folder(root: Path) -> str:
    """Why ``root``, which is not a folder, cannot be a dataset folder."""
    if not root.exists():
        return "dataset folder does not exist"
    if root.name == "dataset.json":
        return f"is a file, not a folder: give the folder that holds it ({root.parent})"
    if root.is_file():
        return "is a file, not a folder: give the dataset folder (the one holding dataset.json)"
    return "is not a folder: give the dataset folder (the one holding dataset.json)"


def read_json_manifest(root: Path) -> tuple[dict[str, Any] | None, list[DatasetProblem]]:
    """The JSON object of ``root/dataset.json``, or None and the one problem that stops it."""
    path = root / "dataset.json"
    if not root.is_dir():
        return None, [DatasetProblem(root, not_a_folder(root))]
    if not path.is_file():
        return None, [DatasetProblem(path, "file is missing")]
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, [DatasetProblem(path, f"not valid JSON ({exc})")]
    except OSError as exc:
        return None, [DatasetProblem(path, f"cannot be read ({exc.strerror or exc})")]
    if not isinstance(raw, dict):
        return None, [DatasetProblem(path, "must hold a JSON object")]
    return raw, []


def class_names_of(
    labels: Mapping[int, str],
    path: Path,
    problems: list[DatasetProblem],
    label_map: LabelMap | None,
    noun: str = "keys",
) -> tuple[str, ...]:
    """The class names of ``labels`` (label value -> name); problems go to the list.

    With ``label_map`` the classes are the mapping's; otherwise the values must be
    ``0..C-1`` with ``C >= 2`` (background and at least one class). ``noun`` says where the
    values are in the file (``keys`` of a Decathlon ``labels``, ``values`` of an nnU-Net one).
    """
    if label_map is not None:
        return label_map.class_names(dict(labels))
    if sorted(labels) != list(range(len(labels))):
        highest = max(labels)
        problem = (
            f"'labels' {noun} must be 0..{len(labels) - 1}, got {sorted(labels)}; map other "
            f"label values to classes with the data option 'labels' (e.g. labels: "
            f"{{0: background, {highest}: {labels[highest]}}})"
        )
        problems.append(DatasetProblem(path, problem))
        return ()
    if len(labels) < 2:
        problems.append(
            DatasetProblem(path, "'labels' must name background (0) and at least one class (1)")
        )
        return ()
    return tuple(labels[i] for i in range(len(labels)))


def strip_nifti_suffix(name: str) -> str:
    """A file name without its ``.nii`` / ``.nii.gz`` suffix (else without its last suffix)."""
    for suffix in NIFTI_SUFFIXES[::-1]:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def missing_file(cases: Sequence[DatasetCase]) -> DatasetError | None:
    """The error of the first image or label of ``cases`` that is not a file, else None."""
    for case in cases:
        for path in (*case.images, case.label):
            if not path.is_file():
                return DatasetError(path, "file is missing")
    return None


def problems_error(problems: Sequence[DatasetProblem]) -> DatasetError:
    """One error for the problems of a folder: at the first problem's file, each further
    problem of another file named with its path."""
    first = problems[0].path
    return DatasetError(
        first, "; ".join(p.problem if p.path == first else str(p) for p in problems)
    )
