"""What a study asks of its network and its data, checked before anything is created.

A study file can be valid key by key and still be nonsense: a network that does not exist, a
``worst_k`` objective with ``k`` above the number of foreground classes, a patch larger than the
data, counts beyond any sane run. Each would surface only once the MLflow and Optuna stores
exist, often as every trial failing. :func:`check_study` runs when the file is loaded, on what
is known without loading the data (the phantom's classes and shape from its config; a Decathlon
folder through a cheap look at ``dataset.json``); :func:`check_loaded_data` runs on the loaded
data (a Decathlon folder's case shapes), before the study creates its stores. Errors are
:class:`ConfigError` naming the file and the key path (``study.yaml: objective.k``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from losslab.config import ConfigError, check_data_limits, check_train_limits
from losslab.data import (
    PHANTOM_CLASSES,
    DataConfig,
    DatasetError,
    SegmentationDataset,
    check_dataset_folder,
)
from losslab.data.proxy import PROXY_CLASSES
from losslab.models import ModelSpec, list_sizes
from losslab.search.registry import get_backend
from losslab.search.space import SpaceError
from losslab.tracking.tracker import check_tracking_uri

if TYPE_CHECKING:
    from losslab.search.study_config import StudyConfig

__all__ = ["DataFacts", "check_loaded_data", "check_study"]


@dataclass(frozen=True)
class DataFacts:
    """What is known of a study's data: class names (background first) and case shapes
    ``(D, H, W)``; ``None`` where not known before loading."""

    what: str
    class_names: tuple[str, ...] | None = None
    shapes: tuple[tuple[int, ...], ...] | None = None

    @classmethod
    def of_config(cls, data: DataConfig, where: str) -> DataFacts:
        """Before loading. Raises ``ConfigError`` at ``data.data_dir`` for a Decathlon folder
        that cannot be loaded (missing, no valid ``dataset.json``, a listed file missing)."""
        if data.source in ("phantom", "proxy"):
            exact = data.spacing is None and not data.crop_foreground  # else resampled/cropped
            shape = tuple(int(s) for s in data.shape)
            what, classes = {
                "phantom": ("the phantom", PHANTOM_CLASSES),
                "proxy": ("the proxy task", PROXY_CLASSES),
            }[data.source]
            return cls(what, tuple(classes), (shape,) if exact else None)
        try:
            manifest = _check_folder(data)
        except DatasetError as exc:
            raise ConfigError(f"{where}data.data_dir", str(exc)) from None
        layout = {"decathlon": "Decathlon", "nnunet": "nnU-Net"}.get(data.source, data.source)
        return cls(f"the {layout} folder {data.data_dir}", tuple(manifest.class_names))

    @classmethod
    def of_dataset(cls, dataset: SegmentationDataset) -> DataFacts:
        shapes = tuple(tuple(int(s) for s in label.shape) for label in dataset.labels)
        return cls(f"the data '{dataset.name}'", tuple(dataset.class_names), shapes)


def _check_folder(data: DataConfig) -> Any:
    """The cheap check of a dataset folder (reads ``dataset.json`` and file names, opens no
    volume); its manifest."""
    return check_dataset_folder(
        data.data_dir,
        cases=data.cases,
        split_fractions=data.split_fractions,
        labels=data.labels,
        source=data.source,
    )


def _patches(config: StudyConfig) -> list[tuple[str, tuple[int, ...]]]:
    """Every patch size an evaluation may use, with the key that sets it."""
    rungs = config.ladder.rungs
    found = [
        (
            "fidelity.patch_size" if len(rungs) == 1 else f"fidelity.rungs[{i}].patch_size",
            tuple(rung.fidelity.patch_size),
        )
        for i, rung in enumerate(rungs)
        if rung.fidelity.patch_size is not None
    ]
    if len(found) < len(rungs):
        found.append(("train.patch_size", tuple(config.train.patch_size)))
    searched = config.space.train.get("patch_size")
    if searched is not None:
        found += [("space.train.patch_size", tuple(v)) for v in searched.values()]
    return found


def _check_model(config: StudyConfig, num_classes: int, where: str) -> None:
    train = config.train
    models = [("train.model", train.model)]
    if "model" in config.space.train:
        models += [("space.train.model", m) for m in config.space.train["model"].values()]
    for key, model in models:
        try:
            sizes = list_sizes(model)
        except ValueError as exc:
            raise ConfigError(where + key, str(exc)) from None
        if train.model_size not in sizes:
            raise ConfigError(
                where + "train.model_size",
                f"{train.model_size!r} is not a size of {model!r}; sizes: {', '.join(sizes)}",
            )
        for patch_key, patch in _patches(config):
            try:
                ModelSpec.create(
                    model,
                    num_classes=num_classes,
                    patch_size=patch,
                    size=train.model_size,
                    **train.model_overrides,
                )
            except (TypeError, ValueError) as exc:
                text = str(exc)  # "patch_size (20, 20, 20) is not valid for 'unetr'..."
                bad = patch_key if text.startswith("patch_size") else "train.model_overrides"
                raise ConfigError(where + bad, text) from None


def _check_data(config: StudyConfig, facts: DataFacts, where: str) -> None:
    objective = config.objective
    worst_k = objective.kind == "worst_k" or "worst_k" in objective.weights
    if worst_k and facts.class_names is not None:
        foreground = len(facts.class_names) - 1
        if objective.k > foreground:
            raise ConfigError(
                where + "objective.k",
                f"k={objective.k} is more than the {foreground} foreground classes of {facts.what}",
            )
    if facts.shapes:
        largest = [max(shape[axis] for shape in facts.shapes) for axis in range(3)]
        for key, patch in _patches(config):
            if any(p > n for p, n in zip(patch, largest)):
                raise ConfigError(
                    where + key,
                    f"the patch {list(patch)} is larger than {facts.what} "
                    f"({'x'.join(map(str, largest))} voxels, the largest case per axis)",
                )


def _check_backend(config: StudyConfig, where: str) -> None:
    """The backend exists, accepts its settings section and can search the space."""
    try:
        backend = get_backend(config.backend)
    except ValueError as exc:
        raise ConfigError(where + "backend", str(exc)) from None
    try:
        backend.check_space(config.space)
    except SpaceError as exc:
        raise ConfigError(where + exc.key, exc.problem) from None
    epochs = config.fidelity.apply(config.train).epochs
    try:
        settings = backend.check_settings(config.settings, epochs=epochs)
        backend.check_fit(config.space, settings)
        backend.check_run(settings, config.fidelity.apply(config.train))
    except ValueError as exc:
        key, _, problem = str(exc).partition(": ")
        raise ConfigError(where + key, problem) from None


def _where(config: StudyConfig) -> str:
    return f"{config.path}: " if config.path else ""


def check_study(config: StudyConfig) -> DataFacts:
    """Every check that needs no loaded data and creates nothing; returns what is known of the
    data. Raises ``ConfigError`` (see the module docstring)."""
    where = _where(config)
    check_train_limits(config.train, where + "train")
    check_data_limits(config.data, where + "data")
    _check_backend(config, where)
    if config.tracking_uri is not None:
        try:
            check_tracking_uri(config.tracking_uri)
        except ValueError as exc:
            raise ConfigError(where + "tracking_uri", str(exc)) from None
    facts = DataFacts.of_config(config.data, where)
    classes: Sequence[str] = facts.class_names or ("background", "foreground")
    _check_model(config, len(classes), where)
    _check_data(config, facts, where)
    return facts


def check_loaded_data(config: StudyConfig, dataset: SegmentationDataset) -> None:
    """The checks that need the loaded data (a Decathlon folder's shapes and classes)."""
    _check_data(config, DataFacts.of_dataset(dataset), _where(config))
