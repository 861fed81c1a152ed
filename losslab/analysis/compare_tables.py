"""The tables of ``losslab compare``, as data that prints to the terminal (rich), to the HTML
report and to markdown (the MLflow parent run's description).

- **Summary**: one row per entrant: the search's objective, the final objective and test mean
  Dice with 95% intervals, and how many classes are significantly better / worse than the
  reference baseline.
- **Table 1** of Willoughby and Voiculescu 2024 (classes in rows with their voxel share, entrants in columns, the
  foreground mean first), one per metric (DSC, SEN, PRC, HD95 as in Li et al. 2021), each cell the
  mean over (seed, case) with its 95% interval (the legend says which bootstrap) and a ▲ / ▼
  where the entrant is significantly better / worse than the reference (Wilcoxon signed-rank
  over (seed, case) pairs, Holm across classes, alpha 0.05), baselines included.
- **Pairs**: every pair tested (each candidate against each baseline, and by default the
  baselines against each other): the difference of the objective with its interval and p, and
  the classes better / worse.

Entrants that are the same evaluations are one column, named ``dice_ce = trial-004``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rich.markup import escape
from rich.table import Table

from losslab.analysis.comparison import Comparison
from losslab.analysis.comparison_stats import METRICS, ComparisonStats
from losslab.stats import BETTER, WORSE, Interval, describe_rank_correlation

_BOOTSTRAP_TEXT = {
    "hierarchical": "hierarchical bootstrap: seeds, then cases within seeds",
    "flat": "bootstrap over (seed, case) values as if independent",
}

__all__ = ["TableData", "comparison_tables", "rank_line", "to_markdown", "to_rich"]


@dataclass
class TableData:
    """A table as text: ``classes`` per cell (``better``, ``worse``, ``best``, ``muted``)."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    classes: list[list[str]] = field(default_factory=list)
    note: str = ""
    links: list[list[str]] = field(default_factory=list)


def _cell_class(mark: str) -> str:
    return {BETTER: "better", WORSE: "worse"}.get(mark, "")


def _digits(metric: str) -> int:
    return 1 if metric == "hd95" else 3


def _interval(value: Interval, digits: int = 3) -> str:
    return value.format(digits) if value.n else "-"


def _value(value: float, digits: int = 3) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def _split_text(comparison: Comparison, stats: ComparisonStats) -> str:
    seeds = len(comparison.seeds)
    return (
        f"test split, {stats.cases} case{'s' * (stats.cases != 1)} x {seeds} "
        f"seed{'s' * (seeds != 1)}; fidelity {comparison.fidelity_name} "
        f"({comparison.fidelity.describe()})"
    )


def _legend(comparison: Comparison, stats: ComparisonStats) -> str:
    interval = f"Mean [95% interval, {_BOOTSTRAP_TEXT.get(stats.bootstrap, stats.bootstrap)}]."
    if comparison.reference is None:
        return f"{interval} No baseline to compare with: no significance marks."
    return (
        f"{interval} {BETTER} / {WORSE}: significantly better / worse than "
        f"{comparison.reference} (Wilcoxon signed-rank over (seed, case) pairs, Holm-corrected "
        "across classes, alpha 0.05)."
    )


def power_note(comparison: Comparison, stats: ComparisonStats) -> str:
    """Why no class can be marked, when the pairs are too few: the smallest two-sided exact
    Wilcoxon p of n pairs is 2 / 2**n, and Holm multiplies the smallest of m by m."""
    if comparison.reference is None:
        return ""
    pairs = len(comparison.seeds) * stats.cases
    classes = comparison.dataset.num_classes - 1
    smallest = 2.0 / 2**pairs if pairs else 1.0
    if pairs and smallest * classes < 0.05:
        return ""
    return (
        f" With {pairs} (seed, case) pairs a class's smallest possible p is {smallest:.2g}, "
        f"which Holm's correction over {classes} classes lifts to "
        f"{min(1.0, smallest * classes):.2g}: no class can be marked at this size; add seeds "
        "or test cases."
    )


def _against(stats: ComparisonStats, label: str, reference: str | None):
    """The pair of ``label`` against the reference, or ``None`` (itself, or not tested)."""
    if reference is None or label == reference:
        return None
    return stats.pair(label, reference)


def summary_table(comparison: Comparison, stats: ComparisonStats) -> TableData:
    reference = comparison.reference
    objective = comparison.config.objective.describe()
    headers = ["entrant", "role", f"search val {objective}", f"final {objective}"]
    headers += ["test mean Dice", f"classes {BETTER}/{WORSE} vs {reference or '-'}", "seeds ok"]
    headers.append("definition")
    best = max(
        (e.label for e in comparison.entrants if stats.objective[e.label].n),
        key=lambda label: stats.objective[label].mean,
        default=None,
    )
    rows, classes, links = [], [], []
    for entrant in comparison.entrants:
        pair = _against(stats, entrant.label, reference)
        versus = "-" if pair is None else f"{pair.count(BETTER)}/{pair.count(WORSE)}"
        fg = stats.foreground[entrant.label].get("dice")
        rows.append(
            [
                entrant.display,
                entrant.role,
                _value(entrant.search_value),
                _interval(stats.objective[entrant.label]),
                _interval(fg) if fg is not None else "-",
                versus,
                f"{len(entrant.ok)}/{len(entrant.results)}",
                entrant.candidate.describe(entrant.overrides),
            ]
        )
        classes.append(["best" if entrant.label == best else ""] * len(headers))
        links.append([""] * len(headers))
    return TableData(
        f"Final comparison ({_split_text(comparison, stats)})",
        headers,
        rows,
        classes,
        note=_legend(comparison, stats) + " The best final objective is in bold.",
        links=links,
    )


