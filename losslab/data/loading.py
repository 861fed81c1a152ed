"""Build a ``SegmentationDataset`` from the phantom or from a dataset folder.

Every source goes through the same preprocessing (``preprocess_case``) and the same split, so
the trainer sees one type whatever the source. A folder (Decathlon or nnU-Net v2 raw layout,
parsed into one case list by ``losslab.data.folders``) is preprocessed once and cached; the
phantom is regenerated in memory (it is deterministic and fast).

A folder is checked as ``inspect_folder`` checks it, and refused on the first problem with a
``DatasetError`` naming the file: unreadable or truncated files, NaN or infinite image voxels,
cases under ``checks.MIN_CASE_SIZE`` voxels along a side (as stored, and again after
resampling and cropping), bad label values, labels that are background only in every case, a
label or further input channel not on the first channel's voxel grid (shape or affine), or too
few cases for the split (``make_splits`` says why it refuses to train on one). Warnings (a
background-only label among others, a class in no label, label values the ``labels`` option
does not list) go to the logger. The preprocessed cases are cached outside the dataset folder
(``cache.cache_root``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from losslab.data import checks, folders, volumes
from losslab.data.cache import (
    cache_key,
    data_fingerprint,
    dataset_cache_dir,
    load_cache,
    save_cache,
    sha256_json,
    slug,
)
from losslab.data.config import DataConfig
from losslab.data.dataset import SegmentationDataset
from losslab.data.errors import DatasetError
from losslab.data.labels import dropped_warning
from losslab.data.manifest import missing_file
from losslab.data.phantom import (
    PHANTOM_CLASSES,
    PHANTOM_SPACING,
    PHANTOM_VERSION,
    make_phantom_case,
    phantom_case_seed,
)
from losslab.data.preprocess import preprocess_case
from losslab.data.proxy import (
    PROXY_CLASSES,
    PROXY_JITTER,
    PROXY_SPACING,
    PROXY_VERSION,
    make_proxy_case,
)
from losslab.data.splits import make_splits, split_problem

logger = logging.getLogger(__name__)


def load_dataset(
    source: str = "phantom",
    *,
    data_dir: str | Path | None = None,
    cases: int | None = None,
    shape: Sequence[int] | None = None,
    seed: int = 0,
    spacing: Sequence[float] | None = None,
    cache_dir: str | Path | None = None,
    split_fractions: Sequence[float] = (0.6, 0.2, 0.2),
    split_seed: int = 0,
    normalization: str = "auto",
    ct_window: Sequence[float] = (-175.0, 250.0),
    crop_foreground: bool = False,
    foreground_threshold: float | None = None,
    use_cache: bool = True,
    labels: Mapping[int, str | int] | str | None = None,
) -> SegmentationDataset:
    """Load the phantom or a dataset folder as a ``SegmentationDataset`` (on the CPU).

    See ``DataConfig`` for the meaning of each argument.

    Example:
        >>> ds = load_dataset("phantom", cases=3, shape=(32, 32, 32))
        >>> len(ds), ds.num_classes, tuple(ds.images[0].shape)
        (3, 14, (1, 32, 32, 32))

    Raises:
        DatasetError: a dataset folder has a problem (the message names the file).
        ValueError: a bad setting, or too few cases for ``split_fractions``.
    """
    config = DataConfig(
        source=source,
        data_dir=None if data_dir is None else str(data_dir),
        cases=cases,
        shape=None if shape is None else tuple(shape),
        seed=seed,
        spacing=None if spacing is None else tuple(float(s) for s in spacing),
        cache_dir=None if cache_dir is None else str(cache_dir),
        split_fractions=tuple(split_fractions),
        split_seed=split_seed,
        normalization=normalization,
        ct_window=tuple(float(w) for w in ct_window),
        crop_foreground=crop_foreground,
        foreground_threshold=foreground_threshold,
        use_cache=use_cache,
        labels=labels,  # type: ignore[arg-type]  # checked and normalised by DataConfig
    )
    return build_dataset(config)


def build_dataset(config: DataConfig) -> SegmentationDataset:
    """Load the dataset a ``DataConfig`` describes."""
    if config.source in ("phantom", "proxy"):
        return _phantom(config)
    return _folder(config)


def _to_dataset(
    name: str,
    class_names: Sequence[str],
    images: list[np.ndarray],
    labels: list[np.ndarray],
    fingerprint: str,
    spacing: tuple[float, float, float],
    case_ids: list[str],
    config: DataConfig,
    spacings: list[tuple[float, float, float]] | None = None,
) -> SegmentationDataset:
    return SegmentationDataset(
        name=name,
        class_names=tuple(class_names),
        images=[_channels_first(im) for im in images],
        labels=[torch.from_numpy(lab.astype(np.int64)) for lab in labels],
        splits=make_splits(len(images), config.split_fractions, config.split_seed),
        fingerprint=fingerprint,
        spacing=spacing,
        case_ids=case_ids,
        spacings=list(spacings or []),
    )


_GENERATORS = {
    "phantom": (make_phantom_case, PHANTOM_CLASSES, PHANTOM_SPACING, PHANTOM_VERSION),
    "proxy": (make_proxy_case, PROXY_CLASSES, PROXY_SPACING, PROXY_VERSION),
}


def _channels_first(image: np.ndarray) -> torch.Tensor:
    """float32 ``[K, D, H, W]`` of a preprocessed ``[D, H, W]`` (one channel) or ``[K, D, H, W]``."""
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    return tensor[None] if tensor.ndim == 3 else tensor


def _phantom(config: DataConfig) -> SegmentationDataset:
    """A generated source: the abdominal phantom or the proxy task."""
    make_case, classes, native_spacing, version = _GENERATORS[config.source]
    n = int(config.num_cases or 0)
    label_map = config.label_map
    images, labels = [], []
    for i in range(n):
        extra = {"jitter": config.jitter} if config.jitter is not None else {}
        image, label = make_case(phantom_case_seed(config.seed, i), config.shape, **extra)
        if label_map is not None:
            label, _ = label_map.apply(label)
        image, label = preprocess_case(image, label, native_spacing, True, config.preprocess)
        images.append(image)
        labels.append(label)
    identity = {
        "source": config.source,
        "generator": version,
        "cases": n,
        "shape": list(config.shape),
        "seed": config.seed,
        "preprocess": config.preprocess.as_dict(),
    }
    if config.jitter is not None and float(config.jitter) != PROXY_JITTER:  # as labels, below
        identity["jitter"] = float(config.jitter)
    class_names = tuple(classes)
    if label_map is not None:  # left out otherwise, so earlier fingerprints stay the same
        identity["labels"] = label_map.identity()
        class_names = label_map.class_names(dict(enumerate(classes)))
    spacing = config.spacing or native_spacing
    case_ids = [f"case_{i:03d}" for i in range(n)]
    return _to_dataset(
        config.source, class_names, images, labels, sha256_json(identity), spacing, case_ids, config
    )


def _folder(config: DataConfig) -> SegmentationDataset:
    manifest = folders.read_folder(config.data_dir, config.label_map, source=config.source)
    cases = manifest.cases[: config.num_cases] if config.num_cases else manifest.cases
    missing = missing_file(cases)
    if missing is not None:
        raise missing
    problem = split_problem(len(cases), config.split_fractions)
    if problem is not None:  # before reading any volume
        selected = f" (cases={config.num_cases})" if config.num_cases else ""
        raise DatasetError(manifest.path, problem + selected)
    files = [manifest.path, *(path for case in cases for path in (*case.images, case.label))]
    settings = {
        "preprocess": config.preprocess.as_dict(),
        "class_names": list(manifest.class_names),
        "modality": {str(k): v for k, v in manifest.modality.items()},
    }
    if manifest.label_map is not None:  # left out otherwise, so earlier fingerprints stay
        settings["labels"] = manifest.label_map.identity()
    key = cache_key(files, manifest.root, settings)
    cache_dir = Path(config.cache_dir) if config.cache_dir else dataset_cache_dir(manifest.root)
    cache_path = cache_dir / f"{slug(manifest.name)}-{key[:24]}.npz"
    cached = load_cache(cache_path) if config.use_cache else None
    if cached is not None:
        logger.info("dataset cache hit: %s", cache_path)
        images, labels, meta = cached
    else:
        images, labels, spacings, dropped = [], [], [], []
        for case in cases:
            image, label, native, unlisted = volumes.read_case(case, manifest.classes)
            image, label = preprocess_case(
                image, label, native, manifest.channel_is_ct, config.preprocess
            )
            _check_preprocessed_size(label.shape, case.image, config)
            images.append(image)
            labels.append(label)
            spacings.append(native)
            dropped.append({str(v): n for v, n in unlisted.items()})
        meta = {
            "cases": len(cases),
            "case_ids": [case.case_id for case in cases],
            "fingerprint": data_fingerprint(images, labels, settings),
            "native_spacings": spacings,
            "dropped": dropped,
        }
        if config.use_cache:
            try:
                save_cache(cache_path, images, labels, meta)
                logger.info("dataset cache written: %s", cache_path)
            except OSError as exc:
                logger.warning("cannot write dataset cache %s (%s)", cache_path, exc)
    native = [tuple(float(v) for v in s) for s in meta["native_spacings"]]
    if config.spacing is not None:
        spacing = tuple(config.spacing)
        spacings = [spacing] * len(images)  # every case resampled to it
    else:
        spacing = tuple(float(s) for s in np.median(np.asarray(native), axis=0))
        spacings = native
    dataset = _to_dataset(
        manifest.name,
        manifest.class_names,
        images,
        labels,
        meta["fingerprint"],
        spacing,
        list(meta["case_ids"]),
        config,
        spacings,
    )
    problems, warnings = checks.label_findings(
        dataset.case_class_counts.numpy(),
        manifest.class_names,
        [case.label for case in cases],
        manifest.path,
    )
    if problems:
        raise problems[0].error()
    unlisted = [{int(v): n for v, n in case.items()} for case in meta.get("dropped", [])]
    dropped_values = dropped_warning(unlisted, manifest.path)
    for warning in [*warnings, *([dropped_values] if dropped_values else [])]:
        logger.warning("%s", warning)
    return dataset


def _check_preprocessed_size(shape: tuple[int, ...], image: Path, config: DataConfig) -> None:
    problem = checks.size_problem(shape)
    if problem is None:
        return
    settings = []
    if config.spacing is not None:
        settings.append(f"spacing={list(config.spacing)}")
    if config.crop_foreground:
        settings.append("crop_foreground=True")
    raise DatasetError(
        image,
        f"{problem} after preprocessing ({', '.join(settings)}); use a finer spacing or "
        f"turn cropping off",
    )
