"""The ``losslab`` command line.

Subcommands that belong to one package register themselves through a ``register(subparsers)``
function (``losslab data ...``); the ones that combine packages (``train``) live here.

Building the parser imports nothing heavy: a subcommand's options are added when it is used
(``LazyParser``) and its modules imported when it runs, so ``losslab --help`` loads neither
torch nor MONAI, MLflow or Optuna. The data and training options of ``train`` are generated from
the fields of ``DataConfig`` and ``TrainConfig`` (``losslab.cli.options``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from losslab import __version__
from losslab.cli.options import OptionSet
from losslab.cli.support import (
    LazyParser,
    OptionError,
    add_lazy_parser,
    add_lossnets_option,
    config_section,
    describe_bad_input,
    is_bad_input,
    read_config_file,
    use_lossnets,
)

if TYPE_CHECKING:
    from losslab.candidate import ScheduleSpec
    from losslab.data.config import DataConfig
    from losslab.training.config import TrainConfig


# ``losslab train`` without --config: a quick run (the dataclasses' defaults are a study's).
TRAIN_DEFAULTS = {"epochs": 10, "steps_per_epoch": 30, "lr": 3e-3}
TRAIN_DATA_DEFAULTS = {"shape": (32, 32, 32)}
TRAIN_PHANTOM_CASES = 10
# TrainConfig fields without a flag (none: every field is reachable from the command line).
TRAIN_EXCLUDED: tuple[str, ...] = ()


def train_options() -> OptionSet:
    """The flags of the ``TrainConfig`` fields; ``--steps`` and ``--patch`` keep their names."""
    from losslab.training.config import TrainConfig

    return OptionSet(
        TrainConfig,
        "train",
        rename={
            "steps_per_epoch": ("--steps", "--steps-per-epoch"),
            "patch_size": ("--patch", "--patch-size"),
        },
        exclude=TRAIN_EXCLUDED,
        cube=("patch_size",),
    )


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    add_lazy_parser(
        subparsers,
        "train",
        _train_options,
        help="train one candidate objective and record it in MLflow",
        description="Train one loss (a library name or an expression) and print per-class "
        "metrics. The data and training options are the fields of the data: and train: "
        "sections of a study file; --config FILE reads them from one (with its fidelity: "
        "and seed:), and flags override it.",
    )


def _train_options(parser: argparse.ArgumentParser) -> None:
    from losslab.cli.data import add_config_option, data_options
    from losslab.losses import list_losses
    from losslab.schedules import list_class_schedules

    parser.add_argument(
        "--loss",
        default=None,
        help="a library loss (" + ", ".join(list_losses()) + ") or a loss expression such as "
        "'1 - vsum(p * y) / vsum(p + y)' (default: dice_ce). Class-weighted ce averages over "
        "all voxels, where torch's F.cross_entropy(weight=...) divides by the total weight; "
        "dice_focal's focal term is over the softmax, not MONAI's DiceFocalLoss (sigmoid)",
    )
    parser.add_argument(
        "--candidate",
        metavar="FILE",
        help="a whole candidate from its JSON file (an MLflow run's candidate.json, a study's "
        "best_candidate.json: a replayed greedy schedule, a GP loss, an ML3 network...); not with --loss, "
        "--class-schedule or --absent-classes",
    )
    add_lossnets_option(parser)
    parser.add_argument(
        "--absent-classes",
        choices=["keep", "ignore"],
        default="keep",
        help="leave classes absent from a batch out of the class mean of the loss (ignore) or "
        "average every class as MONAI does (keep) (default: %(default)s)",
    )
    parser.add_argument(
        "--class-schedule",
        default="uniform",
        help="class schedule: a name ("
        + ", ".join(list_class_schedules())
        + ") or a learned rule expression such as 'where(s > 0.9, 0.1, 1)' "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--class-schedule-params",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="parameters of the class schedule (threshold=0.8, cap=3...); default: the "
        f"schedule's own ({_schedule_defaults()})",
    )
    parser.add_argument(
        "--tracking-uri", help="MLflow URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)"
    )
    parser.add_argument(
        "--experiment", default="losslab-train", help="MLflow experiment (default: %(default)s)"
    )
    add_config_option(parser, "data:, train:, fidelity: and seed:")
    shown = {
        "cases": f"{TRAIN_PHANTOM_CASES} for the phantom, every case of a folder",
        "seed": "0, whatever --seed is: --seed changes the training, not the data",
    }
    data_options().add_to(
        parser, "data options (the data: section of a study file)", TRAIN_DATA_DEFAULTS, shown
    )
    train_options().add_to(
        parser, "training options (the train: section of a study file)", TRAIN_DEFAULTS
    )
    parser.set_defaults(func=_run_train)


def _schedule_defaults() -> str:
    """``tcf: threshold=0.9 ...; pcf: ...``: the registered class schedules' default
    parameters, for the help (from the registry)."""
    from losslab.candidate import ScheduleSpec
    from losslab.describe import schedule_params
    from losslab.schedules import list_class_schedules

    parts = []
    for name in list_class_schedules():
        params = schedule_params("class", ScheduleSpec(name))
        shown = " ".join(f"{k}={v}" for k, v in params.items() if v is not None)
        if shown:
            parts.append(f"{name}: {shown}")
    return "; ".join(parts).replace("%", "%%")


def _file_settings(args: argparse.Namespace) -> dict[str, Any]:
    """What ``losslab train`` takes from ``--config FILE`` besides ``data:``: the training
    base (``train:`` with the ``fidelity:`` overrides, the top rung's on a fidelity ladder,
    and the study ``seed:``), the fidelity, and ``tracking_uri``."""
    from losslab.search.fidelity import Fidelity
    from losslab.training.config import TrainConfig

    path = args.config
    raw = read_config_file(path)
    train = config_section(raw, path, "train", TrainConfig)
    ladder = raw.get("fidelity")
    rungs = ladder.get("rungs") if isinstance(ladder, Mapping) else None
    if isinstance(rungs, list) and rungs and isinstance(rungs[-1], Mapping):
        # A fidelity ladder: train as its top rung does (the fidelity of the study's verdict).
        raw = {**raw, "fidelity": {k: v for k, v in rungs[-1].items() if k != "seeds"}}
    try:
        fidelity = Fidelity(**config_section(raw, path, "fidelity", Fidelity))
    except (TypeError, ValueError) as exc:
        raise OptionError(f"{path}: fidelity", str(exc)) from None
    for name in ("epochs", "steps_per_epoch", "val_every", "patch_size"):
        if getattr(fidelity, name) is not None:
            train[name] = getattr(fidelity, name)
    if "seed" in raw:  # a study's seed is the seed of its evaluations
        if type(raw["seed"]) is not int or raw["seed"] < 0:
            raise OptionError(
                f"{path}: seed", f"must be a non-negative integer, got {raw['seed']!r}"
            )
        train["seed"] = raw["seed"]
    uri = raw.get("tracking_uri")
    if uri is not None and not isinstance(uri, str):
        raise OptionError(f"{path}: tracking_uri", f"must be a string, got {uri!r}")
    return {"train": train, "fidelity": fidelity, "tracking_uri": uri}


def class_schedule_from_args(args: argparse.Namespace, num_classes: int) -> ScheduleSpec:
    """``--class-schedule`` (a registered name, else a rule expression) and its parameters,
    checked by building the schedule for ``num_classes`` classes."""
    from losslab.candidate import ScheduleSpec
    from losslab.schedules import get_class_schedule, list_class_schedules
    from losslab.schedules.rule_probe import check_rule_values
    from losslab.schedules.rules import RuleSchedule
    from losslab.strict_yaml import YamlError, yaml_value

    params = {}
    for item in args.class_schedule_params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--class-schedule-params: KEY=VALUE expected, got {item!r}")
        try:
            params[key] = yaml_value(value)
        except YamlError as exc:
            raise ValueError(f"--class-schedule-params {item!r}: {exc}") from None
    name = args.class_schedule.strip()
    known = name.lower() in list_class_schedules() or name.isidentifier()
    if not known:  # an expression: a learned rule
        params, name = {"expression": name, **params}, "rule"
    try:
        schedule = get_class_schedule(name, num_classes=num_classes, **params)
        if isinstance(schedule, RuleSchedule):
            check_rule_values(schedule.rule, schedule.cap)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--class-schedule {args.class_schedule!r}: {exc}") from None
    return ScheduleSpec.of(name, **params)


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The ``TrainConfig`` of ``losslab train``: ``--config FILE``'s training settings (or the
    quick defaults ``TRAIN_DEFAULTS``) overridden by the flags given.

    Raises:
        OptionError: a refused value, naming its flag or its key in the file.
    """
    options = train_options()
    given = options.given(args)
    if not getattr(args, "config", None):
        return options.build(given, TRAIN_DEFAULTS)
    base = _file_settings(args)["train"]
    return options.build(given, base, f"{args.config}: train", set(base))


