"""Typed settings of a dataset: where it comes from, how it is preprocessed and split."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from losslab.data.preprocess import PreprocessConfig
from losslab.data.splits import DEFAULT_SPLIT_FRACTIONS
from losslab.typed import from_mapping

SOURCES = ("phantom", "decathlon")
DEFAULT_PHANTOM_CASES = 20


@dataclass(frozen=True)
class DataConfig:
    """Everything ``build_dataset`` needs; plain data, so it can go to MLflow as is.

    Attributes:
        source: ``"phantom"`` (generated in memory) or ``"decathlon"`` (a folder).
        data_dir: the Decathlon folder (required for ``"decathlon"``).
        cases: number of cases: phantom cases to generate (default 20), or the first ``cases``
            of the ``training`` list (default all).
        shape: ``(D, H, W)`` of phantom cases.
        seed: phantom dataset seed.
        spacing: target voxel size in mm (None keeps the native spacing).
        normalization, ct_window, crop_foreground, foreground_threshold: see
            ``PreprocessConfig``.
        cache_dir: cache folder (default ``<data_dir>/.losslab_cache``).
        use_cache: read and write the preprocessing cache (Decathlon only).
        split_fractions: train / val / test fractions; every split with a positive fraction
            needs a case, so the defaults need at least 3 cases (see ``make_splits``).
        split_seed: seed of the split permutation.
    """

    source: str = "phantom"
    data_dir: str | None = None
    cases: int | None = None
    shape: tuple[int, int, int] = (96, 96, 96)
    seed: int = 0
    spacing: tuple[float, float, float] | None = None
    normalization: str = "auto"
    ct_window: tuple[float, float] = (-175.0, 250.0)
    crop_foreground: bool = False
    foreground_threshold: float | None = None
    cache_dir: str | None = None
    use_cache: bool = True
    split_fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS
    split_seed: int = 0

    def __post_init__(self) -> None:
        for name in ("shape", "spacing", "ct_window", "split_fractions"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        if self.data_dir is not None:
            object.__setattr__(self, "data_dir", str(self.data_dir))
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", str(self.cache_dir))
        if self.source not in SOURCES:
            raise ValueError(f"data source must be one of {SOURCES}, got {self.source!r}")
        if self.source == "decathlon" and not self.data_dir:
            raise ValueError("data_dir is required for the 'decathlon' source")
        if self.cases is not None and self.cases < 1:
            raise ValueError(f"cases must be at least 1, got {self.cases}")
        if len(self.shape) != 3 or min(self.shape) < 8:
            raise ValueError(f"shape must be three sizes of at least 8, got {self.shape}")
        if len(self.split_fractions) != 3:
            raise ValueError(f"split_fractions must have 3 values, got {self.split_fractions}")
        _ = self.preprocess  # validates the preprocessing settings

    @property
    def preprocess(self) -> PreprocessConfig:
        """The preprocessing settings."""
        return PreprocessConfig(
            spacing=self.spacing,
            normalization=self.normalization,
            ct_window=self.ct_window,
            crop_foreground=self.crop_foreground,
            foreground_threshold=self.foreground_threshold,
        )

    @property
    def num_cases(self) -> int | None:
        """Cases to load: the phantom default when unset, None meaning all for a folder."""
        if self.cases is None and self.source == "phantom":
            return DEFAULT_PHANTOM_CASES
        return self.cases

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> DataConfig:
        """Build from a YAML/JSON mapping; an unknown key is an error that names it."""
        return from_mapping(cls, raw, "data config")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        return asdict(self)
