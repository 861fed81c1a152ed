"""The trainer builds the class schedules' epoch context from the training split and chains it."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

import losslab.data.stats as stats_module
import losslab.training.setup as training_setup
from losslab.candidate import Candidate, ScheduleSpec
from losslab.schedules import UniformWeights
from losslab.schedules.class_schedules import median_frequency_weights
from losslab.training import Hook, Trainer, train


def same(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert (math.isnan(a) and math.isnan(e)) or a == pytest.approx(e), (actual, expected)


def without_class_in_one_train_case(dataset, cls: int):
    """A copy of ``dataset`` where class ``cls`` is erased (made background) in one training
    case, so that Hegde's frequencies differ from the plain voxel shares."""
    data = dataclasses.replace(dataset)  # a fresh dataset: no class counts cached yet
    case = data.splits["train"][0]
    labels = list(data.labels)
    labels[case] = torch.where(labels[case] == cls, 0, labels[case])
    data.labels = labels
    return data


class ContextRecorder(Hook):
    def __init__(self):
        self.contexts = []

    def on_train_start(self, state):
        self.contexts.append(state.context)

    def on_epoch_end(self, state, record):
        self.contexts.append(state.context)


def test_median_frequency_uses_the_training_split_frequencies(phantom, tiny_config):
    data = without_class_in_one_train_case(phantom, 13)
    train_split = data.subset("train")
    config = dataclasses.replace(tiny_config, epochs=2, steps_per_epoch=1)
    recorder = ContextRecorder()
    candidate = Candidate.from_loss("dice", class_schedule=ScheduleSpec.of("median_frequency"))
    result = Trainer(config, [recorder]).fit(candidate, data)
    assert result.ok, result.reason
    start = recorder.contexts[0]
    counts = train_split.class_voxel_counts.double()
    assert start.frequencies == pytest.approx((counts / counts.sum()).tolist())
    hegde = train_split.class_frequencies().tolist()
    assert start.balancing_frequencies == pytest.approx(hegde)
    expected = median_frequency_weights(hegde)
    assert expected != pytest.approx(median_frequency_weights(start.frequencies))
    for record in result.history:  # the weights held during each epoch
        assert record.class_weights == pytest.approx(expected, rel=1e-6)
    assert max(expected) > 10 * min(expected)  # the adrenals outweigh the liver


def test_explicit_frequencies_win_in_a_run(phantom, tiny_config):
    config = dataclasses.replace(tiny_config, epochs=1, steps_per_epoch=1)
    freq = [1.0 / phantom.num_classes] * phantom.num_classes
    freq[1] = 2.0 / phantom.num_classes
    candidate = Candidate.from_loss(
        "dice", class_schedule=ScheduleSpec.of("median_frequency", frequencies=freq)
    )
    result = train(candidate, phantom, config)
    assert result.ok, result.reason
    assert result.history[0].class_weights == pytest.approx(median_frequency_weights(freq))


def test_schedule_begins_before_the_first_step_and_sees_the_chained_contexts(
    phantom, tiny_config, monkeypatch
):
    events = []

    class Recording(UniformWeights):
        def begin(self, context):
            events.append(("begin", context))

        def _update(self, context):
            events.append(("update", context))

    class Steps(Hook):
        def on_step_end(self, state):
            events.append(("step", None))

    monkeypatch.setattr(
        training_setup, "get_class_schedule", lambda name, num_classes, **p: Recording(num_classes)
    )
    config = dataclasses.replace(tiny_config, epochs=3, steps_per_epoch=2, val_every=2)
    result = Trainer(config, [Steps()]).fit(Candidate.from_loss("dice"), phantom)
    assert result.ok, result.reason
    kinds = [kind for kind, _ in events]
    assert kinds == ["begin"] + ["step", "step", "update"] * 3
    contexts = [ctx for kind, ctx in events if kind != "step"]
    assert [c.epoch for c in contexts] == [0, 1, 2, 3]
    assert all(c.total_epochs == 3 for c in contexts)
    assert all(math.isnan(s) for s in contexts[1].scores)  # epoch 1 not validated (val_every=2)
    for ctx, record in zip(contexts[1:], result.history):
        same(ctx.scores, record.val_dice)
    second, third = result.history[1].val_dice, result.history[2].val_dice
    same(contexts[3].best_scores, [max(a, b) for a, b in zip(second, third)])
    assert contexts[1].epochs_since_best == (1,) * phantom.num_classes
    assert contexts[3].progress == 1.0


def test_class_counts_are_computed_once_per_dataset(phantom, tiny_config, monkeypatch):
    calls = []
    real = stats_module.case_class_counts

    def counting(labels, num_classes):
        calls.append(len(labels))
        return real(labels, num_classes)

    monkeypatch.setattr(stats_module, "case_class_counts", counting)
    data = dataclasses.replace(phantom)  # nothing cached yet
    config = dataclasses.replace(tiny_config, epochs=1, steps_per_epoch=1)
    candidate = Candidate.from_loss("dice", class_schedule=ScheduleSpec.of("median_frequency"))
    first = train(candidate, data, config)
    second = train(candidate, data, config)
    assert first.ok and second.ok
    assert calls == [len(data)]
    assert first.history[0].class_weights == second.history[0].class_weights
