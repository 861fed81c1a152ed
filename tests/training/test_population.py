"""The population trainer against the plain trainer, on a tiny phantom, on the CPU.

Members trained together must give what each gives alone with ``Trainer.fit``. They cannot give
it bit for bit: the batched network's convolutions (one grouped convolution for all members)
sum in another order than one member's, so logits differ from the first step by ~1e-6. How far
that carries depends on the optimiser (figures measured on these tests' runs: 16^3 patches, 2
epochs of 4 steps):

- SGD (momentum, Nesterov, weight decay) is linear in the gradient: the rounding stays rounding.
  Measured: weights <= 2.2e-8 apart, logits on a fixed input <= 4.8e-7 of their range, epoch
  losses and validation / test metrics identical. Tolerances ``SGD_TOL`` a little above.
- Adam divides each element's step by its own gradient's running RMS, so an element whose
  gradient is at the level of the rounding itself (the bias of a convolution followed by
  instance norm has a true gradient of exactly 0) takes full ``lr`` steps in a direction the
  rounding sets: single weights end up to 0.02 (~ lr x steps) apart although the networks
  compute nearly the same function, so with Adam the networks' logits are compared instead of
  their weights. Measured: epoch losses <= 6.5e-8 apart (relative), logits <= 6.4e-4 of their
  range, validation / test metrics <= 4.7e-4 (one voxel changing class: a metric moves in
  steps of about 1 / voxels of the class). Tolerances ``ADAM_TOL`` a little above.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math

import pytest
import torch

from losslab.candidate import Candidate, ScheduleSpec
from losslab.data import load_dataset
from losslab.models import get_model
from losslab.training import Hook, StopTraining, TrainConfig, Trainer
from losslab.training.population import PopulationTrainer, population_safe
from losslab.training.stacked import StackedNetwork

CONFIG = TrainConfig(
    model="unet3d",
    model_size="tiny",
    epochs=2,
    steps_per_epoch=4,
    batch_size=2,
    patch_size=(16, 16, 16),
    lr=3e-3,
    device="cpu",
    hd95=False,
)
SGD = dataclasses.replace(CONFIG, optimizer="sgd", weight_decay=1e-2)
# (weights, epoch loss, validation / test metric, logits relative to their range)
SGD_TOL = {"weights": 1e-7, "loss": 1e-6, "metric": 1e-6, "logits": 2e-6}
ADAM_TOL = {"weights": None, "loss": 1e-6, "metric": 1e-3, "logits": 1e-3}


def candidates() -> list[Candidate]:
    """Three structurally different losses, one with a class schedule that acts (TCF with a
    threshold that classes pass after one epoch: their weights drop to 0.1)."""
    return [
        Candidate.from_loss("dice"),
        Candidate.from_loss("dice_ce"),
        Candidate.from_loss(
            "tversky", class_schedule=ScheduleSpec.of("tcf", threshold=0.005, frozen_weight=0.1)
        ),
    ]


class Capture(Hook):
    """Records the hook calls and, at the end, the weights and the logits on a fixed input."""

    population_safe = True

    def __init__(self) -> None:
        self.events: list = []
        self.weights: dict[str, torch.Tensor] = {}
        self.logits: torch.Tensor | None = None

    def on_train_start(self, state) -> None:
        self.events.append("start")

    def on_step_end(self, state) -> None:
        self.events.append(state.step)

    def on_epoch_end(self, state, record) -> None:
        self.events.append(f"epoch{record.epoch}")

    def on_train_end(self, state, result) -> None:
        self.events.append(result.status)
        if state is None:
            return
        self.weights = {k: v.detach().clone() for k, v in state.model.state_dict().items()}
        probe = torch.linspace(-2, 2, 16**3, device=state.device).reshape(1, 1, 16, 16, 16)
        with torch.no_grad():
            state.model.eval()
            self.logits = state.model(probe)


class LossFrom(Hook):
    """From the ``step``-th call on, the member's loss is NaN (or raises, ``error=True``)."""

    population_safe = True

    def __init__(self, step: int, error: bool = False) -> None:
        self.step, self.error = step, error

    def on_train_start(self, state) -> None:
        loss, calls = state.loss, itertools.count(1)

        def broken(*args, **kwargs):
            values = loss(*args, **kwargs)
            if next(calls) < self.step:
                return values
            if self.error:
                raise RuntimeError(f"broken loss at call {self.step}")
            return [v * math.nan for v in values]

        state.loss = broken


