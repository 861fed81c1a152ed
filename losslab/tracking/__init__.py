"""MLflow: the tracker, the trainer hook that logs an evaluation, the formats of runs, and the
local SQLite store. Only this package talks to MLflow.
"""

from __future__ import annotations

from losslab.tracking.hook import MLflowHook
from losslab.tracking.tracker import (
    DEFAULT_TRACKING_URI,
    RunRecord,
    Tracker,
    check_tracking_uri,
    resolve_tracking_uri,
)

__all__ = [
    "DEFAULT_TRACKING_URI",
    "MLflowHook",
    "RunRecord",
    "Tracker",
    "check_tracking_uri",
    "resolve_tracking_uri",
]