def train_data_config_from_args(args: argparse.Namespace) -> DataConfig:
    """The ``DataConfig`` of ``losslab train``: ``data_config_from_args`` with the quick
    defaults (a 32-voxel phantom of ``TRAIN_PHANTOM_CASES`` cases, the proxy at its 24-voxel
    size) when there is no ``--config``. The data seed is ``--data-seed`` (default 0), never
    ``--seed``: a loop over training seeds keeps the same cases and split, so only the
    training changes."""
    import dataclasses

    from losslab.cli.data import data_config_from_args, data_options
    from losslab.data.config import DEFAULT_SHAPES

    config = data_config_from_args(args, TRAIN_DATA_DEFAULTS)
    if getattr(args, "config", None):
        return config
    given = data_options().given(args)
    changes: dict[str, Any] = {}
    if config.source == "phantom" and "cases" not in given:
        changes["cases"] = TRAIN_PHANTOM_CASES
    if config.source == "proxy" and "shape" not in given:  # the size it is calibrated at
        changes["shape"] = DEFAULT_SHAPES["proxy"]
    return dataclasses.replace(config, **changes) if changes else config


def _check_limits(data: DataConfig, train: TrainConfig, args: argparse.Namespace) -> None:
    """The counts are sane (``losslab.config.LIMITS``); an error names the flag or file key."""
    from losslab.cli.data import data_options
    from losslab.config import ConfigError, check_data_limits, check_train_limits

    for check, config, options in (
        (check_data_limits, data, data_options()),
        (check_train_limits, train, train_options()),
    ):
        try:
            check(config, options.section)
        except ConfigError as exc:
            name = exc.where.rsplit(".", 1)[-1]
            where = options.flag(name)
            if name not in options.given(args) and getattr(args, "config", None):
                where = f"{args.config}: {exc.where}"
            raise OptionError(where, exc.problem) from None


