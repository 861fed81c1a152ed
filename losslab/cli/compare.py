"""``losslab compare``, ``losslab report`` and ``losslab show``: a finished study, looked at again.

A study is named by its YAML file or by its name in a storage (``--storage``; default: the
journal beside the local MLflow store). Bad input (no such study, ``--seeds`` < 1, a study
whose trials all failed) is a message naming it and exit code 2, before anything is written.
A ``--top`` larger than a short study's finished trials takes those there are, with a notice
(``compare_plan.py``, which also says how many evaluations a comparison trains and about how
long they take here, before it starts).
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from collections.abc import Callable
from pathlib import Path

from losslab.cli.support import (
    add_study_store_options,
    check_output_file,
    use_lossnets,
)

__all__ = ["register"]


def _study_options(parser: argparse.ArgumentParser, many: bool = False) -> None:
    parser.add_argument(
        "study",
        nargs="+" if many else None,
        help="study YAML file, or a study's name in --storage",
    )
    add_study_store_options(parser)


def _compare_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--top",
        type=int,
        help="best trials per study to compare (default: the study file's 'top', 3)",
    )
    parser.add_argument(
        "--fidelity",
        help="a fidelity named under 'final:' in the study file, or 'search' (the study's own) "
        "or 'full' (the train: section); default: the first under 'final:', else 'full'",
    )
    parser.add_argument(
        "--reference",
        help="the baseline the per-class marks compare with (default: the first baseline)",
    )
    parser.add_argument(
        "--pairs",
        choices=("all", "candidates"),
        default="all",
        help="pairs to test: 'all' (every pair of entrants, baselines against each other too) "
        "or 'candidates' (each candidate against each baseline); default: %(default)s",
    )
    parser.add_argument(
        "--bootstrap",
        choices=("hierarchical", "flat"),
        default="hierarchical",
        help="intervals over (seed, case) values: 'hierarchical' resamples seeds, then cases "
        "within seeds; 'flat' resamples the values as if independent; default: %(default)s",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    compare = subparsers.add_parser(
        "compare",
        help="retrain a study's best candidates and its baselines over seeds; intervals, tests",
        description=(
            "Train the best candidates of finished studies and the study's baselines again at "
            "the final fidelity (the study file's 'final:'), over several seeds, and compare "
            "them per class: means with 95% hierarchical bootstrap intervals (seeds, then cases), "
            "Wilcoxon signed-rank tests of every pair of entrants over (seed, case) pairs, "
            "Holm-corrected across classes, and Spearman's and Kendall's rank correlations of "
            "the search's objective with the final one, with exact p-values at small n. "
            "Identical entrants (a trial equal to a baseline) count once. Nothing is trained "
            "twice: a stopped comparison continues when rerun."
        ),
    )
    _study_options(compare, many=True)
    _compare_options(compare)
    compare.add_argument(
        "--seeds", type=int, default=5, help="seeds per candidate and baseline (default: 5)"
    )
    compare.add_argument(
        "--minutes",
        type=float,
        help="stop after this many minutes (the evaluation then running is trained again by "
        "the next run, which continues the comparison; default: no limit)",
    )
    compare.add_argument(
        "--no-progress", action="store_true", help="no progress bars (MLflow's neither)"
    )
    compare.set_defaults(func=_prechecked(run_compare))

    report = subparsers.add_parser(
        "report",
        help="write one self-contained HTML page of a study and its comparison",
        description=(
            "Write an HTML page (plots embedded, no other files) with the study's settings, its "
            "best trials against the baselines, its plots, the comparison of 'losslab compare' "
            "(if it has run; nothing is trained here) and links to the MLflow runs."
        ),
    )
    _study_options(report)
    _compare_options(report)
    report.add_argument(
        "--out", default="report.html", help="the page to write (default: %(default)s)"
    )
    report.add_argument(
        "--mlflow-ui",
        metavar="URL",
        help="where the MLflow UI serves, for the links to runs (default: the tracking URI when "
        "it is a server, else http://127.0.0.1:5000, where `mlflow ui` serves by default; "
        "e.g. http://127.0.0.1:8080 for `mlflow ui --port 8080`)",
    )
    report.set_defaults(func=_prechecked(run_report))

    show = subparsers.add_parser(
        "show",
        help="print a study's final tables again, from its stores",
        description="Print the tables a study ended with, from its stores (nothing is trained).",
    )
    _study_options(show)
    show.set_defaults(func=_prechecked(run_show))


def _console():
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 200)


def _error(text: str) -> int:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[red]error:[/] {escape(text)}", highlight=False)
    return 2


def _check_counts(args: argparse.Namespace) -> None:
    """``--seeds`` and ``--top`` within their ceilings (``losslab.limits``), before any study
    is opened."""
    from losslab.limits import at_most

    if getattr(args, "seeds", None) is not None:
        at_most(args.seeds, "compare.seeds", "--seeds")
    if getattr(args, "top", None) is not None:
        at_most(args.top, "top", "--top")


def _prechecked(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``run`` after the cheap checks of every study file it is given (``study_precheck``), so
    that a mistake in one is reported before the heavy imports of opening a study."""

    @functools.wraps(run)
    def checked(args: argparse.Namespace) -> int:
        from losslab.errors import ConfigError
        from losslab.search.study_precheck import precheck_study

        specs = args.study if isinstance(args.study, list) else [args.study]
        try:
            for spec in specs:
                if Path(spec).is_file():
                    precheck_study(spec)
        except ConfigError as exc:
            return _error(str(exc))
        return run(args)

    return checked


