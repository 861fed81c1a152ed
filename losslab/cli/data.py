"""``losslab data`` command: ``phantom`` writes the phantom as a Decathlon folder or an nnU-Net v2
raw dataset, ``inspect`` checks a folder of either layout and prints its classes, cases and
class frequencies.

The data options of ``data inspect`` (and of ``losslab train``) are generated from the fields of
``DataConfig`` (:func:`data_options`), so each field of the ``data:`` section of a study file has
a flag. Heavy modules (torch, nibabel) are imported when a command runs, not when the parser is
built.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from losslab.cli.options import OptionSet
from losslab.cli.support import OptionError, add_lazy_parser, config_section, read_config_file

if TYPE_CHECKING:
    from rich.console import Console

    from losslab.data.config import DataConfig
    from losslab.data.inspection import InspectionReport

__all__ = ["data_config_from_args", "data_options", "print_report", "register"]

# ``data inspect`` defaults that differ from ``DataConfig``'s: it checks a folder, and writes no
# cache unless asked to (--use-cache).
INSPECT_DEFAULTS = {"source": "decathlon", "use_cache": False}


def data_options() -> OptionSet:
    """The flags of the ``DataConfig`` fields (``--data`` is the source, ``--data-seed`` the
    phantom seed); ``shape`` and ``spacing`` also take one value for all three sides."""
    from losslab.data.config import DataConfig

    return OptionSet(
        DataConfig,
        "data",
        rename={"source": ("--data",), "seed": ("--data-seed",)},
        cube=("shape", "spacing"),
    )


def add_config_option(parser: argparse.ArgumentParser, sections: str) -> None:
    """``--config FILE``: a study (or suite) YAML file whose ``sections`` are read."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"study or suite YAML file: its {sections} section(s) give the settings, in place "
        "of this command's defaults; flags override them",
    )


