"""The latest ``losslab calibrate`` of a study, read back from MLflow for the report page.

``losslab calibrate`` records on its parent run (the one without a parent among the runs tagged
``losslab.study`` and ``losslab.role = calibrate``) the table ``calibration.json``, the recommendation
``recommendation.txt`` and the rank plot ``plots/calibration_ranks.png``. The report shows the
latest finished one (or the latest at all, said so, when none finished) beside the search.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CalibrationRecord", "latest_calibration"]

_COLUMNS = ("fidelity", "cost_s", "spread", "spearman", "kendall", "separated")


@dataclass(frozen=True)
class CalibrationRecord:
    """What one calibration recorded.

    Attributes:
        run_id: its MLflow parent run; status: that run's status (FINISHED, KILLED, ...).
        columns: column name -> values, as ``calibration.json`` holds them.
        recommendation: the printed recommendation lines.
        plot: the rank plot's PNG bytes, or ``None``.
        recommended: the tag ``calibrate.recommended`` (a fidelity name or ``none``).
    """

    run_id: str
    status: str
    columns: dict[str, list[Any]] = field(default_factory=dict)
    recommendation: str = ""
    plot: bytes | None = None
    recommended: str = ""

    def rows(self) -> list[list[Any]]:
        """One row per fidelity, in the columns of :data:`_COLUMNS` that were recorded."""
        names = [c for c in _COLUMNS if c in self.columns]
        count = len(self.columns.get("fidelity", []))
        return [[self.columns[c][i] for c in names] for i in range(count)]

    def headers(self) -> list[str]:
        return [c for c in _COLUMNS if c in self.columns]


def _columns(text: str | None) -> dict[str, list[Any]]:
    """``calibration.json`` as MLflow's ``log_table`` writes it (``columns`` + ``data``)."""
    if not text:
        return {}
    data = json.loads(text)
    if isinstance(data, dict) and "columns" in data and "data" in data:
        names = list(data["columns"])
        return {name: [row[i] for row in data["data"]] for i, name in enumerate(names)}
    return {str(k): list(v) for k, v in data.items()} if isinstance(data, dict) else {}


def latest_calibration(tracker: Any, study: str) -> CalibrationRecord | None:
    """The study's latest finished calibration in ``tracker``'s experiment (the latest of any
    status when none finished), or ``None`` when it was never calibrated."""
    tagged = tracker.runs_tagged({"losslab.study": study, "losslab.role": "calibrate"})
    runs = [r for r in tagged if "mlflow.parentRunId" not in r.tags]  # not its evaluations
    if not runs:
        return None
    finished = [r for r in runs if r.status == "FINISHED"]
    run = (finished or runs)[-1]
    text = tracker.read_artifact(run.run_id, "calibration.json")
    lines = tracker.read_artifact(run.run_id, "recommendation.txt")
    return CalibrationRecord(
        run_id=run.run_id,
        status=run.status,
        columns=_columns(text.decode() if text else None),
        recommendation=lines.decode().strip() if lines else "",
        plot=tracker.read_artifact(run.run_id, "plots/calibration_ranks.png"),
        recommended=run.tags.get("calibrate.recommended", ""),
    )
