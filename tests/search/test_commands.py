"""``losslab search``, run in process as a user runs it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from losslab.cli import main
from losslab.search import load_study

from .studies import write_study

SEARCH_SPACES = Path(__file__).parents[2] / "search_spaces"


def test_search_prints_the_comparison_and_reruns_nothing(tmp_path, capsys):
    path = write_study(tmp_path, budget={"trials": 2})
    assert main(["search", str(path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Study tiny: best" in out and "baseline" in out and "trial 0" in out
    assert "Test Dice per class" in out and "liver" in out
    assert "2 trials in the study" in out and "3 evaluations trained" in out
    assert main(["search", str(path), "--resume", "--no-progress"]) == 0
    assert "0 evaluations trained" in capsys.readouterr().out
    # A larger budget on the command line continues the same study.
    assert main(["search", str(path), "--trials", "3", "--no-progress"]) == 0
    out = capsys.readouterr().out
    # The new trial trains, unless it drew a candidate already evaluated (then it is cached).
    assert "3 trials in the study" in out
    assert re.search(r"cache\); (1 evaluation|0 evaluations) trained", out), out


def test_resume_without_a_study_is_an_error(tmp_path, capsys):
    path = write_study(tmp_path)
    assert main(["search", str(path), "--resume", "--no-progress"]) == 2
    assert "no study 'tiny' to resume" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"spaces": {}}, "spaces"),
        ({"budget": {"trials": "ten"}}, "budget"),
        ({"space": {"loss": {"dicee": {}}}}, "space.loss.dicee.loss"),
        ({"space": {"loss": {}}}, "space.loss"),
    ],
)
def test_bad_study_file_names_the_key(tmp_path, capsys, change, named):
    path = write_study(tmp_path, **change)
    assert main(["search", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err.replace("\n", "") and named in err


@pytest.mark.parametrize("name", ["quickstart.yaml", "optuna_cbs.yaml"])
def test_shipped_studies_load(name):
    config = load_study(SEARCH_SPACES / name)
    assert config.backend == "optuna" and config.baselines
    assert config.space.dimensions() >= 4
    raw = yaml.safe_load((SEARCH_SPACES / name).read_text())
    assert config.name == raw["study"]
