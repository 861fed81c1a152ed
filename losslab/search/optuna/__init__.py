"""The Optuna backend: TPE (or another sampler) over numeric parameters, with pruning."""

from __future__ import annotations

from losslab.search.optuna.backend import OptunaBackend

__all__ = ["OptunaBackend"]
