"""The end of a study: its best candidates against the baselines, as console tables, as the
markdown description of the study's MLflow parent run, and warnings about schedules that never
changed a weight."""

from __future__ import annotations

import math

from rich.table import Table

from losslab.report import class_table, split_title, unchanged_schedule_warnings
from losslab.search.study_outcome import StudyOutcome

__all__ = [
    "best_table",
    "class_dice_table",
    "markdown_summary",
    "schedule_warnings",
    "summary_rows",
]


def _fmt(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"


def _row(
    name: str, role: str, value: float, result, candidate, run_id, objective, overrides=None
) -> dict:
    usable = result is not None and result.ok
    return {
        "overrides": dict(overrides or {}),
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
            r.overrides,
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
                evaluation.overrides,
            )
        )
    return sorted(
        rows, key=lambda r: -r["objective"] if not math.isnan(r["objective"]) else math.inf
    )


def _describe_candidate(row: dict) -> str:
    """What a row's candidate is (``Candidate.describe``: the same text as its run's name)."""
    return row["candidate"].describe(row["overrides"])


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
    """Test Dice per class of the best trials and the baselines (Table 1 layout), one seed
    each, so with no marks (intervals and marks come with ``losslab compare``)."""
    rows = [r for r in summary_rows(outcome) if r["class_dice"]]
    if not rows:
        return None
    columns = {}
    for row in rows:
        label = row["name"] if row["role"] == "baseline" else f"{row['name']} (#{row['role'][6:]})"
        columns[label] = row["class_dice"]
    shares = outcome.dataset.foreground_shares()
    title = split_title("Test Dice per class", outcome.dataset, seeds=1)
    return class_table(title, outcome.dataset.class_names, shares, columns)


def schedule_warnings(outcome: StudyOutcome) -> list[str]:
    """A line per class schedule that never changed a weight in the study's ok evaluations
    (``report.unchanged_schedule_warnings``)."""
    items = [(e.candidate.name, e.candidate, e.result) for e in outcome.baselines]
    for record in outcome.records:
        result = outcome.results.get(record.eval_key)
        if record.candidate is not None and result is not None:
            items.append((f"trial {record.number}", record.candidate, result))
    return unchanged_schedule_warnings(items)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_summary(outcome: StudyOutcome, limit: int = 5000) -> str:
    """The study in markdown (the MLflow parent run's description): name, backend, objective,
    fidelity, data and budget used, then the best trials and the baselines as a table, the
    best marked ★ (definitions shortened, then rows dropped from the end, to stay within
    ``limit`` characters: the tag's limit in :meth:`Tracker.set_tags`)."""
    config, dataset = outcome.config, outcome.dataset
    counts = outcome.counts()
    splits = " / ".join(f"{k} {len(v)}" for k, v in dataset.splits.items())
    budget = f"{len(outcome.records)} trials"
    if config.budget.trials is not None:
        budget += f" of {config.budget.trials}"
    if config.budget.minutes is not None:
        budget += f" ({config.budget.minutes:g} minutes per invocation)"
    head = [
        f"**Study {_cell(config.name)}**: backend `{config.backend}`, objective "
        f"{_cell(config.objective.describe())} on the validation split",
        "",
        f"- fidelity: {_cell(config.fidelity.describe())}",
        f"- data: {_cell(dataset.name)}, {len(dataset.case_ids)} cases ({splits})",
        f"- budget: {budget}: {counts['ok']} ok, {counts['pruned']} pruned, "
        f"{counts['failed']} failed, {counts['cached']} from the cache",
        "",
        "| candidate | role | val objective | test objective | test mean Dice | definition |",
        "|---|---|--:|--:|--:|---|",
    ]
    best = outcome.best(1)
    best_run = best[0].run_id if best else None
    rows = []
    for row in summary_rows(outcome):
        mark = " ★" if row["role"] != "baseline" and row["run_id"] == best_run else ""
        cells = [
            _cell(row["name"]) + mark,
            row["role"],
            _fmt(row["objective"]),
            _fmt(row["test_objective"]),
            _fmt(row["test_dice"]),
            _cell(_describe_candidate(row)),
        ]
        rows.append(cells)
    for width in (None, 120, 60):
        for cells in rows:
            if width is not None and len(cells[5]) > width:
                cells[5] = cells[5][: width - 3] + "..."
        kept = list(rows)
        while kept and len("\n".join(head + ["| " + " | ".join(c) + " |" for c in kept])) > limit:
            kept.pop()
        if len(kept) == len(rows):
            break
    lines = head + ["| " + " | ".join(c) + " |" for c in kept]
    if len(kept) < len(rows):
        lines.append(f"\n({len(rows) - len(kept)} more rows in the study's console table)")
    return "\n".join(lines)[:limit]