class PruneAt(Hook):
    population_safe = True

    def on_epoch_end(self, state, record) -> None:
        if record.epoch == 1:
            raise StopTraining("pruned at epoch 1 by the test")


def run_alone(config, dataset, items):
    """``items``: ``(candidate, seed, extra hooks)``; results and captures of ``Trainer.fit``."""
    captures = [Capture() for _ in items]
    results = [
        Trainer(dataclasses.replace(config, seed=seed), [*extra, cap]).fit(candidate, dataset)
        for (candidate, seed, extra), cap in zip(items, captures)
    ]
    return results, captures


def run_together(config, dataset, items, **kwargs):
    captures = [Capture() for _ in items]
    trainer = PopulationTrainer(config, **kwargs)
    results = trainer.fit_many(
        [c for c, _, _ in items],
        dataset,
        hooks=[[*extra, cap] for (_, _, extra), cap in zip(items, captures)],
        seeds=[seed for _, seed, _ in items],
    )
    return results, captures, trainer.sizes


def max_diff(a, b) -> float:
    pairs = [(x, y) for x, y in zip(a, b) if not (math.isnan(x) and math.isnan(y))]
    assert len(pairs) == len(a) == len(b), (a, b)
    return max((abs(x - y) for x, y in pairs), default=0.0)


def assert_same(alone, alone_cap, together, together_cap, tol) -> None:
    """Same content as ``Trainer.fit``'s result (see the module docstring for ``tol``)."""
    assert (together.status, together.reason) == (alone.status, alone.reason)
    assert (together.failed_step, together.steps) == (alone.failed_step, alone.steps)
    assert together.class_names == alone.class_names and together.device == alone.device
    assert together_cap.events == alone_cap.events
    assert len(together.history) == len(alone.history)
    for mine, theirs in zip(together.history, alone.history):
        assert mine.epoch == theirs.epoch
        assert mine.train_loss == pytest.approx(theirs.train_loss, rel=tol["loss"])
        assert max_diff(mine.val_dice, theirs.val_dice) <= tol["metric"]
        assert mine.class_weights == theirs.class_weights
        assert mine.term_weights == pytest.approx(theirs.term_weights, rel=1e-6)
    assert together.test_metrics.keys() == alone.test_metrics.keys()
    for metric, values in alone.test_metrics.items():
        assert max_diff(together.test_metrics[metric], values) <= tol["metric"], metric
    if alone_cap.logits is not None:  # a member that failed has NaN weights, alone as together
        scale = float(alone_cap.logits.nan_to_num().abs().max())
        torch.testing.assert_close(
            together_cap.logits,
            alone_cap.logits,
            atol=tol["logits"] * scale,
            rtol=0,
            equal_nan=True,
        )
    if tol["weights"] is not None:
        assert together_cap.weights.keys() == alone_cap.weights.keys()
        for name, value in alone_cap.weights.items():
            torch.testing.assert_close(
                together_cap.weights[name], value, atol=tol["weights"], rtol=0, equal_nan=True
            )


@pytest.fixture(scope="module")
def phantom():
    """Six 16^3 phantom cases (4 train / 1 val / 1 test): small enough for many runs."""
    return load_dataset("phantom", cases=6, shape=(16, 16, 16), seed=0)


@pytest.fixture(scope="module")
def sgd_alone(phantom):
    """The three candidates trained one by one with SGD (computed once for the module)."""
    return run_alone(SGD, phantom, [(c, 0, []) for c in candidates()])


def test_three_members_train_as_they_do_alone_sgd(phantom, sgd_alone):
    alone, alone_caps = sgd_alone
    results, caps, sizes = run_together(SGD, phantom, [(c, 0, []) for c in candidates()])
    assert sizes == [3]  # trained as one population, not one at a time
    assert results[2].history[1].class_weights != results[2].history[0].class_weights  # TCF acted
    for i in range(3):
        assert results[i].ok, results[i].reason
        assert_same(alone[i], alone_caps[i], results[i], caps[i], SGD_TOL)


def test_members_of_different_seeds_train_as_they_do_alone_adam(phantom):
    items = [(c, seed, []) for c, seed in zip(candidates(), (0, 0, 1))]  # two share patches
    alone, alone_caps = run_alone(CONFIG, phantom, items)
    results, caps, sizes = run_together(CONFIG, phantom, items)
    assert sizes == [3]
    for i in range(3):
        assert results[i].ok, results[i].reason
        assert_same(alone[i], alone_caps[i], results[i], caps[i], ADAM_TOL)


