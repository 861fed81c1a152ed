"""The greedy controller's batched look-ahead against its one-at-a-time look-ahead, on the CPU.

With ``batched="on"`` every decision's combinations train as one population
(``losslab.training.branches``). It must choose what the one-at-a-time look-ahead chooses, score
each combination as it does (up to the rounding of the batched convolutions: measured <= 1.2e-7
relative on these runs, ``RTOL`` a little above) and leave the run as it does, so the final
results are equal. The runs are set up so that every decision's scores lie further apart than
the tolerance: scores given to the wrong combinations (a permutation) fail the comparison, which
the last assertion of the first test checks on the recorded scores themselves.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging

import pytest
import torch

from losslab.candidate import Candidate, ScheduleSpec
from losslab.search.greedy.controller import GreedyController, GreedyPlan
from losslab.search.greedy.settings import check_settings
from losslab.search.objective import Objective
from losslab.training import Trainer

from .test_greedy_controller import CONFIG, _blobs

RTOL = 1e-6


@pytest.fixture(scope="module")
def blobs():
    return _blobs()


def _run(config, candidate, plan, blobs, batched):
    controller = GreedyController(plan, Objective(), batched=batched)
    result = Trainer(config, [controller]).fit(candidate, blobs)
    assert result.ok, result.reason
    return controller, result


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= RTOL * max(abs(a), abs(b))


def _assert_same_run(sequential, batched) -> None:
    (seq, seq_result), (bat, bat_result) = sequential, batched
    assert len(seq.decisions) == len(bat.decisions) > 0
    for one, many in zip(seq.decisions, bat.decisions):
        assert one["chosen"] == many["chosen"] and one["step"] == many["step"]
        assert [v for _, v in one["scores"]] == [v for _, v in many["scores"]]
        assert all(_close(a, b) for (a, _), (b, _) in zip(one["scores"], many["scores"]))
        assert one["nonfinite"] == many["nonfinite"]
    assert seq.trajectory == bat.trajectory
    assert [r.val_dice for r in seq_result.history] == [r.val_dice for r in bat_result.history]
    assert [r.train_loss for r in seq_result.history] == [r.train_loss for r in bat_result.history]
    assert seq_result.test_metrics == bat_result.test_metrics
    assert seq_result.tags["greedy.lookahead"] == "sequential"
    assert bat_result.tags["greedy.lookahead"] == "batched"
    assert "greedy.lookahead_fallback" not in bat_result.tags


def _assert_a_permutation_would_fail(decisions) -> None:
    """Every two combinations of a decision score further apart than the tolerance."""
    for decision in decisions:
        scores = [s for s, _ in decision["scores"]]
        for a, b in itertools.combinations(scores, 2):
            assert not _close(a, b), (a, b)


@pytest.mark.parametrize(
    "setting",
    ["adamw_joint", "sgd_augment_one_at_a_time"],
)
def test_batched_look_ahead_equals_one_at_a_time(blobs, setting):
    """AdamW, joint actions on two Tversky parameters; SGD with momentum, augmentation, a
    two-term loss with a SoftAdapt term schedule (its state is per combination), one
    parameter at a time over three."""
    if setting == "adamw_joint":
        config = dataclasses.replace(CONFIG, epochs=2, steps_per_epoch=4, lr=3e-2)
        candidate = Candidate.from_loss("tversky", alpha=0.5, beta=0.5)
        plan = GreedyPlan(addresses=("alpha", "beta"), every=3, lookahead=2, step=0.4)
    else:
        config = dataclasses.replace(
            CONFIG, optimizer="sgd", augment=True, lr=3e-2, steps_per_epoch=6
        )
        candidate = dataclasses.replace(
            Candidate.from_loss("tversky_focal"),
            term_schedule=ScheduleSpec.of("softadapt", beta=0.5),
        )
        plan = GreedyPlan(addresses=("beta", "gamma", "weight0"), every=2, lookahead=2, step=0.5)
        plan = dataclasses.replace(plan, max_joint=2)
    sequential = _run(config, candidate, plan, blobs, "off")
    batched = _run(config, candidate, plan, blobs, "on")
    _assert_same_run(sequential, batched)
    _assert_a_permutation_would_fail(sequential[0].decisions)


def test_a_network_that_cannot_be_batched_falls_back_with_its_reason(blobs, caplog):
    """Dropout draws random numbers in the forward pass: the branches cannot be stacked, the
    run looks ahead one combination at a time (the same run as with ``off``) and says why."""
    config = dataclasses.replace(CONFIG, model_overrides={"dropout": 0.2})
    candidate = Candidate.from_loss("tversky", alpha=0.5, beta=0.5)
    plan = GreedyPlan(addresses=("beta",), every=3, lookahead=1, step=0.4)
    off = _run(config, candidate, plan, blobs, "off")
    with caplog.at_level(logging.WARNING, logger="losslab.search.greedy.controller"):
        on = _run(config, candidate, plan, blobs, "on")
    assert on[0].decisions == off[0].decisions
    assert on[1].test_metrics == off[1].test_metrics
    assert on[1].tags["greedy.lookahead"] == "sequential"
    assert "random" in on[1].tags["greedy.lookahead_fallback"].lower()
    assert on[0].batched_decisions == 0
    assert sum("one combination at a time" in r.getMessage() for r in caplog.records) == 1


def test_auto_looks_ahead_one_at_a_time_on_the_cpu(blobs):
    plan = GreedyPlan(addresses=("beta",), every=4, lookahead=1, step=0.4)
    controller, result = _run(CONFIG, Candidate.from_loss("tversky"), plan, blobs, "auto")
    assert result.tags["greedy.lookahead"] == "sequential"
    assert controller.batched_decisions == 0 and controller.fallback is None


def test_the_setting_is_validated_and_reads_yaml_booleans():
    assert check_settings({}).batched_lookahead == "auto"
    assert check_settings({"batched_lookahead": True}).batched_lookahead == "on"
    assert check_settings({"batched_lookahead": False}).batched_lookahead == "off"
    assert check_settings({"batched_lookahead": "on"}).batched_lookahead == "on"
    with pytest.raises(ValueError, match=r"^greedy\.batched_lookahead: one of auto, on, off"):
        check_settings({"batched_lookahead": "sometimes"})
    with pytest.raises(ValueError, match=r"^greedy\.batched_lookahead"):
        GreedyController(GreedyPlan(addresses=("beta",)), Objective(), batched="yes")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_auto_batches_and_scores_as_one_at_a_time(blobs):
    """``auto`` batches on a GPU; the first decision (the same start in both runs) scores every
    combination as the one-at-a-time look-ahead does, up to the GPU's rounding."""
    config = dataclasses.replace(CONFIG, device="cuda", epochs=1, steps_per_epoch=4)
    candidate = Candidate.from_loss("tversky", alpha=0.5, beta=0.5)
    plan = GreedyPlan(addresses=("alpha", "beta"), every=3, lookahead=2, step=0.4)
    seq, _ = _run(config, candidate, plan, blobs, "off")
    bat, result = _run(config, candidate, plan, blobs, "auto")
    assert result.tags["greedy.lookahead"] == "batched"
    first = [s for s, _ in seq.decisions[0]["scores"]], [s for s, _ in bat.decisions[0]["scores"]]
    assert first[1] == pytest.approx(first[0], rel=1e-3)
