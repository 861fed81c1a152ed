"""``losslab search``, run in process as a user runs it."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import pytest
import yaml

import losslab.training.setup as training_setup
from losslab.cli.main import main
from losslab.data import write_phantom_decathlon
from losslab.search import load_study

from .studies import BASE, write_study

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


@pytest.fixture
def wide(monkeypatch):
    """Console lines as long as the messages (rich wraps at 80 columns otherwise)."""
    monkeypatch.setenv("COLUMNS", "1000")


def _stores(folder: Path) -> list[str]:
    """The MLflow and Optuna files a study in ``folder`` creates."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(("mlflow.db", "optuna")))


def test_a_missing_decathlon_folder_is_reported_at_once_and_creates_nothing(wide, tmp_path, capsys):
    data = {"source": "decathlon", "data_dir": str(tmp_path / "Task09_Spleen")}
    path = write_study(tmp_path, data=data)
    start = time.perf_counter()
    assert main(["search", str(path), "--no-progress"]) == 2
    assert time.perf_counter() - start < 10
    err = capsys.readouterr().err
    assert "data.data_dir" in err and "Task09_Spleen" in err and "does not exist" in err
    assert _stores(tmp_path) == []


def test_a_patch_larger_than_a_decathlon_folder_fails_before_the_stores(wide, tmp_path, capsys):
    write_phantom_decathlon(tmp_path / "Task00", cases=5, shape=(16, 16, 16))
    data = {"source": "decathlon", "data_dir": str(tmp_path / "Task00")}
    path = write_study(tmp_path, data=data, train={**BASE["train"], "patch_size": [32, 16, 16]})
    assert main(["search", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: train.patch_size" in err and "[32, 16, 16]" in err and "16x16x16" in err
    assert _stores(tmp_path) == []


@pytest.mark.parametrize("where", ["file", "flag", "environment"])
def test_a_bogus_tracking_uri_is_named_without_a_traceback(
    wide, tmp_path, monkeypatch, capsys, where
):
    if where == "file":
        args = ["search", str(write_study(tmp_path, tracking_uri="bogus://x"))]
    elif where == "flag":
        args = ["search", str(write_study(tmp_path)), "--tracking-uri", "bogus://x"]
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", "bogus://x")
        args = ["search", str(write_study(tmp_path, tracking_uri=None))]
    assert main([*args, "--no-progress"]) == 2
    err = capsys.readouterr().err
    key = {
        "file": f"{tmp_path / 'study.yaml'}: tracking_uri",
        "flag": "--tracking-uri",
        "environment": "MLFLOW_TRACKING_URI",
    }[where]
    assert key in err and "'bogus://x'" in err and "Traceback" not in err
    assert _stores(tmp_path) == []


def test_a_failed_trial_prints_its_reason_without_progress(wide, tmp_path, monkeypatch, capsys):
    def nan_loss(terms):
        return lambda logits, labels, weights=None: [logits.sum() * math.nan]

    monkeypatch.setattr(training_setup, "compile_terms", nan_loss)
    path = write_study(tmp_path, budget={"trials": 1}, baselines=[])
    assert main(["search", str(path), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "1 failed" in captured.out
    assert "trial 0" in captured.err and "failed" in captured.err
    assert "non-finite loss at step 1" in captured.err