def test_a_member_with_a_nan_loss_fails_alone_and_the_others_go_on(phantom, sgd_alone):
    alone, alone_caps = sgd_alone
    items = [(c, 0, [LossFrom(3)] if i == 1 else []) for i, c in enumerate(candidates())]
    nan_alone, nan_cap = run_alone(SGD, phantom, [items[1]])
    results, caps, sizes = run_together(SGD, phantom, items)
    assert sizes == [3]
    assert results[1].status == "failed" and results[1].failed_step == 3
    assert "non-finite loss at step 3" in results[1].reason
    assert_same(nan_alone[0], nan_cap[0], results[1], caps[1], SGD_TOL)
    for i in (0, 2):
        assert_same(alone[i], alone_caps[i], results[i], caps[i], SGD_TOL)


def test_a_member_whose_loss_raises_fails_alone_and_the_others_go_on(phantom, sgd_alone):
    alone, alone_caps = sgd_alone
    items = [
        (c, 0, [LossFrom(2, error=True)] if i == 0 else []) for i, c in enumerate(candidates())
    ]
    broken_alone, broken_cap = run_alone(SGD, phantom, [items[0]])
    results, caps, _ = run_together(SGD, phantom, items)
    assert results[0].reason == "RuntimeError: broken loss at call 2" and results[0].steps == 1
    assert_same(broken_alone[0], broken_cap[0], results[0], caps[0], SGD_TOL)
    for i in (1, 2):
        assert_same(alone[i], alone_caps[i], results[i], caps[i], SGD_TOL)


def test_a_member_pruned_by_its_hook_stops_alone(phantom, sgd_alone):
    alone, alone_caps = sgd_alone
    items = [(c, 0, [PruneAt()] if i == 2 else []) for i, c in enumerate(candidates())]
    pruned_alone, pruned_cap = run_alone(SGD, phantom, [items[2]])
    results, caps, _ = run_together(SGD, phantom, items)
    assert results[2].status == "pruned" and results[2].reason == "pruned at epoch 1 by the test"
    assert len(results[2].history) == 1 and not results[2].test_metrics
    assert_same(pruned_alone[0], pruned_cap[0], results[2], caps[2], SGD_TOL)
    for i in (0, 1):
        assert_same(alone[i], alone_caps[i], results[i], caps[i], SGD_TOL)


def test_out_of_memory_halves_the_population_and_starts_its_members_again(phantom, monkeypatch):
    config = dataclasses.replace(SGD, epochs=1, steps_per_epoch=2)
    items = [(c, 0, []) for c in candidates()]
    alone, alone_caps = run_alone(config, phantom, items)
    real_call = StackedNetwork.__call__

    def tight(self, images):  # three members run out of memory at their second step
        if self.size == 3 and self.calls > 0:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        self.calls += 1
        return real_call(self, images)

    monkeypatch.setattr(StackedNetwork, "calls", 0, raising=False)
    monkeypatch.setattr(StackedNetwork, "__call__", tight)
    results, caps, sizes = run_together(config, phantom, items)
    assert sizes == [3, 2, 1]  # then two together, and the last alone
    for i in range(3):
        assert results[i].ok
        # the first try ended in the second step; the members started again from the beginning
        assert caps[i].events == ["start", 1, *alone_caps[i].events]
        caps[i].events = alone_caps[i].events
        assert_same(alone[i], alone_caps[i], results[i], caps[i], SGD_TOL)


def test_a_network_that_draws_random_numbers_trains_one_at_a_time(phantom):
    config = dataclasses.replace(
        CONFIG, epochs=1, steps_per_epoch=1, model_overrides={"dropout": 0.2}
    )
    items = [(c, 0, []) for c in candidates()[:2]]
    results, _, sizes = run_together(config, phantom, items)
    assert sizes == [1, 1]
    alone, _ = run_alone(config, phantom, items)
    assert [r.history[0].train_loss for r in results] == [r.history[0].train_loss for r in alone]


def test_max_size_cuts_the_candidates_into_populations(phantom):
    config = dataclasses.replace(CONFIG, epochs=1, steps_per_epoch=1, val_every=5)
    items = [(c, 0, []) for c in candidates()]
    results, _, sizes = run_together(config, phantom, items, max_size=2)
    assert sizes == [2, 1] and all(r.ok for r in results)


