"""Console output: progress bars and per-class tables (rich)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from losslab.training.hooks import Hook

if TYPE_CHECKING:
    from losslab.training.result import EpochRecord, Result
    from losslab.training.trainer import TrainState

__all__ = ["ProgressHook", "per_class_table"]

_COLUMNS = (("dice", "Dice"), ("sensitivity", "SEN"), ("precision", "PRC"), ("hd95", "HD95 mm"))


def _fmt(value: float, digits: int = 3) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def per_class_table(result: Result, *, worst: int = 3, title: str | None = None) -> Table:
    """Per-class test metrics (Dice, SEN, PRC, HD95), the ``worst`` foreground classes marked."""
    table = Table(title=title or f"Test metrics per class ({result.status})")
    table.add_column("class")
    metrics = [(key, label) for key, label in _COLUMNS if key in result.test_metrics]
    for _, label in metrics:
        table.add_column(label, justify="right")
    dice = result.test_metrics.get("dice", [])
    ranked = sorted(
        (c for c in range(1, len(result.class_names)) if dice and not math.isnan(dice[c])),
        key=lambda c: dice[c],
    )
    marked = set(ranked[:worst])
    for c, name in enumerate(result.class_names):
        if c == 0:
            continue
        row = [_fmt(result.test_metrics[key][c], 1 if key == "hd95" else 3) for key, _ in metrics]
        label = f"{name} [bold red](worst)[/]" if c in marked else name
        table.add_row(label, *row)
    means = [result.foreground_mean(key) for key, _ in metrics]
    table.add_section()
    table.add_row(
        "[bold]mean (foreground)[/]",
        *[_fmt(m, 1 if k == "hd95" else 3) for m, (k, _) in zip(means, metrics)],
    )
    return table


class ProgressHook(Hook):
    """A progress bar over all steps of a run, with the last validation Dice."""

    def __init__(self, console: Console | None = None, description: str = "training"):
        self.console = console or Console(stderr=True)
        self.description = description
        self._progress: Progress | None = None
        self._task = None

    def on_train_start(self, state: TrainState) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        total = state.config.epochs * state.config.steps_per_epoch
        self._task = self._progress.add_task(self.description, total=total, info="")

    def on_step_end(self, state: TrainState) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> None:
        if self._progress is None:
            return
        fg = [v for v in record.val_dice[1:] if not math.isnan(v)]
        dice = f"val Dice {sum(fg) / len(fg):.3f}" if fg else ""
        self._progress.update(
            self._task,
            completed=state.epoch * state.config.steps_per_epoch,
            info=f"epoch {record.epoch} loss {record.train_loss:.4f} {dice}",
        )

    def on_train_end(self, state: TrainState | None, result: Result) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
