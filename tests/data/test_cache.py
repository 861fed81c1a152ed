from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from losslab.data import DatasetError, cache, checks, load_dataset, volumes

from .helpers import tiny_case


@pytest.fixture
def nifti_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every NIfTI file the loader opens, in order."""
    reads: list[Path] = []
    original = volumes.load_nifti

    def counting(path: Path):
        reads.append(path)
        return original(path)

    monkeypatch.setattr(volumes, "load_nifti", counting)
    return reads


def _files(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every file and folder under ``root`` with its size, mode and modification time."""
    found = {}
    for path in [root, *root.rglob("*")]:
        stat = path.stat()
        found[path.relative_to(root).as_posix()] = (stat.st_size, stat.st_mode, stat.st_mtime_ns)
    return found


def test_second_load_reads_the_cache_not_the_nifti_files(
    phantom_copy: Path, cache_root: Path, nifti_reads
):
    before = _files(phantom_copy)
    first = load_dataset("decathlon", data_dir=phantom_copy)
    assert len(nifti_reads) == 8  # 4 images + 4 labels
    (folder,) = cache_root.iterdir()
    assert folder == cache.dataset_cache_dir(phantom_copy)
    assert folder.name.startswith("dataset-") and len(list(folder.glob("*.npz"))) == 1
    second = load_dataset("decathlon", data_dir=phantom_copy)
    assert len(nifti_reads) == 8
    assert second.fingerprint == first.fingerprint
    assert second.case_ids == first.case_ids
    assert all(torch.equal(a, b) for a, b in zip(first.images, second.images))
    assert all(torch.equal(a, b) for a, b in zip(first.labels, second.labels))
    assert _files(phantom_copy) == before  # nothing written into the dataset folder


def test_a_changed_setting_makes_a_new_cache(
    phantom_copy: Path, tmp_path: Path, cache_root: Path, nifti_reads
):
    cache = tmp_path / "cache"
    a = load_dataset("decathlon", data_dir=phantom_copy, cache_dir=cache)
    b = load_dataset("decathlon", data_dir=phantom_copy, cache_dir=cache, ct_window=(-100, 200))
    assert len(nifti_reads) == 16
    assert len(list(cache.glob("*.npz"))) == 2
    assert a.fingerprint != b.fingerprint
    assert not any(cache_root.iterdir())  # cache_dir is honoured


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
    (cache_file,) = cache.dataset_cache_dir(phantom_copy).glob("*.npz")
    cache_file.write_bytes(b"garbage")
    again = load_dataset("decathlon", data_dir=phantom_copy)
    assert len(nifti_reads) == 16 and len(again) == 4
    assert cache_file.stat().st_size > 1000


def test_use_cache_false_writes_nothing(phantom_copy: Path, cache_root: Path, nifti_reads):
    before = _files(phantom_copy)
    load_dataset("decathlon", data_dir=phantom_copy, use_cache=False)
    load_dataset("decathlon", data_dir=phantom_copy, use_cache=False)
    assert len(nifti_reads) == 16
    assert _files(phantom_copy) == before and not any(cache_root.iterdir())


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


# --- where the cache lives -------------------------------------------------------------------


def _cache_file(data_dir: Path) -> Path:
    (found,) = cache.dataset_cache_dir(data_dir).glob("*.npz")
    return found


def test_without_losslab_cache_the_xdg_cache_folder_is_used(
    phantom_copy: Path, tmp_path: Path, monkeypatch
):
    monkeypatch.delenv("LOSSLAB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    load_dataset("decathlon", data_dir=phantom_copy)
    assert _cache_file(phantom_copy).parent.parent == tmp_path / "xdg" / "losslab"


@pytest.mark.parametrize("xdg", [None, "relative/cache"])
def test_else_the_home_cache_folder_is_used(phantom_copy: Path, tmp_path: Path, monkeypatch, xdg):
    monkeypatch.delenv("LOSSLAB_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    if xdg is None:
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    else:  # the XDG specification: a relative path is ignored
        monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    load_dataset("decathlon", data_dir=phantom_copy)
    assert _cache_file(phantom_copy).parent.parent == tmp_path / "home" / ".cache" / "losslab"


def test_two_folders_of_one_name_have_their_own_cache(phantom_folder: Path, tmp_path: Path):
    a = Path(shutil.copytree(phantom_folder, tmp_path / "a" / "Task09"))
    b = Path(shutil.copytree(phantom_folder, tmp_path / "b" / "Task09"))
    load_dataset("decathlon", data_dir=a)
    load_dataset("decathlon", data_dir=b)
    folders = {_cache_file(a).parent, _cache_file(b).parent}
    assert len(folders) == 2 and all(f.name.startswith("Task09-") for f in folders)


def test_cache_files_follow_the_umask(phantom_copy: Path, cache_root: Path):
    previous = os.umask(0o022)
    try:
        load_dataset("decathlon", data_dir=phantom_copy)
    finally:
        os.umask(previous)
    cache_file = _cache_file(phantom_copy)
    assert cache_file.stat().st_mode & 0o777 == 0o644
    assert cache_file.parent.stat().st_mode & 0o777 == 0o755
    assert [p.name for p in cache_file.parent.iterdir()] == [cache_file.name]  # no temporaries
