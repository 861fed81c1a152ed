"""``losslab search CONFIG [--resume]``: run or continue a study and print the comparison,
what it found, the class schedules that never changed a weight, and how to look at the study
(MLflow, optuna-dashboard, Optuna's Python API)."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import signal
import sys
from textwrap import indent

from losslab.cli.support import add_lossnets_option, use_lossnets

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
        help="override budget.minutes: the minutes of trials of this invocation (the baselines "
        "train before they start, once; default: the config's)",
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
    from losslab import interrupts

    interrupts.request(f"signal {signum}")  # acted on again if this raise is swallowed
    raise KeyboardInterrupt(f"signal {signum}")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from losslab.errors import ConfigError
    from losslab.search.study_precheck import precheck_study

    errors = Console(stderr=True)
    console = Console(width=None if sys.stdout.isatty() else 200)
    try:  # check first, import after: a mistake in the file is found before torch is loaded
        precheck_study(args.config)
    except ConfigError as exc:
        errors.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    from losslab.search.study_config import Budget, load_study

    try:
        use_lossnets(args)
        config = load_study(args.config)
        changes = {}
        if args.trials is not None or args.minutes is not None:
            try:
                changes["budget"] = Budget(
                    args.trials if args.trials is not None else config.budget.trials,
                    args.minutes if args.minutes is not None else config.budget.minutes,
                )
            except ValueError as exc:
                flag = "--trials" if str(exc).startswith("trials") else "--minutes"
                raise ValueError(f"{flag}: {exc}") from None
        if args.storage:
            changes["storage"] = args.storage
        if args.tracking_uri:
            from losslab.tracking.tracker import check_tracking_uri

            try:
                check_tracking_uri(args.tracking_uri)
            except ValueError as exc:
                raise ValueError(f"--tracking-uri: {exc}") from None
            changes["tracking_uri"] = args.tracking_uri
        config = dataclasses.replace(config, **changes)
    except (ConfigError, ValueError) as exc:
        errors.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    from losslab.search.study import run_study

    previous = signal.signal(signal.SIGTERM, _interrupt)  # a terminated worker records its trial
    try:
        outcome = run_study(config, resume=args.resume, progress=not args.no_progress)
    except KeyboardInterrupt:
        errors.print(
            f"[yellow]study {escape(config.name)} stopped;[/] the running evaluation is recorded "
            f"as interrupted. Continue with: losslab search {escape(args.config)} --resume",
            soft_wrap=True,
        )
        return 130
    except ValueError as exc:
        errors.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    print_outcome(console, outcome, f"losslab search {args.config}")
    return 0


def print_outcome(console, outcome, command: str) -> None:
    """The end of ``losslab search``: the tables, what the study found, what to do when no
    trial finished, and how to open the study (MLflow, optuna-dashboard, Optuna's API)."""
    from rich.markup import escape

    from losslab.console import print_table
    from losslab.search.study_timing import no_trial_line, plural
    from losslab.search.summary import (
        best_table,
        class_dice_table,
        schedule_warnings,
        verdict_line,
    )

    print_table(console, best_table(outcome))
    per_class = class_dice_table(outcome)
    if per_class is not None:
        print_table(console, per_class)
    for line in schedule_warnings(outcome):
        console.print(line, highlight=False)
    counts = outcome.counts()
    console.print(
        f"{plural(len(outcome.records), 'trial')} in the study ({counts['ok']} ok, "
        f"{counts['pruned']} pruned, {counts['failed']} failed, {counts['cached']} answered "
        f"from the cache); {plural(outcome.trained, 'evaluation')} trained in "
        f"{outcome.wall_time:.0f} s this time.",
        soft_wrap=True,
    )
    verdict = verdict_line(outcome)
    if verdict:
        console.print(verdict, soft_wrap=True, highlight=False)
    if not outcome.records and outcome.trial_minutes_started:
        line = no_trial_line(outcome.seconds_per_evaluation, outcome.config.budget.minutes, command)
        console.print(f"[yellow]{escape(line)}[/]", soft_wrap=True, highlight=False)
    elif outcome.out_of_time:
        console.print(
            "The time budget ended during an evaluation, recorded as interrupted; it runs again "
            f"when the study continues: {escape(command)}",
            soft_wrap=True,
        )
    if outcome.reclaimed:
        console.print(f"Re-queued trials of stopped workers: {outcome.reclaimed}")
    console.print(f"Study storage: {outcome.storage_url}", soft_wrap=True, highlight=False)
    dashboard = escape(dashboard_command(outcome.storage_url))
    console.print(
        f"Optuna dashboard ({escape(DASHBOARD_EXTRA)}): {dashboard}",
        soft_wrap=True,
        highlight=False,
    )
    console.print("In Python, with Optuna's own API:", highlight=False)
    code = optuna_lines(outcome.storage_url, outcome.config.name)
    console.print(escape(indent(code, "    ")), soft_wrap=True, highlight=False)
    console.print(
        f"MLflow parent run {outcome.parent_run_id}; open it with: {outcome.tracker.ui_command()}",
        soft_wrap=True,
        highlight=False,
    )


DASHBOARD_EXTRA = 'pip install "losslab[dashboard]"'


def optuna_lines(storage_url: str, study_name: str) -> str:
    """Python lines that load the study with Optuna's own API: a journal file through
    ``JournalStorage(JournalFileBackend(...))`` with the lock losslab uses
    (``JournalFileOpenLock``), a database by its URL (``journal:PATH`` is losslab's name for
    a journal file, which ``optuna.load_study`` does not accept as a string)."""
    from losslab.search.store.storage import journal_path

    path = journal_path(storage_url)
    if path is None:
        return (
            "import optuna\n"
            f"study = optuna.load_study(study_name={study_name!r}, storage={storage_url!r})\n"
            "print(study.trials_dataframe())"
        )
    return (
        "import optuna\n"
        "from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock\n"
        f"path = {path!r}\n"
        "backend = JournalFileBackend(path, lock_obj=JournalFileOpenLock(path))\n"
        "storage = optuna.storages.JournalStorage(backend)\n"
        f"study = optuna.load_study(study_name={study_name!r}, storage=storage)\n"
        "print(study.trials_dataframe())"
    )


def dashboard_command(storage_url: str) -> str:
    """The optuna-dashboard command that serves the study store at ``storage_url``: a journal
    file needs ``--storage-class JournalFileStorage``, a database is given by its URL."""
    from losslab.search.store.storage import journal_path

    path = journal_path(storage_url)
    if path is not None:
        return f"optuna-dashboard --storage-class JournalFileStorage {shlex.quote(path)}"
    return f"optuna-dashboard {shlex.quote(storage_url)}"
