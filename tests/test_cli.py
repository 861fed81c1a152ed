"""The command line, run in process as a user runs it."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from losslab.cli import main


def test_train_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = main(
        ["train", "--loss", "dice_ce", "--epochs", "1", "--steps", "2", "--cases", "5",
         "--shape", "32", "--tracking-uri", uri, "--experiment", "cli", "--device", "cpu"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "liver" in out and "(worst)" in out and "HD95" in out
    assert f"mlflow ui --backend-store-uri {uri}" in out
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("cli")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"


def test_train_with_a_bad_loss_names_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--loss", "vmean(p / vsum(y))", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot combine a voxel tensor with a class vector" in err
