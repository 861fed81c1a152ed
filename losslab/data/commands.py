"""``losslab data`` command: ``phantom`` writes the phantom as a Decathlon folder, ``inspect``
checks a folder and prints its classes, cases and class frequencies."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from losslab.data.export import write_phantom_decathlon
from losslab.data.inspection import InspectionReport, inspect_decathlon


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``data`` command and its subcommands to the top-level parser."""
    data = subparsers.add_parser("data", help="synthetic phantom and Decathlon datasets")
    commands = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")

    phantom = commands.add_parser(
        "phantom", help="write the abdominal CT phantom as a Decathlon folder"
    )
    phantom.add_argument("--out", type=Path, required=True, help="folder to write")
    phantom.add_argument("--cases", type=int, default=20, help="number of cases (default 20)")
    phantom.add_argument(
        "--shape", type=int, nargs="+", default=[96], help="one size (cube) or three (D H W)"
    )
    phantom.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    phantom.set_defaults(func=run_phantom)

    inspect = commands.add_parser("inspect", help="check a Decathlon folder and summarise it")
    inspect.add_argument("data_dir", type=Path, help="folder holding dataset.json")
    inspect.set_defaults(func=run_inspect)


def run_phantom(args: argparse.Namespace, console: Console | None = None) -> int:
    """Write ``args.cases`` phantom cases under ``args.out``; return the exit code."""
    console = console or Console()
    shape = tuple(args.shape) * 3 if len(args.shape) == 1 else tuple(args.shape)
    if len(shape) != 3:
        console.print(f"[red]error:[/red] --shape takes 1 or 3 sizes, got {list(args.shape)}")
        return 2
    try:
        path = write_phantom_decathlon(args.out, args.cases, shape, args.seed)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    console.print(f"wrote {args.cases} phantom case(s) of shape {shape} to {path.parent}")
    return 0


def _format_share(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.2f}%"


def print_report(report: InspectionReport, console: Console) -> None:
    """Print the classes, cases, frequency table, warnings and problems of a report."""
    manifest = report.manifest
    if manifest is not None:
        modality = ", ".join(f"{k}: {v}" for k, v in sorted(manifest.modality.items()))
        console.print(f"[bold]{manifest.name}[/bold]  ({report.root})")
        console.print(f"modality {modality or '?'}; {len(manifest.cases)} training case(s)")
        classes = Table(title="Classes (share: of labelled voxels; MFB w: median frequency weight)")
        classes.add_column("value", justify="right")
        classes.add_column("name", no_wrap=True)
        for column in ("voxels", "share", "cases", "freq", "MFB w"):
            classes.add_column(column, justify="right")
        for row in report.class_table():
            classes.add_row(
                str(row["value"]),
                row["name"],
                f"{row['voxels']:,}",
                _format_share(row["share"]),
                str(row["cases"]),
                f"{row['frequency']:.4g}",
                f"{row['mfb_weight']:.3g}",
            )
        console.print(classes)
        cases = Table(title="Cases")
        for column in ("case", "shape", "spacing (mm)"):
            cases.add_column(column)
        for case in report.cases:
            shape = "x".join(map(str, case.shape)) if case.shape else "?"
            spacing = " x ".join(f"{s:.3g}" for s in case.spacing) if case.spacing else "?"
            cases.add_row(case.case_id, shape, spacing)
        console.print(cases)
    if report.warnings:
        console.print(f"[yellow bold]{len(report.warnings)} warning(s):[/yellow bold]")
        for warning in report.warnings:
            console.print(f"  [yellow]-[/yellow] {escape(str(warning))}", highlight=False)
    if report.problems:
        console.print(f"[red bold]{len(report.problems)} problem(s):[/red bold]")
        for problem in report.problems:
            console.print(f"  [red]-[/red] {escape(str(problem))}", highlight=False)
    else:
        console.print("[green]no problems found[/green]")


def run_inspect(args: argparse.Namespace, console: Console | None = None) -> int:
    """Inspect ``args.data_dir``; exit code 1 if it has any problem (warnings give 0)."""
    console = console or Console()
    report = inspect_decathlon(args.data_dir)
    print_report(report, console)
    return 0 if report.ok else 1
