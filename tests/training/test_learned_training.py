"""A candidate with a learned loss term trains with the real trainer and its MLflow run holds the
network's file; a missing network is a failed run that names it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from losslab.candidate import Candidate
from losslab.losses import learned_term as lt
from losslab.losses.learned import LossNetwork, save_network
from losslab.tracking.hook import MLflowHook
from losslab.tracking.tracker import Tracker
from losslab.training import TrainConfig, Trainer


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setattr(lt, "_ADDED", [])
    monkeypatch.delenv(lt.ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def small() -> TrainConfig:
    return TrainConfig(
        epochs=1,
        steps_per_epoch=2,
        batch_size=1,
        patch_size=(16, 16, 16),
        lr=3e-3,
        device="cpu",
        hd95=False,
        augment=False,
    )


def _run(candidate, dataset, config, tracker):
    hook = MLflowHook(tracker, candidate, config, data_fingerprint=dataset.fingerprint)
    return Trainer(config, [hook]).fit(candidate, dataset), hook.run_id


def test_a_learned_candidate_trains_and_logs_its_network(
    tmp_path, phantom, small, tracking_uri, monkeypatch
):
    seen, loss = [], LossNetwork.loss

    def spy(self, logits, labels, class_weights=None, progress=None):
        seen.append(progress)
        return loss(self, logits, labels, class_weights, progress)

    monkeypatch.setattr(LossNetwork, "loss", spy)
    torch.manual_seed(0)
    net = LossNetwork(features=("p", "y", "logp", "progress"), hidden=(8,), base="ce")
    digest, path = save_network(net, tmp_path / "nets")
    lt.add_search_folder(tmp_path / "nets")
    tracker = Tracker(tracking_uri, experiment="learned-term")
    candidate = Candidate.from_loss(f"lossnet:{digest}", name="learned")
    result, run_id = _run(candidate, phantom, small, tracker)
    assert result.status == "ok", result.reason
    assert seen == [0.0, 0.5]  # the trainer feeds the progress of training, step by step
    plain, _ = _run(Candidate.from_loss("ce"), phantom, small, tracker)
    # The same run with CE alone: the learned part (about softplus(-5) per voxel) was added.
    gap = result.history[0].train_loss - plain.history[0].train_loss
    assert 1e-3 < gap < 2e-2
    listed = [a.path for a in tracker.client.list_artifacts(run_id, "lossnets")]
    assert listed == [f"lossnets/{digest}.lossnet"]
    copy = tracker.client.download_artifacts(run_id, listed[0], str(tmp_path / "copy"))
    assert Path(copy).read_bytes() == path.read_bytes()
    assert tracker.client.get_run(run_id).data.params["loss"] == f"lossnet:{digest}"


def test_a_missing_network_fails_the_run_naming_it(phantom, small, tracking_uri):
    digest = "0f" * 32
    tracker = Tracker(tracking_uri, experiment="learned-term")
    result, run_id = _run(Candidate.from_loss(f"lossnet:{digest}"), phantom, small, tracker)
    assert result.status == "failed"
    assert f"{digest}.lossnet" in result.reason and "FileNotFoundError" in result.reason
    run = tracker.client.get_run(run_id)
    assert run.info.status == "FAILED" and digest in run.data.tags["failure_reason"]