def test_fit_many_checks_its_arguments(phantom):
    with pytest.raises(ValueError, match="3 candidates need 3 hook lists and seeds"):
        PopulationTrainer(CONFIG).fit_many(candidates(), phantom, seeds=[0, 1])
    with pytest.raises(ValueError, match="max_size"):
        PopulationTrainer(CONFIG, max_size=0)


def test_population_safe_defaults_to_false():
    assert population_safe([Capture(), PruneAt()])
    assert not population_safe([Capture(), Hook()])
    assert population_safe([])


# --- the stacked network alone -----------------------------------------------------------------


def members(name: str, n: int = 3) -> list[torch.nn.Module]:
    out = []
    for seed in range(n):
        torch.manual_seed(seed)
        out.append(get_model(name, num_classes=4, patch_size=(16, 16, 16), size="tiny"))
    return out


@pytest.mark.parametrize("name", ["unet3d", "unetr", "lambda3d"])
def test_every_registered_network_batches(name):
    """Outputs (and batch-norm running statistics: lambda3d) as each member's own forward pass;
    UNETR's frozen parameters stay out of the optimiser."""
    alone = members(name)
    stacked = StackedNetwork(
        [copy.deepcopy(m) for m in alone],
        lambda module: torch.optim.SGD(module.parameters(), lr=0.1),
    )
    x = torch.randn(2, 1, 16, 16, 16)
    stacked.check(x)
    out = stacked(x)
    for j, model in enumerate(alone):
        torch.testing.assert_close(out[j], model(x), atol=2e-5, rtol=1e-4)
        for key, buffer in model.state_dict().items():  # aliases of the stack, updated in place
            torch.testing.assert_close(stacked.members[j].state_dict()[key], buffer)
    trainable = sum(p.requires_grad for p in alone[0].parameters())
    assert len(stacked.optimizer.param_groups[0]["params"]) == trainable


def test_gradients_are_clipped_per_member_as_clip_grad_norm_does():
    alone = members("unet3d", 3)
    stacked = StackedNetwork(
        [copy.deepcopy(m) for m in alone],
        lambda module: torch.optim.SGD(module.parameters(), lr=0.1),
    )
    scales = torch.tensor([1e-3, 1.0, 1e3])  # under, near and over the limit
    for p in stacked.parameters():
        p.grad = torch.randn_like(p) * scales.view(-1, *[1] * (p.dim() - 1))
    for j, model in enumerate(alone):
        params = [p for p in model.parameters() if p.requires_grad]
        for p, stack in zip(params, stacked.parameters()):
            p.grad = stack.grad[j].clone()
    norms = stacked.clip_grad_norms(2.0)
    for j, model in enumerate(alone):
        params = [p for p in model.parameters() if p.requires_grad]
        torch.testing.assert_close(norms[j], torch.nn.utils.clip_grad_norm_(params, 2.0))
        for p, stack in zip(params, stacked.parameters()):
            torch.testing.assert_close(stack.grad[j], p.grad)


def test_select_keeps_the_optimiser_state_of_the_members_kept():
    stacked = StackedNetwork(
        [copy.deepcopy(m) for m in members("unet3d", 3)],
        lambda module: torch.optim.Adam(module.parameters(), lr=0.1),
    )
    x = torch.randn(1, 1, 16, 16, 16)
    stacked(x).square().mean().backward()
    stacked.optimizer.step()
    before = [stacked.optimizer.state[p]["exp_avg"].clone() for p in stacked.parameters()]
    weights = [p.detach().clone() for p in stacked.parameters()]
    kept = stacked.members[2]
    stacked.select([2, 0])
    assert stacked.size == 2 and stacked.members[0] is kept
    for p, old, w in zip(stacked.parameters(), before, weights):
        torch.testing.assert_close(stacked.optimizer.state[p]["exp_avg"], old[[2, 0]])
        torch.testing.assert_close(p.detach(), w[[2, 0]])
    first = next(iter(stacked.trainable))
    module_param = dict(kept.named_parameters())[first]
    with torch.no_grad():
        stacked.trainable[first].add_(1.0)  # the member's module sees its slice of the stack
    torch.testing.assert_close(module_param, stacked.trainable[first][0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_population_on_the_gpu_trains_as_alone(phantom):
    config = dataclasses.replace(CONFIG, device="cuda", amp=False, deterministic=True)
    items = [(c, 0, []) for c in candidates()]
    alone, alone_caps = run_alone(config, phantom, items)
    results, caps, sizes = run_together(config, phantom, items)
    assert sizes == [3]
    for i in range(3):
        assert_same(alone[i], alone_caps[i], results[i], caps[i], ADAM_TOL)
