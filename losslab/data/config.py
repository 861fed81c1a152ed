"""Typed settings of a dataset: where it comes from, how it is preprocessed and split."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from losslab.data.labels import LabelMap, parse_labels
from losslab.data.preprocess import PreprocessConfig
from losslab.data.splits import DEFAULT_SPLIT_FRACTIONS
from losslab.typed import from_mapping

SOURCES = ("phantom", "proxy", "decathlon", "nnunet")
FOLDER_SOURCES = ("decathlon", "nnunet")
"""Sources read from a dataset folder (``data_dir``), one per folder layout."""
GENERATED_SOURCES = ("phantom", "proxy")
"""Sources generated in memory from ``seed`` (no folder)."""
DEFAULT_PHANTOM_CASES = 20
DEFAULT_SHAPES: dict[str, tuple[int, int, int]] = {"phantom": (96, 96, 96), "proxy": (24, 24, 24)}
"""The case shape of a generated source when ``shape`` is not given."""


@dataclass(frozen=True)
class DataConfig:
    """Everything ``build_dataset`` needs; plain data, so it can go to MLflow as is.

    Attributes:
        source: ``"phantom"`` (the BTCV-like abdominal phantom, generated in memory),
            ``"proxy"`` (the small proxy task of ``losslab.data.proxy``, on which the rare
            classes can be learned on a CPU), ``"decathlon"`` (a Medical Segmentation Decathlon
            folder) or ``"nnunet"`` (an nnU-Net v2 raw dataset folder ``DatasetXXX_Name``; its
            channels become the input channels).
        data_dir: the dataset folder (required for ``"decathlon"`` and ``"nnunet"``).
        cases: number of cases: phantom or proxy cases to generate (default 20), or the first
            ``cases`` of the folder's cases (the ``training`` list; an nnU-Net folder's cases
            sorted by name) (default all).
        shape: ``(D, H, W)`` of generated cases; default 96^3 for the phantom, 24^3 for the
            proxy (``DEFAULT_SHAPES``).
        seed: phantom or proxy dataset seed.
        jitter: the proxy's spread of organ positions between cases (sd in normalised units,
            the volume spanning 2; ``losslab.data.proxy.make_proxy_case``); None (default) is
            the proxy's 0.04, half a voxel at 24^3. Proxy only; part of the fingerprint when set.
        spacing: target voxel size in mm (None keeps the native spacing).
        normalization, crop_foreground, foreground_threshold: see ``PreprocessConfig``.
        ct_window: ``(low, high)`` Hounsfield window of CT images (normalization ``"auto"``
            or ``"ct_window"``): intensities are clipped to it, then scaled to [0, 1]. The
            default ``(-175, 250)`` is the abdominal soft-tissue window that the phantom's
            organs need; everything outside it saturates (bone above 250 HU, lung and air
            below -175 HU each become one flat value), so for bone, lung or other classes
            outside soft tissue widen it, e.g. ``(-1000, 2000)``, or use ``normalization:
            zscore``. Two finite numbers with ``low < high``.
        cache_dir: folder of this dataset's preprocessing cache. Default: one folder per
            dataset (``<folder name>-<hash of its resolved path>``) under ``$LOSSLAB_CACHE``
            if set, else ``$XDG_CACHE_HOME/losslab``, else ``~/.cache/losslab``; nothing is
            written into the dataset folder.
        use_cache: read and write the preprocessing cache (folders only).
        split_fractions: train / val / test fractions; every split with a positive fraction
            needs a case, so the defaults need at least 3 cases (see ``make_splits``).
        split_seed: seed of the split permutation.
        labels: label values in the files -> classes, e.g. ``{0: background, 2: liver,
            41: spleen}``. The listed values become the contiguous classes ``0..K-1``: value 0
            (required) is class 0, background; the others follow in the order given, named as
            given (names unique). Values not listed become background (class 0), so a subset
            of the classes can be trained; ``losslab data inspect --labels`` counts their
            voxels. ``{value: class index}`` instead merges values into one class (indices
            ``0..K-1``, value 0 -> 0; names from ``dataset.json``, joined with ``+``). Keys are
            integers or their text; the text ``"0=background,2=liver"`` and a list of
            ``[value, class]`` pairs (what ``as_dict`` writes) are accepted too. None (the
            default): the label values are the classes, the ``dataset.json`` labels
            ``0..C-1``. Part of the cache key and the data fingerprint.
    """

    source: str = "phantom"
    data_dir: str | None = None
    cases: int | None = None
    shape: tuple[int, int, int] | None = None
    seed: int = 0
    jitter: float | None = None
    spacing: tuple[float, float, float] | None = None
    normalization: str = "auto"
    ct_window: tuple[float, float] = (-175.0, 250.0)
    crop_foreground: bool = False
    foreground_threshold: float | None = None
    cache_dir: str | None = None
    use_cache: bool = True
    split_fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS
    split_seed: int = 0
    labels: dict[int, str | int] | None = None

    def __post_init__(self) -> None:
        for name in ("shape", "spacing", "ct_window", "split_fractions"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                try:
                    object.__setattr__(self, name, tuple(value))
                except TypeError:
                    raise ValueError(f"{name}={value!r} must be a list of numbers") from None
        if self.shape is None:
            object.__setattr__(self, "shape", DEFAULT_SHAPES.get(self.source, (96, 96, 96)))
        object.__setattr__(self, "labels", parse_labels(self.labels))
        if self.data_dir is not None:
            object.__setattr__(self, "data_dir", str(self.data_dir))
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", str(self.cache_dir))
        if self.source not in SOURCES:
            raise ValueError(f"data source must be one of {SOURCES}, got {self.source!r}")
        if self.source in FOLDER_SOURCES and not self.data_dir:
            raise ValueError(f"data_dir is required for the {self.source!r} source")
        if self.cases is not None and self.cases < 1:
            raise ValueError(f"cases must be at least 1, got {self.cases}")
        if len(self.shape) != 3 or min(self.shape) < 8:
            raise ValueError(f"shape must be three sizes of at least 8, got {self.shape}")
        if self.jitter is not None:
            if self.source != "proxy":
                raise ValueError(f"jitter is a setting of the proxy source, not {self.source!r}")
            if not 0.0 <= float(self.jitter) <= 1.0:
                raise ValueError(f"jitter must lie in [0, 1], got {self.jitter!r}")
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
    def label_map(self) -> LabelMap | None:
        """The checked ``labels`` mapping, None when the label values are the classes."""
        return None if self.labels is None else LabelMap.of(self.labels)

    @property
    def num_cases(self) -> int | None:
        """Cases to load: the phantom default when unset, None meaning all for a folder."""
        if self.cases is None and self.source in GENERATED_SOURCES:
            return DEFAULT_PHANTOM_CASES
        return self.cases

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> DataConfig:
        """Build from a YAML/JSON mapping; an unknown key is an error that names it."""
        return from_mapping(cls, raw, "data config")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready settings; ``labels`` as ``[value, class]`` pairs, so that JSON with sorted
        keys keeps the order of the classes."""
        settings = asdict(self)
        if self.jitter is None:  # left out, so that the fingerprints of earlier studies hold
            del settings["jitter"]
        if self.labels is not None:
            settings["labels"] = [[value, k] for value, k in self.labels.items()]
        return settings