def class_table(comparison: Comparison, stats: ComparisonStats, metric: str) -> TableData:
    """Table 1's layout for one metric."""
    label = dict(METRICS)[metric]
    digits = _digits(metric)
    names = comparison.dataset.class_names
    shares = comparison.dataset.foreground_shares()
    reference = comparison.reference
    headers = ["class", "share", *(e.display for e in comparison.entrants)]
    rows = [["mean (foreground)", ""]]
    classes = [["", ""]]
    for entrant in comparison.entrants:
        rows[0].append(_interval(stats.foreground[entrant.label][metric], digits))
        classes[0].append("")
    for c in range(1, len(names)):
        share = shares[c - 1] if c - 1 < len(shares) else math.nan
        row = [names[c], "-" if math.isnan(share) else f"{100 * share:.2f}%"]
        row_classes = ["", ""]
        for entrant in comparison.entrants:
            cell = _interval(stats.classes[entrant.label][metric][c], digits)
            pair = _against(stats, entrant.label, reference)
            mark = pair.marks[metric][c] if pair is not None else ""
            row.append(f"{cell} {mark}".rstrip())
            row_classes.append(_cell_class(mark))
        rows.append(row)
        classes.append(row_classes)
    lower = " (lower is better)" if metric == "hd95" else ""
    return TableData(
        f"Test {label} per class{lower} ({_split_text(comparison, stats)})",
        headers,
        rows,
        classes,
        note=_legend(comparison, stats)
        + " Share: the class's share of foreground voxels."
        + power_note(comparison, stats),
    )


def pairs_table(comparison: Comparison, stats: ComparisonStats) -> TableData | None:
    if not stats.pairs:
        return None
    objective = comparison.config.objective.describe()
    headers = ["entrant", "against", f"difference in {objective}", "p", "DSC classes ▲/▼"]
    rows, classes = [], []
    for pair in stats.pairs.values():
        diff = pair.objective.difference
        rows.append(
            [
                pair.candidate,
                pair.baseline,
                f"{diff.format(3)} {pair.objective_mark}".rstrip() if diff.n else "-",
                _value(pair.objective.p, 3),
                f"{pair.count(BETTER)}/{pair.count(WORSE)}",
            ]
        )
        classes.append(["", "", _cell_class(pair.objective_mark), "", ""])
    names = {e.label: e.display for e in comparison.entrants}
    for row in rows:
        row[0], row[1] = names.get(row[0], row[0]), names.get(row[1], row[1])
    interval = _BOOTSTRAP_TEXT.get(stats.bootstrap, stats.bootstrap)
    return TableData(
        f"Entrants against each other, paired over (seed, case) ({_split_text(comparison, stats)})",
        headers,
        rows,
        classes,
        note=(
            f"Difference: entrant minus the other of the {objective} of each test case, mean "
            f"[95% interval, {interval}]; p: Wilcoxon signed-rank, two-sided (not corrected "
            "across pairs)."
        ),
    )


def comparison_tables(comparison: Comparison, stats: ComparisonStats) -> list[TableData]:
    """The summary, Table 1 per metric, and the pairs."""
    tables = [summary_table(comparison, stats)]
    tables += [class_table(comparison, stats, m) for m in stats.metrics]
    pairs = pairs_table(comparison, stats)
    if pairs is not None:
        tables.append(pairs)
    return tables


def rank_line(stats: ComparisonStats) -> str:
    """Spearman's rho between the search's and the final objective, what it means, and
    Kendall's tau beside it."""
    over = "over the entrants with both objectives"
    if stats.rank_rung:
        over += f" at rung {stats.rank_rung} of the ladder"
    if stats.rank_left_out:
        over += f" ({stats.rank_left_out} valued at a lower rung left out)"
    line = f"Search against final ranking, {over}: " + describe_rank_correlation(stats.rank)
    if stats.kendall is not None and stats.kendall.n >= 3:
        line += f" Kendall's tau = {stats.kendall}."
    return line


_STYLE = {"better": "green", "worse": "red", "best": "bold", "muted": "dim"}


def to_rich(data: TableData) -> Table:
    table = Table(title=data.title, caption=data.note or None)
    for i, header in enumerate(data.headers):
        table.add_column(header, justify="left" if i == 0 else "right", overflow="fold")
    for r, row in enumerate(data.rows):
        styles = data.classes[r] if r < len(data.classes) else []
        cells = []
        for c, text in enumerate(row):
            style = _STYLE.get(styles[c] if c < len(styles) else "", "")
            cells.append(f"[{style}]{escape(text)}[/]" if style else escape(text))
        table.add_row(*cells)
    return table


def to_markdown(data: TableData) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [f"**{data.title}**", "", "| " + " | ".join(map(cell, data.headers)) + " |"]
    lines.append("|" + "|".join("---" for _ in data.headers) + "|")
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in data.rows]
    if data.note:
        lines += ["", data.note]
    return "\n".join(lines)
