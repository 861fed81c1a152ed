"""The one dataset type that reaches the trainer, whatever the source."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from losslab.data import stats
from losslab.data.cache import sha256_json
from losslab.data.splits import SPLIT_NAMES


@dataclass
class SegmentationDataset:
    """Preprocessed cases with their classes, split and fingerprint.

    Attributes:
        name: dataset name.
        class_names: label names, index = label value; ``[0]`` is background.
        images: float32 ``[K, D, H, W]`` per case (channel first; ``K`` input channels, the
            same for every case).
        labels: int64 ``[D, H, W]`` per case.
        splits: ``"train"``, ``"val"``, ``"test"`` -> case indices.
        fingerprint: sha256 of the data and the settings (recorded with every evaluation).
        spacing: voxel size in mm (the target spacing, else the median native spacing).
        case_ids: one name per case (``case_000`` ... when not given).
        spacings: each case's voxel size in mm (cases kept at their native spacing differ);
            ``spacing`` for every case when not given. Surface distances (HD95) use these.
    """

    name: str
    class_names: tuple[str, ...]
    images: list[torch.Tensor]
    labels: list[torch.Tensor]
    splits: dict[str, list[int]]
    fingerprint: str
    spacing: tuple[float, float, float]
    case_ids: list[str] = field(default_factory=list)
    spacings: list[tuple[float, float, float]] = field(default_factory=list)
    _counts: torch.Tensor | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        channels = self.images[0].shape[0] if self.images else 1
        for i, (image, label) in enumerate(zip(self.images, self.labels)):
            if image.ndim != 4 or image.shape[0] != channels or image.shape[1:] != label.shape:
                raise ValueError(
                    f"case {i}: image {tuple(image.shape)} must be [{channels}, *label shape] "
                    f"(every case has the same channels), label {tuple(label.shape)}"
                )
        if not self.case_ids:
            self.case_ids = [f"case_{i:03d}" for i in range(len(self.images))]
        if not self.spacings:
            self.spacings = [tuple(self.spacing)] * len(self.images)
        if len(self.spacings) != len(self.images):
            raise ValueError(f"{len(self.spacings)} spacings for {len(self.images)} cases")
        self.spacings = [tuple(float(v) for v in s) for s in self.spacings]
        for split, indices in self.splits.items():
            bad = [j for j in indices if not 0 <= j < len(self.images)]
            if bad:
                raise ValueError(f"split {split!r} has case indices {bad} out of range")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        """C, background included."""
        return len(self.class_names)

    @property
    def num_channels(self) -> int:
        """K, the input channels of every case."""
        return int(self.images[0].shape[0]) if self.images else 1

    @property
    def device(self) -> torch.device:
        """Device of the tensors (CPU for an empty dataset)."""
        return self.images[0].device if self.images else torch.device("cpu")

    @property
    def case_class_counts(self) -> torch.Tensor:
        """int64 ``[cases, C]`` voxels of each class in each case (CPU, computed once)."""
        if self._counts is None:
            self._counts = stats.case_class_counts(self.labels, self.num_classes)
        return self._counts

    @property
    def class_voxel_counts(self) -> torch.Tensor:
        """int64 ``[C]`` voxels of each class over all cases."""
        return self.case_class_counts.sum(dim=0)

    @property
    def class_presence(self) -> torch.Tensor:
        """bool ``[cases, C]``: whether each class occurs in each case."""
        return self.case_class_counts > 0

    def foreground_shares(self) -> list[float]:
        """Each foreground class's share of the foreground voxels over all cases.

        One value per class 1..C-1 (background left out), summing to 1; NaN for every class
        when the cases hold no foreground voxel.
        """
        counts = self.class_voxel_counts[1:].double()
        return (counts / counts.sum()).tolist()

    def class_frequencies(self) -> torch.Tensor:
        """float64 ``[C]``: voxels of c / voxels of the cases where c is present."""
        return stats.class_frequencies(self.case_class_counts)

    def median_frequency_weights(self) -> torch.Tensor:
        """float32 ``[C]``: ``median(freq) / freq_c`` (Hegde et al.), 0 for absent classes."""
        return stats.median_frequency_weights(self.case_class_counts)

    def inverse_frequency_weights(self) -> torch.Tensor:
        """float32 ``[C]``: the ``inverse_frequency`` class schedule's weights for this data.

        ``1 / freq_c`` with Hegde's ``freq_c`` (:meth:`class_frequencies`: voxels of c over the
        voxels of the cases where c is present), scaled so present classes average 1; 0 for
        absent classes. Computed by the schedule's own function, so the weights a user inspects
        are the ones the trainer applies.
        """
        return stats.inverse_frequency_weights(self.case_class_counts)

    def subset(self, split: str | Sequence[int]) -> SegmentationDataset:
        """The cases of a split (or of explicit indices) as a dataset of their own.

        Its ``splits`` map the split name (``"subset"`` for explicit indices) to all its cases
        and the other split names to nothing; its fingerprint derives from this one's and the
        indices.
        """
        if isinstance(split, str):
            if split not in self.splits:
                raise KeyError(f"unknown split {split!r}; have {sorted(self.splits)}")
            name, indices = split, list(self.splits[split])
        else:
            name, indices = "subset", [int(i) for i in split]
        splits = {s: [] for s in SPLIT_NAMES}
        splits[name] = list(range(len(indices)))
        out = SegmentationDataset(
            name=self.name,
            class_names=self.class_names,
            images=[self.images[i] for i in indices],
            labels=[self.labels[i] for i in indices],
            splits=splits,
            fingerprint=sha256_json({"parent": self.fingerprint, "cases": indices}),
            spacing=self.spacing,
            case_ids=[self.case_ids[i] for i in indices],
            spacings=[self.spacings[i] for i in indices],
        )
        if self._counts is not None:
            out._counts = self._counts[indices]
        return out

    def to(self, device: str | torch.device) -> SegmentationDataset:
        """A copy with every tensor moved to ``device`` once; the class counts are counted
        here (once per dataset, where the labels are) and shared with the copy."""
        out = SegmentationDataset(
            name=self.name,
            class_names=self.class_names,
            images=[image.to(device) for image in self.images],
            labels=[label.to(device) for label in self.labels],
            splits={k: list(v) for k, v in self.splits.items()},
            fingerprint=self.fingerprint,
            spacing=self.spacing,
            case_ids=list(self.case_ids),
            spacings=list(self.spacings),
        )
        out._counts = self.case_class_counts
        return out
