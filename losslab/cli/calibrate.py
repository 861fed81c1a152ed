"""``losslab calibrate STUDY.yaml``: how well each fidelity ranks candidates, before the budget.

Trains the study's baselines and a few candidates drawn from its space over a ladder of
fidelities and seeds (``losslab.analysis.calibrate_run``), then prints per fidelity the cost per
evaluation, the seed-to-seed spread, Spearman's and Kendall's correlation with the top fidelity
(intervals, exact p) and the share of candidate pairs separated
(``losslab.analysis.calibration``); recommends the cheapest fidelity whose Spearman's rho with the
top reaches the threshold and prints it as a ready ``fidelity:`` block, or says that none does.
The parent MLflow run holds the table, the recommendation and a plot of each candidate's rank
against fidelity.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from losslab.cli.support import add_study_store_options, use_lossnets

__all__ = ["fidelity_block", "rank_plot", "register", "run_calibrate"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="measure how well each fidelity ranks candidates, and recommend the cheapest",
        description=(
            "Train the study's baselines and a few candidates drawn from its space at a ladder "
            "of fidelities (halving epochs, steps or training cases below the study's final "
            "fidelity; the study's own fidelity is a rung too) over several seeds, and print "
            "per fidelity the cost per evaluation, the seed-to-seed spread, Spearman's and "
            "Kendall's rank correlation with the top fidelity and the share of candidate pairs "
            "it separates. Recommends the cheapest fidelity whose Spearman's rho with the top "
            "reaches --threshold. Evaluations go through the study's cache and MLflow."
        ),
    )
    parser.add_argument("study", help="study YAML file")
    parser.add_argument(
        "--minutes", type=float, default=30.0, help="wall-time cap (default: %(default)s)"
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds per rung (default: 3)")
    parser.add_argument(
        "--candidates",
        type=int,
        default=4,
        help="candidates drawn from the space besides the baselines (default: 4)",
    )
    parser.add_argument("--rungs", type=int, default=3, help="fidelities below and at the top")
    parser.add_argument(
        "--vary",
        default="epochs",
        choices=["epochs", "steps_per_epoch", "train_cases"],
        help="what the cheaper rungs halve (default: %(default)s)",
    )
    parser.add_argument(
        "--top",
        help="the top fidelity: a name under 'final:', 'search' or 'full' (default: the first "
        "under 'final:', else 'full')",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.8,
        help="Spearman's rho with the top a recommended fidelity reaches (default: 0.8)",
    )
    add_study_store_options(parser)
    parser.add_argument("--no-progress", action="store_true", help="no line per evaluation")
    parser.set_defaults(func=run_calibrate)


def _line_hook(console: Any, label: str) -> Any:
    """A hook that prints one line when an evaluation ends."""
    from rich.markup import escape

    from losslab.training import Hook

    class _Line(Hook):
        population_safe = True

        def on_train_end(self, state: Any, result: Any) -> None:
            if result.status != "interrupted":
                what = f"{result.status}, {result.wall_time:.1f} s"
                console.print(f"  {escape(label)}: {what}", highlight=False)

    return _Line()


def _error(text: str) -> int:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[red]error:[/] {escape(text)}", highlight=False)
    return 2


def _check(args: argparse.Namespace) -> str | None:
    for name, least in (("seeds", 1), ("candidates", 0), ("rungs", 2)):
        if getattr(args, name) < least:
            return f"--{name} must be at least {least}, got {getattr(args, name)}"
    if not (args.minutes > 0 and math.isfinite(args.minutes)):
        return f"--minutes must be a positive number, got {args.minutes}"
    if not 0 < args.threshold <= 1:
        return f"--threshold must lie in (0, 1], got {args.threshold}"
    return None


def fidelity_block(fidelity: Any) -> str:
    """A ``fidelity:`` YAML block of the fields ``fidelity`` sets."""
    lines = ["fidelity:"]
    for key, value in fidelity.to_dict().items():
        if value is not None:
            lines.append(f"  {key}: {value}")
    return "\n".join(lines)


def rank_plot(report: Any) -> bytes | None:
    """PNG: each candidate's rank (1 = best) at each fidelity, cheapest left, top right."""
    from losslab.plots import figure_png, new_figure, plots_enabled

    if not plots_enabled() or not report.ranks.get(report.top):
        return None
    order = [r.fidelity for r in report.rows]
    fig = new_figure(6.5, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    for name in sorted(report.ranks[report.top], key=report.ranks[report.top].get):
        xs = [i for i, f in enumerate(order) if name in report.ranks[f]]
        ax.plot(xs, [report.ranks[order[i]][name] for i in xs], marker="o", label=name)
    ax.set_xticks(range(len(order)), order, fontsize=8)
    ax.invert_yaxis()
    ax.set_ylabel("rank (1 = best)")
    ax.set_title("candidates' rank against fidelity", fontsize=9)
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return figure_png(fig)


def _table(run: Any, report: Any):
    from rich.table import Table

    table = Table(title="calibration: rank agreement with the top fidelity")
    for column in (
        "fidelity",
        "setting",
        "CPU s/eval",
        "wall s/eval",
        "evals",
        "spread (sd)",
        "Spearman rho [95%] (p)",
        "Kendall tau [95%] (p)",
        "pairs separated",
    ):
        table.add_column(column)
    for rung, row in zip(run.rungs, report.rows):
        cpu = run.cpu.get(rung.name)
        wall = run.wall.get(rung.name)
        name = row.fidelity + (" (top)" if row.fidelity == report.top else "")
        if row.fidelity == report.recommended:
            name += " ★"
        table.add_row(
            name,
            rung.fidelity.describe(),
            f"{sum(cpu) / len(cpu):.1f}" if cpu else "-",
            f"{sum(wall) / len(wall):.1f}" if wall else "-",
            str(row.evaluations),
            "-" if math.isnan(row.spread) else f"{row.spread:.3f}",
            str(row.spearman),
            str(row.kendall),
            "-" if math.isnan(row.separated) else f"{row.separated:.0%}",
        )
    return table


def verdict(run: Any, report: Any) -> list[str]:
    """The recommendation lines (the ``fidelity:`` block, or why there is none)."""
    if report.recommended is not None:
        rung = next(r for r in run.rungs if r.name == report.recommended)
        rho = report.row(rung.name).spearman
        return [
            f"Recommended: {rung.name}, the cheapest fidelity whose Spearman's rho with "
            f"{report.top} reaches {report.threshold:g} ({rho}). Put in the study file:",
            fidelity_block(rung.fidelity),
        ]
    curve = ", ".join(
        f"{r.fidelity}: {'-' if math.isnan(r.spearman.rho) else f'{r.spearman.rho:.2f}'}"
        for r in report.rows
        if r.fidelity != report.top
    )
    return [
        f"No fidelity below {report.top} reaches Spearman's rho {report.threshold:g} with it "
        f"within the cap (measured: {curve}); search at {report.top}, add seeds or rungs, or "
        "raise --minutes."
    ]


def run_calibrate(args: argparse.Namespace) -> int:
    import dataclasses

    from rich.console import Console
    from rich.markup import escape

    from losslab.analysis.calibrate_run import draw_entries, ladder, run_calibration
    from losslab.analysis.calibration import analyse
    from losslab.config import ConfigError
    from losslab.search.study_config import load_study
    from losslab.tables import print_table

    problem = _check(args)
    if problem:
        return _error(problem)
    try:
        use_lossnets(args)
        config = load_study(args.study)
        if args.tracking_uri:
            config = dataclasses.replace(config, tracking_uri=args.tracking_uri)
        rungs = ladder(config, rungs=args.rungs, vary=args.vary, top=args.top)
        entries = draw_entries(config, args.candidates)
    except (ConfigError, ValueError, OSError) as exc:
        return _error(str(exc))
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(
        f"calibrate {escape(config.name)}: {len(entries)} candidates x {len(rungs)} fidelities "
        f"x {args.seeds} seeds, at most {args.minutes:g} minutes",
        highlight=False,
    )

    run = run_calibration(
        config,
        rungs=rungs,
        entries=entries,
        seeds=args.seeds,
        minutes=args.minutes,
        storage=args.storage,
        hooks=None if args.no_progress else (lambda label: [_line_hook(console, label)]),
    )
    report = analyse(run.observations, run.order, run.costs(), threshold=args.threshold)
    print_table(console, _table(run, report))
    lines = verdict(run, report)
    for line in lines:
        console.print(escape(line), highlight=False, soft_wrap=True)
    if run.skipped:
        console.print(f"{run.skipped} evaluation(s) left out by the {args.minutes:g}-minute cap.")
    _log(run, report, lines)
    console.print(
        f"{len(run.observations)} evaluations, {run.trained} trained now. MLflow parent run "
        f"{run.parent_run_id}; open it with: {run.tracker.ui_command()}",
        soft_wrap=True,
        highlight=False,
    )
    return 0


def _log(run: Any, report: Any, lines: list[str]) -> None:
    """The table, the recommendation and the rank plot on the parent run."""
    tracker, parent = run.tracker, run.parent_run_id
    for step, row in enumerate(report.rows):
        metrics = {
            "calibrate/spearman": row.spearman.rho,
            "calibrate/kendall": row.kendall.rho,
            "calibrate/spread": row.spread,
            "calibrate/separated": row.separated,
            "calibrate/cost": row.cost,
        }
        tracker.log_metrics(parent, {k: v for k, v in metrics.items() if math.isfinite(v)}, step)
    tracker.log_table(
        parent,
        {
            "fidelity": [r.fidelity for r in report.rows],
            "cost_s": [r.cost for r in report.rows],
            "spread": [r.spread for r in report.rows],
            "spearman": [str(r.spearman) for r in report.rows],
            "kendall": [str(r.kendall) for r in report.rows],
            "separated": [r.separated for r in report.rows],
        },
        "calibration.json",
    )
    tracker.log_text(parent, "\n".join(lines) + "\n", "recommendation.txt")
    tracker.set_tags(parent, {"calibrate.recommended": report.recommended or "none"})
    png = rank_plot(report)
    if png is not None:
        tracker.log_files(parent, {"plots/calibration_ranks.png": png})
