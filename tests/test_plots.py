"""Plots of an evaluation (``losslab.plots``) and of a study (``losslab.search.study_plots``)."""

from __future__ import annotations

import io
import math
import random

import pytest

from losslab.plots import evaluation_plots, plots_enabled, weights_never_changed
from losslab.search.backend import TrialRecord
from losslab.search.study_plots import (
    generation_fitness_plot,
    objective_history_plot,
    parallel_coordinates_plot,
    study_plots,
)
from losslab.training.result import EpochRecord, Result

NAN = math.nan


@pytest.fixture(autouse=True)
def plots_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plots drawn whatever the suite's environment says."""
    monkeypatch.setenv("LOSSLAB_PLOTS", "1")


def assert_png(png: bytes | None) -> tuple[int, ...]:
    """A decodable PNG of a sane size; returns its array shape."""
    from matplotlib.image import imread

    assert png is not None and png.startswith(b"\x89PNG")
    shape = imread(io.BytesIO(png)).shape
    assert len(shape) == 3 and shape[2] in (3, 4)
    assert 150 <= shape[0] <= 1500 and 300 <= shape[1] <= 2000
    return shape


def logit_hist(n_classes: int, bins: int = 40) -> dict[str, dict[str, list[float]]]:
    """Foreground margins shifted toward the boundary, as Li et al. observe on test data."""
    edges = [-10 + 20 * k / bins for k in range(bins + 1)]
    centres = [(a + b) / 2 for a, b in zip(edges, edges[1:])]
    out = {}
    for c in range(1, n_classes):
        fg = [round(500 * math.exp(-((x - 2 + 0.3 * c) ** 2) / 4)) for x in centres]
        bg = [round(1e6 * math.exp(-((x + 6) ** 2) / 3)) for x in centres]
        out[f"organ{c}"] = {"edges": edges, "foreground": fg, "background": bg}
    return out


def make_result(
    n_classes: int = 4,
    epochs: int = 6,
    terms: int = 2,
    schedule: bool = True,
    logits: bool = True,
    seed: int = 0,
) -> Result:
    """A realistic result: Dice rising, validation every other epoch, one class absent, a
    class schedule freezing class 1 early and boosting the last class, terms reweighted."""
    rng = random.Random(seed)
    history = []
    for e in range(epochs):
        validated = e % 2 == 1 or e == epochs - 1
        dice = [NAN] + [
            min(1.0, 0.15 * c + 0.1 * e + 0.05 * rng.random()) if validated else NAN
            for c in range(1, n_classes)
        ]
        if n_classes > 2:
            dice[2] = NAN  # absent from the validation split
        weights = [1.0] * n_classes
        if schedule:
            weights[1] = 0.0 if e < epochs // 2 else 1.0
            weights[-1] = 1.0 + e / max(1, epochs - 1)
        term_weights = [1.0 - e / (2 * epochs), e / (2 * epochs)] if terms == 2 else [1.0] * terms
        history.append(EpochRecord(e, 1.0 / (e + 1), dice, weights, term_weights, 0.1))
    names = ["background"] + [f"organ{c}" for c in range(1, n_classes)]
    return Result(
        status="ok",
        class_names=names,
        history=history,
        test_metrics={"dice": [NAN] + [0.5] * (n_classes - 1)},
        logit_hist=logit_hist(n_classes) if logits else {},
    )


ALL = {
    "plots/val_dice.png",
    "plots/class_weights.png",
    "plots/term_weights.png",
    "plots/logits.png",
}


def test_realistic_result_gives_every_plot_as_png() -> None:
    plots = evaluation_plots(make_result())
    assert set(plots) == ALL
    for png in plots.values():
        assert_png(png)


def test_keys_follow_the_data() -> None:
    plain = evaluation_plots(make_result(terms=1, schedule=False, logits=False))
    assert set(plain) == {"plots/val_dice.png", "plots/class_weights.png"}
    no_terms = evaluation_plots(make_result(terms=0))
    assert "plots/term_weights.png" not in no_terms and "plots/logits.png" in no_terms


def test_one_term_that_changes_is_plotted() -> None:
    result = make_result(terms=1)
    result.history[-1].term_weights = [0.25]
    assert "plots/term_weights.png" in evaluation_plots(result)


def test_constant_weights_still_plot_and_never_changed() -> None:
    result = make_result(schedule=False)
    assert weights_never_changed(result)
    assert_png(evaluation_plots(result)["plots/class_weights.png"])


def test_weights_never_changed_cases() -> None:
    assert not weights_never_changed(make_result(schedule=True))
    assert weights_never_changed(make_result(schedule=False))
    assert not weights_never_changed(make_result(epochs=1, schedule=False))
    assert not weights_never_changed(Result(status="failed", class_names=["bg", "a"]))
    nan_weights = make_result(schedule=False)
    for record in nan_weights.history:
        record.class_weights[1] = NAN
    assert weights_never_changed(nan_weights)