def _open(specs: list[str], args: argparse.Namespace):
    from losslab.analysis.finished import open_finished, resolve_study

    use_lossnets(args)
    return [
        open_finished(resolve_study(spec, storage=args.storage, tracking_uri=args.tracking_uri))
        for spec in specs
    ]


def run_compare(args: argparse.Namespace) -> int:
    from losslab.tracking.artifacts import artifact_bars

    with artifact_bars(show=not args.no_progress):
        return _compare(args)


def _compare(args: argparse.Namespace) -> int:
    import time

    from rich.markup import escape

    from losslab.analysis.compare_log import log_comparison
    from losslab.analysis.compare_plan import available_top, plan_comparison
    from losslab.analysis.compare_tables import comparison_tables, rank_line, to_rich
    from losslab.analysis.comparison import check_request, run_comparison
    from losslab.analysis.comparison_stats import compute_stats
    from losslab.config import ConfigError
    from losslab.search.deadline import DeadlineHook, TimeUp
    from losslab.search.study_timing import plural
    from losslab.tables import print_table

    console = _console()
    try:
        _check_counts(args)
        if args.minutes is not None and not (0 < args.minutes < math.inf):
            raise ValueError(f"--minutes must be a positive number, got {args.minutes:g}")
        studies = _open(args.study, args)
        top, notice = available_top(studies, args.top)
        check_request(
            studies,
            fidelity=args.fidelity,
            top=top,
            seeds=args.seeds,
            reference=args.reference,
        )
        plan = None
        if len(studies) == 1:
            plan = plan_comparison(studies[0], fidelity=args.fidelity, top=top, seeds=args.seeds)
    except (ConfigError, ValueError) as exc:
        return _error(str(exc))
    if notice:
        console.print(f"[yellow]{escape(notice)}[/]", soft_wrap=True, highlight=False)
    if plan is not None:
        console.print(escape(plan.line(args.minutes)), soft_wrap=True, highlight=False)
    hooks = None
    if args.minutes is not None:
        deadline = time.perf_counter() + 60 * args.minutes
        hooks = lambda: [DeadlineHook(deadline, args.minutes)]  # noqa: E731
    try:
        comparison = run_comparison(
            studies,
            fidelity=args.fidelity,
            top=top,
            seeds=args.seeds,
            reference=args.reference,
            progress=not args.no_progress,
            extra_hooks=hooks,
        )
    except TimeUp as stop:
        console.print(
            f"[yellow]{escape(str(stop))};[/] finished evaluations are kept, the one running "
            "then trains again. Continue with the same command (more --minutes to finish).",
            soft_wrap=True,
        )
        return 0
    except KeyboardInterrupt:
        console.print(
            "[yellow]comparison stopped;[/] finished evaluations are kept. Continue with the "
            "same command.",
            soft_wrap=True,
        )
        return 130
    stats = compute_stats(comparison, bootstrap=args.bootstrap, pairs=args.pairs)
    tables = comparison_tables(comparison, stats)
    for data in tables:
        print_table(console, to_rich(data))
    console.print(rank_line(stats), highlight=False)
    log_comparison(comparison, stats, tables)
    total = len(comparison.entrants) * len(comparison.seeds)
    console.print(
        f"{plural(total, 'evaluation')}; {comparison.trained} trained now, {total - comparison.trained} "
        "from the cache."
    )
    spec = escape(args.study[0])
    console.print(
        f"MLflow parent run {comparison.parent_run_id}; open it with: "
        f"{comparison.tracker.ui_command()}",
        soft_wrap=True,
    )
    console.print(f"The report: losslab report {spec} --out report.html", soft_wrap=True)
    return 0


