"""PNG plots of one evaluation: validation Dice, class and term weights, test logit margins.

Every figure is a :class:`matplotlib.figure.Figure` drawn by ``FigureCanvasAgg`` and saved to
bytes: nothing touches pyplot's global state (no current figure, no ``rcParams`` changes), so
the functions are safe in worker threads and long processes. Matplotlib is imported on first
use only. Each class keeps one colour in all of a run's plots (:func:`class_color`). Drawing
is most of an evaluation's plotting time, so what matplotlib would work out at each draw is
fixed beforehand: titles at ``y=1.0`` (not lifted over tick labels measured one by one), the
ticks and labels settled (:func:`_settle`), histograms as lines and fills (not patches).

The logit plot follows Li et al. (analysis of overfitting under class imbalance): for each
foreground class, the test split's histogram of the class's logit margin (its logit minus the
largest other logit) at the class's voxels (foreground) and at all other voxels (background).
Foreground mass left of the decision boundary (0) is under-segmentation (missed voxels);
background mass right of it is over-segmentation.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import math
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from losslab.training.result import Result

__all__ = [
    "MAX_LOGIT_PANELS",
    "class_color",
    "evaluation_plots",
    "figure_png",
    "new_figure",
    "plots_enabled",
    "weights_never_changed",
]

MAX_LOGIT_PANELS = 8
_log = logging.getLogger(__name__)
DPI = 100
_OFF = {"0", "false", "no", "off"}
_CONSTANT_TITLE = "class weights: constant (the schedule never changed a weight)"
_Hist = tuple[list[float], list[float], list[float]]  # bin edges, foreground, background


def plots_enabled() -> bool:
    """Whether plots are drawn: ``LOSSLAB_PLOTS`` is not ``0``/``false``/``no``/``off``
    (default on) and matplotlib is installed. :func:`evaluation_plots` and
    ``losslab.search.study_plots.study_plots`` return ``{}`` when this is ``False``."""
    if os.environ.get("LOSSLAB_PLOTS", "1").strip().lower() in _OFF:
        return False
    return importlib.util.find_spec("matplotlib") is not None


def new_figure(width: float = 6.0, height: float = 3.5) -> Figure:
    """A figure with its own Agg canvas, outside pyplot (nothing global to close)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, pil_kwargs={"compress_level": 3})
    return buffer.getvalue()


def class_color(index: int, n_classes: int) -> Any:
    """The colour of class ``index`` (0 = background, grey) among ``n_classes`` (background
    included): tab10 for up to 10 foreground classes, tab20 beyond."""
    from matplotlib import colormaps

    if index <= 0:
        return (0.35, 0.35, 0.35, 1.0)
    name = "tab10" if n_classes - 1 <= 10 else "tab20"
    cmap = colormaps[name]
    return cmap((index - 1) % cmap.N)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _same(a: Sequence[float], b: Sequence[float]) -> bool:
    """Equal lists of weights, NaN equal to NaN."""
    if len(a) != len(b):
        return False
    return all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b))


def weights_never_changed(result: Result) -> bool:
    """True when the result has at least two epochs and every epoch's class weights equal the
    first epoch's: the class schedule did nothing."""
    history = result.history
    if len(history) < 2:
        return False
    first = list(history[0].class_weights)
    return all(_same(list(r.class_weights), first) for r in history[1:])


def _class_name(result: Result, index: int) -> str:
    names = result.class_names
    return str(names[index]) if index < len(names) else f"class {index}"


def _n_classes(result: Result) -> int:
    widest = max((len(r.val_dice) for r in result.history), default=0)
    widest = max([widest, *(len(r.class_weights) for r in result.history)])
    return max(len(result.class_names), widest)


