"""The end of a study: its best candidates against the baselines, as tables and CSV."""

from __future__ import annotations

import math
import re

from rich.table import Table

from losslab.losses.learned_term import is_learned
from losslab.report import STAR_BELOW, class_table
from losslab.search.study import StudyOutcome

__all__ = ["best_table", "class_dice_table", "summary_rows"]


def _fmt(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"


def _row(name: str, role: str, value: float, result, candidate, run_id, objective) -> dict:
    usable = result is not None and result.ok
    return {
        "name": name,
        "role": role,
        "objective": value,
        "test_objective": objective.of_test(result) if usable else math.nan,
        "test_dice": result.foreground_mean("dice") if usable else math.nan,
        "class_dice": result.test_metrics.get("dice", []) if result is not None else [],
        "candidate": candidate,
        "run_id": run_id,
    }


def summary_rows(outcome: StudyOutcome) -> list[dict]:
    """One row per best trial (``config.top``) and per baseline, best objective first."""
    objective = outcome.config.objective
    rows = [
        _row(
            r.candidate.name,
            f"trial {r.number}",
            r.value,
            outcome.results.get(r.eval_key),
            r.candidate,
            r.run_id,
            objective,
        )
        for r in outcome.best(outcome.config.top)
    ]
    for evaluation in outcome.baselines:
        result = evaluation.result
        value = evaluation.value if result.status != "failed" else math.nan
        rows.append(
            _row(
                evaluation.candidate.name,
                "baseline",
                value,
                result,
                evaluation.candidate,
                evaluation.run_id,
                objective,
            )
        )
    return sorted(
        rows, key=lambda r: -r["objective"] if not math.isnan(r["objective"]) else math.inf
    )


def _short_numbers(text: str) -> str:
    """``gamma=2.6096718162507537`` -> ``gamma=2.61`` (display only; MLflow keeps all digits)."""
    return re.sub(r"\d+\.\d{4,}(?:e[-+]?\d+)?", lambda m: f"{float(m.group()):.3g}", text)


def _term_text(term: object) -> str:
    """A term as printed, a learned network's 64-digit hash cut to 12 (display only)."""
    text = str(term)
    return f"{text[:20]}..." if is_learned(term) else text


def _describe_candidate(row: dict) -> str:
    candidate = row["candidate"]
    parts = [_short_numbers(" + ".join(map(_term_text, candidate.terms)))]
    if len(candidate.terms) > 1:
        parts.append("alpha=" + ",".join(f"{a:.3g}" for a in candidate.term_weights))
    for spec in (candidate.class_schedule, candidate.term_schedule):
        if spec.name not in ("uniform", "static") or spec.params:
            params = ", ".join(
                f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in spec.params
            )
            parts.append(f"{spec.name}({params})")
    if candidate.param_schedule is not None:
        parts.append(_describe_param_schedule(candidate))
    return "; ".join(parts)


def _describe_param_schedule(candidate) -> str:
    """``beta 0.7 -> 0.875 (3 changes)``: where a replayed parameter trajectory starts and ends."""
    values = dict(candidate.param_schedule.params).get("values", {})
    start = candidate.loss_parameters()
    moves = []
    for address, series in values.items():
        before = [start.get(address, series[0]), *series[:-1]]
        changes = sum(a != b for a, b in zip(before, series))
        if changes:
            plural = "s" * (changes != 1)
            moves.append(
                f"{address} {before[0]:.3g} -> {series[-1]:.3g} ({changes} change{plural})"
            )
        else:
            moves.append(f"{address} {before[0]:.3g} (unchanged)")
    return f"{candidate.param_schedule.name}: " + ", ".join(moves)


def best_table(outcome: StudyOutcome) -> Table:
    """Best trials against the baselines: validation objective (what the search maximised),
    the same objective and mean Dice on the test split, and what each candidate is."""
    objective = outcome.config.objective
    counts = outcome.counts()
    table = Table(
        title=(
            f"Study {outcome.config.name}: best {min(outcome.config.top, counts['ok'])} of "
            f"{len(outcome.records)} "
            f"trials ({counts['ok']} ok, {counts['pruned']} pruned, {counts['failed']} failed) "
            f"vs baselines; objective: {objective.describe()}"
        )
    )
    for header, justify in (
        ("candidate", "left"),
        ("from", "left"),
        ("val objective", "right"),
        ("test objective", "right"),
        ("test mean Dice", "right"),
        ("definition", "left"),
    ):
        table.add_column(header, justify=justify)
    for row in summary_rows(outcome):
        style = "bold" if row["role"] != "baseline" else None
        table.add_row(
            row["name"],
            row["role"],
            _fmt(row["objective"]),
            _fmt(row["test_objective"]),
            _fmt(row["test_dice"]),
            _describe_candidate(row),
            style=style,
        )
    return table


def class_dice_table(outcome: StudyOutcome) -> Table | None:
    """Test Dice per class of the best trials and the baselines (Table 1 layout); the
    reference for the ``+`` marks is the first baseline."""
    rows = [r for r in summary_rows(outcome) if r["class_dice"]]
    if not rows:
        return None
    columns = {}
    for row in rows:
        label = row["name"] if row["role"] == "baseline" else f"{row['name']} (#{row['role'][6:]})"
        columns[label] = row["class_dice"]
    reference = next((label for label, r in zip(columns, rows) if r["role"] == "baseline"), None)
    shares = outcome.dataset.foreground_shares()
    title = f"Test Dice per class (reference: {reference or '-'}; * < {STAR_BELOW})"
    return class_table(title, outcome.dataset.class_names, shares, columns, reference)
