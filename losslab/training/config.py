"""``TrainConfig``: everything the inner-loop trainer needs besides the candidate and the data.

Plain data (scikit-learn style): the fields are the parameters, so they go to MLflow as they are
and a run can be rebuilt from them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from losslab.typed import check_field_types, from_mapping

if TYPE_CHECKING:
    import torch

__all__ = ["TrainConfig", "resolve_device"]

_OPTIMIZERS = ("adamw", "adam", "sgd")
_SAMPLING = ("balanced", "uniform")
_VALIDATION = ("sliding_window", "patches")


@dataclass(frozen=True)
class TrainConfig:
    """How one evaluation trains.

    Attributes:
        model: registry name (``unet3d``, ``unetr``, ``lambda3d``).
        model_size: ``tiny`` for CPU tests, ``base`` like the papers.
        epochs: number of epochs; the class schedules update at the end of each.
        steps_per_epoch: fixed optimiser steps per epoch (nnU-Net style), whatever the data size.
        batch_size: patches per step.
        patch_size: training patch and sliding-window size.
        optimizer: ``adamw``, ``adam`` or ``sgd`` (momentum 0.99, nesterov, as nnU-Net).
        lr: learning rate; weight_decay: decoupled for AdamW, L2 for the others.
        amp: mixed precision (bf16 where the device supports it; ignored on the CPU).
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
        seed: seeds model init, sampling and augmentation.
        deterministic: deterministic algorithms only (cuDNN autotuning off, cuDNN and torch in
            deterministic mode, ``CUBLAS_WORKSPACE_CONFIG`` set on CUDA when unset), so that a
            GPU run can be repeated with the same seed, at some cost in speed; an operation
            without a deterministic implementation fails the run naming it. ``False``: cuDNN autotuning on CUDA, fastest.
            Either way the process-wide flags are restored when the run ends
            (see ``losslab.training.determinism``).
        val_every: validate every this many epochs (the last epoch always validates).
        validation: how the per-epoch validation Dice (which the class schedules and pruners
            read) is measured: ``sliding_window`` (every validation case in full, the default,
            so that earlier results and cache keys stay as they were) or ``patches`` (a fixed
            set of crops centred on each class of each validation case, chosen once from the
            seed; much cheaper on real volumes, see ``losslab.training.validation``). The test
            metrics always come from the full sliding window.
        val_patches_per_class: crops per class (background included) and validation case in
            ``patches`` mode.
        sampling: ``balanced`` (crop centred on a class drawn uniformly) or ``uniform``.
        augment: random flips and intensity scale/shift on the device.
        grad_clip: max gradient norm (also how non-finite gradients are detected).
        divergence_factor: the run fails when an epoch's mean loss exceeds this many times the
            first epoch's (in absolute value).
        sw_batch_size, sw_overlap: sliding-window inference settings.
        hd95: compute HD95 on the test split (the slowest metric).
    """

    model: str = "unet3d"
    model_size: str = "tiny"
    epochs: int = 3
    steps_per_epoch: int = 20
    batch_size: int = 2
    patch_size: tuple[int, int, int] = (32, 32, 32)
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-5
    amp: bool = True
    device: str = "auto"
    seed: int = 0
    deterministic: bool = False
    val_every: int = 1
    validation: str = "sliding_window"
    val_patches_per_class: int = 2
    sampling: str = "balanced"
    augment: bool = True
    grad_clip: float = 12.0
    divergence_factor: float = 100.0
    sw_batch_size: int = 4
    sw_overlap: float = 0.25
    hd95: bool = True
    model_overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_field_types(self)
        object.__setattr__(self, "patch_size", tuple(int(s) for s in self.patch_size))
        checks = [
            (self.epochs >= 1, "epochs", "must be >= 1"),
            (self.steps_per_epoch >= 1, "steps_per_epoch", "must be >= 1"),
            (self.batch_size >= 1, "batch_size", "must be >= 1"),
            (
                len(self.patch_size) == 3 and min(self.patch_size) >= 1,
                "patch_size",
                "must be 3 positive ints",
            ),
            (self.lr > 0, "lr", "must be > 0"),
            (
                self.optimizer in _OPTIMIZERS,
                "optimizer",
                f"must be one of {', '.join(_OPTIMIZERS)}",
            ),
            (self.sampling in _SAMPLING, "sampling", f"must be one of {', '.join(_SAMPLING)}"),
            (self.val_every >= 1, "val_every", "must be >= 1"),
            (
                self.validation in _VALIDATION,
                "validation",
                f"must be one of {', '.join(_VALIDATION)}",
            ),
            (self.val_patches_per_class >= 1, "val_patches_per_class", "must be >= 1"),
            (0 <= self.sw_overlap < 1, "sw_overlap", "must be in [0, 1)"),
        ]
        for ok, name, why in checks:
            if not ok:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r} {why}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["patch_size"] = list(self.patch_size)
        return data

    def identity(self) -> dict[str, Any]:
        """What defines an evaluation's training, for cache keys and study fingerprints.

        Leaves out ``device`` (where a run goes does not change what is evaluated) and options
        added after studies were recorded while they hold their default (``deterministic``,
        ``validation`` with ``val_patches_per_class``, which only matters in ``patches`` mode),
        so the keys of earlier evaluations stay valid. Holds ``model_revision`` once the
        network's architecture has changed (an old evaluation of it is not this one's).
        """
        from losslab.models import model_revision

        data = self.to_dict()
        del data["device"]
        revision = model_revision(self.model)
        if revision != 1:
            data["model_revision"] = revision
        if not self.deterministic:
            del data["deterministic"]
        if self.validation == "sliding_window":
            del data["validation"], data["val_patches_per_class"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a YAML/JSON mapping; an unknown key is an error that names it."""
        return from_mapping(cls, data, "train config")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; an unavailable CUDA device is an error."""
    import torch  # here: reading a config (a study file's check) needs no torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' requested but CUDA is not available")
    return device
