"""The baseline suite: YAML validation, a tiny suite end to end, and its Table-1 layout."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from losslab.cli.main import main
from losslab.config import ConfigError, load_suite

TINY = """
data: {source: phantom, cases: 5, shape: [32, 32, 32]}
train: {epochs: 1, steps_per_epoch: 2, patch_size: [32, 32, 32], device: cpu, hd95: false}
reference: dice
candidates:
  - {name: dice, loss: dice}
  - {name: dice+cbs, loss: dice, class_schedule: {name: cbs, zeta: 0.2}}
  - {name: wce->wdice, terms: [ce, dice], class_schedule: median_frequency, term_schedule: ramp}
  - {name: dice_ce+softadapt, loss: dice_ce, term_schedule: softadapt}
"""


def write(tmp_path, text: str):
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def test_the_shipped_baselines_config_is_valid():
    suite = load_suite("search_spaces/baselines.yaml")
    names = [c.name for c in suite.candidates]
    for expected in ("dice", "dice+tcf", "dice+pcf", "dice+cbs", "dice_ce", "gdl", "focal",
                     "tversky", "wce->wdice", "dice_ce+softadapt", "dice_ce+cov", "asymmetric_focal"):  # fmt: skip
        assert expected in names
    hegde = suite.candidates[names.index("wce->wdice")]
    assert hegde.class_schedule.name == "median_frequency" and hegde.term_schedule.name == "ramp"
    assert [t.expression for t in hegde.terms][0] == "nc * vmean(-y * logp)"


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("candidates: [{loss: dice}]\nepochs: 3", "epochs", "unknown key"),
        ("candidates: [{loss: dicee}]", "candidates[0].loss", "unknown loss 'dicee'"),
        ("candidates: [{loss: 'vmean(q)'}]", "candidates[0]", "unknown name 'q'"),
        ("candidates: [{loss: dice, colour: red}]", "candidates[0].colour", "unknown key"),
        ("candidates: []", "candidates", "empty"),
        ("candidates: [{loss: dice}]\ntrain: {epochs: many}", "train", "epochs"),
        ("candidates: [{loss: dice}]\ntrain: {epoch: 2}", "train", "unknown train config key"),
        ("candidates: [{loss: dice}]\nreference: gdl", "reference", "not a candidate"),
        ("candidates: [{loss: dice]", "suite.yaml", "malformed YAML"),
        ("candidates: [{loss: dice, absent_classes: drop}]", "absent_classes", "one of keep"),
        ("candidates: [{loss: 'vsum(y)'}]", "candidates[0]", "no gradient path"),
    ],
)
def test_bad_config_names_the_key(tmp_path, text, where, problem):
    with pytest.raises(ConfigError) as info:
        load_suite(write(tmp_path, text))
    assert where in info.value.where and problem in info.value.problem


def test_a_candidate_may_leave_absent_classes_out(tmp_path):
    suite = load_suite(write(tmp_path, "candidates: [{loss: dice, absent_classes: ignore}]"))
    assert suite.candidates[0].absent_classes == "ignore"


@pytest.mark.slow
def test_tiny_suite_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["baselines", str(write(tmp_path, TINY)), "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert "liver" in out and "wce->wdice" in out
    # One seed: which cases the table covers, and no marks (a single run's difference).
    assert "Test Dice per class (test split, 1 case; one seed)" in out
    assert "*" not in out and "+0." not in out
    assert "failed" not in out
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("losslab-baselines")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("kind") == "suite"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 4
    assert {r.data.tags["mlflow.runName"] for r in children} == {
        "baseline dice seed 0",
        "baseline dice+cbs seed 0",
        "baseline wce->wdice seed 0",
        "baseline dice_ce+softadapt seed 0",
    }
    assert all(r.info.status == "FINISHED" for r in children)
