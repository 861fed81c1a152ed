"""The ``losslab`` command line.

Each subcommand lives with the package it drives and registers itself here through a
``register(subparsers)`` function, so this module stays a thin dispatcher.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from losslab import __version__


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every subcommand registered."""
    from losslab.data import commands as data_commands

    parser = argparse.ArgumentParser(
        prog="losslab",
        description="Search for the training objective of imbalanced 3D segmentation.",
    )
    parser.add_argument("--version", action="version", version=f"losslab {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data_commands.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``losslab`` script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
