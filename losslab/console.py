"""Console output: progress bars, per-class tables (rich) and warnings about results."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from losslab.classwise import foreground_mean, nanmean
from losslab.tables import print_table
from losslab.training.hooks import Hook

if TYPE_CHECKING:
    from losslab.training.result import EpochRecord, Result
    from losslab.training.state import TrainState

__all__ = [
    "ProgressHook",
    "StudyProgress",
    "class_table",
    "nanmean",
    "per_class_table",
    "print_table",
    "split_title",
    "unchanged_schedule_warnings",
    "worst_marks",
]

_COLUMNS = (("dice", "Dice"), ("sensitivity", "SEN"), ("precision", "PRC"), ("hd95", "HD95 mm"))


def _bars(console: Console) -> Progress:
    """Progress bars: description, bar, done/total, an ``info`` field, elapsed time."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
    )


def _fmt(value: float, digits: int = 3) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def _name_column(table: Table, header: str) -> None:
    table.add_column(header, overflow="fold")


def _number_column(table: Table, header: str) -> None:
    table.add_column(header, justify="right", overflow="fold")


def worst_marks(dice: Sequence[float], worst: int) -> dict[int, str]:
    """The marks of the ``worst`` foreground classes (index >= 1) of lowest Dice as printed (3
    decimals; NaN, an absent class, left out): ``(worst)``, or, for classes whose printed Dice
    tie, ``(3 tie at 0.000)`` on each of them (a tie that crosses the ``worst`` cut takes in all
    its classes: which of them is "worst" would be arbitrary).

    Marking only means something when some classes are left unmarked: with ``worst`` or fewer
    foreground classes that have a Dice, or when ties would mark them all, none is marked.
    """
    shown = {c: round(dice[c], 3) for c in range(1, len(dice)) if not math.isnan(dice[c])}
    if len(shown) <= worst:
        return {}
    marks: dict[int, str] = {}
    for value in sorted(set(shown.values())):
        if len(marks) >= worst:
            break
        group = [c for c in sorted(shown) if shown[c] == value]
        label = "(worst)" if len(group) == 1 else f"({len(group)} tie at {value:.3f})"
        marks.update((c, label) for c in group)
    return marks if len(marks) < len(shown) else {}


def _never_predicted(result: Result) -> set[int]:
    """Classes present in some test case yet predicted in none (``predicted_voxels``)."""
    predicted = result.test_cases.get("predicted_voxels")
    dice = result.test_cases.get("dice")
    if not predicted or not dice or len(predicted) != len(dice):
        return set()
    classes = range(1, len(result.class_names))
    present = {c for c in classes if any(not math.isnan(row[c]) for row in dice)}
    return {c for c in present if all(row[c] == 0 for row in predicted)}


