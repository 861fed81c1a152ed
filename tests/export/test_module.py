"""The exported loss module equals losslab's own trainer step by step: every library loss, a GP
expression, a learned ``lossnet:`` term, class schedules (TCF, CBS, median frequency), term
schedules (ramp, SoftAdapt) and a parameter schedule, stepped over scripted epochs, 2D and 3D.

The reference is the trainer's ``step_loss`` on a ``TrainState`` built by ``run_state`` (the
trainer's own setup), with the epoch-end and parameter updates ``Trainer`` makes. Both sides get
float64 logits and label targets; losslab computes losses in float32 on both sides, so values and
gradients must agree to 1e-12 (in practice they are equal). A one-hot target runs the same float32
sums over another copy of ``y`` and agrees to float32 rounding (relative 1e-6)."""

from __future__ import annotations

import math

import pytest
import torch

from losslab.candidate import Candidate, ScheduleSpec
from losslab.export import ExportedLoss, deep_supervision_weights, downsample_target
from losslab.losses import list_losses, resolve_loss
from losslab.losses.learned import LossNetwork, save_network
from losslab.training.setup import run_state, start_context
from losslab.training.trainer import step_loss

TOLERANCE = {"rtol": 0.0, "atol": 1e-12}
# A one-hot target takes another memory path through the same float32 sums: rounding apart.
ONE_HOT_TOLERANCE = {"rtol": 1e-6, "atol": 1e-7}
SHAPES = {"2d": (2, 9, 7), "3d": (2, 6, 7, 5)}  # [B, *spatial]


def _trainer_state(candidate, dataset, config):
    return run_state(
        config,
        candidate,
        dataset,
        device=torch.device("cpu"),
        sampler=None,
        augment_generator=None,
        val_patches=[],
        amp_dtype=None,
    )


def _exported(candidate, dataset, config) -> ExportedLoss:
    context = start_context(dataset, config.epochs)
    return ExportedLoss(
        candidate,
        dataset.num_classes,
        epochs=config.epochs,
        frequencies=context.frequencies,
        balancing_frequencies=context.balancing_frequencies,
    )


def _rising(epoch: int, num_classes: int) -> list[float]:
    """Scripted validation Dice: classes 1-3 cross 0.9 at epoch 2 (TCF freezes them); class 5
    is never scored."""
    scores = [0.5 + 0.01 * c for c in range(num_classes)]
    if epoch >= 2:
        scores[1:4] = [0.95, 0.96, 0.97]
    scores[5] = math.nan
    return scores


def _plateau(epoch: int, num_classes: int) -> list[float]:
    """Scripted validation Dice: class 4 is the best and falls 0.995, 0.985, 0.98, 0.98, so the
    best of epochs 2-4 is 0.01 below the best since epoch 1: a PCF/CBS trigger at epoch 4."""
    scores = [0.5 + 0.01 * c for c in range(num_classes)]
    scores[4] = (0.995, 0.985, 0.98, 0.98)[epoch - 1]
    return scores


def _compare(
    candidate, dataset, config, shape, *, onehot: bool = False, scores=_rising
) -> list[list[float]]:
    """Train-step both losses over the scripted epochs; return the class weights per epoch."""
    state = _trainer_state(candidate, dataset, config)
    loss = _exported(candidate, dataset, config)
    num_classes = dataset.num_classes
    generator = torch.Generator().manual_seed(0)
    total_steps = config.epochs * config.steps_per_epoch
    weights = []
    for epoch in range(1, config.epochs + 1):
        for _ in range(config.steps_per_epoch):
            logits = torch.randn(shape[0], num_classes, *shape[1:], generator=generator) * 3
            labels = torch.randint(0, num_classes - 3, shape, generator=generator)
            if state.param_schedule is not None:  # as Trainer.step does before step_loss
                state.set_loss_parameters(state.param_schedule.values_at(state.step))
            ours = logits.double().requires_grad_()
            theirs = logits.double().requires_grad_()
            expected = step_loss(state, theirs, labels)
            expected.backward()
            loss.set_progress(state.step, total_steps)
            target = labels[:, None]
            if onehot:
                target = torch.nn.functional.one_hot(labels, num_classes).movedim(-1, 1).float()
            value = loss(ours, target)
            value.backward()
            assert torch.isfinite(value)
            tolerance = ONE_HOT_TOLERANCE if onehot else TOLERANCE
            torch.testing.assert_close(value, expected, **tolerance)
            torch.testing.assert_close(ours.grad, theirs.grad, **tolerance)
            state.step += 1
        dice = scores(epoch, num_classes)  # the trainer's epoch end (Trainer.fit)
        state.context = state.context.next(dice)
        state.class_weights = state.class_schedule.update(state.context).to(torch.float32)
        assert torch.equal(loss.on_epoch_end(dice), state.class_weights)
        weights.append(loss.class_weights.tolist())
    return weights


@pytest.mark.parametrize("dims", sorted(SHAPES))
@pytest.mark.parametrize("name", list_losses())
def test_every_library_loss_equals_the_trainers(name, dims, tiny_phantom, short_config):
    _compare(Candidate.from_loss(name), tiny_phantom, short_config, SHAPES[dims])


@pytest.mark.parametrize("dims", sorted(SHAPES))
def test_a_gp_expression_with_absent_classes_ignored_equals_the_trainers(
    dims, tiny_phantom, short_config
):
    candidate = Candidate.from_loss(
        "1 - (vsum(p * y) + 1) / (vsum(p ** 2 + y) + 1) + 0.3 * vmean(-y * logp * (1 - p) ** 2)",
        absent_classes="ignore",
    )
    _compare(candidate, tiny_phantom, short_config, SHAPES[dims])


