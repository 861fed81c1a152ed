"""The process-wide torch flags a run sets (cuDNN autotuning, deterministic algorithms), and
their restoration once the run is over.

``torch.backends.cudnn.benchmark``, ``torch.backends.cudnn.deterministic``,
``torch.use_deterministic_algorithms`` and the ``CUBLAS_WORKSPACE_CONFIG`` environment variable
belong to the whole process, so a run that changed them and left them changed would alter every
later run (or the user's own code) in the same process. :meth:`TorchFlags.save` records them
before a run and :meth:`TorchFlags.restore` puts them back, whatever ended the run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

__all__ = ["CUBLAS_WORKSPACE_CONFIG", "TorchFlags", "configure_determinism"]

#: The value set when ``CUBLAS_WORKSPACE_CONFIG`` is unset (one of the two that CUDA documents
#: for reproducible cuBLAS results; it costs about 24 MiB of GPU memory).
CUBLAS_WORKSPACE_CONFIG = ":4096:8"
_CUBLAS_ENV = "CUBLAS_WORKSPACE_CONFIG"


@dataclass(frozen=True)
class TorchFlags:
    """A snapshot of the process-wide flags a run may change."""

    cudnn_benchmark: bool
    cudnn_deterministic: bool
    deterministic_algorithms: bool
    warn_only: bool
    cublas_workspace_config: str | None

    @classmethod
    def save(cls) -> TorchFlags:
        """The current values."""
        return cls(
            cudnn_benchmark=bool(torch.backends.cudnn.benchmark),
            cudnn_deterministic=bool(torch.backends.cudnn.deterministic),
            deterministic_algorithms=torch.are_deterministic_algorithms_enabled(),
            warn_only=torch.is_deterministic_algorithms_warn_only_enabled(),
            cublas_workspace_config=os.environ.get(_CUBLAS_ENV),
        )

    def restore(self) -> None:
        """Set every flag back to this snapshot (an unset environment variable is unset again)."""
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        torch.backends.cudnn.deterministic = self.cudnn_deterministic
        torch.use_deterministic_algorithms(self.deterministic_algorithms, warn_only=self.warn_only)
        if self.cublas_workspace_config is None:
            os.environ.pop(_CUBLAS_ENV, None)
        else:
            os.environ[_CUBLAS_ENV] = self.cublas_workspace_config


def configure_determinism(deterministic: bool, device: torch.device) -> None:
    """Set the flags of a run from its config alone (whatever the process had before).

    ``deterministic=True``: ``torch.use_deterministic_algorithms(True)`` in strict mode (choice:
    an operation without a deterministic implementation raises, so the run fails with a reason
    that names it, rather than warning and recording a run as deterministic that is not),
    ``cudnn.deterministic = True``, ``cudnn.benchmark = False``, and on CUDA
    ``CUBLAS_WORKSPACE_CONFIG`` is set to :data:`CUBLAS_WORKSPACE_CONFIG` when unset (a value
    already set is kept; cuBLAS may read it only at its first use in the process, so set it
    before any CUDA work to be sure).

    ``deterministic=False``: deterministic algorithms off, ``cudnn.deterministic = False`` and
    ``cudnn.benchmark`` on for CUDA (fastest convolutions; results may differ between runs).

    Callers save :class:`TorchFlags` first and restore them after the run.
    """
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic and device.type == "cuda"
    if deterministic and device.type == "cuda" and _CUBLAS_ENV not in os.environ:
        os.environ[_CUBLAS_ENV] = CUBLAS_WORKSPACE_CONFIG
    torch.use_deterministic_algorithms(deterministic)
