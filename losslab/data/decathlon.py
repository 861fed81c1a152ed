"""Medical Segmentation Decathlon folders: ``dataset.json``, NIfTI reading and checking.

A folder holds ``dataset.json`` (keys ``labels``, ``modality``, ``training``; ``name``
optional) and the NIfTI files its ``training`` list names, relative to the folder. Volumes are
reoriented to RAS+ on reading, so axis 0 points to the patient's right, axis 1 anterior and
axis 2 superior whatever the orientation on disk.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from losslab.data import checks
from losslab.data.errors import DatasetError, DatasetProblem
from losslab.data.splits import DEFAULT_SPLIT_FRACTIONS, split_problem

REQUIRED_KEYS = ("labels", "modality", "training")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
NIFTI_HEADER_BYTES = 348
TRUNCATED = "the file is truncated or corrupt"


@dataclass(frozen=True)
class DecathlonCase:
    """One training pair of a Decathlon folder."""

    case_id: str
    image: Path
    label: Path


@dataclass(frozen=True)
class DecathlonManifest:
    """The parsed ``dataset.json``.

    Attributes:
        root: the dataset folder.
        name: dataset name (``name`` key, else the folder name).
        modality: channel index -> modality name (e.g. ``{0: "CT"}``).
        class_names: label names, index = label value.
        cases: training pairs in ``dataset.json`` order.
    """

    root: Path
    name: str
    modality: dict[int, str]
    class_names: tuple[str, ...]
    cases: tuple[DecathlonCase, ...]

    @property
    def path(self) -> Path:
        """Path of ``dataset.json``."""
        return self.root / "dataset.json"

    @property
    def is_ct(self) -> bool:
        """Whether the first channel is CT (Hounsfield units)."""
        return self.modality.get(0, "").strip().upper() == "CT"


def _case_id(path: Path) -> str:
    name = path.name
    for suffix in NIFTI_SUFFIXES[::-1]:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _parse_labels(raw: object, path: Path, problems: list[DatasetProblem]) -> tuple[str, ...]:
    if not isinstance(raw, dict) or not raw:
        problems.append(DatasetProblem(path, "'labels' must be a non-empty object value -> name"))
        return ()
    try:
        labels = {int(k): str(v) for k, v in raw.items()}
    except (TypeError, ValueError):
        problems.append(DatasetProblem(path, f"'labels' keys must be integers, got {list(raw)}"))
        return ()
    if sorted(labels) != list(range(len(labels))):
        problems.append(
            DatasetProblem(
                path, f"'labels' keys must be 0..{len(labels) - 1}, got {sorted(labels)}"
            )
        )
        return ()
    if len(labels) < 2:
        problems.append(
            DatasetProblem(path, "'labels' must name background (0) and at least one class (1)")
        )
        return ()
    return tuple(labels[i] for i in range(len(labels)))


def _parse_training(
    raw: object, root: Path, path: Path, problems: list[DatasetProblem]
) -> tuple[DecathlonCase, ...]:
    if not isinstance(raw, list) or not raw:
        problems.append(DatasetProblem(path, "'training' list is empty or not a list"))
        return ()
    cases = []
    for i, entry in enumerate(raw):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("image"), str)
            and isinstance(entry.get("label"), str)
        ):
            problems.append(
                DatasetProblem(path, f"'training'[{i}] must have string 'image' and 'label' keys")
            )
            continue
        image, label = root / entry["image"], root / entry["label"]
        cases.append(DecathlonCase(_case_id(image), image, label))
    return tuple(cases)


def _not_a_folder(root: Path) -> str:
    if not root.exists():
        return "dataset folder does not exist"
    if root.name == "dataset.json":
        return f"is a file, not a folder: give the folder that holds it ({root.parent})"
    if root.is_file():
        return "is a file, not a folder: give the dataset folder (the one holding dataset.json)"
    return "is not a folder: give the dataset folder (the one holding dataset.json)"


def parse_manifest(data_dir: str | Path) -> tuple[DecathlonManifest | None, list[DatasetProblem]]:
    """Read ``dataset.json`` and collect every problem it has.

    Returns:
        ``(manifest, problems)``; the manifest holds what could be parsed (empty class names or
        cases where those parts are at fault) and is None when the file itself is unusable.
    """
    root = Path(data_dir)
    path = root / "dataset.json"
    if not root.is_dir():
        return None, [DatasetProblem(root, _not_a_folder(root))]
    if not path.is_file():
        return None, [DatasetProblem(path, "file is missing")]
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, [DatasetProblem(path, f"not valid JSON ({exc})")]
    except OSError as exc:
        return None, [DatasetProblem(path, f"cannot be read ({exc.strerror or exc})")]
    if not isinstance(raw, dict):
        return None, [DatasetProblem(path, "must hold a JSON object")]
    problems: list[DatasetProblem] = []
    missing = [key for key in REQUIRED_KEYS if key not in raw]
    if missing:
        problems.append(DatasetProblem(path, f"missing required key(s) {missing}"))
    class_names = _parse_labels(raw["labels"], path, problems) if "labels" in raw else ()
    modality: dict[int, str] = {}
    if "modality" in raw:
        mod = raw["modality"]
        if isinstance(mod, dict) and mod and all(str(k).isdigit() for k in mod):
            modality = {int(k): str(v) for k, v in mod.items()}
            if len(modality) > 1:
                msg = f"{len(modality)} modalities {list(modality.values())}; only 1 is supported"
                problems.append(DatasetProblem(path, msg))
        else:
            problems.append(DatasetProblem(path, "'modality' must be an object like {'0': 'CT'}"))
    cases = _parse_training(raw["training"], root, path, problems) if "training" in raw else ()
    name = str(raw.get("name") or root.resolve().name)
    return DecathlonManifest(root, name, modality, class_names, cases), problems


def read_manifest(data_dir: str | Path) -> DecathlonManifest:
    """Read ``dataset.json``; raise ``DatasetError`` listing its problems if it has any."""
    manifest, problems = parse_manifest(data_dir)
    if manifest is None or problems:
        raise DatasetError(problems[0].path, "; ".join(p.problem for p in problems))
    return manifest


def missing_file(cases: Sequence[DecathlonCase]) -> DatasetError | None:
    """The error of the first image or label of ``cases`` that is not a file, else None."""
    for case in cases:
        for path in (case.image, case.label):
            if not path.is_file():
                return DatasetError(path, "file is missing")
    return None


def check_dataset_folder(
    data_dir: str | Path,
    *,
    cases: int | None = None,
    split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
) -> DecathlonManifest:
    """Check cheaply that a Decathlon folder can be loaded, before any long work starts.

    Reads ``dataset.json`` only and looks the files it lists up on disk: no volume is opened,
    so voxel problems (non-finite intensities, bad label values...) are still found by
    ``load_dataset`` or ``inspect_decathlon``. Checks that the folder exists and is a folder,
    that ``dataset.json`` is readable and valid, that every listed image and label exists and
    that the cases can be split by ``split_fractions``.

    Args:
        data_dir: the dataset folder.
        cases: use only the first ``cases`` of the ``training`` list (as ``DataConfig.cases``).
        split_fractions: train / val / test fractions (as ``DataConfig.split_fractions``).

    Returns:
        The parsed manifest.

    Raises:
        DatasetError: naming the folder or file at fault and what is wrong.
    """
    manifest = read_manifest(data_dir)
    selected = manifest.cases[:cases] if cases else manifest.cases
    error = missing_file(selected)
    if error is not None:
        raise error
    problem = split_problem(len(selected), split_fractions)
    if problem is not None:
        raise DatasetError(manifest.path, problem)
    return manifest


def load_nifti(path: Path) -> nib.Nifti1Image:
    """Open a NIfTI file reoriented to RAS+ (data read lazily by nibabel).

    Raises:
        DatasetError: the file is missing, not named ``.nii``/``.nii.gz`` or not readable.
    """
    if not path.is_file():
        raise DatasetError(path, "file is missing")
    if not path.name.endswith(NIFTI_SUFFIXES):
        raise DatasetError(path, "not a NIfTI file (expected .nii or .nii.gz)")
    try:
        image = nib.load(path)
        if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
            raise DatasetError(path, f"not a NIfTI file ({type(image).__name__})")
        return nib.as_closest_canonical(image)
    except DatasetError:
        raise
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise DatasetError(path, _unreadable_header(path, exc)) from exc


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _unreadable_header(path: Path, exc: Exception) -> str:
    """Why a header cannot be read: a cut file, else nibabel's reason (checked on failure only)."""
    if path.name.endswith(".gz"):
        try:
            with gzip.open(path) as stream:
                while stream.read(1 << 20):
                    pass
        except EOFError:
            return f"{TRUNCATED}: its header cannot be read (the gzip stream ends early)"
        except (OSError, zlib.error):
            pass
    elif path.stat().st_size < NIFTI_HEADER_BYTES:
        return f"{TRUNCATED}: {path.stat().st_size} bytes, less than a NIfTI header"
    return f"cannot be read as NIfTI ({_one_line(exc)})"