@pytest.mark.parametrize("dims", sorted(SHAPES))
def test_a_learned_lossnet_term_equals_the_trainers(
    dims, tiny_phantom, short_config, lossnet_folder
):
    torch.manual_seed(1)
    net = LossNetwork(
        features=("p", "y", "logp", "progress"), hidden=(8,), base="dice", init_std=0.5
    )
    digest, _ = save_network(net, lossnet_folder)
    candidate = Candidate.from_loss(f"lossnet:{digest}", name="ml3")
    _compare(candidate, tiny_phantom, short_config, SHAPES[dims])


@pytest.mark.parametrize("dims", sorted(SHAPES))
@pytest.mark.parametrize(
    ("schedule", "scores", "changed_at"),
    [
        (ScheduleSpec.of("tcf"), _rising, 2),
        (ScheduleSpec.of("cbs", delta=2, epsilon=0.005), _plateau, 4),
    ],
)
def test_tcf_and_cbs_change_the_weights_as_in_the_trainer(
    schedule, scores, changed_at, dims, tiny_phantom, short_config
):
    candidate = Candidate.from_loss("dice_ce", class_schedule=schedule)
    weights = _compare(candidate, tiny_phantom, short_config, SHAPES[dims], scores=scores)
    ones = [1.0] * tiny_phantom.num_classes
    assert all(w == ones for w in weights[: changed_at - 1])
    assert weights[changed_at - 1] != ones  # the scripted scores trigger the schedule


def test_frequency_weights_ramp_softadapt_and_a_parameter_schedule_equal_the_trainers(
    tiny_phantom, short_config
):
    ramp = Candidate.from_loss(
        "dice_ce",
        class_schedule=ScheduleSpec.of("median_frequency"),
        term_schedule=ScheduleSpec.of("ramp"),
    )
    _compare(ramp, tiny_phantom, short_config, SHAPES["3d"])
    soft = Candidate.from_loss("dice_focal", term_schedule=ScheduleSpec.of("softadapt", beta=5.0))
    _compare(soft, tiny_phantom, short_config, SHAPES["2d"])
    base = Candidate.from_loss("tversky")
    steered = Candidate(
        terms=base.terms,
        name="greedy replay",
        param_schedule=ScheduleSpec.of("piecewise", steps=[1, 5], values={"beta": [0.8, 0.95]}),
    )
    _compare(steered, tiny_phantom, short_config, SHAPES["3d"])


def test_a_one_hot_target_gives_the_loss_of_its_labels(tiny_phantom, short_config):
    candidate = Candidate.from_loss("dice_ce", class_schedule=ScheduleSpec.of("tcf"))
    _compare(candidate, tiny_phantom, short_config, SHAPES["3d"], onehot=True)


def test_without_progress_calls_the_loss_stays_at_the_start_of_training():
    terms = [resolve_loss("ce"), resolve_loss("dice")]  # Hegde: (1 - a) CE + a Dice
    loss = ExportedLoss(Candidate.from_loss(terms, term_schedule=ScheduleSpec.of("ramp")), 3)
    logits, labels = torch.randn(2, 3, 5, 6), torch.randint(0, 3, (2, 1, 5, 6))
    ce_only = Candidate.from_loss("ce")
    first = loss(logits, labels)
    assert torch.allclose(first, ExportedLoss(ce_only, 3)(logits, labels))  # ramp at 0: CE
    assert torch.equal(loss(logits, labels), first)
    loss.set_progress(9, 10)  # the last step: Dice alone
    dice = ExportedLoss(Candidate.from_loss("dice"), 3)(logits, labels)
    assert torch.allclose(loss(logits, labels), dice)


def test_deep_supervision_weighs_outputs_as_nnunet_and_downsamples_the_target():
    assert deep_supervision_weights(1) == [1.0]
    assert deep_supervision_weights(3) == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert deep_supervision_weights(3, last=1e-6)[2] > 0
    loss = ExportedLoss(Candidate.from_loss("dice_ce"), 3)
    generator = torch.Generator().manual_seed(0)
    outputs = [
        torch.randn(2, 3, *s, generator=generator) for s in ((8, 8, 8), (4, 4, 4), (2, 2, 2))
    ]
    labels = torch.randint(0, 3, (2, 1, 8, 8, 8), generator=generator)
    small = downsample_target(labels, (4, 4, 4))
    assert small.dtype == labels.dtype and torch.equal(small, labels[:, :, 1::2, 1::2, 1::2])
    expected = 2 / 3 * loss(outputs[0], labels) + 1 / 3 * loss(outputs[1], small)
    torch.testing.assert_close(loss(outputs, labels), expected)
    torch.testing.assert_close(
        loss(outputs, [labels, small, small[:, :, 1::2, 1::2, 1::2]]), expected
    )


def test_bad_input_is_refused_with_what_was_expected():
    loss = ExportedLoss(Candidate.from_loss("dice"), 3, epochs=1)
    logits = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"target: labels \[B, 1, \*spatial\]"):
        loss(logits, torch.zeros(2, 2, 4, 4))
    with pytest.raises(ValueError, match=r"input: logits \[B, 3, \*spatial\]"):
        loss(torch.randn(2, 4, 4, 4), torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="3 values .or 2 without the background"):
        loss.on_epoch_end([0.5])
    loss.on_epoch_end([0.5, 0.5])
    with pytest.raises(ValueError, match="more than epochs=1"):
        loss.on_epoch_end([0.5, 0.5])
    with pytest.raises(ValueError, match="reads the class frequencies"):
        ExportedLoss(Candidate.from_loss("ce", class_schedule=ScheduleSpec("median_frequency")), 3)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        ExportedLoss(Candidate.from_loss("ce"), 1)
