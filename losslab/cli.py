"""The ``losslab`` command line.

Subcommands that belong to one package register themselves through a ``register(subparsers)``
function (``losslab data ...``); the ones that combine packages (``train``) live here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from losslab import __version__


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train one candidate objective and record it in MLflow",
        description="Train one loss (a library name or an expression) and print per-class metrics.",
    )
    parser.add_argument("--loss", default="dice_ce", help="library name or loss expression")
    parser.add_argument("--model", default="unet3d", help="unet3d, unetr or lambda3d")
    parser.add_argument("--model-size", default="tiny", help="tiny or base")
    parser.add_argument("--data", default="phantom", choices=["phantom", "decathlon"])
    parser.add_argument("--data-dir", help="Decathlon folder (dataset.json, imagesTr/, labelsTr/)")
    parser.add_argument("--cases", type=int, default=10, help="phantom cases")
    parser.add_argument("--shape", type=int, default=32, help="phantom edge length in voxels")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=30, help="steps per epoch")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--patch", type=int, nargs="+", default=[32], help="patch edge(s)")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-hd95", action="store_true", help="skip HD95 (the slowest metric)")
    parser.add_argument(
        "--tracking-uri", help="MLflow URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)"
    )
    parser.add_argument("--experiment", default="losslab-train")
    parser.add_argument(
        "--absent-classes",
        choices=["keep", "ignore"],
        default="keep",
        help="leave classes absent from a batch out of the class mean of the loss (ignore)",
    )
    parser.add_argument(
        "--deterministic", action="store_true", help="deterministic GPU algorithms (slower)"
    )
    parser.set_defaults(func=_run_train)


def _train_config(args: argparse.Namespace, patch: tuple[int, ...]):
    from losslab.training import TrainConfig

    return TrainConfig(
        model=args.model,
        model_size=args.model_size,
        epochs=args.epochs,
        steps_per_epoch=args.steps,
        batch_size=args.batch_size,
        patch_size=patch,
        lr=args.lr,
        device=args.device,
        seed=args.seed,
        hd95=not args.no_hd95,
        deterministic=args.deterministic,
    )


def _run_train(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from losslab.candidate import Candidate
    from losslab.data import load_dataset
    from losslab.report import ProgressHook, per_class_table
    from losslab.tracking import MLflowHook, Tracker, check_tracking_uri, resolve_tracking_uri
    from losslab.training import Trainer

    console = Console()
    errors = Console(stderr=True)
    if args.data == "decathlon" and not args.data_dir:
        errors.print("[red]error:[/] --data decathlon needs --data-dir DIR")
        return 2
    patch = tuple(args.patch * 3 if len(args.patch) == 1 else args.patch)
    try:
        try:
            check_tracking_uri(resolve_tracking_uri(args.tracking_uri))
        except ValueError as exc:
            raise ValueError(f"--tracking-uri: {exc}") from None
        candidate = Candidate.from_loss(args.loss, absent_classes=args.absent_classes)
        config = _train_config(args, patch)
        if args.data == "phantom":
            shape = (args.shape,) * 3
            dataset = load_dataset("phantom", cases=args.cases, shape=shape, seed=args.seed)
        else:
            dataset = load_dataset("decathlon", data_dir=args.data_dir)
    except (KeyError, ValueError, OSError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        errors.print(f"[red]error:[/] {escape(message)}", highlight=False)
        return 2
    tracker = Tracker(args.tracking_uri, experiment=args.experiment)
    mlflow_hook = MLflowHook(
        tracker, candidate, config, data_fingerprint=dataset.fingerprint, tags={"backend": "train"}
    )
    hooks = [ProgressHook(description=candidate.name), mlflow_hook]
    result = Trainer(config, hooks).fit(candidate, dataset)
    if result.ok:
        console.print(per_class_table(result, title=f"{candidate.name} on {dataset.name}"))
    else:
        console.print(f"[red]run {result.status}:[/] {result.reason}")
    console.print(f"{result.wall_time:.1f} s, {result.steps} steps on {result.device}")
    console.print(
        f"MLflow run {mlflow_hook.run_id}; open it with: {tracker.ui_command()}", soft_wrap=True
    )
    return 0 if result.ok else 1


def _add_baselines(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "baselines",
        help="train the hand-designed baselines and compare them per class",
        description="Train a suite of hand-designed candidates under one MLflow parent run.",
    )
    parser.add_argument("config", nargs="?", default="search_spaces/baselines.yaml")
    parser.add_argument("--tracking-uri", help="MLflow URI (overrides the config)")
    parser.set_defaults(func=_run_baselines)


def _run_baselines(args: argparse.Namespace) -> int:
    import dataclasses

    from rich.console import Console
    from rich.markup import escape

    from losslab.compare import failures, run_suite, table_1
    from losslab.config import ConfigError, load_suite
    from losslab.tracking import check_tracking_uri, resolve_tracking_uri

    # A suite table is wide: give it room when the output is not a terminal (a log file).
    console = Console(width=None if sys.stdout.isatty() else 200)
    try:
        config = load_suite(args.config)
    except ConfigError as exc:
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
    console.print(table_1(suite))
    for name, reason in failures(suite):
        console.print(f"[red]{escape(name)} failed:[/] {escape(reason)}")
    console.print(
        f"MLflow parent run {suite.parent_run_id}; open it with: {suite.tracker.ui_command()}",
        soft_wrap=True,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every subcommand registered."""
    from losslab.data import commands as data_commands
    from losslab.search import commands as search_commands

    parser = argparse.ArgumentParser(
        prog="losslab",
        description="Search for the training objective of imbalanced 3D segmentation.",
    )
    parser.add_argument("--version", action="version", version=f"losslab {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(subparsers)
    _add_baselines(subparsers)
    search_commands.register(subparsers)
    data_commands.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``losslab`` script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