def run_report(args: argparse.Namespace) -> int:
    from losslab.analysis.calibration_record import latest_calibration
    from losslab.analysis.comparison import cached_comparison, check_request
    from losslab.analysis.comparison_stats import compute_stats
    from losslab.analysis.html_report import is_safe_url, write_report
    from losslab.analysis.report_page import build_report
    from losslab.config import ConfigError
    from losslab.tracking.tracker import Tracker

    try:
        ui = args.mlflow_ui
        if ui is not None and not (ui.startswith(("http://", "https://")) and is_safe_url(ui)):
            raise ValueError(f"--mlflow-ui must be an http(s) URL, got {args.mlflow_ui!r}")
        out = check_output_file(args.out, "--out")
        _check_counts(args)
        (study,) = _open([args.study], args)
        comparison = None
        if study.ranked():
            check_request(
                [study], fidelity=args.fidelity, top=args.top, seeds=1, reference=args.reference
            )
            comparison = cached_comparison(
                study, fidelity=args.fidelity, top=args.top, reference=args.reference
            )
    except (ConfigError, ValueError) as exc:
        return _error(str(exc))
    stats = None
    if comparison is not None:
        stats = compute_stats(comparison, bootstrap=args.bootstrap, pairs=args.pairs)
    tracker = Tracker(study.config.tracking_uri, experiment=study.config.experiment)
    html = build_report(
        study,
        comparison,
        stats,
        calibration=latest_calibration(tracker, study.config.name),
        experiment_id=tracker.experiment_id,
        tracking_uri=tracker.tracking_uri,
        ui_command=tracker.ui_command(),
        ui_url=args.mlflow_ui,
    )
    try:
        path = write_report(out, html)
    except OSError as exc:
        return _error(f"--out: cannot write {out}: {exc.strerror or exc}")
    note = "" if comparison is not None else " (no comparison yet: run losslab compare first)"
    _console().print(f"Report written to {path}{note}", soft_wrap=True, highlight=False)
    return 0


def run_show(args: argparse.Namespace) -> int:
    from losslab.config import ConfigError
    from losslab.search.study_timing import plural
    from losslab.search.summary import best_table, class_dice_table
    from losslab.tables import print_table

    try:
        (study,) = _open([args.study], args)
    except (ConfigError, ValueError) as exc:
        return _error(str(exc))
    outcome = study.outcome()
    console = _console()
    print_table(console, best_table(outcome))
    per_class = class_dice_table(outcome)
    if per_class is not None:
        print_table(console, per_class)
    counts = outcome.counts()
    console.print(
        f"{plural(len(outcome.records), 'trial')} ({counts['ok']} ok, {counts['pruned']} pruned, "
        f"{counts['failed']} failed); storage {study.storage_url}",
        soft_wrap=True,
        highlight=False,
    )
    return 0