def _run_train(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from losslab.console import ProgressHook, per_class_table, print_table
    from losslab.data import build_dataset
    from losslab.tracking.hook import MLflowHook
    from losslab.tracking.tracker import Tracker, check_tracking_uri, resolve_tracking_uri
    from losslab.training import Trainer

    console = Console()
    errors = Console(stderr=True)
    try:
        settings = _file_settings(args) if args.config else {"fidelity": None, "tracking_uri": None}
        data_config = train_data_config_from_args(args)
        config = train_config_from_args(args)
        _check_limits(data_config, config, args)
        tracking_uri = args.tracking_uri or settings["tracking_uri"]
        try:
            check_tracking_uri(resolve_tracking_uri(tracking_uri))
        except ValueError as exc:
            where = "--tracking-uri" if args.tracking_uri else f"{args.config}: tracking_uri"
            raise ValueError(f"{where}: {exc}") from None
        use_lossnets(args)
        dataset = build_dataset(data_config)
        candidate = _train_candidate(args, dataset.num_classes)
        _check_networks(candidate)
        if settings["fidelity"] is not None:
            dataset = settings["fidelity"].apply_data(dataset)
    except (KeyError, ValueError, OSError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        errors.print(f"[red]error:[/] {escape(message)}", highlight=False)
        return 2
    tracker = Tracker(tracking_uri, experiment=args.experiment)
    mlflow_hook = MLflowHook(
        tracker, candidate, config, data_fingerprint=dataset.fingerprint, tags={"backend": "train"}
    )
    hooks = [ProgressHook(description=candidate.name), mlflow_hook]
    result = Trainer(config, hooks).fit(candidate, dataset)
    if result.ok:
        table = per_class_table(result, title=f"{candidate.name} on {dataset.name}")
        print_table(console, table)  # in full when stdout is a file or a pipe
    else:
        console.print(f"[red]run {result.status}:[/] {result.reason}")
    console.print(f"{result.wall_time:.1f} s, {result.steps} steps on {result.device}")
    console.print(
        f"MLflow run {mlflow_hook.run_id}; open it with: {tracker.ui_command()}", soft_wrap=True
    )
    return 0 if result.ok else 1


def _check_networks(candidate) -> None:
    """Load every learned loss network of ``candidate`` once, so that a missing or corrupt
    file is refused before training (``FileNotFoundError`` / ``ValueError`` naming it)."""
    from losslab.losses.learned_term import LearnedTerm

    for term in candidate.terms:
        if isinstance(term, LearnedTerm):
            term.load()


def _train_candidate(args: argparse.Namespace, num_classes: int):
    """The candidate of ``losslab train``: ``--candidate FILE`` or built from the flags."""
    from losslab.candidate import Candidate
    from losslab.config import read_candidate_file

    if args.candidate is not None:
        given = [
            flag
            for flag, value, default in (
                ("--loss", args.loss, None),
                ("--class-schedule", args.class_schedule, "uniform"),
                ("--class-schedule-params", args.class_schedule_params, []),
                ("--absent-classes", args.absent_classes, "keep"),
            )
            if value != default
        ]
        if given:
            raise ValueError(f"--candidate: the file holds the whole candidate; drop {given[0]}")
        return read_candidate_file(args.candidate, "--candidate")
    return Candidate.from_loss(
        args.loss or "dice_ce",
        absent_classes=args.absent_classes,
        class_schedule=class_schedule_from_args(args, num_classes),
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every subcommand registered."""
    from losslab.cli import baselines as baselines_commands
    from losslab.cli import calibrate as calibrate_commands
    from losslab.cli import compare as compare_commands
    from losslab.cli import data as data_commands
    from losslab.cli import export as export_commands
    from losslab.cli import search as search_commands

    parser = LazyParser(
        prog="losslab",
        description="Search for the training objective of imbalanced 3D segmentation.",
    )
    parser.add_argument("--version", action="version", version=f"losslab {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(subparsers)
    baselines_commands.register(subparsers)
    search_commands.register(subparsers)
    compare_commands.register(subparsers)
    calibrate_commands.register(subparsers)
    data_commands.register(subparsers)
    export_commands.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``losslab`` script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as exc:  # bad input found late: one line, never a traceback
        if not is_bad_input(exc):
            raise
        print(f"error: {describe_bad_input(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
