"""``TrainConfig.deterministic``: the run's torch flags, and their restoration however it ends."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch
import yaml

from losslab.candidate import Candidate
from losslab.config import load_suite
from losslab.search.study_config import load_study
from losslab.training import Hook, TrainConfig, Trainer
from losslab.training.determinism import (
    CUBLAS_WORKSPACE_CONFIG,
    TorchFlags,
    configure_determinism,
)


@pytest.fixture(autouse=True)
def keep_flags():
    """Whatever a test does, the process's flags are the same afterwards."""
    saved = TorchFlags.save()
    yield
    saved.restore()


def set_flags(benchmark: bool, cudnn_deterministic: bool, algorithms: bool) -> TorchFlags:
    torch.backends.cudnn.benchmark = benchmark
    torch.backends.cudnn.deterministic = cudnn_deterministic
    torch.use_deterministic_algorithms(algorithms, warn_only=algorithms)
    return TorchFlags.save()


class Record(Hook):
    """Records the flags at the start of the run and after every step."""

    def __init__(self, fail_at_start: BaseException | None = None) -> None:
        self.seen: list[TorchFlags] = []
        self.fail_at_start = fail_at_start

    def on_train_start(self, state) -> None:
        self.seen.append(TorchFlags.save())
        if self.fail_at_start is not None:
            raise self.fail_at_start

    def on_step_end(self, state) -> None:
        self.seen.append(TorchFlags.save())


@pytest.fixture
def quick(tiny_config) -> TrainConfig:
    return dataclasses.replace(tiny_config, epochs=1, steps_per_epoch=2, patch_size=(16, 16, 16))


def test_deterministic_run_sets_the_flags_and_restores_them(phantom, quick):
    before = set_flags(benchmark=True, cudnn_deterministic=False, algorithms=False)
    hook = Record()
    config = dataclasses.replace(quick, deterministic=True)
    result = Trainer(config, [hook]).fit(Candidate.from_loss("dice"), phantom)
    assert result.ok, result.reason
    assert len(hook.seen) == 3
    for flags in hook.seen:
        assert not flags.cudnn_benchmark and flags.cudnn_deterministic
        assert flags.deterministic_algorithms and not flags.warn_only
    assert TorchFlags.save() == before


def test_default_run_turns_determinism_off_and_restores_the_flags(phantom, quick):
    before = set_flags(benchmark=True, cudnn_deterministic=True, algorithms=True)
    hook = Record()
    result = Trainer(quick, [hook]).fit(Candidate.from_loss("dice"), phantom)
    assert result.ok, result.reason
    for flags in hook.seen:  # on the CPU: no cuDNN autotuning either
        assert not flags.cudnn_benchmark and not flags.cudnn_deterministic
        assert not flags.deterministic_algorithms
    assert TorchFlags.save() == before


@pytest.mark.parametrize("deterministic", [True, False])
def test_flags_are_restored_after_a_failed_run(phantom, quick, deterministic):
    before = set_flags(benchmark=True, cudnn_deterministic=not deterministic, algorithms=False)
    hook = Record(fail_at_start=RuntimeError("boom"))
    config = dataclasses.replace(quick, deterministic=deterministic)
    result = Trainer(config, [hook]).fit(Candidate.from_loss("dice"), phantom)
    assert result.status == "failed" and "boom" in result.reason
    assert hook.seen[0] != before  # the run did change them
    assert TorchFlags.save() == before


def test_flags_are_restored_after_an_interrupted_run(phantom, quick):
    before = set_flags(benchmark=True, cudnn_deterministic=False, algorithms=False)
    hook = Record(fail_at_start=KeyboardInterrupt())
    config = dataclasses.replace(quick, deterministic=True)
    with pytest.raises(KeyboardInterrupt):
        Trainer(config, [hook]).fit(Candidate.from_loss("dice"), phantom)
    assert hook.seen[0].deterministic_algorithms
    assert TorchFlags.save() == before


def test_cuda_runs_set_cublas_workspace_only_when_deterministic(monkeypatch):
    cuda = torch.device("cuda")  # setting the flags needs no GPU
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = TorchFlags.save()
    configure_determinism(False, cuda)
    assert torch.backends.cudnn.benchmark and "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    configure_determinism(True, cuda)
    assert not torch.backends.cudnn.benchmark
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE_CONFIG
    before.restore()
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # a value already set is kept
    configure_determinism(True, cuda)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_deterministic_is_read_from_yaml_and_checked(tmp_path):
    assert TrainConfig.from_dict({"deterministic": True}).deterministic is True
    assert TrainConfig().to_dict()["deterministic"] is False
    with pytest.raises(ValueError, match="deterministic='yes' must be bool"):
        TrainConfig.from_dict({"deterministic": "yes"})
    suite = tmp_path / "suite.yaml"
    suite.write_text("candidates: [{loss: dice}]\ntrain: {deterministic: true}\n")
    assert load_suite(suite).train.deterministic
    study = tmp_path / "study.yaml"
    raw = {
        "study": "unit",
        "budget": {"trials": 1},
        "space": {"loss": {"dice": {}, "focal": {"gamma": {"float": [0.5, 4.0]}}}},
        "train": {"deterministic": True},
    }
    study.write_text(yaml.safe_dump(raw))
    assert load_study(study).train.deterministic


def test_identity_leaves_out_the_default_so_earlier_keys_stay_valid():
    """Studies recorded before the option existed keep their fingerprints and cache keys."""
    plain, strict = TrainConfig(), TrainConfig(deterministic=True)
    assert "deterministic" not in plain.identity() and "device" not in plain.identity()
    assert strict.identity()["deterministic"] is True
    assert plain.identity() != strict.identity()
    assert TrainConfig(device="cpu").identity() == plain.identity()


def test_identity_names_a_changed_architecture():
    """unet3d's decoder changed: its old cached evaluations must not be served for the new one."""
    assert TrainConfig(model="unet3d").identity()["model_revision"] == 2
    assert "model_revision" not in TrainConfig(model="unetr").identity()
