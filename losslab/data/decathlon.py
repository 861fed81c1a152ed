"""Medical Segmentation Decathlon folders: ``dataset.json`` and the files it lists.

A folder holds ``dataset.json`` (keys ``labels``, ``modality``, ``training``; ``name``
optional) and the NIfTI files its ``training`` list names, relative to the folder. It is
parsed into the case list every layout shares (``losslab.data.manifest``); the volumes are
read by ``losslab.data.volumes``.
"""

from __future__ import annotations

from pathlib import Path

from losslab.data.errors import DatasetProblem
from losslab.data.labels import LabelMap
from losslab.data.manifest import (
    NIFTI_SUFFIXES,
    DatasetCase,
    DatasetManifest,
    class_names_of,
    missing_file,
    problems_error,
    read_json_manifest,
    strip_nifti_suffix,
)

__all__ = [
    "NIFTI_SUFFIXES",
    "DecathlonCase",
    "DecathlonManifest",
    "missing_file",
    "parse_manifest",
    "read_manifest",
]

REQUIRED_KEYS = ("labels", "modality", "training")

DecathlonCase = DatasetCase
"""A case of a Decathlon folder (one image file): the case type shared by every layout."""

DecathlonManifest = DatasetManifest
"""A parsed Decathlon ``dataset.json``: the manifest type shared by every layout."""


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
    return class_names_of(labels, path, problems, label_map)


def _parse_training(
    raw: object, root: Path, path: Path, problems: list[DatasetProblem]
) -> tuple[DatasetCase, ...]:
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
        cases.append(DatasetCase(strip_nifti_suffix(image.name), (image,), label))
    return tuple(cases)


def parse_manifest(
    data_dir: str | Path, labels: LabelMap | None = None
) -> tuple[DatasetManifest | None, list[DatasetProblem]]:
    """Read ``dataset.json`` and collect every problem it has.

    With ``labels`` (the checked ``labels`` option), the classes are those of the mapping and the
    ``dataset.json`` label values need not be contiguous.

    Returns:
        ``(manifest, problems)``; the manifest holds what could be parsed (empty class names or
        cases where those parts are at fault) and is None when the file itself is unusable.
    """
    root = Path(data_dir)
    path = root / "dataset.json"
    raw, problems = read_json_manifest(root)
    if raw is None:
        return None, problems
    missing = [key for key in REQUIRED_KEYS if key not in raw]
    if missing:
        hint = ""
        if "channel_names" in raw or "file_ending" in raw:
            hint = (
                "; it has the keys of an nnU-Net v2 raw dataset (channel_names, file_ending): "
                "read it with the nnunet source (--data nnunet, data: {source: nnunet})"
            )
        problems.append(DatasetProblem(path, f"missing required key(s) {missing}{hint}"))
    class_names = _parse_labels(raw["labels"], path, problems, labels) if "labels" in raw else ()
    modality: dict[int, str] = {}
    if "modality" in raw:
        mod = raw["modality"]
        if isinstance(mod, dict) and mod and all(str(k).isdigit() for k in mod):
            modality = {int(k): str(v) for k, v in mod.items()}
            if len(modality) > 1:
                msg = (
                    f"{len(modality)} modalities {list(modality.values())}; only 1 is supported "
                    f"in a Decathlon folder (an nnU-Net v2 raw folder holds one file per channel)"
                )
                problems.append(DatasetProblem(path, msg))
        else:
            problems.append(DatasetProblem(path, "'modality' must be an object like {'0': 'CT'}"))
    cases = _parse_training(raw["training"], root, path, problems) if "training" in raw else ()
    name = str(raw.get("name") or root.resolve().name)
    return DatasetManifest(root, name, modality, class_names, cases, labels), problems


def read_manifest(data_dir: str | Path, labels: LabelMap | None = None) -> DatasetManifest:
    """Read ``dataset.json``; raise ``DatasetError`` listing its problems if it has any."""
    manifest, problems = parse_manifest(data_dir, labels)
    if manifest is None or problems:
        raise problems_error(problems)
    return manifest