def test_failed_result_with_empty_history_gives_nothing() -> None:
    failed = Result(status="failed", class_names=["background", "liver"], reason="nan loss")
    assert evaluation_plots(failed) == {}


def test_all_nan_dice_and_nan_weights_do_not_crash() -> None:
    result = make_result()
    for record in result.history:
        record.val_dice = [NAN] * len(record.val_dice)
        record.class_weights[0] = NAN
    result.logit_hist["organ1"]["foreground"] = [NAN] * 40  # malformed: panel left out
    plots = evaluation_plots(result)
    assert "plots/val_dice.png" not in plots
    assert_png(plots["plots/class_weights.png"])
    assert_png(plots["plots/logits.png"])


def test_one_class_and_one_epoch() -> None:
    result = make_result(n_classes=2, epochs=1, terms=1, schedule=False)
    plots = evaluation_plots(result)
    assert set(plots) == {"plots/val_dice.png", "plots/class_weights.png", "plots/logits.png"}
    for png in plots.values():
        assert_png(png)


def test_malformed_logit_histograms_give_no_logit_plot() -> None:
    result = make_result(logits=False)
    result.logit_hist = {
        "organ1": {"edges": [0.0, 1.0], "foreground": [1.0, 2.0], "background": [1.0]},
        "organ2": {"edges": [], "foreground": [], "background": []},
        "organ3": {"foreground": [0.0], "background": [0.0], "edges": [0.0, 1.0]},
    }
    assert "plots/logits.png" not in evaluation_plots(result)


def test_many_classes_left_out_of_logits_and_ten_class_timing() -> None:
    import time

    result = make_result(n_classes=11, epochs=20)
    start = time.perf_counter()
    plots = evaluation_plots(result)
    elapsed = time.perf_counter() - start
    assert set(plots) == ALL
    shape = assert_png(plots["plots/logits.png"])
    assert shape[0] > 300  # two rows of panels
    print(f"evaluation_plots, 10 foreground classes x 20 epochs: {elapsed:.3f} s")


def test_plots_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    assert plots_enabled()
    for off in ("0", "false", "No"):
        monkeypatch.setenv("LOSSLAB_PLOTS", off)
        assert not plots_enabled()
        assert evaluation_plots(make_result()) == {}
        assert study_plots(optuna_records()) == {}
    monkeypatch.delenv("LOSSLAB_PLOTS")
    assert plots_enabled()


def record(number: int, status: str, value: float, **params: object) -> TrialRecord:
    return TrialRecord(number=number, candidate=None, status=status, value=value, params=params)


def optuna_records() -> list[TrialRecord]:
    """A categorical loss choice, conditional parameters and a log-scaled learning rate."""
    rng = random.Random(1)
    out = []
    for n in range(24):
        loss = ["tversky", "focal", "dice_ce"][n % 3]
        params: dict[str, object] = {"loss": loss, "train.lr": 10 ** rng.uniform(-4, -1)}
        if loss == "tversky":
            params["loss.tversky.alpha"] = rng.uniform(0.1, 0.9)
        if loss == "focal":
            params["loss.focal.gamma"] = rng.choice([0, 1, 2, 3])
        status = "failed" if n % 7 == 3 else "pruned" if n % 5 == 4 else "ok"
        value = NAN if status == "failed" else 0.3 + 0.4 * rng.random()
        out.append(record(n, status, value, **params))
    return out


def gp_records() -> list[TrialRecord]:
    out = []
    for n in range(20):
        generation = n // 5
        value = NAN if n % 6 == 5 else 0.2 + 0.05 * generation + 0.02 * (n % 5)
        status = "failed" if math.isnan(value) else "ok"
        out.append(
            record(n, status, value, **{"gp.expression": f"add(ce, mul({n}, dice))", "gp.generation": generation})
        )  # fmt: skip
    return out


def test_optuna_study_plots() -> None:
    plots = study_plots(optuna_records(), "mean Dice")
    assert set(plots) == {"objective_history.png", "parallel_coordinates.png"}
    for png in plots.values():
        assert_png(png)


def test_gp_study_plots() -> None:
    plots = study_plots(gp_records())
    assert set(plots) == {"objective_history.png", "parallel_coordinates.png", "gp_fitness.png"}
    for png in plots.values():
        assert_png(png)


def test_study_plots_without_params_or_ok_trials() -> None:
    no_params = [record(n, "ok", 0.1 * n) for n in range(4)]
    assert set(study_plots(no_params)) == {"objective_history.png"}
    failed = [record(n, "failed", NAN, loss="dice") for n in range(5)]
    assert set(study_plots(failed)) == {"objective_history.png"}
    assert parallel_coordinates_plot(failed) is None
    assert generation_fitness_plot(failed) is None
    assert study_plots([]) == {}


