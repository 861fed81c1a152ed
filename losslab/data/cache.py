"""On-disk cache of preprocessed datasets and the fingerprints that key it.

The cache key hashes what the inputs look like on disk (path, size, modification time of
``dataset.json`` and every NIfTI file) and the preprocessing settings, so it is cheap to compute
before reading anything. The data fingerprint hashes the preprocessed voxels themselves and the
settings, so it stays the same when the files are copied elsewhere; it goes to MLflow.

The cache lives outside the dataset folder (which may be read-only, shared or under version
control): one folder per dataset under ``cache_root()``. Its files follow the user's umask,
like any other file the user writes, so a cache shared by a team on a shared disk
(``LOSSLAB_CACHE``) is readable by the group the umask allows; the preprocessed voxels are no
more private than the dataset files they come from, whose own permissions protect them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

CACHE_FORMAT = "3"  # 2: cases are checked (finite, minimum size); 3: label geometry checked
CACHE_ENV = "LOSSLAB_CACHE"
"""Environment variable naming the folder of losslab's caches."""


def cache_root() -> Path:
    """Folder of losslab's caches: ``$LOSSLAB_CACHE`` if set, else ``$XDG_CACHE_HOME/losslab``
    (an absolute ``XDG_CACHE_HOME`` only, as the XDG specification says), else
    ``~/.cache/losslab``."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen:
        return Path(chosen).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "losslab"
    return Path.home() / ".cache" / "losslab"


def slug(text: str) -> str:
    """``text`` reduced to characters safe in a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "dataset"


def dataset_cache_dir(data_dir: Path) -> Path:
    """The cache folder of a dataset folder: ``<name>-<hash of its resolved path>`` under
    ``cache_root()``; the name is for people, the hash keeps two folders of one name apart."""
    resolved = Path(data_dir).resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:16]
    return cache_root() / f"{slug(resolved.name)}-{digest}"


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
    renames it, so a reader never sees a partial file. Folders and file follow the umask.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"image_{i:05d}": a for i, a in enumerate(images)}
    arrays.update({f"label_{i:05d}": a for i, a in enumerate(labels)})
    arrays["meta"] = np.array(json.dumps(meta))
    tmp = path.parent / f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    # not tempfile.mkstemp: it makes owner-only files (0600) whatever the umask
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
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
