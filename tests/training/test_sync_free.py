"""losslab's rule (docs/architecture.md): on a GPU the training step never syncs with the host.

Every library loss, every registered term schedule and class schedule, ``absent_classes:
ignore`` and a parameter schedule are trained a few steps:

- on CUDA (skipped without a GPU), under ``torch.cuda.set_sync_debug_mode("error")`` for every
  step but the first of the run (cuDNN autotuning and first-use set-up), with the end of each
  epoch (validation, class-schedule update: allowed to sync) left out;
- on the CPU, where no sync can be seen, under a spy that records what would be one on a GPU:
  tensors made from Python data (``torch.tensor``: a blocking host-to-device copy), values read
  back (``.item()``, ``float()``, ``bool()``, ``.tolist()``, ``.numpy()``, ``.cpu()``) and ops
  whose output size depends on values (``nonzero``, boolean-mask indexing). The data and
  augmentation take their GPU code paths there and the distance map its torch backend, since
  their CPU paths read the host on purpose (a sync costs nothing there).
"""

from __future__ import annotations

import dataclasses
import importlib
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import losslab.losses.distance as distance
from losslab.candidate import Candidate, ScheduleSpec
from losslab.losses import CompiledLoss, list_losses
from losslab.schedules import SEED_RULES, list_class_schedules, list_term_schedules
from losslab.schedules.term_schedules import LinearRamp, Rebalance, StepSwitch
from losslab.training import Hook, Trainer, TrainState
from losslab.training.determinism import TorchFlags

# parameters that make the class schedules change the weights after the first epoch
CLASS_PARAMS: dict[str, dict[str, Any]] = {
    "tcf": {"threshold": 0.0},
    "rule": {"expression": SEED_RULES["tcf"]},
}


def _candidates() -> list[Any]:
    cases = [pytest.param(Candidate.from_loss(name), id=f"loss-{name}") for name in list_losses()]
    for name in list_term_schedules():
        candidate = Candidate.from_loss("dice_ce", term_schedule=ScheduleSpec.of(name))
        cases.append(pytest.param(candidate, id=f"terms-{name}"))
    for name in list_class_schedules():
        schedule = ScheduleSpec.of(name, **CLASS_PARAMS.get(name, {}))
        candidate = Candidate.from_loss("dice_ce", class_schedule=schedule)
        cases.append(pytest.param(candidate, id=f"classes-{name}"))
    ignore = Candidate.from_loss("dice_ce", absent_classes="ignore")
    cases.append(pytest.param(ignore, id="absent-ignore"))
    # the loss is recompiled and its term weights rewritten inside steps 1 and 3
    piecewise = ScheduleSpec.of("piecewise", steps=[1, 3], values={"weight1": [0.5, 0.25]})
    scheduled = dataclasses.replace(Candidate.from_loss("dice_ce"), param_schedule=piecewise)
    cases.append(pytest.param(scheduled, id="param-piecewise"))
    return cases


CANDIDATES = _candidates()


@pytest.fixture
def small_config(tiny_config):
    return dataclasses.replace(
        tiny_config, patch_size=(16, 16, 16), epochs=2, steps_per_epoch=2, val_patches_per_class=1
    )


# -- on the GPU -----------------------------------------------------------------------------------


class SyncCheck(Hook):
    """CUDA's sync debug mode at ``error`` for every step but the run's first, and for the
    per-step work of the epoch loop around them; ``default`` for the end of each epoch."""

    def on_step_end(self, state: TrainState) -> None:
        last_of_epoch = state.step % state.config.steps_per_epoch == 0
        torch.cuda.set_sync_debug_mode("default" if last_of_epoch else "error")

    def on_epoch_end(self, state: TrainState, record: Any) -> None:
        if state.epoch < state.config.epochs:
            torch.cuda.set_sync_debug_mode("error")

    def on_train_end(self, state: TrainState | None, result: Any) -> None:
        torch.cuda.set_sync_debug_mode("default")


def _fit_checked(candidate: Candidate, phantom, config):
    try:
        return Trainer(dataclasses.replace(config, device="cuda"), [SyncCheck()]).fit(
            candidate, phantom
        )
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU (CUDA) to see host syncs")
@pytest.mark.parametrize("candidate", CANDIDATES)
def test_training_steps_do_not_sync_the_gpu(candidate, phantom, small_config):
    result = _fit_checked(candidate, phantom, small_config)
    assert result.status == "ok", result.reason
    assert result.steps == 4 and result.device.startswith("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU (CUDA) to see host syncs")
def test_the_gpu_check_catches_a_sync_in_a_step(phantom, small_config, monkeypatch):
    original = CompiledLoss.reduce_terms

    def reading(values, *args, **kwargs):
        reduced = original(values, *args, **kwargs)
        float(reduced.sum())  # one .item() per step
        return reduced

    monkeypatch.setattr(CompiledLoss, "reduce_terms", staticmethod(reading))
    result = _fit_checked(Candidate.from_loss("dice"), phantom, small_config)
    assert result.status == "failed"
    assert "synchroniz" in result.reason and result.failed_step is None
    assert result.steps == 1  # the first step is not checked; the second one failed