def _settle(ax: Axes, label_offsets: tuple[float, float] | None = None) -> None:
    """With the limits final, keep only the major ticks inside the view (matplotlib builds a
    tick, two lines and two labels, for places out of view too); ``label_offsets``: the axis
    labels' distances in points below and left of the axes (else found from the tick labels)."""
    from matplotlib.ticker import FixedLocator
    from matplotlib.transforms import ScaledTranslation

    for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        ticks = axis.get_major_locator()()
        near = [v for v in ticks if lo <= v <= hi or math.isclose(v, lo) or math.isclose(v, hi)]
        axis.set_major_locator(FixedLocator(near))
    if label_offsets is not None:
        below, left = (pts / 72 for pts in label_offsets)
        inches = ax.figure.dpi_scale_trans
        ax.xaxis.set_label_coords(0.5, 0, ax.transAxes + ScaledTranslation(0, -below, inches))
        ax.yaxis.set_label_coords(0, 0.5, ax.transAxes + ScaledTranslation(-left, 0, inches))


def _legend(ax: Axes, entries: int) -> None:
    """Last before the PNG: a legend right of the axes (room is left), whole epochs on x."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if entries:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False, ncol=1)
    _settle(ax)


def _val_dice_plot(result: Result) -> bytes | None:
    n = _n_classes(result)
    series: list[tuple[int, list[int], list[float]]] = []
    for c in range(1, n):
        points = [
            (r.epoch, float(r.val_dice[c]))
            for r in result.history
            if c < len(r.val_dice) and _finite(r.val_dice[c])
        ]
        if points:
            series.append((c, [p[0] for p in points], [p[1] for p in points]))
    if not series:
        return None
    fig = new_figure()
    ax = fig.add_axes((0.1, 0.14, 0.62, 0.76))
    for c, epochs, values in series:
        marker = "o" if len(epochs) <= 30 else None
        ax.plot(
            epochs, values, marker=marker, ms=3, lw=1.3, color=class_color(c, n),
            label=_class_name(result, c),
        )  # fmt: skip
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation Dice")
    ax.set_title("validation Dice per class", fontsize=10, y=1.0)
    ax.grid(alpha=0.3)
    _legend(ax, len(series))
    return figure_png(fig)


def _steps(ax: Axes, epochs: list[int], values: list[float], **kwargs: Any) -> None:
    """Weights in force per epoch as a step line (one flat segment per epoch)."""
    if not epochs:
        return
    xs = [*epochs, epochs[-1] + 1]
    ys = [*values, values[-1]]
    ax.step(xs, ys, where="post", **kwargs)


def _weight_label(name: str, values: list[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    notes = []
    frozen = sum(1 for v in finite if v == 0)
    if frozen:
        notes.append(f"frozen {frozen}/{len(values)} ep")
    if finite and max(finite) > 1:
        notes.append(f"max {max(finite):.3g}")
    return f"{name} ({', '.join(notes)})" if notes else name


def _class_weights_plot(result: Result) -> bytes | None:
    rows = [r for r in result.history if r.class_weights]
    if not rows:
        return None
    n = _n_classes(result)
    fig = new_figure()
    ax = fig.add_axes((0.1, 0.14, 0.56, 0.76))
    epochs = [r.epoch for r in rows]
    width = max(len(r.class_weights) for r in rows)
    top = 1.0
    for c in range(width):
        values = [float(r.class_weights[c]) if c < len(r.class_weights) else math.nan for r in rows]
        finite = [v for v in values if math.isfinite(v)]
        if not finite:
            continue
        top = max(top, *finite)
        _steps(
            ax, epochs, values, lw=1.4, color=class_color(c, n),
            ls="--" if c == 0 else "-", label=_weight_label(_class_name(result, c), values),
        )  # fmt: skip
    ax.axhline(1.0, color="black", lw=0.6, alpha=0.4)
    ax.axhline(0.0, color="tab:red", lw=0.6, alpha=0.5)
    ax.set_ylim(-0.05 * top, top * 1.08)
    constant = all(_same(list(r.class_weights), list(rows[0].class_weights)) for r in rows)
    title = _CONSTANT_TITLE if constant else "class weights (0 = frozen, > 1 = boosted)"
    ax.set_title(title, fontsize=9, y=1.0)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss weight")
    ax.grid(alpha=0.3)
    _legend(ax, width)
    return figure_png(fig)


def _term_weights_plot(result: Result, names: Sequence[str] | None = None) -> bytes | None:
    rows = [r for r in result.history if r.term_weights]
    if not rows:
        return None
    width = max(len(r.term_weights) for r in rows)
    changed = not all(_same(list(r.term_weights), list(rows[0].term_weights)) for r in rows)
    if width < 2 and not changed:
        return None
    from matplotlib import colormaps

    cmap = colormaps["Dark2"]
    fig = new_figure()
    ax = fig.add_axes((0.1, 0.14, 0.66, 0.76))
    epochs = [r.epoch for r in rows]
    for k in range(width):
        values = [float(r.term_weights[k]) if k < len(r.term_weights) else math.nan for r in rows]
        label = names[k] if names is not None and k < len(names) else f"term {k}"
        _steps(ax, epochs, values, lw=1.4, color=cmap(k % cmap.N), label=label)
    ax.set_title("loss term weights" + ("" if changed else ": constant"), fontsize=10, y=1.0)
    ax.set_xlabel("epoch")
    ax.set_ylabel("term weight")
    ax.grid(alpha=0.3)
    _legend(ax, width)
    return figure_png(fig)


def _valid_hist(data: Any) -> _Hist | None:
    """``(edges, foreground, background)`` when the histogram is well formed, else ``None``."""
    if not isinstance(data, dict):
        return None
    try:
        edges = [float(v) for v in data.get("edges", [])]
        fg = [float(v) for v in data.get("foreground", [])]
        bg = [float(v) for v in data.get("background", [])]
    except (TypeError, ValueError):
        return None
    if len(edges) < 2 or len(fg) != len(edges) - 1 or len(bg) != len(fg):
        return None
    if not all(math.isfinite(v) for v in (*edges, *fg, *bg)):
        return None
    if any(b <= a for a, b in zip(edges, edges[1:])) or sum(fg) + sum(bg) <= 0:
        return None
    return edges, fg, bg


def _fraction_below_zero(edges: list[float], counts: list[float]) -> float:
    """Fraction of the histogram's mass below 0 (a bin straddling 0 split linearly)."""
    total = sum(counts)
    if total <= 0:
        return math.nan
    below = 0.0
    for lo, hi, count in zip(edges, edges[1:], counts):
        if hi <= 0:
            below += count
        elif lo < 0:
            below += count * (-lo) / (hi - lo)
    return below / total


