"""Label values of the files and the classes they become.

Without a mapping, the label values of the files are the classes: they must be the keys of the
``dataset.json`` labels, ``0..C-1``. The ``labels`` option of ``DataConfig`` maps other values
(``0, 2, 41, 1000``...) to contiguous classes ``0..K-1``, or a subset of them, or merges several
values into one class; values it does not list become background (class 0).

Two forms, not mixed:

- value -> class name, ``{0: background, 2: liver, 41: spleen}``: value 0 is class 0
  (background) wherever it is listed, the other values are classes ``1..K-1`` in the order
  given, named as given (names unique).
- value -> class index, ``{0: 0, 1: 1, 2: 1}``: value 0 maps to class 0, the indices used are
  exactly ``0..K-1`` and several values may share one (merged); each class is named after the
  ``dataset.json`` names of its values, joined with ``+``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from losslab.data.errors import DatasetError, DatasetProblem

LabelSpec = dict[int, str | int]
_INTEGER = re.compile(r"[+-]?\d+")
_SLAB_VOXELS = 1 << 22  # voxels per slab when counting or remapping, to bound temporaries
_LOOKUP_LIMIT = 1 << 16  # labels spanning fewer values are remapped through a lookup table


def _entry(key: object, value: object) -> str:
    return f"labels={{{key!r}: {value!r}}}"


def _pairs(raw: object) -> list[tuple[object, object]]:
    """The ``(key, value)`` entries of a mapping, a list of pairs, ``"0=bg,2=liver"`` text or
    the text of a YAML mapping (``"{0: bg, 2: liver}"``)."""
    if isinstance(raw, str) and raw.lstrip().startswith("{"):
        from losslab.strict_yaml import YamlError, yaml_value

        try:
            raw = yaml_value(raw)
        except YamlError as exc:
            raise ValueError(f"labels={raw!r} is not a YAML mapping ({exc})") from None
    if isinstance(raw, Mapping):
        return list(raw.items())
    if isinstance(raw, str):
        pairs = []
        for item in (part.strip() for part in raw.split(",")):
            key, sep, value = item.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise ValueError(f"labels={raw!r}: item {item!r} is not VALUE=NAME")
            value = value.strip()
            pairs.append((key.strip(), int(value) if _INTEGER.fullmatch(value) else value))
        return pairs
    if isinstance(raw, Sequence) and all(
        isinstance(p, Sequence) and not isinstance(p, str) and len(p) == 2 for p in raw
    ):
        return [(p[0], p[1]) for p in raw]
    raise ValueError(
        f"labels={raw!r} must map label values to class names or indices, e.g. "
        f"{{0: background, 2: liver}}"
    )


def _value(key: object, value: object) -> int:
    """A label value from a key (an integer, or text of one as JSON keys are)."""
    if isinstance(key, int | np.integer) and not isinstance(key, bool):
        return int(key)
    if isinstance(key, str) and _INTEGER.fullmatch(key.strip()):
        return int(key)
    raise ValueError(f"{_entry(key, value)}: key {key!r} is not an integer label value")


def parse_labels(raw: object) -> LabelSpec | None:
    """Check and normalise the ``labels`` option: integer keys, in the order given.

    Accepts a mapping, a list of ``[value, class]`` pairs (what ``DataConfig.as_dict`` writes,
    so that JSON with sorted keys keeps the order) or the text ``"0=background,2=liver"``.

    Raises:
        ValueError: starting ``labels=`` and naming the entry at fault.
    """
    if raw is None:
        return None
    spec: LabelSpec = {}
    for key, value in _pairs(raw):
        number = _value(key, value)
        if number in spec:
            raise ValueError(f"{_entry(key, value)}: label value {number} is listed twice")
        if isinstance(value, bool) or not isinstance(value, str | int | np.integer):
            raise ValueError(f"{_entry(key, value)}: must map to a class name or index")
        if isinstance(value, str) and not value.strip():
            raise ValueError(f"{_entry(key, value)}: the class name of {number} is empty")
        spec[number] = value if isinstance(value, str) else int(value)
    LabelMap.of(spec)  # checks the mapping as a whole
    return spec


@dataclass(frozen=True)
class LabelMap:
    """A checked ``labels`` option: which class each listed label value becomes.

    Attributes:
        values: the listed label values, in the order given.
        classes: the class of each value.
        names: the class names (index = class) of a value -> name mapping; None when the
            mapping gives indices (names then come from ``dataset.json``).
    """

    values: tuple[int, ...]
    classes: tuple[int, ...]
    names: tuple[str, ...] | None

    @classmethod
    def of(cls, spec: Mapping[int, str | int]) -> LabelMap:
        """Build from integer keys (as ``parse_labels`` returns); raises ``ValueError``."""
        text = f"labels={dict(spec)!r}"
        if 0 not in spec:
            raise ValueError(f"{text}: value 0 (background) must be listed")
        if len(spec) < 2:
            raise ValueError(f"{text}: list at least one class besides background (value 0)")
        kinds = {isinstance(v, str) for v in spec.values()}
        if len(kinds) > 1:
            raise ValueError(f"{text}: map every value to a class name or every one to an index")
        if kinds == {True}:
            return cls._named(spec)  # type: ignore[arg-type]
        return cls._indexed(spec, text)  # type: ignore[arg-type]

    @classmethod
    def _named(cls, spec: Mapping[int, str]) -> LabelMap:
        order = [0, *(v for v in spec if v != 0)]
        seen: dict[str, int] = {}
        for value in order:
            name = spec[value]
            if name in seen:
                raise ValueError(
                    f"{_entry(value, name)}: class name {name!r} is already given to value "
                    f"{seen[name]}; map both values to one class index to merge them"
                )
            seen[name] = value
        return cls(tuple(order), tuple(range(len(order))), tuple(spec[v] for v in order))

    @classmethod
    def _indexed(cls, spec: Mapping[int, int], text: str) -> LabelMap:
        for value, index in spec.items():
            if index < 0:
                raise ValueError(f"{_entry(value, index)}: class index must be 0 or more")
        if spec[0] != 0:
            raise ValueError(f"{_entry(0, spec[0])}: value 0 is background and maps to class 0")
        used = set(spec.values())
        missing = sorted(set(range(max(used) + 1)) - used)
        if missing:
            raise ValueError(
                f"{text}: class indices must be 0..{max(used)}; none maps to {missing}"
            )
        if len(used) < 2:
            raise ValueError(f"{text}: map at least one value to class 1")
        return cls(tuple(spec), tuple(spec.values()), None)

    @property
    def num_classes(self) -> int:
        """Number of classes ``K``, background included."""
        return max(self.classes) + 1

    def class_names(self, dataset_names: Mapping[int, str]) -> tuple[str, ...]:
        """Class names: as given, else the ``dataset.json`` names of each class's values."""
        if self.names is not None:
            return self.names
        names = []
        for k in range(self.num_classes):
            values = [v for v, c in zip(self.values, self.classes) if c == k]
            names.append("+".join(dataset_names.get(v, f"value_{v}") for v in values))
        return tuple(names)

    def identity(self) -> list:
        """What defines the mapping, order included (for cache keys and fingerprints)."""
        return [list(self.values), list(self.classes), list(self.names or [])]

    def apply(self, data: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
        """Map an integer ``[D, H, W]`` label to classes.

        Returns:
            ``(classes, dropped)``: uint8 (int64 beyond 256 classes) classes, and the voxels of
            each value found but not listed (they became background).
        """
        dtype = np.uint8 if self.num_classes <= 256 else np.int64
        listed = dict(zip(self.values, self.classes))
        if data.size == 0:
            return np.zeros(data.shape, dtype), {}
        low, high = int(data.min()), int(data.max())
        if high - low < _LOOKUP_LIMIT:  # a lookup table, slab by slab
            table = np.zeros(high - low + 1, dtype)
            for value, k in listed.items():
                if low <= value <= high:
                    table[value - low] = k
            counts = np.zeros(len(table), np.int64)
            mapped = np.empty(data.shape, dtype)
            for part in _slabs(data.shape):
                index = data[part] if low == 0 else np.subtract(data[part], low, dtype=np.int64)
                mapped[part] = table[index]
                counts += np.bincount(index.reshape(-1), minlength=len(table))
            found = {int(v) + low: int(counts[v]) for v in np.flatnonzero(counts)}
        else:
            uniques, inverse, numbers = np.unique(data, return_inverse=True, return_counts=True)
            table = np.array([listed.get(int(v), 0) for v in uniques], dtype)
            mapped = table[inverse].reshape(data.shape)
            found = {int(v): int(n) for v, n in zip(uniques, numbers)}
        return mapped, {v: n for v, n in found.items() if v not in listed}


def _slabs(shape: tuple[int, ...]) -> list[slice]:
    step = max(1, _SLAB_VOXELS // max(1, int(np.prod(shape[1:]))))
    return [slice(i, i + step) for i in range(0, shape[0], step)]


def value_counts(label: np.ndarray, minlength: int) -> np.ndarray:
    """int64 voxels per value of a non-negative integer label, counted slab by slab (a whole
    volume at once would make an 8-byte copy of every voxel)."""
    counts = np.zeros(minlength, dtype=np.int64)
    if label.ndim == 0 or label.size == 0:
        return counts
    for part in _slabs(label.shape):
        found = np.bincount(label[part].reshape(-1), minlength=minlength)
        counts[: len(found)] += found[:minlength]
    return counts


def check_values(data: np.ndarray, num_classes: int, path: Path) -> None:
    """Raise ``DatasetError`` naming the values of a label that are not ``0..num_classes-1``."""
    if data.size and (data.min() < 0 or data.max() >= num_classes):
        bad = [int(v) for v in np.unique(data) if v < 0 or v >= num_classes]
        raise DatasetError(
            path, f"label value(s) {bad[:10]} not in dataset.json labels (0..{num_classes - 1})"
        )


def dropped_warning(
    dropped: Sequence[Mapping[int, int]], manifest_path: Path, most: int = 10
) -> DatasetProblem | None:
    """The warning listing the values of the labels that ``labels`` does not list.

    Args:
        dropped: per case, voxels of each value not listed (``LabelMap.apply``).
        manifest_path: ``dataset.json``, which the warning names.
    """
    voxels: dict[int, int] = {}
    cases: dict[int, int] = {}
    for case in dropped:
        for value, count in case.items():
            voxels[value] = voxels.get(value, 0) + int(count)
            cases[value] = cases.get(value, 0) + 1
    if not voxels:
        return None
    shown = [f"{v} ({voxels[v]:,} voxels in {cases[v]} case(s))" for v in sorted(voxels)[:most]]
    more = f" and {len(voxels) - most} more" if len(voxels) > most else ""
    return DatasetProblem(
        manifest_path,
        f"label value(s) {', '.join(shown)}{more} are not listed in the data option 'labels' "
        f"and became background",
    )
