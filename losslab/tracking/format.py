"""How an evaluation reads in MLflow: run names, per-class tables, metric keys and series (no
MLflow here: see ``tracking.tracker``). How a candidate reads (one line, its flat parameters) is
``losslab.describe``.

- :func:`run_name`: an evaluation's MLflow run name from its origin (``trial 4`` ->
  ``trial-004 <description>``, ``baseline X`` -> ``baseline X``), the description from
  :func:`losslab.describe.describe_candidate`.
- :func:`per_class_table`: the final per-class test metrics as columns (``log_table``);
  :func:`table_json`: a table as the file MLflow's ``log_table`` writes.
- :func:`epoch_metrics`, :func:`summary_metrics`, :func:`series_by_step`: the metric keys of an
  epoch, of a finished run, and their series by step.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from losslab.describe import (
    describe_candidate,
)

if TYPE_CHECKING:
    from losslab.candidate import Candidate
    from losslab.training.result import EpochRecord, Result

__all__ = [
    "BEST_MARK",
    "RUN_NAME_LIMIT",
    "RunRecord",
    "epoch_metrics",
    "fit_name",
    "metric_key",
    "per_class_csv",
    "per_class_table",
    "run_name",
    "series_by_step",
    "summary_metrics",
    "table_json",
]

RUN_NAME_LIMIT = 250  # MLflow's longest run name
BEST_MARK = " ★ best"


# --- descriptions ---------------------------------------------------------------------------


def fit_name(name: str, limit: int = RUN_NAME_LIMIT) -> str:
    """``name`` cut to ``limit`` characters (MLflow's run-name limit)."""
    return name if len(name) <= limit else name[: limit - 3] + "..."


def run_name(origin: str, candidate: Candidate, overrides: Mapping[str, Any] | None = None) -> str:
    """The MLflow run name of an evaluation: ``trial 4`` -> ``trial-004 <description>``;
    ``baseline X`` (or any origin that names a baseline) -> itself; another origin ->
    ``<origin> <description>``; no origin (``losslab train``, a suite's run) -> the
    candidate's name, else its description."""
    origin = origin.strip()
    if not origin and candidate.name:
        return fit_name(candidate.name, RUN_NAME_LIMIT - len(BEST_MARK))
    found = re.fullmatch(r"trial (\d+)", origin)
    if found:
        origin = f"trial-{int(found.group(1)):03d}"
    elif "baseline" in origin.split():
        return fit_name(origin, RUN_NAME_LIMIT - len(BEST_MARK))
    description = describe_candidate(candidate, overrides)
    name = f"{origin} {description}" if origin else description
    return fit_name(name, RUN_NAME_LIMIT - len(BEST_MARK))


# --- params -----------------------------------------------------------------------------------


# --- per-class results ------------------------------------------------------------------------

_TABLE_METRICS = ("dice", "iou", "sensitivity", "precision", "hd95")


def _number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def per_class_table(result: Result, shares: Sequence[float] | None = None) -> dict[str, list]:
    """Columns of the final per-class test metrics: ``class``, ``voxel_share`` (of the
    foreground, when ``shares`` is given: one per class, NaN for the background), one column per
    metric (``dice``, ``iou``, ``sensitivity``, ``precision``, ``hd95``, then any other), and
    ``cases`` (test cases holding the class) when known. NaN (a class absent from the test split)
    is ``None``."""
    names = list(result.class_names)
    table: dict[str, list] = {"class": names}
    if shares is not None and len(shares) == len(names):
        table["voxel_share"] = [_number(v) for v in shares]
    metrics = [m for m in _TABLE_METRICS if m in result.test_metrics]
    metrics += [m for m in result.test_metrics if m not in metrics]
    for metric in metrics:
        table[metric] = [_number(v) for v in result.test_metrics[metric]]
    per_case = result.test_cases.get("dice") or next(iter(result.test_cases.values()), None)
    if per_case:
        table["cases"] = [
            sum(not math.isnan(case[c]) for case in per_case) for c in range(len(names))
        ]
    return table


def per_class_csv(result: Result) -> str:
    """One row per class, one column per test metric."""
    metrics = list(result.test_metrics)
    lines = ["class," + ",".join(metrics)]
    for c, name in enumerate(result.class_names):
        values = [result.test_metrics[m][c] for m in metrics]
        lines.append(name + "," + ",".join("" if math.isnan(v) else f"{v:.6g}" for v in values))
    return "\n".join(lines) + "\n"


# --- metrics ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRecord:
    """What a search of runs returns (plain data, no MLflow types)."""

    run_id: str
    name: str
    status: str
    start_time: int
    tags: dict[str, str]
    metrics: dict[str, float]
    params: dict[str, str]


def metric_key(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-./ " else "_" for ch in name)


def _foreground_mean(values: Sequence[float]) -> float | None:
    foreground = [v for v in values[1:] if not math.isnan(v)]
    return sum(foreground) / len(foreground) if foreground else None


def epoch_metrics(
    class_names: Sequence[str], record: EpochRecord, term_names: Sequence[str] | None = None
) -> dict[str, float]:
    """One epoch's curves: ``train_loss``, ``val_dice/<class>`` and their foreground mean,
    ``weight/<class>``, ``term_weight/<term>`` (``losslab.losses.naming.term_labels``, given as
    ``term_names``; ``term_weight/<k>`` without them)."""
    metrics: dict[str, float] = {"train_loss": record.train_loss}
    for c, name in enumerate(class_names):
        metrics[f"val_dice/{name}"] = record.val_dice[c]
        metrics[f"weight/{name}"] = record.class_weights[c]
    mean = _foreground_mean(record.val_dice)
    if mean is not None:
        metrics["val_dice/mean"] = mean
    for k, alpha in enumerate(record.term_weights):
        name = term_names[k] if term_names is not None and k < len(term_names) else str(k)
        metrics[f"term_weight/{name}"] = alpha
    return metrics


def summary_metrics(result: Result) -> dict[str, float]:
    """The single values of a finished run: ``wall_time``, ``steps`` and each test metric's
    foreground mean ``test_<metric>/mean`` (per class: :func:`per_class_table`)."""
    metrics: dict[str, float] = {"wall_time": result.wall_time, "steps": result.steps}
    for metric, values in result.test_metrics.items():
        mean = _foreground_mean(values)
        if mean is not None:
            metrics[f"test_{metric}/mean"] = mean
    return metrics


def series_by_step(result: Result) -> list[tuple[int, dict[str, float]]]:
    """``result.series`` (name -> ``[[step, value], ...]``) regrouped by step, in order."""
    by_step: dict[int, dict[str, float]] = {}
    for name, points in result.series.items():
        for step, value in points:
            by_step.setdefault(int(step), {})[name] = float(value)
    return sorted(by_step.items())


def table_json(data: Mapping[str, Sequence[Any]]) -> bytes:
    """A table (column -> values) as the JSON file ``MlflowClient.log_table`` writes (pandas'
    ``split`` layout, no index), for one upload with a run's other files."""
    import pandas as pd

    with warnings.catch_warnings():  # pandas deprecations
        warnings.simplefilter("ignore", DeprecationWarning)
        frame = pd.DataFrame({k: list(v) for k, v in data.items()})
        return frame.to_json(orient="split", index=False, date_format="iso").encode()
