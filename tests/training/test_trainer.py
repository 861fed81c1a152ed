"""The inner-loop trainer on the tiny phantom, on the CPU."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

import losslab.losses.spec as spec_module
import losslab.training.setup as training_setup
import losslab.training.trainer as trainer_module
from losslab.candidate import Candidate
from losslab.losses import CompiledLoss
from losslab.models import get_model
from losslab.training import Hook, StopTraining, Trainer, train
from losslab.training.hooks import STOPPED_AFTER_LAST_EPOCH
from losslab.training.inference import evaluate_split


def foreground_mean(values: list[float]) -> float:
    present = [v for v in values[1:] if not math.isnan(v)]
    return sum(present) / len(present)


@pytest.mark.slow
def test_three_epochs_beat_an_untrained_network(phantom, tiny_config):
    config = dataclasses.replace(tiny_config, epochs=3, steps_per_epoch=15)
    result = train(Candidate.from_loss("dice_ce"), phantom, config)
    assert result.ok, result.reason
    assert len(result.history) == 3 and result.steps == 45
    torch.manual_seed(config.seed)
    untrained = get_model("unet3d", num_classes=phantom.num_classes, patch_size=config.patch_size)
    test = phantom.splits["test"]
    baseline = evaluate_split(
        untrained,
        [phantom.images[i] for i in test],
        [phantom.labels[i] for i in test],
        phantom.num_classes,
        patch_size=config.patch_size,
    )["dice"]
    trained = foreground_mean(result.test_metrics["dice"])
    assert trained > 2 * foreground_mean(baseline)
    assert result.test_metrics["dice"][6] > 0.5  # the liver, the largest organ, is learnt first
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert set(result.test_metrics) == {"dice", "iou", "sensitivity", "precision"}


def test_same_seed_gives_the_same_scores(phantom, tiny_config):
    candidate = Candidate.from_loss("dice")
    first = train(candidate, phantom, tiny_config)
    second = train(candidate, phantom, tiny_config)
    assert first.ok and second.ok
    assert [r.val_dice for r in first.history] == [r.val_dice for r in second.history]
    assert [r.train_loss for r in first.history] == [r.train_loss for r in second.history]
    other = train(candidate, phantom, dataclasses.replace(tiny_config, seed=1))
    assert [r.train_loss for r in other.history] != [r.train_loss for r in first.history]


def test_nan_loss_fails_at_its_step(phantom, tiny_config, monkeypatch):
    class NaNFromStep3(CompiledLoss):
        calls = 0

        def evaluate(self, terminals):
            self.calls += 1
            values = super().evaluate(terminals)
            return [v * math.nan for v in values] if self.calls >= 3 else values

    monkeypatch.setattr(training_setup, "compile_terms", NaNFromStep3)
    result = train(Candidate.from_loss("dice"), phantom, tiny_config)
    assert result.status == "failed"
    assert result.failed_step == 3
    assert "non-finite loss at step 3" in result.reason


def test_exploding_learning_rate_fails_instead_of_raising(phantom, tiny_config):
    config = dataclasses.replace(tiny_config, lr=1e30, optimizer="sgd", grad_clip=1e38)
    result = train(Candidate.from_loss("ce"), phantom, config)
    assert result.status == "failed"
    assert "non-finite" in result.reason or "diverged" in result.reason


def test_errors_in_setup_become_failed_results(phantom, tiny_config):
    config = dataclasses.replace(tiny_config, model="no_such_net")
    result = train(Candidate.from_loss("dice"), phantom, config)
    assert result.status == "failed" and "no_such_net" in result.reason


def test_hooks_see_the_lifecycle_and_can_prune(phantom, tiny_config):
    events: list[str] = []

    class Recorder(Hook):
        def on_train_start(self, state):
            events.append("start")

        def on_step_end(self, state):
            events.append("step")

        def on_epoch_end(self, state, record):
            events.append(f"epoch{record.epoch}")
            raise StopTraining("pruned by test")

        def on_train_end(self, state, result):
            events.append(result.status)

    result = Trainer(tiny_config, [Recorder()]).fit(Candidate.from_loss("dice"), phantom)
    assert events == ["start", "step", "step", "step", "step", "epoch1", "pruned"]
    assert result.status == "pruned" and result.reason == "pruned by test"
    assert len(result.history) == 1


def test_config_from_dict_names_unknown_keys_and_bad_values():
    from losslab.training import TrainConfig

    assert TrainConfig.from_dict({"epochs": 5}).epochs == 5
    with pytest.raises(ValueError, match=r"unknown train config key\(s\) \['epoch'\]"):
        TrainConfig.from_dict({"epoch": 5})
    with pytest.raises(ValueError, match="TrainConfig.optimizer='lbfgs'"):
        TrainConfig(optimizer="lbfgs")
    with pytest.raises(ValueError, match="TrainConfig.epochs='many' must be int"):
        TrainConfig(epochs="many")
    assert TrainConfig(lr=1).lr == 1.0 and isinstance(TrainConfig(lr=1).lr, float)


def test_median_frequency_weights_come_from_the_training_split(phantom, tiny_config):
    from losslab.candidate import ScheduleSpec

    config = dataclasses.replace(tiny_config, epochs=1, steps_per_epoch=1)
    candidate = Candidate.from_loss("dice", class_schedule=ScheduleSpec.of("median_frequency"))
    result = train(candidate, phantom, config)
    assert result.ok, result.reason
    expected = phantom.subset("train").median_frequency_weights().float()
    torch.testing.assert_close(torch.tensor(result.history[0].class_weights), expected)
    assert expected.max() > 10 * expected.min()  # the adrenals outweigh the liver


def test_unknown_schedule_fails_with_its_name(phantom, tiny_config):
    from losslab.candidate import ScheduleSpec

    candidate = Candidate.from_loss("dice", class_schedule=ScheduleSpec.of("cbss"))
    result = train(candidate, phantom, tiny_config)
    assert result.status == "failed" and "cbss" in result.reason


@pytest.mark.parametrize("absent_classes", ["keep", "ignore"])
def test_absent_classes_option_reaches_the_class_mean(
    phantom, tiny_config, monkeypatch, absent_classes
):
    seen = []
    original = spec_module.reduce

    def spy(value, weights=None, present=None):
        seen.append(None if present is None else present.clone())
        return original(value, weights, present)

    monkeypatch.setattr(spec_module, "reduce", spy)
    config = dataclasses.replace(tiny_config, epochs=1, steps_per_epoch=2)
    candidate = Candidate.from_loss("dice", absent_classes=absent_classes)
    assert train(candidate, phantom, config).ok
    assert len(seen) == 2
    if absent_classes == "keep":
        assert all(p is None for p in seen)
    else:
        assert all(p is not None and p.dtype == torch.bool and bool(p[0]) for p in seen)


def test_test_metrics_use_each_case_its_own_spacing(phantom, tiny_config, monkeypatch):
    seen = []
    real = trainer_module.evaluate_split

    def spy(*args, **kwargs):
        seen.append(kwargs["spacing"])
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "evaluate_split", spy)
    data = dataclasses.replace(phantom)
    data.spacings = [(1.0 + i, 1.5, 2.0) for i in range(len(data))]  # cases at native spacing
    config = dataclasses.replace(tiny_config, epochs=1, steps_per_epoch=1, hd95=True)
    assert train(Candidate.from_loss("dice"), data, config).ok
    assert seen[-1] == [(1.0 + i, 1.5, 2.0) for i in data.splits["test"]]
    assert seen[0] == [(1.0 + i, 1.5, 2.0) for i in data.splits["val"]]


def test_the_step_reduces_its_terms_with_the_compiled_loss_reduction(
    phantom, tiny_config, monkeypatch
):
    calls = []
    original = CompiledLoss.reduce_terms

    def spy(values, *args, **kwargs):
        calls.append(kwargs.get("absent_classes"))
        return original(values, *args, **kwargs)

    monkeypatch.setattr(CompiledLoss, "reduce_terms", staticmethod(spy))
    config = dataclasses.replace(tiny_config, epochs=1, steps_per_epoch=3)
    candidate = Candidate.from_loss("dice_ce", absent_classes="ignore")
    assert train(candidate, phantom, config).ok
    assert calls == ["ignore"] * 3


class _Stop(Hook):
    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_epoch_end(self, state, record):
        if record.epoch == self.epoch:
            raise StopTraining(f"stopped at {record.epoch}")


class _Seen(Hook):
    def __init__(self):
        self.epochs: list[int] = []

    def on_epoch_end(self, state, record):
        self.epochs.append(record.epoch)


def test_every_hook_sees_the_epoch_an_earlier_hook_stops_on(phantom, tiny_config):
    config = dataclasses.replace(tiny_config, epochs=3, steps_per_epoch=1)
    seen = _Seen()
    result = Trainer(config, [_Stop(2), seen]).fit(Candidate.from_loss("dice"), phantom)
    assert result.status == "pruned" and result.reason == "stopped at 2"
    assert seen.epochs == [1, 2] and len(result.history) == 2
    assert not result.test_metrics


def test_a_stop_after_the_last_epoch_keeps_the_finished_run(phantom, tiny_config):
    config = dataclasses.replace(tiny_config, epochs=2, steps_per_epoch=1)
    seen = _Seen()
    result = Trainer(config, [_Stop(2), seen]).fit(Candidate.from_loss("dice"), phantom)
    assert result.status == "ok" and seen.epochs == [1, 2]
    assert len(result.test_metrics["dice"]) == phantom.num_classes
    assert result.tags[STOPPED_AFTER_LAST_EPOCH].startswith("stopped at 2: after the last epoch")
