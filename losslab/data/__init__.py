"""Datasets of losslab: the synthetic phantom, the proxy task, Decathlon and nnU-Net v2 raw
folders, and patch sampling.

Every source reaches the trainer as one ``SegmentationDataset``:

    >>> from losslab.data import PatchSampler, load_dataset
    >>> dataset = load_dataset("phantom", cases=3, shape=(32, 32, 32))
    >>> sampler = PatchSampler(dataset, patch_size=(16, 16, 16), batch_size=2)
    >>> images, labels = sampler.sample()

The names below are imported on first use (``losslab._lazy``), so that importing the package
(the command line does) costs nothing until one is used.
"""

from __future__ import annotations

from losslab._lazy import lazy_exports

_EXPORTS = {
    "augment": "losslab.data.augment",
    "cache_root": "losslab.data.cache",
    "MIN_CASE_SIZE": "losslab.data.checks",
    "DataConfig": "losslab.data.config",
    "SegmentationDataset": "losslab.data.dataset",
    "DecathlonCase": "losslab.data.decathlon",
    "DecathlonManifest": "losslab.data.decathlon",
    "read_manifest": "losslab.data.decathlon",
    "DatasetError": "losslab.data.errors",
    "DatasetProblem": "losslab.data.errors",
    "check_dataset_folder": "losslab.data.folders",
    "parse_folder": "losslab.data.folders",
    "read_folder": "losslab.data.folders",
    "write_phantom_decathlon": "losslab.data.export",
    "write_phantom_nnunet": "losslab.data.nnunet",
    "InspectionReport": "losslab.data.inspection",
    "inspect_decathlon": "losslab.data.inspection",
    "inspect_folder": "losslab.data.inspection",
    "LabelMap": "losslab.data.labels",
    "DatasetCase": "losslab.data.manifest",
    "DatasetManifest": "losslab.data.manifest",
    "build_dataset": "losslab.data.loading",
    "load_dataset": "losslab.data.loading",
    "PHANTOM_CLASSES": "losslab.data.phantom",
    "PHANTOM_SPACING": "losslab.data.phantom",
    "PHANTOM_TARGET_SHARES": "losslab.data.phantom",
    "PHANTOM_VERSION": "losslab.data.phantom",
    "make_phantom_case": "losslab.data.phantom",
    "phantom_case_seed": "losslab.data.phantom",
    "PROXY_CLASSES": "losslab.data.proxy",
    "PROXY_TARGET_SHARES": "losslab.data.proxy",
    "make_proxy_case": "losslab.data.proxy",
    "PreprocessConfig": "losslab.data.preprocess",
    "preprocess_case": "losslab.data.preprocess",
    "PatchSampler": "losslab.data.sampling",
    "make_splits": "losslab.data.splits",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "MIN_CASE_SIZE",
    "PHANTOM_CLASSES",
    "PHANTOM_SPACING",
    "PHANTOM_TARGET_SHARES",
    "PHANTOM_VERSION",
    "PROXY_CLASSES",
    "PROXY_TARGET_SHARES",
    "DataConfig",
    "DatasetCase",
    "DatasetError",
    "DatasetManifest",
    "DatasetProblem",
    "DecathlonCase",
    "DecathlonManifest",
    "InspectionReport",
    "LabelMap",
    "PatchSampler",
    "PreprocessConfig",
    "SegmentationDataset",
    "augment",
    "build_dataset",
    "cache_root",
    "check_dataset_folder",
    "inspect_decathlon",
    "inspect_folder",
    "load_dataset",
    "make_phantom_case",
    "make_proxy_case",
    "make_splits",
    "parse_folder",
    "phantom_case_seed",
    "preprocess_case",
    "read_folder",
    "read_manifest",
    "write_phantom_decathlon",
    "write_phantom_nnunet",
]
