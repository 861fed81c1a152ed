"""``losslab baselines [SUITE.yaml]``: train the hand-designed baselines of a suite file under one
MLflow parent run and print them per class in the layout of Table 1 (``losslab.analysis.baseline_suite``)."""

from __future__ import annotations

import argparse
import sys

from losslab.cli.support import OptionError, add_lossnets_option, use_lossnets

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "baselines",
        help="train the hand-designed baselines and compare them per class",
        description="Train a suite of hand-designed candidates under one MLflow parent run.",
    )
    parser.add_argument(
        "config",
        nargs="?",
        default="search_spaces/baselines.yaml",
        help="suite YAML (default: %(default)s)",
    )
    parser.add_argument(
        "--tracking-uri",
        help="MLflow URI (default: the config's tracking_uri:, else $MLFLOW_TRACKING_URI, else "
        "sqlite:///mlflow.db)",
    )
    add_lossnets_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from rich.console import Console
    from rich.markup import escape

    from losslab.analysis.baseline_suite import failures, run_suite, table_1
    from losslab.config import ConfigError, load_suite
    from losslab.console import print_table, suite_schedule_warnings
    from losslab.tracking.tracker import check_tracking_uri, resolve_tracking_uri

    # A suite table is wide: give it room when the output is not a terminal (a log file).
    console = Console(width=None if sys.stdout.isatty() else 200)
    try:
        use_lossnets(args)
        config = load_suite(args.config)
    except (ConfigError, OptionError) as exc:
        Console(stderr=True).print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    if args.tracking_uri:
        config = dataclasses.replace(config, tracking_uri=args.tracking_uri)
    try:
        check_tracking_uri(resolve_tracking_uri(config.tracking_uri))
    except ValueError as exc:
        where = "--tracking-uri" if args.tracking_uri else f"{args.config}: tracking_uri"
        Console(stderr=True).print(f"[red]error:[/] {where}: {escape(str(exc))}", highlight=False)
        return 2
    suite = run_suite(config)
    print_table(console, table_1(suite))
    for name, reason in failures(suite):
        console.print(f"[red]{escape(name)} failed:[/] {escape(reason)}")
    for line in suite_schedule_warnings(suite):  # a schedule that never changed a weight
        console.print(line, highlight=False)
    console.print(
        f"MLflow parent run {suite.parent_run_id}; open it with: {suite.tracker.ui_command()}",
        soft_wrap=True,
    )
    return 0