def per_class_table(result: Result, *, worst: int = 3, title: str | None = None) -> Table:
    """Per-class test metrics (Dice, SEN, PRC, HD95), the ``worst`` foreground classes marked
    (:func:`worst_marks`: ties are said, not ranked).

    A class never predicted on the test split has no HD95 (no surface to measure from): its
    cell says ``n/a: never predicted`` and the caption says the mean counts it as the volume's
    diagonal. The title says how many test cases the table covers, when known. Print it with
    :func:`print_table` so no cell is cut.
    """
    title = title or f"Test metrics per class ({result.status})"
    cases = len(result.test_case_ids)
    if cases:  # which cases the table covers
        title += f" (test split, {cases} case{'s' * (cases != 1)}; one seed)"
    table = Table(title=title)
    _name_column(table, "class")
    metrics = [(key, label) for key, label in _COLUMNS if key in result.test_metrics]
    for _, label in metrics:
        _number_column(table, label)
    marks = worst_marks(result.test_metrics.get("dice", []), worst)
    never = _never_predicted(result) if "hd95" in result.test_metrics else set()
    for c, name in enumerate(result.class_names):
        if c == 0:
            continue
        row = [_fmt(result.test_metrics[key][c], 1 if key == "hd95" else 3) for key, _ in metrics]
        if c in never:
            row[[k for k, _ in metrics].index("hd95")] = "n/a: never predicted"
        label = f"{name} [bold red]{marks[c]}[/]" if c in marks else name
        table.add_row(label, *row)
    means = [result.foreground_mean(key) for key, _ in metrics]
    table.add_section()
    table.add_row(
        "[bold]mean (foreground)[/]",
        *[_fmt(m, 1 if k == "hd95" else 3) for m, (k, _) in zip(means, metrics)],
    )
    if never:
        names = ", ".join(result.class_names[c] for c in sorted(never))
        table.caption = (
            f"HD95 n/a: {names} never predicted on the test split, so no distance can be "
            "measured; the HD95 mean counts each such class as the volume's diagonal (the "
            "largest distance)."
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
        self._progress = _bars(self.console)
        self._progress.start()
        total = state.config.epochs * state.config.steps_per_epoch
        self._task = self._progress.add_task(self.description, total=total, info="")

    def on_step_end(self, state: TrainState) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> None:
        if self._progress is None:
            return
        fg = foreground_mean(record.val_dice)
        dice = "" if math.isnan(fg) else f"val Dice {fg:.3f}"
        self._progress.update(
            self._task,
            completed=state.epoch * state.config.steps_per_epoch,
            info=f"epoch {record.epoch} loss {record.train_loss:.4f} {dice}",
        )

    def on_train_end(self, state: TrainState | None, result: Result) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def class_table(
    title: str,
    class_names: Sequence[str],
    shares: Sequence[float],
    columns: Mapping[str, Sequence[float]],
    reference: str | None = None,
) -> Table:
    """Classes in rows with their voxel share, one column per candidate, the mean on top.

    The layout of Table 1 of Willoughby and Voiculescu (2024); with a ``reference`` column, a class whose Dice beats
    it is marked ``+`` (green): give one only where the columns average several seeds (a
    single seed's difference says nothing). Index 0 (background) is skipped. Print it with
    :func:`print_table` so no cell is cut.
    """
    table = Table(title=title)
    _name_column(table, "class")
    _number_column(table, "share")
    for name in columns:
        _number_column(table, name)
    ref = list(columns[reference]) if reference in columns else [math.nan] * len(class_names)
    means = {n: foreground_mean(v) for n, v in columns.items()}
    table.add_row("[bold]mean[/]", "", *[_cell(means[n], foreground_mean(ref)) for n in columns])
    table.add_section()
    for c, class_name in enumerate(class_names):
        if c == 0:
            continue
        table.add_row(
            class_name,
            f"{100 * shares[c - 1]:.1f}%",
            *[_cell(values[c], ref[c]) for values in columns.values()],
        )
    return table


def _cell(value: float, reference: float) -> str:
    if math.isnan(value):
        return "-"
    text = f"{value:.3f}"
    if not math.isnan(reference) and value > reference:
        return f"[green]+{text}[/]"
    return text


def split_title(title: str, dataset, seeds: int, split: str = "test") -> str:
    """``Test Dice per class (test split, 3 cases; one seed)``: which cases a table covers."""
    cases = len(dataset.splits.get(split, []))
    runs = "one seed" if seeds == 1 else f"mean of {seeds} seeds"
    return f"{title} ({split} split, {cases} case{'s' * (cases != 1)}; {runs})"


def _g(value: object) -> str:
    """A parameter as a person reads it (3 significant digits for a float)."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _why_unchanged(name: str, params: Mapping, epochs: int) -> str:
    """Why the class schedule ``name`` (resolved ``params``) may have changed no weight in
    ``epochs`` epochs."""
    frozen = params.get("frozen_weight")
    if frozen == 1:
        return "its frozen_weight is 1, so freezing a class leaves its weight at 1"
    if name == "tcf":
        return (
            f"no class's validation Dice rose above threshold={_g(params.get('threshold'))} at "
            "this fidelity; lengthen the fidelity or lower threshold"
        )
    delta = params.get("delta")
    if name in ("pcf", "cbs") and isinstance(delta, int) and epochs <= delta + 2:
        return (
            f"{name.upper()} can first trigger at the end of epoch delta + 2 = {delta + 2} (its "
            f"plateau window of delta={delta} epochs starts after the first), so a weight it "
            f"changes is first used in epoch {delta + 3}; lengthen the fidelity or lower delta"
        )
    if name in ("pcf", "cbs"):
        return (
            f"no class met its trigger at this fidelity: {name.upper()} needs the best unfrozen "
            f"class's validation Dice to plateau, its best of the last delta="
            f"{params.get('delta')} epochs more than epsilon={_g(params.get('epsilon'))} below "
            "its best since the last trigger; lengthen the fidelity or lower delta or epsilon"
        )
    if name == "rule":
        return "its rule gave every class weight 1 at every epoch of this fidelity"
    return "it gave every class weight 1 at every epoch of this fidelity"


def unchanged_schedule_warnings(items) -> list[str]:
    """Yellow lines for the ok results ``(label, candidate, result)`` whose class schedule (not
    ``uniform``) kept every class weight at 1 in every epoch: they trained exactly as without
    it, and why (the schedule's trigger, from its parameters). Results of one schedule, epoch
    count and reason share a line; a label appears once."""
    from losslab.describe import schedule_params

    groups: dict[tuple[str, int, str], list[str]] = {}
    for label, candidate, result in items:
        spec = candidate.class_schedule
        history = result.history
        if not result.ok or spec.name == "uniform" or not history:
            continue
        if any(w != 1.0 for record in history for w in record.class_weights):
            continue
        why = _why_unchanged(spec.name, schedule_params("class", spec), len(history))
        labels = groups.setdefault((spec.name, len(history), why), [])
        if label not in labels:
            labels.append(label)
    lines = []
    for (name, epochs, why), labels in groups.items():
        shown = ", ".join(labels[:6]) + (f" and {len(labels) - 6} more" if len(labels) > 6 else "")
        verb = "it trained" if len(labels) == 1 else "each trained"
        lines.append(
            f"[yellow]{escape(shown)}: the class schedule {name} never changed a weight in "
            f"{epochs} epoch{'s' * (epochs != 1)}, so {verb} exactly as without it "
            f"({escape(why)})[/]"
        )
    return lines


def suite_schedule_warnings(suite) -> list[str]:
    """:func:`unchanged_schedule_warnings` of a baseline suite's runs (every seed)."""
    items = [
        (candidate.name, candidate, result)
        for candidate in suite.config.candidates
        for result in suite.results.get(candidate.name, [])
    ]
    return unchanged_schedule_warnings(items)


class _RunProgress(Hook):
    """One evaluation's bar inside a :class:`StudyProgress`, removed when the run ends."""

    population_safe = True  # one bar per member (losslab.training.population)

    def __init__(self, owner: StudyProgress, description: str):
        self.owner, self.description, self.task = owner, description, None

    def on_train_start(self, state: TrainState) -> None:
        progress = self.owner._progress
        if progress is not None:
            total = state.config.epochs * state.config.steps_per_epoch
            self.task = progress.add_task(self.description, total=total, info="")

    def on_step_end(self, state: TrainState) -> None:
        if self.task is not None:
            self.owner._progress.advance(self.task)

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> None:
        if self.task is not None:
            fg = foreground_mean(record.val_dice)
            info = f"epoch {record.epoch}" + ("" if math.isnan(fg) else f" val Dice {fg:.3f}")
            self.owner._progress.update(
                self.task, completed=state.epoch * state.config.steps_per_epoch, info=info
            )

    def on_train_end(self, state: TrainState | None, result: Result) -> None:
        if self.task is not None:
            self.owner._progress.remove_task(self.task)
            self.task = None


class StudyProgress:
    """A study's bars: trials done out of the budget, and the evaluation in progress.

    Use as a context manager; ``line`` prints above the bars, ``run_hook`` gives a trainer hook
    that draws the current evaluation. With ``enabled=False`` it draws and prints nothing.
    """

    def __init__(
        self,
        total: int | None,
        *,
        console: Console | None = None,
        enabled: bool = True,
        title: str = "study",
    ):
        self.total, self.title, self.enabled = total, title, enabled
        self.console = console or Console(stderr=True)
        self._progress: Progress | None = None
        self._task = None
        self._done = 0

    def __enter__(self) -> StudyProgress:
        if self.enabled:
            self._progress = _bars(self.console)
            self._progress.start()
            self._task = self._progress.add_task(
                f"study {self.title}", total=self.total, completed=self._done, info="trials"
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def advance_to(self, done: int) -> None:
        self._done = done
        if self._progress is not None:
            self._progress.update(self._task, completed=done)

    def run_hook(self, description: str) -> Hook:
        return _RunProgress(self, description)

    def line(self, text: str) -> None:
        if self.enabled:
            (self._progress.console if self._progress else self.console).print(
                text, highlight=False
            )

    def say(self, text: str) -> None:
        """Print ``text`` above the bars, or alone without them (``enabled=False`` too); a
        command in it is never broken by a wrap (``soft_wrap``)."""
        console = self._progress.console if self._progress is not None else self.console
        console.print(text, highlight=False, soft_wrap=True)

    def trial_done(self, text: str) -> None:
        self.line(text)
        self.advance_to(self._done + 1)
