"""The report page of a short study before any comparison: its test Dice per class, links to
runs at the MLflow UI's address, and the study's best marked as the console marks it."""

from __future__ import annotations

import re

import pytest

from losslab.cli.main import main
from losslab.search import load_study, run_study

from .studies import write_study
from .test_study_timing import BaselinesWin


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Two focal trials (fake trainer) that the baseline dice beats."""
    folder = tmp_path_factory.mktemp("page")
    path = write_study(
        folder,
        budget={"trials": 2},
        baselines=["dice"],
        space={"loss": {"focal": {"gamma": {"float": [0.5, 4.0]}}}},
    )
    outcome = run_study(load_study(path), progress=False, trainer=BaselinesWin)
    return path, outcome


def _page(path, tmp_path, *args) -> str:
    out = tmp_path / "report.html"
    assert main(["report", str(path), "--out", str(out), *args]) == 0
    return out.read_text()


def test_run_links_open_at_the_given_mlflow_ui(study, tmp_path, capsys):
    path, outcome = study
    page = _page(path, tmp_path, "--mlflow-ui", "http://127.0.0.1:8080/")
    links = re.findall(r'href="(http[^"]+/runs/[0-9a-f]{32})"', page)
    assert links and all(link.startswith("http://127.0.0.1:8080/#/experiments/") for link in links)
    assert f"runs/{outcome.baselines[0].run_id}" in page
    assert "the links to runs open at http://127.0.0.1:8080 (--mlflow-ui)" in page
    # Without it: mlflow ui's default address, and how to give another one.
    page = _page(path, tmp_path)
    assert "http://127.0.0.1:5000/#/experiments/" in page and "--mlflow-ui URL" in page
    capsys.readouterr()
    assert main(["report", str(path), "--out", str(tmp_path / "x.html"), "--mlflow-ui", "x"]) == 2
    assert "--mlflow-ui must be an http(s) URL, got 'x'" in capsys.readouterr().err


def test_the_page_has_the_test_dice_per_class_before_any_comparison(study, tmp_path):
    path, outcome = study
    page = _page(path, tmp_path)
    assert "No comparison at the final fidelity" in page
    assert "Test Dice per class at the search fidelity (test split, 1 case; one seed)" in page
    table = page[page.index("Test Dice per class at the search fidelity") :]
    table = table[: table.index("</table>")]
    best = outcome.best(1)[0]
    assert f">{best.candidate.name} (#{best.number})</th>" in table and ">dice</th>" in table
    names = outcome.dataset.class_names[1:]
    rows = re.findall(r"<tr><td>([a-z_]+)</td><td class=\"num\">\d+\.\d%</td>", table)
    assert rows == list(names)  # one row per class, with its voxel share, as the console's


def test_the_page_calls_no_trial_best_that_a_baseline_beats(study, tmp_path):
    path, outcome = study
    page = _page(path, tmp_path)
    assert "is beaten by baseline dice (0.990), so no trial is called best" in page
    assert re.search(r">dice ★</a>", page)
    assert "Best 2 trials against the baselines" in page
    assert page.count("★") == 2  # the baseline's row and the table's title


def test_the_page_states_a_ladder_studys_verdict(tmp_path):
    from losslab.testing.fakes import FakeTrainer
    from losslab.testing.ladder_contract import LADDER

    FakeTrainer.test_cases = 4
    path = write_study(tmp_path, fidelity=LADDER, budget={"trials": 8}, baselines=["dice"])
    outcome = run_study(load_study(path), progress=False, trainer=FakeTrainer)
    assert outcome.verdict is not None and outcome.verdict.winner
    page = _page(path, tmp_path)
    assert "Verdict: " in page
    assert outcome.verdict.reference in page and f"{outcome.verdict.seeds} seed" in page
