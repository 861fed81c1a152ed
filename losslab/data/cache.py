"""On-disk cache of preprocessed datasets and the fingerprints that key it.

The cache key hashes what the inputs look like on disk (path, size, modification time of
``dataset.json`` and every NIfTI file) and the preprocessing settings, so it is cheap to compute
before reading anything. The data fingerprint hashes the preprocessed voxels themselves and the
settings, so it stays the same when the files are copied elsewhere; it goes to MLflow.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

CACHE_FORMAT = "2"  # 2: cases are checked (finite, minimum size) before they are cached


def sha256_json(obj: object) -> str:
    """sha256 hex digest of the canonical JSON of ``obj``."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def file_signature(path: Path, root: Path) -> dict:
    """``{"path", "size", "mtime_ns"}`` of a file, the path relative to ``root`` when inside."""
    stat = path.stat()
    try:
        name = str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        name = str(path.resolve())
    return {"path": name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def cache_key(files: Iterable[Path], root: Path, settings: dict) -> str:
    """sha256 of the signatures of ``files`` and the settings (cache format included)."""
    signatures = [file_signature(Path(f), root) for f in files]
    return sha256_json({"format": CACHE_FORMAT, "files": signatures, "settings": settings})


def data_fingerprint(
    images: Sequence[np.ndarray], labels: Sequence[np.ndarray], settings: dict
) -> str:
    """sha256 of the preprocessed voxels (shape, dtype, bytes) and the settings."""
    digest = hashlib.sha256(sha256_json(settings).encode())
    for array in (*images, *labels):
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def save_cache(
    path: Path, images: Sequence[np.ndarray], labels: Sequence[np.ndarray], meta: dict
) -> None:
    """Write arrays and JSON metadata to ``path`` (``.npz``) atomically.

    Several workers may build the same cache at once; each writes a temporary file and
    renames it, so a reader never sees a partial file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"image_{i:05d}": a for i, a in enumerate(images)}
    arrays.update({f"label_{i:05d}": a for i, a in enumerate(labels)})
    arrays["meta"] = np.array(json.dumps(meta))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_cache(path: Path) -> tuple[list[np.ndarray], list[np.ndarray], dict] | None:
    """Read a cache file written by ``save_cache``; None when missing or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            n = int(meta["cases"])
            images = [data[f"image_{i:05d}"] for i in range(n)]
            labels = [data[f"label_{i:05d}"] for i in range(n)]
    except (OSError, ValueError, KeyError):
        return None
    return images, labels, meta
