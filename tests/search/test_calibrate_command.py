"""``losslab calibrate``: the ladder, the drawn candidates, a run through the study's cache and
MLflow (fake trainer), the command's output, and one tiny real run."""

from __future__ import annotations

import pytest

from losslab.analysis.calibrate_run import (
    CalibrationRun,
    Rung,
    draw_entries,
    ladder,
    run_calibration,
)
from losslab.analysis.calibration import analyse
from losslab.cli.calibrate import fidelity_block
from losslab.cli.main import main
from losslab.search import load_study
from losslab.search.fidelity import Fidelity
from losslab.tracking.tracker import Tracker

from .fakes import FakeTrainer
from .studies import write_study

PROXY = {"source": "proxy", "cases": 6, "shape": [16, 16, 16], "seed": 0}


@pytest.fixture
def study(tmp_path):
    return write_study(
        tmp_path,
        data=PROXY,
        baselines=["dice", "ce"],
        fidelity={"epochs": 3, "steps_per_epoch": 2},
        final={"long": {"epochs": 8, "steps_per_epoch": 2}},
    )


def _two_rungs(config) -> list[Rung]:
    return [
        Rung("short", Fidelity(epochs=2, steps_per_epoch=2)),
        Rung("long", config.final["long"]),
    ]


def test_the_ladder_halves_below_the_final_fidelity_and_holds_the_search_fidelity(study):
    config = load_study(study)
    rungs = ladder(config, rungs=3)
    # Ordered by steps trained: 2 x 2, the search's 3 x 2, 4 x 2, and the top last.
    assert [r.name for r in rungs] == ["epochs=2", "search", "epochs=4", "long"]
    assert rungs[1].fidelity == config.fidelity
    assert rungs[-1].fidelity == Fidelity(epochs=8, steps_per_epoch=2)
    by_steps = ladder(config, rungs=2, vary="steps_per_epoch")
    assert [r.name for r in by_steps] == ["search", "steps_per_epoch=1", "long"]
    # The search fidelity as the top: one halving below it, and no extra rung.
    assert [r.name for r in ladder(config, rungs=2, top="search")] == ["epochs=1", "search"]
    with pytest.raises(ValueError, match="--vary must be one of"):
        ladder(config, vary="patience")
    with pytest.raises(ValueError, match="not defined by the study"):
        ladder(config, top="longest")


def test_candidates_are_the_baselines_and_distinct_draws_the_same_every_time(study):
    config = load_study(study)
    entries = draw_entries(config, 3)
    assert [e.label for e in entries[:2]] == ["dice", "ce"]
    assert len(entries) == 5
    drawn = [(e.candidate.key, sorted(e.overrides.items())) for e in entries[2:]]
    assert len(set(map(repr, drawn))) == 3
    again = draw_entries(config, 3)
    assert [e.candidate.key for e in again] == [e.candidate.key for e in entries]
    assert len(draw_entries(config, 0)) == 2


def test_a_run_goes_through_the_cache_and_mlflow_and_ranks_alike_at_every_rung(study):
    config = load_study(study)
    rungs = _two_rungs(config)
    entries = draw_entries(config, 1)
    run = run_calibration(config, rungs=rungs, entries=entries, seeds=2, trainer=FakeTrainer)
    assert len(run.observations) == 2 * 3 * 2 and run.trained == 12
    assert set(run.cpu) == {"short", "long"}
    tracker = Tracker(config.tracking_uri, experiment=config.experiment)
    children = tracker.find_runs(f"tags.mlflow.parentRunId = '{run.parent_run_id}'")
    assert len(children) == 12
    again = run_calibration(config, rungs=rungs, entries=entries, seeds=2, trainer=FakeTrainer)
    assert again.trained == 0 and len(again.observations) == 12  # all from the study's cache
    assert [o.value for o in again.observations] == [o.value for o in run.observations]
    report = analyse(run.observations, run.order, run.costs())
    assert report.rows[0].spearman.rho == 1.0  # the fake trainer scores alike at any fidelity


def test_a_time_cap_starts_nothing_it_cannot_finish(study):
    config = load_study(study)
    run = run_calibration(
        config,
        rungs=_two_rungs(config),
        entries=draw_entries(config, 1),
        seeds=1,
        minutes=1e-6,
        trainer=FakeTrainer,
    )
    assert run.observations == [] and run.skipped == 2 * 3