def test_all_failed_gp_generation_still_draws() -> None:
    failed = [record(n, "failed", NAN, **{"gp.generation": n // 2}) for n in range(4)]
    assert_png(generation_fitness_plot(failed))
    assert_png(objective_history_plot(failed))


def test_pruned_only_and_nan_values() -> None:
    records = [record(0, "pruned", 0.4, lr=0.1), record(1, "pruned", NAN), record(2, "ok", NAN)]
    assert_png(objective_history_plot(records))
    assert parallel_coordinates_plot(records) is None


def test_single_value_and_odd_params_draw() -> None:
    records = [
        record(0, "ok", 0.5, lr=0.01, flag=True, mode=None),
        record(1, "ok", 0.5, lr=0.01, flag=False, mode="a"),
    ]
    assert_png(parallel_coordinates_plot(records, "worst-3 Dice"))


def test_plots_draw_in_worker_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(evaluation_plots, make_result(seed=s)) for s in range(2)]
        futures.append(pool.submit(study_plots, optuna_records()))
        results = [f.result() for f in futures]
    assert all(len(r) >= 2 for r in results)
    for plots in results:
        for png in plots.values():
            assert_png(png)


def _labels(axis) -> list[str]:
    return [t.get_text().replace("\u2212", "-") for t in axis.get_ticklabels() if t.get_text()]


def test_one_trial_gives_a_colour_bar_of_plain_numbers() -> None:
    from losslab.search.study_plots import parallel_coordinates_figure

    records = [record(3, "ok", 0.06128316, loss="dice", **{"train.lr": 0.003})]
    fig = parallel_coordinates_figure(records, "mean Dice")
    fig.canvas.draw()
    bar = fig.axes[-1]  # the colour bar
    assert bar.yaxis.get_offset_text().get_text() == ""  # was "1e-10+6.128316e-2"
    labels = _labels(bar.yaxis)
    assert len(labels) >= 2 and not any("e" in label for label in labels)
    assert all(0.05 <= float(label) <= 0.075 for label in labels), labels


def test_the_objective_plot_has_whole_trial_numbers_and_a_best_line() -> None:
    from losslab.search.study_plots import objective_history_figure

    for records in ([record(0, "ok", 0.4)], [record(0, "ok", 0.4), record(1, "pruned", 0.3)]):
        fig = objective_history_figure(records, "mean Dice")
        fig.canvas.draw()
        ax = fig.axes[0]
        labels = _labels(ax.xaxis)
        assert labels and all(float(label).is_integer() for label in labels), labels
        (best,) = [line for line in ax.get_lines() if line.get_label() == "best so far"]
        xs = list(best.get_xdata())
        assert len(set(xs)) >= 2 and set(best.get_ydata()) == {0.4}  # a visible line
        assert "(1 trial)" in ax.get_title() or "(2 trials)" in ax.get_title()


def _drawn_figures(monkeypatch: pytest.MonkeyPatch) -> list:
    """The figures ``losslab.plots`` turns into PNGs from now on, in drawing order."""
    import losslab.plots as plots

    figures: list = []
    real = plots.figure_png
    monkeypatch.setattr(plots, "figure_png", lambda fig: figures.append(fig) or real(fig))
    return figures


def test_logit_figure_has_one_panel_per_foreground_class(monkeypatch: pytest.MonkeyPatch) -> None:
    """Six foreground classes: six panels (none for the grid's two empty cells), each with its
    class, both histograms on log counts and only ticks inside its view; one x axis, labelled
    under each column's lowest panel."""
    figures = _drawn_figures(monkeypatch)
    png = evaluation_plots(make_result(n_classes=7, epochs=20))["plots/logits.png"]
    assert assert_png(png)[:2] == (500, 820)  # two rows of four columns, as before
    fig = figures[-1]
    axes = fig.axes
    assert [ax.get_title().split("\n")[0] for ax in axes] == [f"organ{c}" for c in range(1, 7)]
    for i, ax in enumerate(axes):
        assert ax.get_legend_handles_labels()[1] == ["background", "foreground"]
        assert ax.get_yscale() == "log" and ax.get_xlim() == axes[0].get_xlim()
        for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            assert axis.get_majorticklocs().size and all(
                lo <= v <= hi for v in axis.get_majorticklocs()
            )
        labelled = any(t.get_visible() and t.get_text() for t in ax.get_xticklabels())
        assert labelled == (i + 4 >= 6) == (ax.get_xlabel() == "logit margin")
        assert (ax.get_ylabel() == "voxels") == (i % 4 == 0)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["background", "foreground"]


def test_logit_panels_with_their_own_bins_keep_their_own_x_axes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    figures = _drawn_figures(monkeypatch)
    result = make_result(n_classes=3)
    result.logit_hist["organ2"]["edges"] = [-5 + 10 * k / 40 for k in range(41)]
    assert_png(evaluation_plots(result)["plots/logits.png"])
    first, second = figures[-1].axes
    assert first.get_xlim() != second.get_xlim()
    assert all(any(t.get_text() for t in ax.get_xticklabels()) for ax in (first, second))
