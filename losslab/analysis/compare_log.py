"""A comparison's record in MLflow, on its parent run (``losslab.role=compare``).

- the description (``mlflow.note.content``): the comparison's tables in markdown, the rank
  correlation and what it means;
- metrics: per entrant its final objective (``final_objective/<entrant>``, with ``_low`` and
  ``_high``), and Spearman's rho with its interval (``spearman_rho``, ``_low``, ``_high``);
- artifacts: ``comparison.json`` (every interval and test), one CSV per table under
  ``tables/``, and the per-class results as an MLflow table (``final_per_class.json``) so the
  artifact view compares them.

The parent run ends FINISHED here.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict

from losslab.analysis.compare_tables import TableData, rank_line, to_markdown
from losslab.analysis.comparison import Comparison
from losslab.analysis.comparison_stats import ComparisonStats

__all__ = ["comparison_json", "log_comparison"]


def _clean(value: object) -> object:
    """JSON without NaN (``null``)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def comparison_json(comparison: Comparison, stats: ComparisonStats) -> dict:
    """Everything computed, as plain data."""
    return _clean(
        {
            "study": comparison.config.name,
            "fidelity": {"name": comparison.fidelity_name, **comparison.fidelity.to_dict()},
            "seeds": comparison.seeds,
            "test_cases": stats.cases,
            "reference": comparison.reference,
            "classes": list(comparison.dataset.class_names),
            "entrants": [
                {
                    "label": e.label,
                    "role": e.role,
                    "candidate": json.loads(e.candidate.to_json()),
                    "overrides": e.overrides,
                    "search_value": e.search_value,
                    "run_ids": e.run_ids,
                    "status": [r.status for r in e.results],
                    "objective": asdict(stats.objective[e.label]),
                    "foreground": {m: asdict(v) for m, v in stats.foreground[e.label].items()},
                    "classes": {
                        m: [asdict(v) for v in values]
                        for m, values in stats.classes[e.label].items()
                    },
                }
                for e in comparison.entrants
            ],
            "pairs": [
                {
                    "candidate": p.candidate,
                    "baseline": p.baseline,
                    "objective": asdict(p.objective),
                    "objective_mark": p.objective_mark,
                    "adjusted_p": p.adjusted,
                    "marks": p.marks,
                }
                for p in stats.pairs.values()
            ],
            "rank_correlation": asdict(stats.rank),
        }
    )


def _csv(data: TableData) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(data.headers)
    writer.writerows(data.rows)
    return out.getvalue()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:60]


def _metric_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", label)


def log_comparison(
    comparison: Comparison, stats: ComparisonStats, tables: Sequence[TableData]
) -> None:
    """Log the comparison on its parent run and end the run (see the module docstring)."""
    tracker, parent = comparison.tracker, comparison.parent_run_id
    if tracker is None or parent is None:
        return
    markdown = "\n\n".join(
        [f"# Comparison of study {comparison.config.name}", rank_line(stats)]
        + [to_markdown(t) for t in tables]
    )
    tracker.set_tags(parent, {"mlflow.note.content": markdown[:60000]})
    metrics = {}
    for entrant in comparison.entrants:
        interval = stats.objective[entrant.label]
        name = _metric_name(entrant.label)
        for suffix, value in (
            ("", interval.mean),
            ("_low", interval.low),
            ("_high", interval.high),
        ):
            if not math.isnan(value):
                metrics[f"final_objective{suffix}/{name}"] = value
    rank = stats.rank
    for key, value in (("rho", rank.rho), ("rho_low", rank.low), ("rho_high", rank.high)):
        if not math.isnan(value):
            metrics[f"spearman_{key}"] = value
    tracker.log_metrics(parent, metrics)
    tracker.log_text(
        parent, json.dumps(comparison_json(comparison, stats), indent=2), "comparison.json"
    )
    for i, data in enumerate(tables):
        tracker.log_text(parent, _csv(data), f"tables/{i:02d}_{_slug(data.title)}.csv")
    per_class = _per_class_rows(comparison, stats)
    if hasattr(tracker, "log_table"):
        tracker.log_table(parent, per_class, "final_per_class.json")
    tracker.end_run(parent, "FINISHED")


def _per_class_rows(comparison: Comparison, stats: ComparisonStats) -> dict[str, list]:
    columns: dict[str, list] = {"entrant": [], "class": [], "metric": []}
    columns.update({"mean": [], "low": [], "high": [], "n": []})
    names = comparison.dataset.class_names
    for entrant in comparison.entrants:
        for metric, values in stats.classes[entrant.label].items():
            for c in range(1, len(names)):
                interval = values[c]
                columns["entrant"].append(entrant.label)
                columns["class"].append(names[c])
                columns["metric"].append(metric)
                for key in ("mean", "low", "high"):
                    value = getattr(interval, key)
                    columns[key].append(None if math.isnan(value) else value)
                columns["n"].append(interval.n)
    return columns
