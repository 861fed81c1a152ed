"""The end of a study: its best candidates against the baselines, as console tables, as the
markdown description of the study's MLflow parent run, and warnings about schedules that never
changed a weight."""

from __future__ import annotations

import math

from rich.markup import escape
from rich.table import Table

from losslab.console import class_table, split_title, unchanged_schedule_warnings
from losslab.search.ladder import root_of
from losslab.search.study_outcome import StudyOutcome
from losslab.search.study_timing import plural

__all__ = [
    "best_table",
    "class_dice_table",
    "markdown_summary",
    "schedule_warnings",
    "summary_rows",
    "verdict_line",
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
    """One row per best trial (``config.top``) and per baseline, best objective first. On a
    fidelity ladder the rows say their rung, the baselines come at every rung a shown trial
    is at, and higher rungs come first (a value is read against its own rung's)."""
    objective, ladder = outcome.config.objective, not outcome.config.ladder.plain
    best = outcome.best(outcome.config.top)
    rows = []
    for r in best:
        row = _row(
            r.candidate.name,
            f"trial {r.number}",
            r.value,
            outcome.results.get(r.eval_key),
            r.candidate,
            r.run_id,
            objective,
            r.overrides,
        )
        where = _where(row["role"], r.rung, ladder)
        label = f"{row['name']} (#{r.number})"
        if ladder and root_of(r) != r.number:  # a promotion or race seed: named by its proposal
            where = f"trial {root_of(r)}, rung {r.rung} (#{r.number})"
            label = f"{row['name']} (#{root_of(r)} at rung {r.rung})"
        rows.append({**row, "rung": r.rung, "where": where, "label": label})
    for rung in sorted({r.rung for r in best} | {0}, reverse=True):
        baselines = outcome.rung_baselines.get((rung, 0))
        if baselines is None:
            baselines = outcome.baselines if rung == 0 else []
        for evaluation in baselines:
            result = evaluation.result
            value = evaluation.value if result.status != "failed" else math.nan
            row = _row(
                evaluation.candidate.name,
                "baseline",
                value,
                result,
                evaluation.candidate,
                evaluation.run_id,
                objective,
                evaluation.overrides,
            )
            where = _where("baseline", rung, ladder)
            label = row["name"] + (f" (rung {rung})" if ladder else "")
            rows.append({**row, "rung": rung, "where": where, "label": label})
    return sorted(
        rows,
        key=lambda r: (
            -r["rung"],
            -r["objective"] if not math.isnan(r["objective"]) else math.inf,
        ),
    )


def _where(role: str, rung: int, ladder: bool) -> str:
    """A row's "from" cell: ``trial 4`` or ``baseline``, with its rung on a ladder."""
    return f"{role}, rung {rung}" if ladder else role


def best_run(outcome: StudyOutcome) -> str | None:
    """The MLflow run of the study's best: the best trial's, or the best baseline's when it
    beats every trial (``StudyOutcome.beaten_by``)."""
    beaten_by = outcome.beaten_by()
    if beaten_by is not None:
        return beaten_by.run_id
    best = outcome.best(1)
    return best[0].run_id if best else None


def _describe_candidate(row: dict) -> str:
    """What a row's candidate is (``Candidate.describe``: the same text as its run's name)."""
    return row["candidate"].describe(row["overrides"])


def table_title(outcome: StudyOutcome) -> str:
    """``Study quickstart: best 3 of 12 trials (9 ok, 2 pruned, 1 failed) vs baselines``."""
    counts = outcome.counts()
    shown = min(outcome.config.top, len(outcome.best()))
    head = "no trial finished ok" if not shown else f"best {shown}"
    return (
        f"Study {outcome.config.name}: {head} of {plural(len(outcome.records), 'trial')} "
        f"({counts['ok']} ok, {counts['pruned']} pruned, {counts['failed']} failed) vs "
        f"baselines; objective: {outcome.config.objective.describe()}"
    )


def verdict_line(outcome: StudyOutcome, markup: bool = True) -> str | None:
    """One sentence on what the study found at its fidelity: the best trial beats every
    baseline, or which baseline beats it (then nothing calls the trial best). ``None`` without
    a finished trial or baseline."""
    verdict = outcome.verdict
    if verdict is not None and verdict.outcome in ("better", "worse", "no difference"):
        text = f"Verdict: {verdict.sentence}" + (f"; {verdict.classes}" if verdict.classes else "")
        return escape(text) if markup else text
    best, baseline = outcome.best(1), outcome.best_baseline()
    if not best or baseline is None:
        return None
    trial = best[0]
    name = trial.candidate.name if trial.candidate is not None else "?"
    what = f"the best trial (#{trial.number} {name}, val objective {trial.value:.3f})"
    if outcome.beaten_by() is not None:
        text = (
            f"Not better than the baselines yet: {what} is beaten by baseline "
            f"{baseline.candidate.name} ({baseline.value:.3f}), so no trial is called best. "
            "Rerun to continue the study (more trials), or lengthen its fidelity."
        )
        return f"[yellow]{escape(text)}[/]" if markup else text
    text = (
        f"{what[0].upper()}{what[1:]} beats every baseline (the best, {baseline.candidate.name}: "
        f"{baseline.value:.3f}) at one seed; losslab compare tells whether it holds over seeds."
    )
    return escape(text) if markup else text


def best_table(outcome: StudyOutcome) -> Table:
    """Best trials against the baselines: validation objective (what the search maximised),
    the same objective and mean Dice on the test split, and what each candidate is. The row
    of the study's best (a trial, or the baseline that beats every trial) is marked ★."""
    table = Table(title=table_title(outcome))
    for header, justify in (
        ("candidate", "left"),
        ("from", "left"),
        ("val objective", "right"),
        ("test objective", "right"),
        ("test mean Dice", "right"),
        ("definition", "left"),
    ):
        table.add_column(header, justify=justify)
    winner = best_run(outcome)
    for row in summary_rows(outcome):
        style = "bold" if row["role"] != "baseline" else None
        name = row["name"] + (" ★" if winner and row["run_id"] == winner else "")
        table.add_row(
            name,
            row["where"],
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
        label = row["label"]
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
    fidelity, data and budget used, what the study found (``verdict_line``), then the best
    trials and the baselines as a table, the study's best marked ★ (a baseline when it beats
    every trial) (definitions shortened, then rows dropped from the end, to stay within
    ``limit`` characters: the tag's limit in :meth:`Tracker.set_tags`)."""
    config, dataset = outcome.config, outcome.dataset
    counts = outcome.counts()
    splits = " / ".join(f"{k} {len(v)}" for k, v in dataset.splits.items())
    budget = plural(len(outcome.records), "trial")
    if config.budget.trials is not None:
        budget += f" of {config.budget.trials}"
    if config.budget.minutes is not None:
        budget += f" ({config.budget.minutes:g} minutes of trials per invocation)"
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
    verdict = verdict_line(outcome, markup=False)
    if verdict:
        head[-2:-2] = [verdict, ""]
    winner = best_run(outcome)
    rows = []
    for row in summary_rows(outcome):
        mark = " ★" if winner and row["run_id"] == winner else ""
        cells = [
            _cell(row["name"]) + mark,
            row["where"],
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
