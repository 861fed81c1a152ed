"""The greedy controller on the real trainer: a look-ahead leaves no trace; where false
negatives dominate it raises Tversky's beta; its trajectory, replayed as a piecewise parameter
schedule, gives the same parameters at every step and the same run; a look-ahead that goes
NaN is never chosen and is counted."""

from __future__ import annotations

import copy
import dataclasses
import math
from types import SimpleNamespace

import pytest
import torch

from losslab.candidate import Candidate, ScheduleSpec
from losslab.data.dataset import SegmentationDataset
from losslab.search.greedy.controller import (
    JOINT,
    ONE_AT_A_TIME,
    GreedyController,
    GreedyPlan,
    action_values,
)
from losslab.search.objective import Objective
from losslab.training import Hook, Snapshot, TrainConfig, Trainer


def _blobs(n: int = 6, size: int = 16, seed: int = 0) -> SegmentationDataset:
    """Two classes: a ball of radius 3 in noise, one per case (about 3% foreground)."""
    generator = torch.Generator().manual_seed(seed)
    zz, yy, xx = torch.meshgrid(*[torch.arange(size)] * 3, indexing="ij")
    images, labels = [], []
    for _ in range(n):
        c = torch.randint(5, size - 5, (3,), generator=generator)
        label = (((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) <= 9).long()
        images.append((label.float() + 0.3 * torch.randn(label.shape, generator=generator))[None])
        labels.append(label)
    splits = {"train": [0, 1, 2, 3], "val": [4], "test": [5]}
    return SegmentationDataset(
        "blobs", ("background", "blob"), images, labels, splits, "blobs", (1.0, 1.0, 1.0)
    )


@pytest.fixture(scope="module")
def blobs() -> SegmentationDataset:
    return _blobs()


CONFIG = TrainConfig(
    model="unet3d",
    model_size="tiny",
    epochs=1,
    steps_per_epoch=8,
    batch_size=2,
    patch_size=(16, 16, 16),
    lr=1e-2,
    device="cpu",
    hd95=False,
)


class _Underestimate(Hook):
    """Lowers the foreground logit of the fresh network: it starts by missing the blob."""

    def on_train_start(self, state):
        last = [m for m in state.model.modules() if isinstance(m, torch.nn.Conv3d)][-1]
        with torch.no_grad():
            last.bias[1:] -= 3.0


class _Record(Hook):
    """The loss parameters in force at every step (put before the controller)."""

    def __init__(self):
        self.values: list[dict[str, float]] = []

    def on_step_end(self, state):
        self.values.append(dict(state.loss_values))


def _captured(state) -> dict:
    return {
        "model": {k: v.clone() for k, v in state.model.state_dict().items()},
        "optimizer": copy.deepcopy(state.optimizer.state_dict()),
        "sampler": state.sampler.get_rng_state().clone(),
        "augment": state.augment_generator.get_state().clone(),
        "rng": torch.get_rng_state().clone(),
        "step": state.step,
        "loss": dict(state.loss_values),
    }


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def test_a_look_ahead_that_keeps_leaves_no_trace(blobs):
    """Every combination trains (the model moves), and after choosing keep the model, the
    optimiser, the sampler, the augmentation and torch's random state are those from before."""
    seen: list[torch.Tensor] = []

    def flat_objective(scores):  # every combination ties, so keep wins
        seen.append(next(iter(state_box["state"].model.parameters())).detach().clone())
        return 0.5

    plan = GreedyPlan(addresses=("alpha", "beta"), every=1000, lookahead=2, step=0.2)
    controller = GreedyController(plan, flat_objective)
    state_box: dict = {}
    checks: dict = {}

    class Probe(Hook):
        def on_step_end(self, state):
            if state.step == 3:
                state_box["state"] = state
                before = _captured(state)
                controller.decide(state)
                checks["equal"] = _equal(before, _captured(state))
                checks["moved"] = [
                    not torch.equal(p, before["model"][next(iter(before["model"]))]) for p in seen
                ]

    config = dataclasses.replace(CONFIG, augment=True)
    candidate = Candidate.from_loss("tversky")
    result = Trainer(config, [controller, Probe()]).fit(candidate, blobs)
    assert result.ok, result.reason
    assert len(controller.decisions[0]["scores"]) == 9  # 3 x 3 joint actions on alpha, beta
    assert controller.decisions[0]["chosen"] == {"alpha": 0.3, "beta": 0.7}
    assert all(checks["moved"]) and len(checks["moved"]) == 9
    assert checks["equal"]


def test_it_raises_beta_where_false_negatives_dominate(blobs):
    """Tversky alpha=0.9, beta=0.1 on a network that misses the blob: false negatives cost
    little, so the look-ahead finds that a larger beta helps."""
    plan = GreedyPlan(addresses=("beta",), every=2, lookahead=2, step=0.5)
    controller = GreedyController(plan, Objective())
    candidate = Candidate.from_loss("tversky", alpha=0.9, beta=0.1)
    result = Trainer(CONFIG, [_Underestimate(), controller]).fit(candidate, blobs)
    assert result.ok, result.reason
    betas = [values["beta"] for _, values in controller.trajectory]
    assert betas[1] > betas[0] == 0.1
    assert betas[-1] >= 0.3  # raised at every decision: 0.1 -> 0.15 -> 0.225 -> 0.3375


def test_the_replayed_schedule_reproduces_the_controlled_run(blobs):
    plan = GreedyPlan(addresses=("alpha", "beta"), every=2, lookahead=1, step=0.3)
    controller, recorded = GreedyController(plan, Objective()), _Record()
    candidate = Candidate.from_loss("tversky", alpha=0.5, beta=0.5)
    controlled = Trainer(CONFIG, [recorded, controller]).fit(candidate, blobs)
    assert controlled.ok, controlled.reason
    schedule = controller.schedule()
    assert len({tuple(v.values()) for v in recorded.values}) > 1  # the parameters did move
    replay_candidate = dataclasses.replace(
        candidate, param_schedule=ScheduleSpec.of("piecewise", **schedule.get_params())
    )
    again = _Record()
    replayed = Trainer(CONFIG, [again]).fit(replay_candidate, blobs)
    assert replayed.ok, replayed.reason
    assert again.values == recorded.values  # step for step
    assert replayed.history[-1].val_dice == controlled.history[-1].val_dice
    assert replayed.test_metrics == controlled.test_metrics
    series = controlled.series["param/beta"]
    assert series[0] == [0, 0.5] and [s for s, _ in series] == [0, 2, 4, 6]


def test_a_look_ahead_that_goes_nan_is_never_chosen(blobs, monkeypatch):
    plain_step = Trainer.step

    def step(self, state):
        total, grad_norm = plain_step(self, state)
        if state.loss_values["beta"] > 0.7:  # any increase of beta diverges
            total = total * math.nan
        return total, grad_norm

    monkeypatch.setattr(Trainer, "step", step)
    objective = Objective()
    controller = GreedyController(
        GreedyPlan(addresses=("beta",), every=2, lookahead=1, step=0.2),
        lambda scores: objective(scores) + 1.0,
    )
    result = Trainer(CONFIG, [controller]).fit(Candidate.from_loss("tversky"), blobs)
    assert result.ok, result.reason
    assert all(v["beta"] <= 0.7 for _, v in controller.trajectory)
    assert controller.nonfinite == 3  # one per decision (steps 2, 4, 6)
    assert all(len(d["nonfinite"]) == 1 for d in controller.decisions)
    assert all(d["nonfinite"][0]["beta"] > d["chosen"]["beta"] for d in controller.decisions)
    assert result.tags["greedy.nonfinite_lookaheads"] == "3"
    assert any(s is None for d in controller.decisions for s, _ in d["scores"])


def _state(candidate: Candidate) -> SimpleNamespace:
    return SimpleNamespace(candidate=candidate, loss_values=candidate.loss_parameters())


def test_more_than_max_joint_parameters_fall_back_to_one_at_a_time():
    candidate = Candidate.from_loss("tversky_focal")  # alpha, beta, gamma + two weights
    addresses = ("alpha", "beta", "gamma", "weight0", "weight1")
    plan = GreedyPlan(addresses=addresses, max_joint=4)
    assert plan.mode == ONE_AT_A_TIME
    combos = GreedyController(plan, Objective()).combinations(_state(candidate))
    assert len(combos) == 2 * 5 + 1 and combos[0] == {
        a: candidate.loss_parameters()[a] for a in addresses
    }
    assert all(sum(c[a] != combos[0][a] for a in addresses) == 1 for c in combos[1:])
    joint = GreedyPlan(addresses=addresses[:3], max_joint=4)
    assert joint.mode == JOINT
    assert len(GreedyController(joint, Objective()).combinations(_state(candidate))) == 27


def test_actions_respect_the_parameter_ranges():
    assert action_values(0.7, 0.1, 0.0, 1e3) == pytest.approx([0.63, 0.7, 0.77])  # x (1 -/+ s)
    assert action_values(0.05, 0.1, 0.0, 1.0) == pytest.approx([0.0, 0.05, 0.15])  # +-, clipped
    assert action_values(9.5, 0.1, 0.0, 10.0) == pytest.approx([8.55, 9.5, 10.0])
    assert action_values(0.0, 0.1, 0.0, 1e3) == pytest.approx([0.0, 0.0, 0.1])  # 0 moves by +-
    candidate = Candidate.from_loss("tversky", alpha=0.0)
    combos = GreedyController(GreedyPlan(addresses=("alpha",)), Objective()).combinations(
        _state(candidate)
    )
    assert combos == [{"alpha": 0.0}, {"alpha": pytest.approx(0.1)}]  # clipped duplicates once


def test_snapshot_restores_the_step_and_loss_parameters(blobs):
    out = {}

    class Probe(Hook):
        def on_step_end(self, state):
            if state.step == 2:
                snapshot = Snapshot.take(state)
                state.set_loss_parameters({"beta": 0.9})
                state.trainer.step(state)
                out["during"] = (state.step, state.loss_values["beta"], state.alphas.tolist())
                snapshot.restore(state)
                out["after"] = (state.step, state.loss_values["beta"])

    Trainer(CONFIG, [Probe()]).fit(Candidate.from_loss("tversky"), blobs)
    assert out["during"][:2] == (3, 0.9)
    assert out["after"] == (2, 0.7)
