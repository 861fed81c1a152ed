"""The objective a search found, used where users train: a torch loss module
(:class:`ExportedLoss`), a small Python module for a MONAI training loop and an nnU-Net v2
trainer (``losslab export``).

The names below are imported on first use (``losslab._lazy``), so that the command line can
register ``losslab export`` without importing torch.
"""

from __future__ import annotations

from losslab._lazy import lazy_exports

_EXPORTS = {
    "deep_supervision_weights": "losslab.export.deep_supervision",
    "downsample_target": "losslab.export.deep_supervision",
    "ExportedLoss": "losslab.export.module",
    "load_loss": "losslab.export.module",
    "needs_frequencies": "losslab.export.module",
    "ExportSource": "losslab.export.source",
    "resolve_source": "losslab.export.source",
    "write_monai": "losslab.export.writers",
    "write_nnunet": "losslab.export.writers",
}

__all__ = [
    "ExportSource",
    "ExportedLoss",
    "deep_supervision_weights",
    "downsample_target",
    "load_loss",
    "needs_frequencies",
    "resolve_source",
    "write_monai",
    "write_nnunet",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