def test_the_gpu_check_covers_every_step_but_the_first_and_no_epoch_end(
    phantom, small_config, monkeypatch
):
    """The hook's modes, seen on the CPU through a stand-in for ``set_sync_debug_mode``."""
    mode, seen = ["default"], []
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", lambda m: mode.__setitem__(0, m))
    for name in ("step", "_validate", "test"):
        original = getattr(Trainer, name)

        def recording(self, state, *args, _name=name, _original=original):
            seen.append((_name, mode[0]))
            return None if _name == "test" else _original(self, state, *args)  # (test: no time)

        monkeypatch.setattr(Trainer, name, recording)
    result = Trainer(small_config, [SyncCheck()]).fit(Candidate.from_loss("dice"), phantom)
    assert result.status == "ok", result.reason
    assert seen == [
        ("step", "default"),
        ("step", "error"),
        ("_validate", "default"),
        ("step", "error"),
        ("step", "error"),
        ("_validate", "default"),
        ("test", "default"),
    ]
    assert mode == ["default"]


# -- on the CPU -----------------------------------------------------------------------------------

_SYNCING_OPS = {
    "lift_fresh": "a tensor made from Python data (a host-to-device copy)",
    "lift_fresh_copy": "a tensor made from Python data (a host-to-device copy)",
    "_local_scalar_dense": "a value read back (.item(), float(), bool(), int())",
    "nonzero": "nonzero",
    "masked_select": "masked_select",
    "_unique2": "unique",
    "unique_dim": "unique",
    "unique_consecutive": "unique",
}
_INDEXING_OPS = {"index", "index_put", "index_put_", "_index_put_impl_"}
_HOST_METHODS = ("tolist", "numpy", "cpu")


def _where_called() -> str | None:
    """The innermost frame outside torch and this file, as ``path:line``; ``None`` for a call
    from the optimiser's step, whose step counters live on the host on purpose (Adam keeps them
    on the CPU unless ``capturable``), so that reading them syncs nothing."""
    stack = traceback.extract_stack()[:-2]
    if any("/torch/optim/" in frame.filename for frame in stack[-3:]):
        return None
    for frame in reversed(stack):
        if "/torch/" not in frame.filename and not frame.filename.endswith(__file__):
            return f"{frame.filename}:{frame.lineno}"
    return "?"


def _has_bool_index(args: tuple) -> bool:
    indices = args[1] if len(args) > 1 and isinstance(args[1], (list, tuple)) else ()
    return any(
        isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices
    )


class _HostSyncSpy(TorchDispatchMode):
    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in _SYNCING_OPS or (name in _INDEXING_OPS and _has_bool_index(args)):
            where = _where_called()
            if where is not None:
                what = _SYNCING_OPS.get(name, "boolean-mask indexing")
                self.events.append(f"{name}: {what} at {where}")
        return func(*args, **(kwargs or {}))


@contextmanager
def host_syncs() -> Iterator[list[str]]:
    """Record, in the list it yields, everything inside that would sync a GPU with the host."""
    events: list[str] = []
    originals = {name: getattr(torch.Tensor, name) for name in _HOST_METHODS}

    def recording(name: str, method: Callable) -> Callable:
        def wrapper(self, *args, **kwargs):
            where = _where_called()
            if where is not None:
                events.append(f"Tensor.{name}: a value read back at {where}")
            return method(self, *args, **kwargs)

        return wrapper

    for name, method in originals.items():
        setattr(torch.Tensor, name, recording(name, method))
    try:
        with _HostSyncSpy(events):
            yield events
    finally:
        for name, method in originals.items():
            setattr(torch.Tensor, name, method)


def test_the_spy_sees_what_would_sync_a_gpu():
    x = torch.arange(6.0)
    with host_syncs() as events:
        torch.tensor([1.0, 2.0])
        x.sum().item()
        bool(x.sum())
        x.nonzero()
        x[x > 2]
        x.tolist()
        x.cpu()
    assert len(events) == 7, events
    with host_syncs() as events:  # fills, scalars and views are fine
        torch.full((2,), 0.5)
        torch.where(x > 2, x, 0.0)
        x[1].fill_(3.0)
        torch.minimum(x, torch.full((), 2.0))
    assert events == []


@pytest.mark.parametrize("candidate", CANDIDATES)
def test_training_steps_would_not_sync_a_gpu(candidate, phantom, small_config, monkeypatch):
    augment_module = importlib.import_module("losslab.data.augment")
    monkeypatch.setattr(augment_module, "_flip_selected", augment_module._flip_masked)
    monkeypatch.setattr(distance, "CPU_BACKEND", "torch")
    trainer = Trainer(small_config)
    flags = TorchFlags.save()  # _setup sets the process-wide flags of a run
    try:
        state = trainer._setup(candidate, phantom)
    finally:
        flags.restore()
    state.sampler._gather = state.sampler._gather_take
    total_steps = small_config.epochs * small_config.steps_per_epoch
    with host_syncs() as events:
        for _ in range(total_steps):
            total, grad_norm = trainer.step(state)
    assert events == []
    assert torch.isfinite(total) and torch.isfinite(grad_norm)


def test_mixing_schedules_write_the_same_weights_as_from_python_data():
    """Weights written by fills equal ``torch.tensor([1 - a, a])`` bit for bit, and weights that
    did not change are the same tensor (no work at all)."""
    for schedule in (LinearRamp(start=0.1, end=0.7), StepSwitch(at=0.3), Rebalance()):
        mixed: list[float] = []
        original = schedule._set

        def recording(a, values, _mixed=mixed, _original=original):
            _mixed.append(a)
            return _original(a, values)

        schedule._set = recording
        previous = None
        for t in range(23):
            weights = schedule.step(t, 23, torch.zeros(2))
            a = mixed[-1]
            assert torch.equal(weights, torch.tensor([1.0 - a, a], dtype=torch.float32))
            if len(mixed) > 1 and mixed[-2] == a:
                assert weights is previous
            previous = weights
        if not isinstance(schedule, Rebalance):  # plateaus of ``a``: the same tensor was kept
            assert len(set(mixed)) < len(mixed)