def _percent(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    pct = 100 * value
    return f"{pct:.1f}%" if pct >= 1 or pct == 0 else f"{pct:.2g}%"


def _logit_panel(ax: Axes, name: str, hist: _Hist, color: Any) -> None:
    """One class's histograms drawn as ``stairs`` would (background an outline from and back to
    0, foreground filled), but by a line and a fill: a patch's limits cost a walk of its path."""
    edges, fg, bg = hist
    xs = [edges[0], *(x for a, b in zip(edges, edges[1:]) for x in (a, b)), edges[-1]]
    ys = [0.0, *(y for v in bg for y in (v, v)), 0.0]
    ax.plot(xs, ys, color="0.45", lw=1.0, label="background")
    fg_steps = [*fg, fg[-1]]
    ax.fill_between(edges, fg_steps, step="post", color=color, lw=0, alpha=0.45, label="foreground")
    ax.axvline(0.0, color="black", lw=0.9, ls="--")
    ax.set_yscale("log")  # a valid histogram has a positive count
    missed = _fraction_below_zero(edges, fg)
    over = 1 - _fraction_below_zero(edges, bg)
    ax.set_title(f"{name}\nmissed {_percent(missed)} | over {_percent(over)}", fontsize=8, y=1.0)
    ax.tick_params(labelsize=7)


def _logits_plot(result: Result) -> bytes | None:
    panels: list[tuple[str, _Hist]] = []
    for name, data in result.logit_hist.items():
        hist = _valid_hist(data)
        if hist is not None:
            panels.append((str(name), hist))
    if not panels:
        return None
    left_out = len(panels) - MAX_LOGIT_PANELS
    panels = panels[:MAX_LOGIT_PANELS]
    n = _n_classes(result)
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    header, row, footer = 0.75, 1.9, 0.45  # inches: title and legend, one row, x label
    height = header + rows * row + footer
    fig = new_figure(max(4.5, 1.9 * cols + 0.6), height)
    grid = fig.add_gridspec(
        rows, cols, left=0.36 / fig.get_figwidth() + 0.05, right=0.98, bottom=footer / height,
        top=1 - (header + 0.35) / height, wspace=0.3, hspace=0.65,
    )  # fmt: skip
    # Bins shared (the trainer's are): one x axis, labelled under each column's lowest panel.
    shared = all(hist[0] == panels[0][1][0] for _, hist in panels)
    axes: list[Axes] = []
    for i, (name, hist) in enumerate(panels):
        ax = fig.add_subplot(grid[i // cols, i % cols], sharex=axes[0] if shared and axes else None)
        axes.append(ax)
        index = result.class_names.index(name) if name in result.class_names else i + 1
        _logit_panel(ax, name, hist, class_color(index, n))
        if i % cols == 0:
            ax.set_ylabel("voxels", fontsize=8)
        if i + cols >= len(panels):
            ax.set_xlabel("logit margin", fontsize=8)
        elif shared:
            ax.tick_params(labelbottom=False)
    for ax in axes:  # the shared x limits are known once every panel is drawn
        _settle(ax, label_offsets=(18.0, 22.5))
    title = (
        "test logit margin (0 = decision boundary)\nmissed = foreground < 0, over = background > 0"
    )
    if left_out > 0:
        title += f"; {left_out} more classes left out"
    fig.text(0.02, 1 - 0.08 / height, title, fontsize=9, ha="left", va="top")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="upper left", bbox_to_anchor=(0.015, 1 - 0.45 / height),
        fontsize=7, frameon=False, ncol=2,
    )  # fmt: skip
    return figure_png(fig)


_PLOTS = (
    ("plots/val_dice.png", _val_dice_plot),
    ("plots/class_weights.png", _class_weights_plot),
    ("plots/term_weights.png", _term_weights_plot),
    ("plots/logits.png", _logits_plot),
)


def evaluation_plots(result: Result, term_names: Sequence[str] | None = None) -> dict[str, bytes]:
    """Artifact path -> PNG for the plots the result has data for; ``term_names`` label the
    loss terms' weights (``losses.naming.term_labels``: ``dice``, ``ce``; else ``term 0``).

    ``plots/val_dice.png`` (foreground validation Dice over epochs, NaN skipped),
    ``plots/class_weights.png`` (class loss weights as steps), ``plots/term_weights.png``
    (only with two or more terms or a changed weight) and ``plots/logits.png`` (test logit
    margin histograms, see the module docstring). Never raises on missing or odd data: a plot
    that fails to draw is left out. ``{}`` when :func:`plots_enabled` is ``False``.
    """
    if not plots_enabled():
        return {}
    plots = [(path, lambda draw=draw: draw(result)) for path, draw in _PLOTS]
    plots[2] = (plots[2][0], lambda: _term_weights_plot(result, term_names))
    return draw_all(plots)


def draw_all(plots: Sequence[tuple[str, Callable[[], bytes | None]]]) -> dict[str, bytes]:
    """Name -> PNG of each ``(name, draw)`` that draws; one that raises is left out (logged):
    a plot must never fail an evaluation or a study."""
    out: dict[str, bytes] = {}
    for name, draw in plots:
        try:
            png = draw()
        except Exception as exc:
            _log.warning("could not draw %s: %s", name, exc)
            png = None
        if png is not None:
            out[name] = png
    return out
