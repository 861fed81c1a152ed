"""Printing rich tables whole: every cell in full, never cut with "…" (rich only, light to import)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

__all__ = ["print_table"]

_UNBOUNDED = 1_000_000  # a width no table reaches, to measure a table's natural width


def print_table(console: Console, table: Table) -> None:
    """Print ``table`` with every cell in full, never cut with "…".

    On a terminal the table fits the screen: a cell too wide for its column folds onto more
    lines (the tables of this module set ``overflow="fold"``). To a file or a pipe, whose width
    is only a default (80), the console is widened for this print to the table's natural width,
    so every row stays on one line and every number and class name can be read or grepped.
    """
    if console.is_terminal:
        console.print(table)
        return
    natural = console.measure(table, options=console.options.update_width(_UNBOUNDED)).maximum
    width = console.width
    if natural <= width:
        console.print(table)
        return
    console.width = natural
    try:
        console.print(table)
    finally:
        console.width = width
