"""``losslab search CONFIG [--resume]``: run or continue a study and print the comparison,
the class schedules that never changed a weight, and how to look at the study (MLflow,
optuna-dashboard)."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import signal
import sys

from losslab.cli_support import add_lossnets_option, use_lossnets

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search",
        help="run (or resume) a loss-search study and compare it with the baselines",
        description=(
            "Run the study a YAML file defines until its budget is spent. Rerunning the same "
            "command (or adding --resume) continues a stopped study: finished evaluations are "
            "neither lost nor repeated."
        ),
    )
    parser.add_argument("config", help="study YAML (see search_spaces/quickstart.yaml)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the study; an error if it does not exist (default: start it, or "
        "continue it when it exists)",
    )
    parser.add_argument(
        "--trials",
        type=int,
        help="override budget.trials, counted over the whole study (default: the config's)",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        help="override budget.minutes, for this invocation (default: the config's)",
    )
    parser.add_argument(
        "--storage",
        help="study storage: an Optuna storage URL or journal:PATH (default: the config's "
        "storage:, else the journal file optuna-studies.log beside a local MLflow store)",
    )
    parser.add_argument(
        "--tracking-uri",
        help="MLflow URI (default: the config's tracking_uri:, else $MLFLOW_TRACKING_URI, else "
        "sqlite:///mlflow.db)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bars (default: show them)"
    )
    add_lossnets_option(parser)
    parser.set_defaults(func=run)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from losslab.config import ConfigError
    from losslab.report import print_table
    from losslab.search.study import run_study
    from losslab.search.study_config import Budget, load_study
    from losslab.search.summary import best_table, class_dice_table, schedule_warnings
    from losslab.tracking import check_tracking_uri

    errors = Console(stderr=True)
    console = Console(width=None if sys.stdout.isatty() else 200)
    try:
        use_lossnets(args)
        config = load_study(args.config)
        changes = {}
        if args.trials is not None or args.minutes is not None:
            changes["budget"] = Budget(
                args.trials if args.trials is not None else config.budget.trials,
                args.minutes if args.minutes is not None else config.budget.minutes,
            )
        if args.storage:
            changes["storage"] = args.storage
        if args.tracking_uri:
            try:
                check_tracking_uri(args.tracking_uri)
            except ValueError as exc:
                raise ValueError(f"--tracking-uri: {exc}") from None
            changes["tracking_uri"] = args.tracking_uri
        config = dataclasses.replace(config, **changes)
    except (ConfigError, ValueError) as exc:
        errors.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a terminated worker records its trial
    try:
        outcome = run_study(config, resume=args.resume, progress=not args.no_progress)
    except KeyboardInterrupt:
        errors.print(
            f"[yellow]study {escape(config.name)} stopped;[/] the running evaluation is recorded "
            f"as interrupted. Continue with: losslab search {escape(args.config)} --resume"
        )
        return 130
    except ValueError as exc:
        errors.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    print_table(console, best_table(outcome))
    per_class = class_dice_table(outcome)
    if per_class is not None:
        print_table(console, per_class)
    for line in schedule_warnings(outcome):
        console.print(line, highlight=False)
    counts = outcome.counts()
    console.print(
        f"{len(outcome.records)} trials in the study ({counts['ok']} ok, {counts['pruned']} "
        f"pruned, {counts['failed']} failed, {counts['cached']} answered from the cache); "
        f"{outcome.trained} evaluation{'' if outcome.trained == 1 else 's'} trained in "
        f"{outcome.wall_time:.0f} s this time."
    )
    if outcome.out_of_time:
        console.print(
            f"The time budget ended during an evaluation, recorded as interrupted; it runs again "
            f"when the study continues: losslab search {escape(args.config)}"
        )
    if outcome.reclaimed:
        console.print(f"Re-queued trials of stopped workers: {outcome.reclaimed}")
    console.print(f"Study storage: {outcome.storage_url}", soft_wrap=True)
    dashboard = escape(dashboard_command(outcome.storage_url))
    console.print(f"Optuna dashboard: {dashboard}", soft_wrap=True, highlight=False)
    console.print(
        f"MLflow parent run {outcome.parent_run_id}; open it with: {outcome.tracker.ui_command()}",
        soft_wrap=True,
    )
    return 0


def dashboard_command(storage_url: str) -> str:
    """The optuna-dashboard command that serves the study store at ``storage_url``: a journal
    file needs ``--storage-class JournalFileStorage``, a database is given by its URL."""
    from losslab.search.storage import journal_path

    path = journal_path(storage_url)
    if path is not None:
        return f"optuna-dashboard --storage-class JournalFileStorage {shlex.quote(path)}"
    return f"optuna-dashboard {shlex.quote(storage_url)}"