def data_config_from_args(
    args: argparse.Namespace, defaults: Mapping[str, Any] | None = None
) -> DataConfig:
    """The ``DataConfig`` the data flags describe.

    The base is the ``data:`` section of ``--config FILE`` when given (unset keys keep the
    ``DataConfig`` defaults, as in a study), else ``defaults``; the flags given override it.
    ``data inspect``'s folder argument (``args.folder``) is ``--data-dir``, with the Decathlon
    source unless ``--data`` says otherwise.

    Raises:
        OptionError: a refused value, naming its flag (``--spacing``) or its key in the file
            (``FILE: data.spacing``).
    """
    options = data_options()
    given = options.given(args)
    folder = getattr(args, "folder", None)
    if folder is not None:
        if "data_dir" in given and str(given["data_dir"]) != str(folder):
            raise OptionError("--data-dir", f"two folders given: {folder} and {given['data_dir']}")
        given["data_dir"] = str(folder)
        given.setdefault("source", "decathlon")
    path = getattr(args, "config", None)
    if not path:
        return options.build(given, defaults)
    base = config_section(read_config_file(path), path, "data", options.cls)
    return options.build(given, base, f"{path}: data", set(base))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``data`` command and its subcommands to the top-level parser."""
    data = subparsers.add_parser(
        "data", help="synthetic phantom, Decathlon and nnU-Net v2 raw datasets"
    )
    commands = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")

    phantom = commands.add_parser(
        "phantom",
        help="write the abdominal CT phantom as a Decathlon folder or an nnU-Net v2 raw dataset",
    )
    phantom.add_argument(
        "--out",
        type=Path,
        required=True,
        help="folder to write: the dataset folder (decathlon), or the nnU-Net raw folder in "
        "which DatasetXXX_Name is written (nnunet)",
    )
    phantom.add_argument(
        "--layout",
        choices=("decathlon", "nnunet"),
        default="decathlon",
        help="decathlon: dataset.json + imagesTr/CASE.nii.gz (read with --data decathlon); "
        "nnunet: nnU-Net v2 raw dataset, imagesTr/CASE_0000.nii.gz (read with --data nnunet)",
    )
    phantom.add_argument(
        "--dataset-id",
        type=int,
        default=None,
        help="nnU-Net dataset id, 1..999 (nnunet layout; default 990)",
    )
    phantom.add_argument(
        "--name",
        default=None,
        help="nnU-Net dataset name (nnunet layout; default LosslabPhantom)",
    )
    phantom.add_argument("--cases", type=int, default=20, help="number of cases (default 20)")
    phantom.add_argument(
        "--shape", type=int, nargs="+", default=[96], help="one size (cube) or three (D H W)"
    )
    phantom.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    phantom.set_defaults(func=run_phantom)

    add_lazy_parser(
        commands,
        "inspect",
        _inspect_options,
        help="check a Decathlon or nnU-Net v2 raw folder and summarise it",
        description="Check every file of a dataset folder and summarise it: a Decathlon "
        "folder, or an nnU-Net v2 raw dataset with --data nnunet. With data options (those of "
        "the data: section of a study), the folder is also loaded as `losslab train` would "
        "load it with them, and each case is listed as loaded.",
    )


def _inspect_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "folder", nargs="?", type=Path, help="folder holding dataset.json (or --data-dir)"
    )
    add_config_option(parser, "data:")
    data_options().add_to(
        parser, "data options (the data: section of a study file)", INSPECT_DEFAULTS
    )
    parser.set_defaults(func=run_inspect)


def run_phantom(args: argparse.Namespace, console: Console | None = None) -> int:
    """Write ``args.cases`` phantom cases under ``args.out``; return the exit code."""
    from rich.console import Console

    from losslab.data.export import write_phantom_decathlon
    from losslab.data.nnunet import write_phantom_nnunet
    from losslab.limits import at_most

    console = console or Console()
    shape = tuple(args.shape) * 3 if len(args.shape) == 1 else tuple(args.shape)
    if len(shape) != 3:
        console.print(f"[red]error:[/red] --shape takes 1 or 3 sizes, got {list(args.shape)}")
        return 2
    try:
        at_most(args.cases, "data.cases", "--cases")
        at_most(list(shape), "data.shape", "--shape")
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    layout = getattr(args, "layout", "decathlon")
    nnunet = {
        key: value
        for key, value in (("dataset_id", args.dataset_id), ("name", args.name))
        if value is not None
    }
    if nnunet and layout != "nnunet":
        flags = ", ".join("--" + key.replace("_", "-") for key in nnunet)
        console.print(f"[red]error:[/red] {flags}: only with --layout nnunet")
        return 2
    try:
        if layout == "nnunet":
            folder = write_phantom_nnunet(
                args.out, cases=args.cases, shape=shape, seed=args.seed, **nnunet
            )
        else:
            folder = write_phantom_decathlon(args.out, args.cases, shape, args.seed).parent
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    console.print(f"wrote {args.cases} phantom case(s) of shape {shape} to {folder}")
    if layout == "nnunet":
        console.print(f"read it with: losslab data inspect --data nnunet {folder}")
    return 0


def _format_share(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.2f}%"


def print_report(report: InspectionReport, console: Console) -> None:
    """Print the classes, cases, frequency table, warnings and problems of a report."""
    from rich.markup import escape
    from rich.table import Table

    from losslab.tables import print_table

    manifest = report.manifest
    if manifest is not None:
        modality = ", ".join(f"{k}: {v}" for k, v in sorted(manifest.modality.items()))
        layout = {"decathlon": "Decathlon", "nnunet": "nnU-Net v2 raw"}[manifest.layout]
        console.print(f"[bold]{manifest.name}[/bold]  ({report.root}, {layout} layout)")
        console.print(f"modality {modality or '?'}; {len(manifest.cases)} training case(s)")
        classes = Table(title="Classes (share: of labelled voxels; MFB w: median frequency weight)")
        classes.add_column("class", justify="right")
        classes.add_column("value(s)", justify="right")
        classes.add_column("name", no_wrap=True)
        for column in ("voxels", "share", "cases", "freq", "MFB w"):
            classes.add_column(column, justify="right")
        for row in report.class_table():
            classes.add_row(
                str(row["value"]),
                "+".join(str(v) for v in row["file_values"]),
                row["name"],
                f"{row['voxels']:,}",
                _format_share(row["share"]),
                str(row["cases"]),
                f"{row['frequency']:.4g}",
                f"{row['mfb_weight']:.3g}",
            )
        print_table(console, classes)
        cases = Table(title="Cases")
        for column in ("case", "shape", "spacing (mm)"):
            cases.add_column(column)
        for case in report.cases:
            shape = "x".join(map(str, case.shape)) if case.shape else "?"
            spacing = " x ".join(f"{s:.3g}" for s in case.spacing) if case.spacing else "?"
            cases.add_row(case.case_id, shape, spacing)
        print_table(console, cases)
    if report.warnings:
        console.print(f"[yellow bold]{len(report.warnings)} warning(s):[/yellow bold]")
        for warning in report.warnings:
            console.print(
                f"  [yellow]-[/yellow] {escape(str(warning))}", highlight=False, soft_wrap=True
            )
    if report.problems:
        console.print(f"[red bold]{len(report.problems)} problem(s):[/red bold]")
        for problem in report.problems:
            # one line each, however long the path: a line to read or grep whole
            console.print(f"  [red]-[/red] {escape(str(problem))}", highlight=False, soft_wrap=True)
    else:
        console.print("[green]no problems found[/green]")


def run_inspect(args: argparse.Namespace, console: Console | None = None) -> int:
    """Inspect a folder; exit code 1 if it has any problem (warnings give 0), 2 for a bad option.

    With data options that change what is loaded (cases, preprocessing, labels, split), the
    folder is then loaded with them as ``losslab train`` loads it, and the cases are listed as
    loaded (a case too small after resampling or cropping is a problem).
    """
    from rich.console import Console
    from rich.markup import escape

    from losslab.data.config import FOLDER_SOURCES
    from losslab.data.inspection import inspect_folder

    console = console or Console()
    try:
        config = data_config_from_args(args, INSPECT_DEFAULTS)
        if config.source not in FOLDER_SOURCES:
            raise OptionError(
                "--data",
                f"data inspect checks a dataset folder ({' or '.join(FOLDER_SOURCES)}); write "
                f"the phantom as one with `losslab data phantom --out DIR`",
            )
        report = inspect_folder(
            config.data_dir,
            labels=config.labels,
            split_fractions=config.split_fractions,
            source=config.source,
        )
    except ValueError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        return 2
    print_report(report, console)
    if report.ok and _loads_differently(config):
        return 0 if _print_loaded(config, console) else 1
    return 0 if report.ok else 1


def _loads_differently(config: DataConfig) -> bool:
    """Whether ``config`` loads the folder otherwise than as stored, all cases."""
    from dataclasses import fields

    plain = type(config)(source=config.source, data_dir=config.data_dir)
    # what inspect_folder already applies, and the phantom's settings
    same = {"cache_dir", "use_cache", "labels", "split_fractions", "split_seed", "shape", "seed"}
    return any(
        getattr(config, f.name) != getattr(plain, f.name)
        for f in fields(config)
        if f.name not in same
    )


def _print_loaded(config: DataConfig, console: Console) -> bool:
    """Load the folder with ``config`` and list its cases as loaded; False on a problem."""
    from rich.markup import escape
    from rich.table import Table

    from losslab.data.loading import build_dataset

    quiet = logging.getLogger("losslab.data")  # its warnings are the report's, printed above
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        dataset = build_dataset(config)
    except ValueError as exc:  # DatasetError included
        console.print("[red bold]1 problem with these data options:[/red bold]")
        console.print(f"  [red]-[/red] {escape(str(exc))}", highlight=False)
        return False
    finally:
        quiet.setLevel(level)
    split_of = {i: name for name, indices in dataset.splits.items() for i in indices}
    spacing = " x ".join(f"{s:.3g}" for s in dataset.spacing)
    console.print(f"[bold]As loaded with these data options[/bold] (spacing {spacing} mm)")
    table = Table()
    for column in ("case", "shape", "split"):
        table.add_column(column)
    for i, case_id in enumerate(dataset.case_ids):
        shape = "x".join(str(s) for s in dataset.images[i].shape[1:])
        table.add_row(case_id, shape, split_of.get(i, "-"))
    console.print(table)
    console.print(f"[green]{len(dataset)} case(s) load with these data options[/green]")
    return True
