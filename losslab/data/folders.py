"""Dataset folders of every layout: parse one into its case list and check it cheaply.

``source`` names the layout, as ``DataConfig.source`` does: ``"decathlon"`` (Medical
Segmentation Decathlon, ``losslab.data.decathlon``) or ``"nnunet"`` (nnU-Net v2 raw dataset,
``losslab.data.nnunet``). Both give a ``DatasetManifest``, which the loader, ``inspect_folder``
and the cache use whatever the layout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from losslab.data import decathlon, nnunet
from losslab.data.errors import DatasetError, DatasetProblem
from losslab.data.labels import LabelMap, parse_labels
from losslab.data.manifest import DatasetManifest, missing_file, problems_error
from losslab.data.splits import DEFAULT_SPLIT_FRACTIONS, split_problem

Parser = Callable[
    [str | Path, LabelMap | None], tuple[DatasetManifest | None, list[DatasetProblem]]
]

LAYOUTS: dict[str, Parser] = {
    "decathlon": decathlon.parse_manifest,
    "nnunet": nnunet.parse_manifest,
}
"""Folder source -> the parser of its ``dataset.json`` and case list."""

LAYOUT_NAMES = {"decathlon": "Decathlon", "nnunet": "nnU-Net"}
"""Folder source -> its name in messages."""


def parse_folder(
    data_dir: str | Path, labels: LabelMap | None = None, *, source: str = "decathlon"
) -> tuple[DatasetManifest | None, list[DatasetProblem]]:
    """Parse a dataset folder of layout ``source``, collecting every problem of its
    ``dataset.json`` and file names (no volume is opened).

    Raises:
        ValueError: ``source`` is not a folder layout.
    """
    if source not in LAYOUTS:
        raise ValueError(f"source must be a folder layout, one of {tuple(LAYOUTS)}; got {source!r}")
    return LAYOUTS[source](data_dir, labels)


def read_folder(
    data_dir: str | Path, labels: LabelMap | None = None, *, source: str = "decathlon"
) -> DatasetManifest:
    """Parse a dataset folder; raise ``DatasetError`` naming the file of its first problem."""
    manifest, problems = parse_folder(data_dir, labels, source=source)
    if manifest is None or problems:
        raise problems_error(problems)
    return manifest


def check_dataset_folder(
    data_dir: str | Path,
    *,
    cases: int | None = None,
    split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
    labels: LabelMap | Mapping[int, str | int] | str | None = None,
    source: str = "decathlon",
) -> DatasetManifest:
    """Check cheaply that a dataset folder can be loaded, before any long work starts.

    Reads ``dataset.json`` (and, for an nnU-Net folder, the file names of ``imagesTr`` and
    ``labelsTr``) and looks the files of the cases up on disk: no volume is opened, so voxel
    problems (non-finite intensities, bad label values...) are still found by
    ``load_dataset`` or ``inspect_folder``. Checks that the folder exists and is a folder,
    that ``dataset.json`` is readable and valid, that every image and label of the selected
    cases exists and that the cases can be split by ``split_fractions``.

    Args:
        data_dir: the dataset folder.
        cases: use only the first ``cases`` cases (as ``DataConfig.cases``).
        split_fractions: train / val / test fractions (as ``DataConfig.split_fractions``).
        labels: label values -> classes (``DataConfig.labels`` or ``label_map``); the
            manifest's class names are then those of the mapping.
        source: the folder layout, ``"decathlon"`` or ``"nnunet"``.

    Returns:
        The parsed manifest.

    Raises:
        DatasetError: naming the folder or file at fault and what is wrong.
    """
    if labels is not None and not isinstance(labels, LabelMap):
        labels = LabelMap.of(parse_labels(labels) or {})
    manifest = read_folder(data_dir, labels, source=source)
    selected = manifest.cases[:cases] if cases else manifest.cases
    error = missing_file(selected)
    if error is not None:
        raise error
    problem = split_problem(len(selected), split_fractions)
    if problem is not None:
        raise DatasetError(manifest.path, problem)
    return manifest
