"""The lines a study prints while it runs (above its progress bars)."""

from __future__ import annotations

from rich.markup import escape

__all__ = ["describe", "stop_line"]


def describe(label: str, name: str, status: str, value: float, reason: str, cached: bool) -> str:
    """One line per finished evaluation."""
    if status == "ok":
        text = f"objective {value:.4f}"
    elif status == "pruned":
        text = f"[yellow]{escape(reason)}[/]"
    else:
        text = f"[red]failed[/] ({escape(reason)})"
    return f"{label} [bold]{escape(name)}[/]: {text}" + (" [dim](cached)[/]" if cached else "")


def stop_line(stop: BaseException) -> str:
    """The time budget ended during an evaluation."""
    return (
        f"[yellow]{escape(str(stop))}[/]: the running evaluation was stopped and will run again "
        "when the study continues"
    )
