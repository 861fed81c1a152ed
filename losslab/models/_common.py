"""Shared base of the network configurations: plain data that validates itself and builds a model.

Every network of the registry is described by a frozen, keyword-only dataclass deriving from
:class:`NetworkConfig`. Its fields are the constructor parameters (scikit-learn style: the
signature is the parameter list), ``__post_init__`` fails fast with a ``ValueError`` that names
the bad value, and :meth:`NetworkConfig.build` returns the ``torch.nn.Module``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, fields
from numbers import Integral
from typing import Any, ClassVar

from torch import nn

__all__ = ["NetworkConfig", "as_bool", "as_int", "as_int_tuple"]


def as_bool(value: Any, what: str) -> bool:
    """Return ``value`` if it is a ``bool``, else raise a ``ValueError`` naming ``what``."""
    if not isinstance(value, bool):
        raise ValueError(f"{what} must be true or false, got {value!r}")
    return value


def as_int(value: Any, what: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an ``int`` or raise a ``ValueError`` naming ``what`` and the value."""
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def as_int_tuple(value: Any, what: str, *, length: int | None = None, minimum: int = 1) -> tuple:
    """Return ``value`` (a list or tuple, e.g. read back from JSON) as a tuple of ``int``."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"{what} must be a sequence of integers, got {value!r}")
    if length is not None and len(value) != length:
        raise ValueError(f"{what} must have {length} entries, got {value!r}")
    if len(value) == 0:
        raise ValueError(f"{what} must not be empty, got {value!r}")
    try:
        return tuple(as_int(v, what, minimum=minimum) for v in value)
    except ValueError:
        raise ValueError(f"{what} must hold integers >= {minimum}, got {value!r}") from None


@dataclass(frozen=True, kw_only=True)
class NetworkConfig(ABC):
    """Parameters of one segmentation network; input ``[B, in_channels, *patch_size]``.

    Subclasses add their architecture fields, a ``SIZES`` table of presets and implement
    :meth:`patch_rule` and :meth:`build`.

    Attributes:
        in_channels: image channels of the input.
        num_classes: output channels, one logit per class (background included).
        patch_size: spatial size ``(D, H, W)`` of the training patch; the networks with a
            patch embedding (UNETR, Lambda3D) are built for this size only.
    """

    name: ClassVar[str]
    SIZES: ClassVar[dict[str, dict[str, Any]]]
    # Bumped when the architecture built from the same parameters changes, so that cached
    # evaluations of the old network are not served for the new one (``model_revision``).
    REVISION: ClassVar[int] = 1

    in_channels: int = 1
    num_classes: int
    patch_size: tuple[int, int, int]

    def __post_init__(self) -> None:
        self._set("in_channels", as_int(self.in_channels, "in_channels"))
        self._set("num_classes", as_int(self.num_classes, "num_classes"))
        self._set("patch_size", as_int_tuple(self.patch_size, "patch_size", length=3))
        multiple, min_cells, reason = self.patch_rule()
        cells = [s // multiple for s in self.patch_size]
        if any(s % multiple for s in self.patch_size) or math.prod(cells) < min_cells:
            grid = (
                f" and the grid patch_size/{multiple} more than one cell" if min_cells > 1 else ""
            )
            raise ValueError(
                f"patch_size {self.patch_size} is not valid for {self.name!r}: every dimension "
                f"must be a positive multiple of {multiple} ({reason}){grid}; valid sizes are "
                f"e.g. {self.example_patch_sizes()}"
            )

    def _set(self, field_name: str, value: Any) -> None:
        """Normalise a field of the frozen dataclass (lists from JSON become tuples)."""
        object.__setattr__(self, field_name, value)

    @abstractmethod
    def patch_rule(self) -> tuple[int, int, str]:
        """Return ``(multiple, min_cells, reason)``: each patch dimension must be a multiple of
        ``multiple`` and the grid ``patch_size / multiple`` must hold at least ``min_cells``
        cells (1 or 2)."""

    @abstractmethod
    def build(self) -> nn.Module:
        """Build the network: ``[B, in_channels, D, H, W] -> logits [B, num_classes, D, H, W]``."""

    def example_patch_sizes(self) -> str:
        """A few valid patch sizes, for error messages."""
        multiple, min_cells, _ = self.patch_rule()
        side = multiple * (2 if min_cells > 1 else 1)
        sizes = [(side, side, side), (2 * side,) * 3, (side, 2 * side, 2 * side)]
        return ", ".join(str(s) for s in sizes)

    @classmethod
    def parameter_names(cls) -> list[str]:
        """Names of all constructor parameters (the valid keys of a ``ModelSpec``)."""
        return [f.name for f in fields(cls)]