def test_the_command_prints_the_table_and_a_fidelity_block(study, capsys, monkeypatch):
    monkeypatch.setattr("losslab.analysis.calibrate_run.Trainer", FakeTrainer)
    monkeypatch.setenv("COLUMNS", "250")
    argv = ["calibrate", str(study), "--seeds", "2", "--candidates", "1", "--rungs", "2"]
    assert main([*argv, "--top", "search", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Spearman rho" in out and "Kendall tau" in out and "pairs separated" in out
    assert "search (top)" in out
    # The fake trainer scores a candidate alike at every fidelity: the cheaper rung reaches 1.
    assert "Recommended: epochs=1, the cheapest fidelity" in out
    assert "fidelity:\n  epochs: 1\n  steps_per_epoch: 2" in out
    assert "12 evaluations, 12 trained now" in out


def test_bad_options_are_named(study, capsys):
    assert main(["calibrate", str(study), "--seeds", "0"]) == 2
    assert "--seeds must be at least 1" in capsys.readouterr().err
    assert main(["calibrate", str(study), "--threshold", "2"]) == 2
    assert "--threshold must lie in (0, 1]" in capsys.readouterr().err
    assert main(["calibrate", str(study), "--top", "huge"]) == 2
    assert "fidelity 'huge' is not defined" in capsys.readouterr().err


def test_fidelity_block_writes_the_fields_set():
    block = fidelity_block(Fidelity(epochs=4, patch_size=(16, 16, 16)))
    assert block == "fidelity:\n  epochs: 4\n  patch_size: [16, 16, 16]"


@pytest.mark.slow
def test_a_tiny_real_calibration(tmp_path, capsys):
    path = write_study(
        tmp_path,
        data=PROXY,
        baselines=["dice", "ce"],
        fidelity={"epochs": 1, "steps_per_epoch": 2},
        final={"epochs": 2, "steps_per_epoch": 2},
    )
    argv = ["calibrate", str(path), "--seeds", "1", "--candidates", "1", "--rungs", "2"]
    assert main([*argv, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "6 evaluations, 6 trained now" in out
    assert "final (top)" in out and "Spearman rho" in out


def test_costs_are_in_one_unit_for_every_rung():
    rungs = [Rung("short", Fidelity(epochs=1)), Rung("long", Fidelity(epochs=4))]
    run = CalibrationRun(rungs, [], [0], cpu={"short": [2.0, 4.0], "long": [9.0]})
    run.wall = {"short": [5.0], "long": [20.0]}
    assert run.costs() == {"short": 3.0, "long": 9.0}  # trained here: CPU seconds
    del run.cpu["short"]  # the short rung came from the cache: wall seconds for both
    assert run.costs() == {"short": 5.0, "long": 20.0}


def test_the_report_shows_the_latest_calibration(study, tmp_path, capsys, monkeypatch):
    from losslab.search import run_study

    run_study(load_study(study), progress=False, trainer=FakeTrainer)
    out = tmp_path / "report.html"
    assert main(["report", str(study), "--out", str(out)]) == 0
    page = out.read_text()
    assert "was not measured for this study" in page and "losslab calibrate" in page
    monkeypatch.setattr("losslab.analysis.calibrate_run.Trainer", FakeTrainer)
    monkeypatch.setenv("LOSSLAB_PLOTS", "1")  # the rank plot (the fake trainer draws none)
    argv = ["calibrate", str(study), "--seeds", "2", "--candidates", "1", "--rungs", "2"]
    assert main([*argv, "--top", "search", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["report", str(study), "--out", str(out)]) == 0
    page = out.read_text()
    section = page[page.index('<section id="calibration">') :]
    section = section[: section.index("</section>")]
    assert "Recommended: epochs=1, the cheapest fidelity" in section
    assert section.count("<tr>") == 1 + 2  # header + the two fidelities
    assert ">epochs=1<" in section and ">search<" in section
    assert "Rank agreement of each fidelity with the top one" in section
    assert "each candidate&#x27;s rank against fidelity (1 = best)" in section
    assert "data:image/png;base64," in section
    assert "was not measured" not in page
