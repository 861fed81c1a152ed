"""PNG plots of a study's ledger: objective history, parallel coordinates, GP fitness.

The plots are drawn here from :class:`~losslab.search.store.ledger.TrialRecord` entries rather than
with Optuna's ``optuna.visualization.matplotlib`` functions: the ledger covers every backend
(Optuna, GP, greedy, ML3), whereas Optuna's functions need an ``optuna.Study`` and draw through
pyplot's global state, which is unsafe in worker threads and long processes. Figures come from
:func:`losslab.plots.new_figure` (an Agg canvas outside pyplot).

The objective is maximised (``losslab.search.objective``): the running best is a maximum.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from losslab.plots import draw_all, figure_png, new_figure, plots_enabled

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from losslab.search.backend import TrialRecord

__all__ = [
    "colour_norm",
    "generation_fitness_plot",
    "objective_history_figure",
    "objective_history_plot",
    "parallel_coordinates_figure",
    "parallel_coordinates_plot",
    "study_plots",
]

GENERATION = "gp.generation"
MAX_AXES = 12  # searched parameters drawn in the parallel coordinates plot
MAX_CATEGORIES = 12  # a categorical parameter with more values (GP expressions) is left out
_MISSING = -0.12  # where a trial without the parameter (a conditional one) crosses the axis


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _bottom_marks(ax: Axes, xs: Sequence[float], label: str, span: Sequence[float]) -> None:
    """Red crosses on the bottom of the axes (failed entries, which have no value); the x axis
    is set to cover ``span`` (marks in axes coordinates do not autoscale it)."""
    if span:
        low, high = min(span), max(span)
        pad = max(0.5, 0.03 * (high - low))
        ax.set_xlim(low - pad, high + pad)
    if xs:
        ax.scatter(
            list(xs), [0.03] * len(xs), marker="x", s=22, color="tab:red",
            transform=ax.get_xaxis_transform(), clip_on=False, label=label, zorder=3,
        )  # fmt: skip


def objective_history_plot(
    records: Sequence[TrialRecord], objective_name: str = "objective"
) -> bytes | None:
    """The objective per trial number: ok trials as dots, pruned ones as hollow grey markers at
    their last value, failed ones as crosses on the bottom axis, and the running best of the ok
    trials as a step line. ``None`` when there are no records."""
    fig = objective_history_figure(records, objective_name)
    return None if fig is None else figure_png(fig)


def objective_history_figure(records: Sequence[TrialRecord], objective_name: str = "objective"):
    """The figure of :func:`objective_history_plot`: trial numbers on integer ticks, the best
    so far drawn to the right edge (a line even with one ok trial)."""
    if not records:
        return None
    from matplotlib.ticker import MaxNLocator

    ordered = sorted(records, key=lambda r: r.number)
    ok = [(r.number, r.value) for r in ordered if r.status == "ok" and _finite(r.value)]
    pruned = [(r.number, r.value) for r in ordered if r.status == "pruned" and _finite(r.value)]
    shown = {n for n, _ in ok} | {n for n, _ in pruned}
    failed = [r.number for r in ordered if r.number not in shown]
    fig = new_figure()
    ax = fig.add_axes((0.11, 0.14, 0.62, 0.76))
    if pruned:
        ax.scatter(
            [n for n, _ in pruned], [v for _, v in pruned], s=22, facecolors="none",
            edgecolors="0.5", label=f"pruned ({len(pruned)})", zorder=2,
        )  # fmt: skip
    if ok:
        ax.scatter(
            [n for n, _ in ok], [v for _, v in ok], s=18, color="tab:blue",
            label=f"ok ({len(ok)})", zorder=3,
        )  # fmt: skip
        xs, best, top = [], [], -math.inf
        for number, value in ok:
            top = max(top, value)
            xs.append(number)
            best.append(top)
        xs.append(max(ordered[-1].number, xs[-1]) + 0.5)  # to the right edge of the axes
        best.append(best[-1])
        ax.step(xs, best, where="post", color="tab:orange", lw=1.5, label="best so far")
    if ok or pruned:
        low, high = ax.get_ylim()
        ax.set_ylim(low - 0.08 * (high - low), high)  # room for the failed marks
    else:
        ax.set_ylim(0.0, 1.0)
    _bottom_marks(ax, failed, f"failed ({len(failed)})", [r.number for r in ordered])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # one trial too
    ax.set_xlabel("trial number")
    ax.set_ylabel(objective_name)
    count = f"{len(ordered)} trial{'s' * (len(ordered) != 1)}"
    ax.set_title(f"{objective_name} per trial ({count})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    return fig


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else "\u2026" + text[-(width - 1) :]


class _Axis:
    """One parallel-coordinates axis: positions in ``[0, 1]`` and their labels."""

    def __init__(self, name: str, values: list[Any]):
        self.name = name
        present = [v for v in values if v is not None]
        self.numeric = all(_finite(v) for v in present)
        self.log = False
        self.categories: list[str] = []
        if self.numeric:
            self.low, self.high = min(present), max(present)
            self.log = self.low > 0 and self.high / self.low > 20
        else:
            self.categories = sorted({str(v) for v in present})

    def position(self, value: Any) -> float:
        if value is None:
            return _MISSING
        if not self.numeric:
            n = len(self.categories)
            return 0.5 if n == 1 else self.categories.index(str(value)) / (n - 1)
        if self.high == self.low:
            return 0.5
        if self.log:
            return math.log(value / self.low) / math.log(self.high / self.low)
        return (value - self.low) / (self.high - self.low)

    def ticks(self) -> list[tuple[float, str]]:
        if not self.numeric:
            return [(self.position(c), _short(c, 14)) for c in self.categories]
        if self.high == self.low:
            return [(0.5, f"{self.low:.3g}")]
        mid = math.sqrt(self.low * self.high) if self.log else (self.low + self.high) / 2
        return [(0.0, f"{self.low:.3g}"), (0.5, f"{mid:.3g}"), (1.0, f"{self.high:.3g}")]


def parallel_coordinates_plot(
    records: Sequence[TrialRecord], objective_name: str = "objective"
) -> bytes | None:
    """One vertical axis per searched parameter plus the objective's, one line per ok trial
    coloured by its objective (best on top). Numeric parameters are min-max normalised per axis
    (log-scaled when all positive and spanning more than 20x), categorical ones evenly spaced;
    a trial without a (conditional) parameter crosses that axis at ``n/a``. Categorical
    parameters with more than ``MAX_CATEGORIES`` values (GP expressions) are left out.
    ``None`` when no ok trial has parameters."""
    fig = parallel_coordinates_figure(records, objective_name)
    return None if fig is None else figure_png(fig)


def parallel_coordinates_figure(records: Sequence[TrialRecord], objective_name: str = "objective"):
    """The figure of :func:`parallel_coordinates_plot` (its last axes: the colour bar)."""
    trials = [
        r for r in records if r.status == "ok" and _finite(r.value) and isinstance(r.params, dict)
    ]
    trials = [r for r in trials if r.params]
    if not trials:
        return None
    names: list[str] = []
    for r in trials:
        names.extend(k for k in r.params if k not in names)
    axes: list[_Axis] = []
    for name in names:
        axis = _Axis(name, [r.params.get(name) for r in trials])
        if axis.numeric or len(axis.categories) <= MAX_CATEGORIES:
            axes.append(axis)
    left_out = len(names) - min(len(axes), MAX_AXES)
    axes = axes[:MAX_AXES]
    if not axes:
        return None
    values = [float(r.value) for r in trials]
    axes.append(_Axis(objective_name, values))
    return _draw_parallel(trials, axes, values, objective_name, left_out)


def colour_norm(values: Sequence[float]):
    """The colour scale of the objective: its range, or, when every value is the same (one
    trial), a range of +/- 0.01 around it, so the colour bar's ticks read as plain numbers
    (a range of 1e-9 made matplotlib label them ``1e-10+6.128316e-2``)."""
    from matplotlib.colors import Normalize

    low, high = min(values), max(values)
    if high - low < 1e-6:
        low, high = low - 0.01, high + 0.01
    return Normalize(low, high)


def _draw_parallel(
    trials: list[TrialRecord],
    axes: list[_Axis],
    values: list[float],
    objective_name: str,
    left_out: int,
):
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import LineCollection
    from matplotlib.ticker import FormatStrFormatter

    cmap = colormaps["viridis"]
    norm = colour_norm(values)
    lines, colors = [], []
    for r in sorted(trials, key=lambda t: t.value):  # best drawn last, on top
        ys = [a.position(r.params.get(a.name)) for a in axes[:-1]]
        ys.append(axes[-1].position(float(r.value)))
        lines.append(list(zip(range(len(axes)), ys)))
        colors.append(cmap(norm(r.value)))
    fig = new_figure(max(6.0, 0.75 * len(axes) + 1.5), 3.5)
    ax = fig.add_axes((0.1, 0.27, 0.76, 0.62))
    ax.add_collection(LineCollection(lines, colors=colors, linewidths=1.2, alpha=0.8))
    missing = any(y == _MISSING for line in lines for _, y in line)
    for i, axis in enumerate(axes):
        ax.axvline(i, color="black", lw=0.8)
        ticks = axis.ticks() + ([(_MISSING, "n/a")] if missing and i < len(axes) - 1 else [])
        for y, text in ticks:
            ax.text(i + 0.04, y, text, fontsize=6.5, va="center", ha="left",
                    bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7})  # fmt: skip
    ax.set_xlim(-0.1, len(axes) - 0.4)
    ax.set_ylim(_MISSING - 0.06 if missing else -0.05, 1.08)
    ax.set_yticks([])
    ax.set_xticks(range(len(axes)))
    ax.set_xticklabels(
        [_short(a.name, 22) + (" (log)" if a.log else "") for a in axes], rotation=25, ha="right", fontsize=7
    )  # fmt: skip
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    title = f"parallel coordinates ({len(trials)} ok trial{'s' * (len(trials) != 1)})"
    if left_out > 0:
        title += f"; {left_out} left out (too many values or axes)"
    ax.set_title(title, fontsize=9)
    bar_ax = fig.add_axes((0.9, 0.27, 0.02, 0.62))
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=bar_ax)
    bar.set_label(objective_name, fontsize=8)
    bar.formatter = FormatStrFormatter("%.3g")  # plain numbers, never an offset
    bar.update_ticks()
    bar_ax.tick_params(labelsize=7)
    return fig


def _generation(record: TrialRecord) -> int | None:
    params = record.params if isinstance(record.params, dict) else {}
    value = params.get(GENERATION)
    if isinstance(value, bool):
        return None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def generation_fitness_plot(records: Sequence[TrialRecord]) -> bytes | None:
    """For GP studies (records whose params carry ``gp.generation``): per generation, every
    individual's fitness (the objective of ok entries) as points, the best and the median as
    lines, and individuals without a fitness as crosses on the bottom axis. ``None`` when no
    record has a generation."""
    by_generation: dict[int, list[TrialRecord]] = {}
    for r in records:
        generation = _generation(r)
        if generation is not None:
            by_generation.setdefault(generation, []).append(r)
    if not by_generation:
        return None
    from matplotlib.ticker import MaxNLocator

    fig = new_figure()
    ax = fig.add_axes((0.11, 0.14, 0.62, 0.76))
    xs, ys, failed = [], [], []
    gens, best, median = [], [], []
    for generation in sorted(by_generation):
        fitness = [
            float(r.value)
            for r in by_generation[generation]
            if r.status == "ok" and _finite(r.value)
        ]
        failed.extend([generation] * (len(by_generation[generation]) - len(fitness)))
        n = len(fitness)
        for k, value in enumerate(fitness):
            xs.append(generation + (0.0 if n == 1 else 0.5 * (k / (n - 1) - 0.5)))
            ys.append(value)
        if fitness:
            gens.append(generation)
            best.append(max(fitness))
            median.append(statistics.median(fitness))
    if ys:
        ax.scatter(xs, ys, s=10, color="0.55", alpha=0.7, label=f"individuals ({len(ys)})")
        ax.plot(gens, best, marker="o", ms=4, color="tab:orange", lw=1.6, label="best")
        ax.plot(gens, median, marker="s", ms=3, color="tab:blue", lw=1.2, ls="--", label="median")
        low, high = ax.get_ylim()
        ax.set_ylim(low - 0.08 * (high - low), high)  # room for the marks below
    else:
        ax.set_ylim(0.0, 1.0)
    _bottom_marks(ax, failed, f"no fitness ({len(failed)})", list(by_generation))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("generation")
    ax.set_ylabel("fitness (objective)")
    ax.set_title(f"GP fitness per generation ({len(by_generation)} generations)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    return figure_png(fig)


def study_plots(
    records: Sequence[TrialRecord], objective_name: str = "objective"
) -> dict[str, bytes]:
    """Name -> PNG of the study plots that apply: ``objective_history.png``,
    ``parallel_coordinates.png`` (some ok trial has parameters) and ``gp_fitness.png`` (some
    record has a GP generation). A plot that fails to draw is left out (logged); ``{}`` when
    :func:`losslab.plots.plots_enabled` is ``False``."""
    if not plots_enabled():
        return {}
    plots: tuple[tuple[str, Callable[[], bytes | None]], ...] = (
        ("objective_history.png", lambda: objective_history_plot(records, objective_name)),
        ("parallel_coordinates.png", lambda: parallel_coordinates_plot(records, objective_name)),
        ("gp_fitness.png", lambda: generation_fitness_plot(records)),
    )
    return draw_all(plots)
