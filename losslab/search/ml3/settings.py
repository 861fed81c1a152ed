"""The ``ml3:`` section of a study file and the ML3 part of its space, validated before anything
runs.

::

    backend: ml3
    space:
      target: loss              # ML3 learns the loss; the rest of each candidate is fixed:
      class_schedule: uniform   # one option each, no ranges (default uniform / static)
    ml3:
      networks: 1               # loss networks meta-trained, each from its own seed
      group: auto               # networks meta-trained at once as one batched group (auto:
                                # 1 on the CPU, up to 8 on CUDA, halved when out of memory);
                                # the same networks up to float rounding, so not in the digest
      outer_steps: 30           # meta-training steps of each network (Adam on its weights)
      checkpoints: 1            # proposals per network: its weights after 1/n, 2/n ... n/n of
                                # the outer steps (3: after 1/3, 2/3 and all of them)
      base: dice                # the fixed base loss the learned part is added to (dice or ce)
      hidden: [16, 16]          # the loss network's hidden layers
      features: [p, y, logp]    # what it reads per voxel and class (add w, progress)
      activation: tanh          # smooth: tanh, softplus, sigmoid or silu
      model_size: tiny          # the inner segmentation network: the study's model, this size
      patch_size: null          # meta-training patches (default: the study's train patch)
      batch_size: null          # (default: the study's train batch size)
      inner_steps: 2            # K unrolled SGD steps per outer step
      inner_lr: 0.1
      outer_lr: 0.01
      engine: torch.func        # or higher (the original ML3 library)
      objective: null           # meta-objective; null: the study's (mean -> foreground mean,
                                # worst_k / min -> soft worst-k, mix -> their mix), or
                                # foreground | all | worst_k
      worst_k: null             # k of a worst-k meta-objective (null: the study's k; 1 for min)
      temperature: 0.05         # of the soft worst-k
      reset_every: 1            # a fresh segmentation network every this many outer steps
      max_consecutive_skips: 5  # non-finite meta-steps in a row that fail a meta-training

An error is a ``ValueError`` whose message starts with the key path (``ml3.inner_steps: ...``).
The ``MetaConfig`` keys are checked by :class:`~losslab.search.ml3.meta.MetaConfig` itself
(``higher`` is imported when it is the engine, so a missing library is an error here).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from losslab.candidate import ScheduleSpec
from losslab.limits import CEILINGS
from losslab.losses.learned import ACTIVATIONS, FEATURES, LossNetwork
from losslab.models import list_models, list_sizes
from losslab.search.ml3.meta import MetaConfig
from losslab.search.space import SearchSpace, SpaceError

__all__ = ["Ml3Settings", "check_settings", "fixed_schedules"]

BASES = ("dice", "ce")
_META_KEYS = tuple(f.name for f in fields(MetaConfig) if f.name != "first_order")
_OWN_KEYS = (
    "networks",
    "group",
    "outer_steps",
    "checkpoints",
    "base",
    "hidden",
    "features",
    "activation",
    "model_size",
    "patch_size",
    "batch_size",
)
_COUNTS = ("networks", "outer_steps", "checkpoints", "batch_size")  # ceilings: losslab.limits


@dataclass(frozen=True)
class Ml3Settings:
    """The validated ``ml3:`` section (see the module docstring).

    ``objective`` and ``worst_k`` are ``None`` when the meta-objective follows the study's
    objective; ``meta`` is the :class:`MetaConfig` of every meta-training. ``group`` is
    ``"auto"`` or the most networks meta-trained at once (:meth:`group_size`).
    """

    networks: int = 1
    group: int | str = "auto"
    outer_steps: int = 30
    checkpoints: int = 1
    base: str = "dice"
    hidden: tuple[int, ...] = (16, 16)
    features: tuple[str, ...] = ("p", "y", "logp")
    activation: str = "tanh"
    model_size: str = "tiny"
    patch_size: tuple[int, int, int] | None = None
    batch_size: int | None = None
    objective: str | None = None
    worst_k: int | None = None
    meta: MetaConfig = field(default_factory=MetaConfig)

    def checkpoint_steps(self) -> list[int]:
        """The outer steps after which a network is proposed: ``j * outer_steps // n``."""
        n = self.checkpoints
        return [(j + 1) * self.outer_steps // n for j in range(n)]

    def group_size(self, device_type: str) -> int:
        """The most networks meta-trained at once: ``group``, or for ``auto`` 1 on the CPU
        (where batching measured no gain) and 8 on CUDA; always 1 with ``engine: higher``."""
        if self.meta.engine != "torch.func":
            return 1
        if self.group == "auto":
            return 8 if device_type == "cuda" else 1
        return int(self.group)

    def new_network(self) -> LossNetwork:
        return LossNetwork(self.features, self.hidden, self.activation, self.base)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["meta"] = asdict(self.meta)
        return data

    def digest(self) -> str:
        """A hash of the settings (a network meta-trained under other settings is redone).

        ``group`` is left out: grouped or not, a network is the same function of its seed (up
        to float rounding), so a study resumed with another ``group`` keeps its networks.
        """
        data = self.to_dict()
        del data["group"]
        text = json.dumps(data, sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _int(value: Any, where: str, low: int = 1, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{where}: an integer >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{where}: {value} is more than {high:,}, the most allowed")
    return value


def _group(value: Any) -> int | str:
    if value == "auto" and isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"ml3.group: auto or an integer >= 1, got {value!r}")
    return _int(value, "ml3.group", 1, int(CEILINGS["ml3.group"].most))


def _ints(value: Any, where: str, length: int | None = None) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool) and length is not None:
        value = [value] * length  # patch_size: 24 -> [24, 24, 24]
    if (
        not isinstance(value, list)
        or not value
        or len(value) > 16
        or (length and len(value) != length)
    ):
        what = f"a list of {length} positive integers" if length else "a list of 1 to 16 sizes"
        raise ValueError(f"{where}: {what}, got {value!r}")
    most = int(CEILINGS[where].most)  # ml3.hidden, ml3.patch_size
    return tuple(_int(v, f"{where}[{i}]", 1, most) for i, v in enumerate(value))


def _choice(value: Any, where: str, options: tuple[str, ...] | list[str]) -> str:
    if value not in options:
        raise ValueError(f"{where}: one of {', '.join(options)}, got {value!r}")
    return str(value)


def check_settings(raw: Mapping[str, Any]) -> Ml3Settings:
    """The settings of an ``ml3:`` section; unknown keys and bad values are named."""
    known = (*_OWN_KEYS, *_META_KEYS)
    values: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"ml3.{key}"
        if key not in known:
            raise ValueError(f"{where}: unknown key; known keys: {', '.join(sorted(known))}")
        if key in ("objective", "worst_k") and value is None:
            continue  # follow the study's objective
        if key in ("patch_size", "batch_size") and value is None:
            continue  # the study's train setting
        if key == "group":
            values[key] = _group(value)
        elif key in _COUNTS:
            values[key] = _int(value, where, 1, int(CEILINGS[where].most))
        elif key == "base":
            values[key] = _choice(value, where, BASES)
        elif key == "activation":
            values[key] = _choice(value, where, tuple(ACTIVATIONS))
        elif key == "hidden":
            values[key] = _ints(value, where)
        elif key == "patch_size":
            values[key] = _ints(value, where, 3)
        elif key == "features":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{where}: a list of {', '.join(FEATURES)}, got {value!r}")
            values[key] = tuple(value)
        elif key == "model_size":
            sizes = sorted({s for m in list_models() for s in list_sizes(m)})
            values[key] = _choice(value, where, sizes)
        else:
            meta[key] = value
    if "objective" in meta:
        values["objective"] = meta["objective"]
    if "worst_k" in meta:
        values["worst_k"] = meta["worst_k"]
    config = MetaConfig.from_mapping(meta)  # its errors name ml3.<key>
    settings = Ml3Settings(**values, meta=config)
    if settings.checkpoints > settings.outer_steps:
        raise ValueError(
            f"ml3.checkpoints: {settings.checkpoints} snapshots of {settings.outer_steps} outer "
            "steps; at most one per outer step"
        )
    try:
        settings.new_network()
    except ValueError as exc:  # "lossnet.features: ..." -> ml3.features
        text = str(exc)
        raise ValueError("ml3." + text.removeprefix("lossnet.")) from None
    return settings


def fixed_schedules(space: SearchSpace) -> tuple[ScheduleSpec, ScheduleSpec]:
    """The class and term schedules of every ML3 candidate: the space's one option each.

    Raises:
        SpaceError: ``space.target`` is not ``loss``, the space has losses or searched train
            settings, or a schedule is a choice or has a searched range.
    """
    target = space.structure.get("target")
    if target != "loss":
        raise SpaceError(
            "space.target", f"the ml3 backend learns a loss: give target: loss, got {target!r}"
        )
    if space.losses:
        raise SpaceError(
            "space.loss", "the ml3 backend learns the loss; its fixed base is ml3.base"
        )
    if space.train:
        raise SpaceError("space.train", "the ml3 backend takes no searched train settings")
    built = []
    for where, options in (
        ("space.class_schedule", space.class_schedules),
        ("space.term_schedule", space.term_schedules),
    ):
        if len(options) != 1:
            raise SpaceError(where, f"the ml3 backend needs one fixed option, got {len(options)}")
        option = options[0]
        searched = [k for k, d in option.params.items() if d.searched]
        if searched:
            raise SpaceError(
                f"{where}.{option.label}.{searched[0]}",
                "the ml3 backend takes fixed schedules; a searched range belongs to the optuna "
                "backend",
            )
        built.append(option.build(lambda name, dist: dist.values()[0], where))
    return built[0], built[1]