def spatial_shape(image: nib.Nifti1Image, path: Path) -> tuple[int, int, int]:
    """The ``(D, H, W)`` shape of a single-channel volume; raise if it has several channels."""
    shape = tuple(int(s) for s in image.shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise DatasetError(path, f"expected a 3D single-channel volume, got shape {shape}")
    return shape  # type: ignore[return-value]


def spacing_of(image: nib.Nifti1Image) -> tuple[float, float, float]:
    """Voxel size in mm along the three spatial axes."""
    return tuple(float(z) for z in image.header.get_zooms()[:3])  # type: ignore[return-value]


def _unreadable(exc: Exception) -> str:
    return f"{TRUNCATED}: its voxel data cannot be read ({type(exc).__name__}: {_one_line(exc)})"


def read_label(
    case: DecathlonCase, num_classes: int | None, image_shape: tuple[int, ...] | None
) -> np.ndarray:
    """Read and check the label of a case.

    The shape is checked only when ``image_shape`` is given, the values only when
    ``num_classes`` is.

    Returns:
        uint8 (or int64 beyond 255 classes) ``[D, H, W]`` label in RAS+ order.

    Raises:
        DatasetError: unreadable (e.g. truncated) file, shape different from the image,
            non-integer values or values not among the ``dataset.json`` labels (the message
            gives the values as stored, negative ones included).
    """
    nifti = load_nifti(case.label)
    shape = spatial_shape(nifti, case.label)
    if image_shape is not None and shape != tuple(image_shape):
        raise DatasetError(
            case.label,
            f"label shape {shape} differs from image shape {tuple(image_shape)} of {case.image}",
        )
    try:
        data = np.asanyarray(nifti.dataobj).reshape(shape)
    except Exception as exc:  # gzip, zlib, mmap and nibabel errors of a cut file
        raise DatasetError(case.label, _unreadable(exc)) from exc
    integral = np.issubdtype(data.dtype, np.integer)
    if not integral and (not np.all(np.isfinite(data)) or np.any(np.mod(data, 1) != 0)):
        raise DatasetError(case.label, "label has non-integer values")
    if num_classes is None:
        return data.astype(np.int64)
    if data.size and (data.min() < 0 or data.max() >= num_classes):
        bad = [int(v) for v in np.unique(data) if v < 0 or v >= num_classes]
        raise DatasetError(
            case.label,
            f"label value(s) {bad[:10]} not in dataset.json labels (0..{num_classes - 1})",
        )
    return data.astype(np.uint8 if num_classes <= 256 else np.int64)


def read_image(nifti: nib.Nifti1Image, path: Path, shape: tuple[int, int, int]) -> np.ndarray:
    """The float32 ``[D, H, W]`` voxels of an opened image, checked to be finite.

    Raises:
        DatasetError: the data cannot be read (e.g. a truncated file) or holds NaN or infinite
            voxels (the trainer would fail on them with a non-finite loss).
    """
    try:
        image = np.asarray(nifti.get_fdata(dtype=np.float32)).reshape(shape)
    except Exception as exc:  # gzip, zlib, mmap and nibabel errors of a cut file
        raise DatasetError(path, _unreadable(exc)) from exc
    problem = checks.finite_problem(image)
    if problem is not None:
        raise DatasetError(path, problem)
    return image


def read_case(case: DecathlonCase, num_classes: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Read one checked case.

    Returns:
        ``(image float32 [D, H, W], label [D, H, W], spacing (mm, 3))``.

    Raises:
        DatasetError: naming the file at fault: unreadable, smaller than
            ``checks.MIN_CASE_SIZE`` along a side, non-finite image voxels, bad label.
    """
    nifti = load_nifti(case.image)
    shape = spatial_shape(nifti, case.image)
    problem = checks.size_problem(shape)
    if problem is not None:
        raise DatasetError(case.image, problem)
    label = read_label(case, num_classes, shape)
    image = read_image(nifti, case.image, shape)
    return image, label, spacing_of(nifti)
