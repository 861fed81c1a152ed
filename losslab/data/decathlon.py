"""Medical Segmentation Decathlon folders: ``dataset.json`` and the files it lists.

A folder holds ``dataset.json`` (keys ``labels``, ``modality``, ``training``; ``name``
optional) and the NIfTI files its ``training`` list names, relative to the folder. The volumes
are read by ``losslab.data.volumes``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from losslab.data.errors import DatasetError, DatasetProblem
from losslab.data.labels import LabelMap, parse_labels
from losslab.data.splits import DEFAULT_SPLIT_FRACTIONS, split_problem

REQUIRED_KEYS = ("labels", "modality", "training")
NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass(frozen=True)
class DecathlonCase:
    """One training pair of a Decathlon folder."""

    case_id: str
    image: Path
    label: Path


@dataclass(frozen=True)
class DecathlonManifest:
    """The parsed ``dataset.json``.

    Attributes:
        root: the dataset folder.
        name: dataset name (``name`` key, else the folder name).
        modality: channel index -> modality name (e.g. ``{0: "CT"}``).
        class_names: class names, index = class: the ``dataset.json`` labels (index = label
            value), or the classes of ``label_map``.
        cases: training pairs in ``dataset.json`` order.
        label_map: the ``labels`` option of ``DataConfig`` (label values -> classes), if any.
    """

    root: Path
    name: str
    modality: dict[int, str]
    class_names: tuple[str, ...]
    cases: tuple[DecathlonCase, ...]
    label_map: LabelMap | None = None

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
        return self.modality.get(0, "").strip().upper() == "CT"


def _case_id(path: Path) -> str:
    name = path.name
    for suffix in NIFTI_SUFFIXES[::-1]:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _parse_labels(
    raw: object, path: Path, problems: list[DatasetProblem], label_map: LabelMap | None
) -> tuple[str, ...]:
    if not isinstance(raw, dict) or not raw:
        problems.append(DatasetProblem(path, "'labels' must be a non-empty object value -> name"))
        return ()
    try:
        labels = {int(k): str(v) for k, v in raw.items()}
    except (TypeError, ValueError):
        problems.append(DatasetProblem(path, f"'labels' keys must be integers, got {list(raw)}"))
        return ()
    if label_map is not None:
        return label_map.class_names(labels)
    if sorted(labels) != list(range(len(labels))):
        problem = (
            f"'labels' keys must be 0..{len(labels) - 1}, got {sorted(labels)}; map other label "
            f"values to classes with the data option 'labels' (e.g. labels: {{0: background, "
            f"{max(labels)}: {labels[max(labels)]}}})"
        )
        problems.append(DatasetProblem(path, problem))
        return ()
    if len(labels) < 2:
        problems.append(
            DatasetProblem(path, "'labels' must name background (0) and at least one class (1)")
        )
        return ()
    return tuple(labels[i] for i in range(len(labels)))


def _parse_training(
    raw: object, root: Path, path: Path, problems: list[DatasetProblem]
) -> tuple[DecathlonCase, ...]:
    if not isinstance(raw, list) or not raw:
        problems.append(DatasetProblem(path, "'training' list is empty or not a list"))
        return ()
    cases = []
    for i, entry in enumerate(raw):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("image"), str)
            and isinstance(entry.get("label"), str)
        ):
            problems.append(
                DatasetProblem(path, f"'training'[{i}] must have string 'image' and 'label' keys")
            )
            continue
        image, label = root / entry["image"], root / entry["label"]
        cases.append(DecathlonCase(_case_id(image), image, label))
    return tuple(cases)


def _not_a_folder(root: Path) -> str:
    if not root.exists():
        return "dataset folder does not exist"
    if root.name == "dataset.json":
        return f"is a file, not a folder: give the folder that holds it ({root.parent})"
    if root.is_file():
        return "is a file, not a folder: give the dataset folder (the one holding dataset.json)"
    return "is not a folder: give the dataset folder (the one holding dataset.json)"


def parse_manifest(
    data_dir: str | Path, labels: LabelMap | None = None
) -> tuple[DecathlonManifest | None, list[DatasetProblem]]:
    """Read ``dataset.json`` and collect every problem it has.

    With ``labels`` (the checked ``labels`` option), the classes are those of the mapping and the
    ``dataset.json`` label values need not be contiguous.

    Returns:
        ``(manifest, problems)``; the manifest holds what could be parsed (empty class names or
        cases where those parts are at fault) and is None when the file itself is unusable.
    """
    root = Path(data_dir)
    path = root / "dataset.json"
    if not root.is_dir():
        return None, [DatasetProblem(root, _not_a_folder(root))]
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
    problems: list[DatasetProblem] = []
    missing = [key for key in REQUIRED_KEYS if key not in raw]
    if missing:
        problems.append(DatasetProblem(path, f"missing required key(s) {missing}"))
    class_names = _parse_labels(raw["labels"], path, problems, labels) if "labels" in raw else ()
    modality: dict[int, str] = {}
    if "modality" in raw:
        mod = raw["modality"]
        if isinstance(mod, dict) and mod and all(str(k).isdigit() for k in mod):
            modality = {int(k): str(v) for k, v in mod.items()}
            if len(modality) > 1:
                msg = f"{len(modality)} modalities {list(modality.values())}; only 1 is supported"
                problems.append(DatasetProblem(path, msg))
        else:
            problems.append(DatasetProblem(path, "'modality' must be an object like {'0': 'CT'}"))
    cases = _parse_training(raw["training"], root, path, problems) if "training" in raw else ()
    name = str(raw.get("name") or root.resolve().name)
    return DecathlonManifest(root, name, modality, class_names, cases, labels), problems


def read_manifest(data_dir: str | Path, labels: LabelMap | None = None) -> DecathlonManifest:
    """Read ``dataset.json``; raise ``DatasetError`` listing its problems if it has any."""
    manifest, problems = parse_manifest(data_dir, labels)
    if manifest is None or problems:
        raise DatasetError(problems[0].path, "; ".join(p.problem for p in problems))
    return manifest


def missing_file(cases: Sequence[DecathlonCase]) -> DatasetError | None:
    """The error of the first image or label of ``cases`` that is not a file, else None."""
    for case in cases:
        for path in (case.image, case.label):
            if not path.is_file():
                return DatasetError(path, "file is missing")
    return None


def check_dataset_folder(
    data_dir: str | Path,
    *,
    cases: int | None = None,
    split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
    labels: LabelMap | Mapping[int, str | int] | str | None = None,
) -> DecathlonManifest:
    """Check cheaply that a Decathlon folder can be loaded, before any long work starts.

    Reads ``dataset.json`` only and looks the files it lists up on disk: no volume is opened,
    so voxel problems (non-finite intensities, bad label values...) are still found by
    ``load_dataset`` or ``inspect_decathlon``. Checks that the folder exists and is a folder,
    that ``dataset.json`` is readable and valid, that every listed image and label exists and
    that the cases can be split by ``split_fractions``.

    Args:
        data_dir: the dataset folder.
        cases: use only the first ``cases`` of the ``training`` list (as ``DataConfig.cases``).
        split_fractions: train / val / test fractions (as ``DataConfig.split_fractions``).
        labels: label values -> classes (``DataConfig.labels`` or ``label_map``); the
            manifest's class names are then those of the mapping.

    Returns:
        The parsed manifest.

    Raises:
        DatasetError: naming the folder or file at fault and what is wrong.
    """
    if labels is not None and not isinstance(labels, LabelMap):
        labels = LabelMap.of(parse_labels(labels) or {})
    manifest = read_manifest(data_dir, labels)
    selected = manifest.cases[:cases] if cases else manifest.cases
    error = missing_file(selected)
    if error is not None:
        raise error
    problem = split_problem(len(selected), split_fractions)
    if problem is not None:
        raise DatasetError(manifest.path, problem)
    return manifest
