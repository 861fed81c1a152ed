"""``Fidelity``: how much training one evaluation gets.

A study evaluates every candidate at one fidelity (a multi-fidelity backend may use several): the
number of epochs and of steps per epoch, the patch size, the validation cadence and how many of
the training cases are used. It overrides the study's :class:`TrainConfig`; fields left ``None``
keep the train config's value.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from losslab.limits import CEILINGS
from losslab.training.config import TrainConfig
from losslab.typed import from_mapping

if TYPE_CHECKING:
    from losslab.data import SegmentationDataset

__all__ = ["Fidelity"]


@dataclass(frozen=True)
class Fidelity:
    """Training budget of one evaluation.

    Attributes:
        epochs, steps_per_epoch, val_every: override the train config's (``None``: keep).
        patch_size: training patch and sliding-window size (``None``: keep).
        train_cases: train on the first ``n`` cases of the training split only (``None``: all);
            validation and test splits are unchanged, so scores stay comparable.
    """

    epochs: int | None = None
    steps_per_epoch: int | None = None
    val_every: int | None = None
    patch_size: tuple[int, int, int] | None = None
    train_cases: int | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "steps_per_epoch", "val_every", "train_cases"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 1):
                raise ValueError(f"Fidelity.{name}={value!r} must be a positive integer")
            most = CEILINGS[f"fidelity.{name}" if name == "train_cases" else f"train.{name}"].most
            if value is not None and value > most:
                raise ValueError(
                    f"Fidelity.{name}={value!r} is more than {most:,}, the most allowed"
                )
        if self.patch_size is not None:
            patch = tuple(self.patch_size)
            if len(patch) != 3 or not all(type(s) is int and s >= 1 for s in patch):
                raise ValueError(f"Fidelity.patch_size={self.patch_size!r} must be 3 positive ints")
            if max(patch) > CEILINGS["train.patch_size"].most:
                raise ValueError(
                    f"Fidelity.patch_size={list(patch)} is more than "
                    f"{CEILINGS['train.patch_size'].most:g} "
                    "voxels a side, the most allowed"
                )
            object.__setattr__(self, "patch_size", patch)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fidelity:
        """Build from a YAML mapping; an unknown key is an error that names it."""
        return from_mapping(cls, data, "fidelity")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if self.patch_size is not None:
            data["patch_size"] = list(self.patch_size)
        return data

    @property
    def key(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def apply(self, config: TrainConfig) -> TrainConfig:
        """The train config at this fidelity."""
        changes = {
            name: getattr(self, name)
            for name in ("epochs", "steps_per_epoch", "val_every", "patch_size")
            if getattr(self, name) is not None
        }
        return dataclasses.replace(config, **changes)

    def apply_data(self, dataset: SegmentationDataset) -> SegmentationDataset:
        """The dataset at this fidelity: the training split cut to ``train_cases``."""
        from losslab.data import SegmentationDataset
        from losslab.data.cache import sha256_json

        train = dataset.splits.get("train", [])
        if self.train_cases is None or self.train_cases >= len(train):
            return dataset
        splits = {**dataset.splits, "train": list(train[: self.train_cases])}
        return SegmentationDataset(
            name=dataset.name,
            class_names=dataset.class_names,
            images=dataset.images,
            labels=dataset.labels,
            splits=splits,
            fingerprint=sha256_json({"parent": dataset.fingerprint, "train": splits["train"]}),
            spacing=dataset.spacing,
            case_ids=dataset.case_ids,
            spacings=dataset.spacings,
        )

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in self.to_dict().items() if v is not None]
        return ", ".join(parts) or "the train config's"
