"""The command line, run in process as a user runs it."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from losslab.candidate import Candidate
from losslab.cli.data import data_config_from_args
from losslab.cli.main import main
from losslab.cli.options import OptionSet
from losslab.data import DataConfig, build_dataset, write_phantom_decathlon
from losslab.losses import resolve_loss
from losslab.training import TrainConfig

QUICKSTART = Path(__file__).resolve().parents[1] / "search_spaces" / "quickstart.yaml"


def test_train_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = main(
        ["train", "--loss", "dice_ce", "--epochs", "1", "--steps", "2", "--cases", "5",
         "--shape", "32", "--tracking-uri", uri, "--experiment", "cli", "--device", "cpu"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "liver" in out and "HD95" in out
    assert re.search(r"\((worst|\d+ tie at \d\.\d{3})\)", out)  # ties said, not ranked
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
    assert run.data.params["absent_classes"] == "ignore"


# --- options generated from DataConfig and TrainConfig (one definition) ------------------------


def _parse(*argv: str):
    from losslab.cli.main import build_parser

    return build_parser().parse_args(list(argv))


def _dests(*command: str) -> dict[str, list[str]]:
    from losslab.cli.main import build_parser
    from losslab.cli.support import subcommand

    parser = subcommand(build_parser(), *command)
    return {a.dest: a.option_strings for a in parser._actions}


@pytest.mark.parametrize("command", [("train",), ("data", "inspect")])
def test_every_data_config_field_has_a_flag(command):
    dests = _dests(*command)
    for f in dataclasses.fields(DataConfig):
        assert dests.get(f"data.{f.name}"), f"no flag for DataConfig.{f.name} on {command}"


def test_every_train_config_field_has_a_flag_on_train():
    from losslab.cli.main import TRAIN_EXCLUDED

    dests = _dests("train")
    for f in dataclasses.fields(TrainConfig):
        if f.name not in TRAIN_EXCLUDED:
            assert dests.get(f"train.{f.name}"), f"no flag for TrainConfig.{f.name}"


def test_help_of_a_flag_comes_from_the_docstring(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "target voxel size in mm" in out  # DataConfig: spacing
    assert "crop each case to the bounding box of its foreground" in out  # via PreprocessConfig
    assert "validate every this many epochs" in out  # TrainConfig: val_every
    assert "--crop-foreground, --no-crop-foreground" in out


@pytest.mark.parametrize("command", [("train",), ("data", "inspect", "somewhere")])
def test_spacing_crop_and_ct_window_reach_the_data_config(command):
    args = _parse(*command, "--data", "decathlon", "--data-dir", "somewhere", "--spacing", "2",
                  "1.5", "1.5", "--crop-foreground", "--ct-window", "-100", "200",
                  "--normalization", "zscore", "--cases", "4", "--split-fractions", "1", "0", "0")  # fmt: skip
    config = data_config_from_args(args)
    assert config.spacing == (2.0, 1.5, 1.5) and config.crop_foreground is True
    assert config.ct_window == (-100.0, 200.0) and config.normalization == "zscore"
    assert config.cases == 4 and config.split_fractions == (1.0, 0.0, 0.0)
    assert data_config_from_args(_parse(*command, "--spacing", "3")).spacing == (3.0, 3.0, 3.0)


def test_train_flags_reach_the_train_config():
    from losslab.cli.main import train_config_from_args, train_data_config_from_args

    args = _parse("train", "--epochs", "2", "--steps", "3", "--patch", "16", "--lr", "0.01",
                  "--no-hd95", "--deterministic", "--seed", "4", "--val-every", "2",
                  "--no-amp", "--model-overrides", "dropout=0.1")  # fmt: skip
    config = train_config_from_args(args)
    assert (config.epochs, config.steps_per_epoch, config.patch_size) == (2, 3, (16, 16, 16))
    assert (config.lr, config.hd95, config.deterministic, config.seed) == (0.01, False, True, 4)
    assert config.val_every == 2 and config.amp is False
    assert config.model_overrides == {"dropout": 0.1}
    data = train_data_config_from_args(args)  # the quick phantom, its seed not --seed's
    assert (data.source, data.cases, data.shape, data.seed) == ("phantom", 10, (32, 32, 32), 0)
    plain = train_config_from_args(_parse("train"))
    assert (plain.epochs, plain.steps_per_epoch, plain.lr) == (10, 30, 3e-3)


def test_train_seeds_keep_the_data():
    from losslab.cli.main import train_data_config_from_args
    from losslab.data import build_dataset

    def dataset(*flags: str):
        args = _parse("train", "--cases", "4", "--shape", "16", *flags)
        return build_dataset(train_data_config_from_args(args))

    first, second = dataset("--seed", "1"), dataset("--seed", "2")
    assert first.fingerprint == second.fingerprint
    assert first.splits == second.splits
    asked = dataset("--seed", "1", "--data-seed", "3")  # a new data seed only when asked
    assert asked.fingerprint != first.fingerprint


def test_a_mapping_field_takes_pairs_or_yaml():
    @dataclasses.dataclass(frozen=True)
    class Toy:
        """Toy.

        Attributes:
            labels: values -> names.
            size: three sizes.
        """

        labels: dict[int, str] | None = None
        size: tuple[int, int, int] = (1, 1, 1)

    options = OptionSet(Toy, "toy", cube=("size",))
    parser = argparse.ArgumentParser()
    options.add_to(parser, "toy")
    for argv in (["--labels", "0=bg", "2=liver"], ["--labels", "0=bg,2=liver"],
                 ["--labels", "{0: bg, 2: liver}"]):  # fmt: skip
        assert options.given(parser.parse_args(argv)) == {"labels": {0: "bg", 2: "liver"}}
    assert options.given(parser.parse_args(["--labels", "none", "--size", "2"])) == {
        "labels": None,
        "size": (2, 2, 2),
    }
    assert "values -> names" in parser.format_help()


@pytest.mark.parametrize(
    ("argv", "flag", "problem"),
    [
        (["--cases", "0"], "--cases", "cases must be at least 1"),
        (["--ct-window", "300", "100"], "--ct-window", "ct_window"),
        (["--val-every", "0"], "--val-every", "val_every"),
        (["--data", "decathlon"], "--data-dir", "data_dir is required"),
        (["--normalization", "bogus"], "--normalization", "normalization must be one of"),
        (["--shape", "100000"], "--shape", "the most allowed"),
    ],
)
def test_a_refused_value_names_its_flag(tmp_path, monkeypatch, capsys, argv, flag, problem):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--device", "cpu", *argv]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"error: {flag}: " in err and problem in err and "Traceback" not in err
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize(
    "argv",
    [["--spacing", "1", "2"], ["--cases", "many"], ["--labels", "liver"], ["--labels", "0=a,0=b"]],
)
def test_a_malformed_value_is_an_argparse_error_naming_the_flag(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(["train", *argv])
    assert info.value.code == 2
    assert f"argument {argv[0]}" in capsys.readouterr().err


def test_config_file_with_flags_overriding(tmp_path):
    from losslab.cli.main import train_config_from_args, train_data_config_from_args

    path = tmp_path / "study.yaml"
    path.write_text(
        "study: s\nseed: 3\nspace: {loss: {dice: {}}}\n"
        "data: {source: phantom, cases: 4, shape: [16, 16, 16], spacing: [2, 2, 2]}\n"
        "train: {epochs: 2, lr: 0.01, hd95: false}\nfidelity: {steps_per_epoch: 7}\n"
    )
    args = _parse("train", "--config", str(path), "--epochs", "5", "--spacing", "none")
    train = train_config_from_args(args)
    assert (train.epochs, train.lr, train.hd95, train.steps_per_epoch) == (5, 0.01, False, 7)
    assert train.seed == 3  # the study's seed
    data = train_data_config_from_args(args)
    assert (data.cases, data.shape, data.spacing) == (4, (16, 16, 16), None)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("data: {cases: 0}\n", "data.cases"),
        ("train: {epochs: 0}\n", "train.epochs"),
        ("data: {bogus: 1}\n", "data.bogus"),
        ("bogus: 1\n", "bogus"),
        ("train: {epochs: 9999999}\n", "train.epochs"),
    ],
)
def test_a_bad_config_file_names_the_key(tmp_path, monkeypatch, capsys, text, where):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(text)
    assert main(["train", "--config", "c.yaml", "--device", "cpu"]) == 2
    assert f"c.yaml: {where}" in capsys.readouterr().err


def test_config_file_accepts_every_key_of_a_study_or_suite_file():
    from losslab.cli.support import config_file_keys
    from losslab.config import SUITE_KEYS
    from losslab.search.study_config import STUDY_KEYS

    assert config_file_keys() >= STUDY_KEYS | SUITE_KEYS


def test_the_quickstart_study_trains_as_its_evaluations(tmp_path):
    from losslab.cli.main import train_config_from_args, train_data_config_from_args

    args = _parse("train", "--config", str(QUICKSTART))
    assert train_config_from_args(args).epochs == 20  # its ladder's top rung
    assert train_data_config_from_args(args).cases == 16


def test_cases_applies_to_a_decathlon_folder(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "folder"
    monkeypatch.setenv("LOSSLAB_CACHE", str(tmp_path / "cache"))
    write_phantom_decathlon(folder, cases=4, shape=(16, 16, 16), seed=0)
    (folder / "imagesTr" / "case_003.nii.gz").write_text("not a volume")  # past --cases 3
    args = _parse("train", "--data", "decathlon", "--data-dir", str(folder), "--cases", "3")
    config = data_config_from_args(args)
    assert config.cases == 3 and len(build_dataset(config)) == 3
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = main(
        ["train", "--data", "decathlon", "--data-dir", str(folder), "--cases", "3",
         "--no-use-cache", "--epochs", "1", "--steps", "1", "--patch", "16", "--no-hd95",
         "--tracking-uri", uri, "--device", "cpu"]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err


def test_inspect_loads_the_folder_with_the_data_options(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    monkeypatch.setenv("LOSSLAB_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "folder"
    write_phantom_decathlon(folder, cases=3, shape=(16, 16, 16), seed=0)
    assert main(["data", "inspect", str(folder), "--spacing", "2", "--crop-foreground"]) == 0
    out = capsys.readouterr().out
    assert "As loaded with these data options (spacing 2 x 2 x 2 mm)" in out
    assert "3 case(s) load with these data options" in out
    assert not list(tmp_path.rglob("*.npz"))  # inspect writes no cache unless --use-cache
    assert main(["data", "inspect", str(folder), "--spacing", "4"]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "case_000.nii.gz: case is 6x6x6 voxels" in out and "after preprocessing" in out
    assert main(["data", "inspect", str(folder), "--cases", "0"]) == 2
    assert "error: --cases: cases must be at least 1" in capsys.readouterr().out


def test_train_takes_a_whole_candidate_from_its_json_file(tmp_path, monkeypatch, capsys):
    """A replayed greedy schedule, as MLflow stores it, trains with ``--candidate``."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    replay = Candidate.from_dict(
        {
            "terms": [str(resolve_loss("tversky"))],
            "name": "tversky /G replay",
            "param_schedule": {
                "name": "piecewise",
                "params": {"steps": [1], "values": {"beta": [0.9]}},
            },
        }
    )
    (tmp_path / "candidate.json").write_text(replay.to_json())
    code = main(
        ["train", "--candidate", "candidate.json", "--epochs", "1", "--steps", "2", "--cases", "5",
         "--shape", "32", "--tracking-uri", uri, "--experiment", "cli", "--device", "cpu"]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    run = MlflowClient(uri).search_runs(
        [MlflowClient(uri).get_experiment_by_name("cli").experiment_id]
    )[0]
    assert run.data.params["param_schedule"] == "piecewise"
    assert run.data.params["candidate.name"] == "tversky /G replay"


def _learned_candidate(folder: Path) -> tuple[str, Path]:
    """A loss network saved in ``folder`` and a candidate JSON naming it (``candidate.json``)."""
    import torch

    from losslab.losses.learned import LossNetwork, save_network

    torch.manual_seed(0)
    digest, path = save_network(LossNetwork(hidden=(4,), base="dice"), folder)
    candidate = Candidate.from_loss(f"lossnet:{digest}", name="ml3-0 (dice base)")
    (folder.parent / "candidate.json").write_text(candidate.to_json())
    return digest, path


@pytest.fixture
def _no_lossnet_folders(monkeypatch):
    from losslab.losses import learned_term

    monkeypatch.setattr(learned_term, "_ADDED", [])
    monkeypatch.delenv(learned_term.ENV_VAR, raising=False)


@pytest.mark.usefixtures("_no_lossnet_folders")
def test_train_takes_a_learned_candidate_with_its_network_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    digest, _ = _learned_candidate(tmp_path / "nets")
    code = main(
        ["train", "--candidate", "candidate.json", "--lossnets", "nets", "--epochs", "1",
         "--steps", "1", "--cases", "3", "--shape", "32", "--patch", "16", "--no-hd95",
         "--tracking-uri", uri, "--experiment", "cli", "--device", "cpu"]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    client = MlflowClient(uri)
    run = client.search_runs([client.get_experiment_by_name("cli").experiment_id])[0]
    assert run.data.params["loss"] == f"lossnet:{digest}"
    listed = [a.path for a in client.list_artifacts(run.info.run_id, "lossnets")]
    assert listed == [f"lossnets/{digest}.lossnet"]


@pytest.mark.usefixtures("_no_lossnet_folders")
@pytest.mark.parametrize("problem", ["missing", "corrupt", "no folder"])
def test_train_refuses_a_missing_or_corrupt_network_before_training(
    tmp_path, monkeypatch, capsys, problem
):
    monkeypatch.chdir(tmp_path)
    digest, path = _learned_candidate(tmp_path / "nets")
    folder = "nets"
    if problem == "missing":
        path.unlink()
    elif problem == "corrupt":
        path.write_bytes(path.read_bytes()[:-4])
    else:
        folder = "elsewhere"
    code = main(["train", "--candidate", "candidate.json", "--lossnets", folder, "--device", "cpu"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "Traceback" not in err
    assert not (tmp_path / "mlflow.db").exists()  # refused before any run was created
    if problem == "no folder":
        assert "--lossnets: elsewhere is not a folder" in err
    else:
        assert f"{digest}.lossnet" in err.replace(" ", "")
        assert ("does not match" if problem == "corrupt" else "no file") in err


@pytest.mark.parametrize(
    ("extra", "text", "message"),
    [
        (["--loss", "dice"], None, "drop --loss"),
        ([], "{not json", "is not JSON"),
        ([], '{"terms": ["vsum(y)"]}', "not a valid candidate"),
        (
            [],
            Candidate.from_dict(
                {
                    "terms": [str(resolve_loss("tversky"))],
                    "param_schedule": {
                        "name": "piecewise",
                        "params": {"steps": [0], "values": {"beta": [1.0]}},
                    },
                }
            )
            .to_json()
            .replace('"beta"', '"gamma"'),
            "not a parameter of its loss",
        ),
    ],
)
def test_train_names_a_bad_candidate_file(tmp_path, monkeypatch, capsys, extra, text, message):
    monkeypatch.chdir(tmp_path)
    if text is not None:
        (tmp_path / "candidate.json").write_text(text)
    code = main(["train", "--candidate", "candidate.json", "--device", "cpu", *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    if text is None:
        assert "candidate" in err
