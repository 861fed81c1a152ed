from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from losslab.data import DatasetError, cache, checks, decathlon, load_dataset

from .helpers import tiny_case


@pytest.fixture
def nifti_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every NIfTI file the loader opens, in order."""
    reads: list[Path] = []
    original = decathlon.load_nifti

    def counting(path: Path):
        reads.append(path)
        return original(path)

    monkeypatch.setattr(decathlon, "load_nifti", counting)
    return reads


def test_second_load_reads_the_cache_not_the_nifti_files(phantom_copy: Path, nifti_reads):
    first = load_dataset("decathlon", data_dir=phantom_copy)
    assert len(nifti_reads) == 8  # 4 images + 4 labels
    cache_files = list((phantom_copy / ".losslab_cache").glob("*.npz"))
    assert len(cache_files) == 1
    second = load_dataset("decathlon", data_dir=phantom_copy)
    assert len(nifti_reads) == 8
    assert second.fingerprint == first.fingerprint
    assert second.case_ids == first.case_ids
    assert all(torch.equal(a, b) for a, b in zip(first.images, second.images))
    assert all(torch.equal(a, b) for a, b in zip(first.labels, second.labels))


def test_a_changed_setting_makes_a_new_cache(phantom_copy: Path, tmp_path: Path, nifti_reads):
    cache = tmp_path / "cache"
    a = load_dataset("decathlon", data_dir=phantom_copy, cache_dir=cache)
    b = load_dataset("decathlon", data_dir=phantom_copy, cache_dir=cache, ct_window=(-100, 200))
    assert len(nifti_reads) == 16
    assert len(list(cache.glob("*.npz"))) == 2
    assert a.fingerprint != b.fingerprint
    assert not (phantom_copy / ".losslab_cache").exists()  # cache_dir is honoured


def test_a_changed_file_makes_a_new_cache(phantom_copy: Path, tmp_path: Path, nifti_reads):
    cache = tmp_path / "cache"
    a = load_dataset("decathlon", data_dir=phantom_copy, cache_dir=cache)
    image = phantom_copy / "imagesTr" / "case_002.nii.gz"
    shutil.copyfile(phantom_copy / "imagesTr" / "case_000.nii.gz", image)
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    b = load_dataset("decathlon", data_dir=phantom_copy, cache_dir=cache)
    assert len(nifti_reads) == 16
    assert a.fingerprint != b.fingerprint
    assert torch.equal(b.images[2], b.images[0]) and not torch.equal(a.images[2], a.images[0])


def test_fingerprint_follows_the_data_not_the_location(phantom_folder: Path, tmp_path: Path):
    copy = Path(shutil.copytree(phantom_folder, tmp_path / "elsewhere"))
    a = load_dataset("decathlon", data_dir=phantom_folder, use_cache=False)
    b = load_dataset("decathlon", data_dir=copy, cache_dir=tmp_path / "c")
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 64


def test_a_corrupt_cache_file_is_rebuilt(phantom_copy: Path, nifti_reads):
    load_dataset("decathlon", data_dir=phantom_copy)
    (cache_file,) = (phantom_copy / ".losslab_cache").glob("*.npz")
    cache_file.write_bytes(b"garbage")
    again = load_dataset("decathlon", data_dir=phantom_copy)
    assert len(nifti_reads) == 16 and len(again) == 4
    assert cache_file.stat().st_size > 1000


def test_use_cache_false_writes_nothing(phantom_copy: Path, nifti_reads):
    load_dataset("decathlon", data_dir=phantom_copy, use_cache=False)
    load_dataset("decathlon", data_dir=phantom_copy, use_cache=False)
    assert len(nifti_reads) == 16
    assert not (phantom_copy / ".losslab_cache").exists()


def test_a_cache_written_before_the_case_checks_is_not_reused(make_folder, monkeypatch):
    image, label = tiny_case(0)
    image[0, 0, 0] = float("nan")
    root = make_folder([(image, label), tiny_case(1), tiny_case(2)])
    # What a losslab of cache format 1, which had no finite check, cached for this folder.
    monkeypatch.setattr(cache, "CACHE_FORMAT", "1")
    monkeypatch.setattr(checks, "finite_problem", lambda image: None)
    stale = load_dataset("decathlon", data_dir=root)
    assert torch.isnan(stale.images[0]).any()
    monkeypatch.undo()
    with pytest.raises(DatasetError, match="image has 1 NaN voxel") as info:
        load_dataset("decathlon", data_dir=root)
    assert info.value.path == root / "imagesTr" / "c0.nii.gz"
