"""Datasets of losslab: the synthetic phantom, Decathlon folders and patch sampling.

Both sources reach the trainer as one ``SegmentationDataset``:

    >>> from losslab.data import PatchSampler, load_dataset
    >>> dataset = load_dataset("phantom", cases=3, shape=(32, 32, 32))
    >>> sampler = PatchSampler(dataset, patch_size=(16, 16, 16), batch_size=2)
    >>> images, labels = sampler.sample()
"""

from __future__ import annotations

from losslab.data.augment import augment
from losslab.data.checks import MIN_CASE_SIZE
from losslab.data.config import DataConfig
from losslab.data.dataset import SegmentationDataset
from losslab.data.decathlon import (
    DecathlonCase,
    DecathlonManifest,
    check_dataset_folder,
    read_manifest,
)
from losslab.data.errors import DatasetError, DatasetProblem
from losslab.data.export import write_phantom_decathlon
from losslab.data.inspection import InspectionReport, inspect_decathlon
from losslab.data.loading import build_dataset, load_dataset
from losslab.data.phantom import (
    PHANTOM_CLASSES,
    PHANTOM_SPACING,
    PHANTOM_TARGET_SHARES,
    PHANTOM_VERSION,
    make_phantom_case,
    phantom_case_seed,
)
from losslab.data.preprocess import PreprocessConfig, preprocess_case
from losslab.data.sampling import PatchSampler
from losslab.data.splits import make_splits

__all__ = [
    "MIN_CASE_SIZE",
    "PHANTOM_CLASSES",
    "PHANTOM_SPACING",
    "PHANTOM_TARGET_SHARES",
    "PHANTOM_VERSION",
    "DataConfig",
    "DatasetError",
    "DatasetProblem",
    "DecathlonCase",
    "DecathlonManifest",
    "InspectionReport",
    "PatchSampler",
    "PreprocessConfig",
    "SegmentationDataset",
    "augment",
    "build_dataset",
    "check_dataset_folder",
    "inspect_decathlon",
    "load_dataset",
    "make_phantom_case",
    "make_splits",
    "phantom_case_seed",
    "preprocess_case",
    "read_manifest",
    "write_phantom_decathlon",
]
