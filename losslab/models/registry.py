"""The network registry: names, size presets, and ``ModelSpec``, the plain-data record of a model.

Example:
    >>> import json
    >>> from losslab.models import ModelSpec, get_model, list_models
    >>> list_models()
    ['lambda3d', 'unet3d', 'unetr']
    >>> net = get_model("unet3d", num_classes=3, patch_size=(16, 16, 16))
    >>> spec = ModelSpec.create("lambda3d", num_classes=3, patch_size=(16, 16, 16))
    >>> ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    True
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from losslab.models._common import NetworkConfig
from losslab.models.lambda3d import Lambda3DConfig
from losslab.models.unet3d import UNet3DConfig
from losslab.models.unetr import UNETRConfig

__all__ = [
    "ModelSpec",
    "count_parameters",
    "get_model",
    "list_models",
    "list_sizes",
    "model_revision",
]

_NETWORKS: dict[str, type[NetworkConfig]] = {
    cls.name: cls for cls in (UNet3DConfig, UNETRConfig, Lambda3DConfig)
}
# The papers' spellings (Willoughby and Voiculescu 2024, Table 1: "3DUNet", "UNETR", "Lambda3D"; Ou et al.: LambdaUNet).
_ALIASES: dict[str, str] = {"3dunet": "unet3d", "3d_unet": "unet3d", "lambdaunet": "lambda3d"}


def list_models() -> list[str]:
    """Return the registered network names, sorted (aliases excluded)."""
    return sorted(_NETWORKS)


def list_sizes(name: str) -> list[str]:
    """Return the size presets of network ``name`` (e.g. ``["base", "tiny"]``)."""
    return sorted(_config_class(name).SIZES)


def model_revision(name: str) -> int:
    """The architecture revision of network ``name`` (1 until its architecture changed)."""
    return _config_class(name).REVISION


def _canonical_name(name: str) -> str:
    key = str(name).lower()
    key = _ALIASES.get(key, key)
    if key not in _NETWORKS:
        raise ValueError(
            f"unknown model {name!r}; valid models: {', '.join(list_models())} "
            f"(aliases: {', '.join(sorted(_ALIASES))})"
        )
    return key


def _config_class(name: str) -> type[NetworkConfig]:
    return _NETWORKS[_canonical_name(name)]


@dataclass(frozen=True)
class ModelSpec:
    """A network as plain data: enough to log it (e.g. to MLflow as JSON) and rebuild it.

    ``params`` starts from the ``size`` preset; the given entries override it, and after
    construction it holds every constructor parameter in JSON form (tuples as lists), so
    ``ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec``. A spec is validated
    when created: an unknown name, size or parameter, or a patch size the network cannot take,
    raises a ``ValueError`` that names the value.

    Attributes:
        name: registry name (``"unet3d"``, ``"unetr"``, ``"lambda3d"``; aliases are resolved).
        size: the preset the parameters started from (``"tiny"`` or ``"base"``).
        params: all constructor parameters, including ``in_channels``, ``num_classes`` and
            ``patch_size``; see ``UNet3DConfig``, ``UNETRConfig``, ``Lambda3DConfig``.
    """

    name: str
    size: str
    params: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        name = _canonical_name(self.name)
        cls = _NETWORKS[name]
        if self.size not in cls.SIZES:
            raise ValueError(
                f"unknown size {self.size!r} for model {name!r}; valid sizes: "
                f"{', '.join(sorted(cls.SIZES))}"
            )
        if not isinstance(self.params, Mapping):
            raise ValueError(f"params must be a mapping, got {self.params!r}")
        valid = cls.parameter_names()
        unknown = sorted(set(self.params) - set(valid))
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {', '.join(map(repr, unknown))} for model {name!r}; "
                f"valid parameters: {', '.join(valid)}"
            )
        missing = sorted({"num_classes", "patch_size"} - set(self.params))
        if missing:
            raise ValueError(f"ModelSpec for {name!r} needs the parameter(s) {', '.join(missing)}")
        config = cls(**{**cls.SIZES[self.size], **self.params})
        try:
            params = json.loads(json.dumps(asdict(config)))
        except TypeError as err:
            raise ValueError(f"parameters of {name!r} must be JSON-serialisable: {err}") from None
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "params", params)

    @classmethod
    def create(
        cls,
        name: str,
        *,
        in_channels: int = 1,
        num_classes: int,
        patch_size: tuple[int, int, int],
        size: str = "tiny",
        **overrides: Any,
    ) -> ModelSpec:
        """Resolve a network: the ``size`` preset, then ``overrides``; see :func:`get_model`."""
        params = {"in_channels": in_channels, "num_classes": num_classes, "patch_size": patch_size}
        return cls(name, size, {**params, **overrides})

    @property
    def config(self) -> NetworkConfig:
        """The typed configuration (``UNet3DConfig``, ``UNETRConfig`` or ``Lambda3DConfig``)."""
        return _NETWORKS[self.name](**self.params)

    def build(self) -> nn.Module:
        """Build the network: ``[B, in_channels, *patch_size] -> [B, num_classes, *patch_size]``."""
        return self.config.build()

    def to_dict(self) -> dict[str, Any]:
        """``{"name", "size", "params"}``, JSON-serialisable."""
        return {"name": self.name, "size": self.size, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """Inverse of :meth:`to_dict`; unknown or missing keys raise ``ValueError``."""
        keys = set(data)
        if keys != {"name", "size", "params"}:
            raise ValueError(
                f"a ModelSpec dict needs exactly the keys name, size, params; got {sorted(keys)}"
            )
        return cls(data["name"], data["size"], dict(data["params"]))


def get_model(
    name: str,
    *,
    in_channels: int = 1,
    num_classes: int,
    patch_size: tuple[int, int, int],
    size: str = "tiny",
    **overrides: Any,
) -> nn.Module:
    """Build a registered segmentation network.

    Args:
        name: ``"unet3d"``, ``"unetr"`` or ``"lambda3d"`` (see :func:`list_models`).
        in_channels: image channels.
        num_classes: classes, background included; the network outputs one logit per class.
        patch_size: training patch ``(D, H, W)``; each network has its divisibility rule
            (unet3d: prod(strides), unetr: 16, lambda3d: embed_patch).
        size: ``"tiny"`` (CPU tests) or ``"base"`` (the papers' networks).
        **overrides: any parameter of the network's configuration class.

    Returns:
        A module mapping ``[B, in_channels, *patch_size]`` to logits
        ``[B, num_classes, *patch_size]``.

    Raises:
        ValueError: unknown name, size or parameter, or an invalid value (e.g. the patch size).
    """
    spec = ModelSpec.create(
        name,
        in_channels=in_channels,
        num_classes=num_classes,
        patch_size=patch_size,
        size=size,
        **overrides,
    )
    return spec.build()


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
