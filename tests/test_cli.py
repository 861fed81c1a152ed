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


def test_train_refuses_a_loss_without_gradient_path(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--loss", "vsum(y)", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no gradient path" in err and "vsum(y)" in err
    assert not (tmp_path / "mlflow.db").exists()


def test_train_names_a_bad_tracking_uri(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--tracking-uri", "bogus://x", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--tracking-uri" in err and "bogus" in err and "Traceback" not in err


def test_baselines_names_a_bad_tracking_uri(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "suite.yaml").write_text("tracking_uri: 'bogus://x'\ncandidates: [{loss: dice}]\n")
    code = main(["baselines", "suite.yaml"])
    err = capsys.readouterr().err
    assert code == 2
    assert "suite.yaml: tracking_uri" in err and "bogus" in err


def test_train_with_absent_classes_ignored_records_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = main(
        ["train", "--loss", "dice", "--epochs", "1", "--steps", "1", "--cases", "3",
         "--shape", "32", "--no-hd95", "--absent-classes", "ignore", "--tracking-uri", uri,
         "--experiment", "cli", "--device", "cpu"]
    )  # fmt: skip
    assert code == 0
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("cli").experiment_id])
    assert run.data.params["candidate.absent_classes"] == "ignore"
