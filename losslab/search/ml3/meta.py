"""Meta-training of a loss network (ML3, Bechtle et al. 2021): the outer loop.

Each outer step ``s`` samples inner training batches and a held-out batch, runs
:func:`~losslab.search.ml3.engines.meta_gradient` (K unrolled SGD steps of the segmentation
network with ``base + learned`` loss, soft-Dice meta-objective) and updates the loss network's
parameters ``phi`` with Adam. The segmentation network is fresh (``make_model(s)``) at every
``reset_every``-th step and otherwise continues from the previous step's ``theta_K``.

The progress fed to the loss network at inner step ``k`` is the fraction of the current model's
life spent: ``(steps the model has taken + k) / (reset_every * K)``, in ``[0, 1)``.

A meta-step whose outer loss or meta-gradient is not finite changes nothing (no Adam step, the
model does not take its ``theta_K``) and is counted in ``skipped``; ``max_consecutive_skips``
(5) of them in a row end meta-training with ``status="failed"`` and the reason, as does running
out of memory: meta-training never raises for a diverging candidate. Each step reads its loss
back to the host once (the curve and the finiteness test); that is the outer loop, not a
training step.

**Several networks at once: grouped, not vmapped.** What can train as one population is not
the K inner steps (``theta_{k+1}`` needs ``theta_k``: a chain) but the ``ml3.networks`` loss
networks, each an independent meta-training from its own seed. ``group.meta_train_group``
meta-trains N of them as one group (``ml3.group``; the backend groups the networks that have no
usable record, ``runner.meta_train_networks``):

- Built: the N inner networks run stacked (``stack_module_state``, one ``vmap(functional_call)``
  forward over per-member inputs ``[N, B, ...]``, as ``training/stacked.py``), each loss network
  on its slice, one ``autograd.grad(sum, stacked theta, create_graph=True)`` per inner step
  (the members are independent, so each gets its own gradient) and one ``autograd.grad`` of
  the summed *finite* outer losses to every ``phi`` (a NaN member is left out of the sum, so it
  cannot reach another's gradient). Each network keeps its own models (built under its own
  seed), samplers and Adam, and its outcomes are those of :func:`meta_train`: both loops
  decide through :class:`OuterLoop` (``reset_every``, age and progress, a non-finite step
  skips that network's Adam step and ``theta_K`` only, its own skip counter and failure, after
  which it leaves the group). ``tests/search/test_ml3_group.py`` checks per-step outer losses,
  meta-gradients and ``phi`` against :func:`meta_train` per network (float64: ~1e-15 measured;
  float32: ~1e-6), ``reset_every > 1``, a member gone non-finite and the backend's records.
- Memory: every inner step's graph is kept for the outer backward (about 250 MiB per inner step
  per network at tiny/32^3/4 classes, mostly the per-voxel MLP). ``ml3.group: auto`` takes up
  to 8 networks on CUDA and a CUDA out-of-memory error halves the group and meta-trains its
  networks again, down to one at a time, as ``training/population.py`` does; the group's size
  is not chosen from a measured peak.
- Not built: ``higher`` (the second engine and test oracle) patches a module into a stateful
  functional copy with a differentiable optimiser and has no batching rules, so it stays one
  at a time. Nor is the whole meta-step vmapped: the ``torch.func`` engine's
  ``autograd.grad(create_graph=True)`` on tensors it marks ``requires_grad_()`` raises under
  ``torch.func.vmap`` ("attempting to call Tensor.requires_grad_() ... inside of a function
  being transformed by a functorch transform"); that would need ``torch.func.grad``/``vjp``
  for both derivatives and a batched :class:`WorstK` bisection on the device. A network that
  cannot be batched (dropout, an operation without a batching rule) makes the runner
  meta-train that group one network at a time.

It pays off on a GPU only (on the CPU the convolutions' backward dominates and the inputs are
per network, which in population training measured no faster than in turn:
``docs/benchmarks.md``), hence ``auto`` is 1 on the CPU. ``scripts/bench_ml3_group.py`` times N
networks grouped against in turn (``--device cuda``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import nn

from losslab.limits import at_most
from losslab.losses.learned import LossNetwork
from losslab.search.ml3.engines import (
    ENGINES,
    Batch,
    MetaGradient,
    ObjectiveWeights,
    WorstK,
    import_higher,
    meta_gradient,
)

__all__ = [
    "OBJECTIVES",
    "OUT_OF_MEMORY",
    "MetaConfig",
    "MetaGradient",
    "MetaResult",
    "OuterLoop",
    "check_loop",
    "meta_gradient",
    "meta_train",
]

OBJECTIVES = ("foreground", "all", "worst_k")


@dataclass(frozen=True)
class MetaConfig:
    """The ``ml3`` settings; every error names its key (``ml3.inner_steps: ...``).

    Attributes:
        inner_steps: K, the unrolled SGD steps of the segmentation network.
        inner_lr: their learning rate.
        outer_lr: Adam's learning rate for the loss network.
        engine: ``"torch.func"`` (default) or ``"higher"``.
        objective: the default class weights ``v`` of the meta-objective: ``"foreground"``
            (mean over classes 1..C-1), ``"all"`` or ``"worst_k"`` (:class:`WorstK`).
        worst_k, temperature: the ``worst_k`` soft minimum.
        reset_every: a fresh model every this many outer steps (1: every step).
        max_consecutive_skips: non-finite meta-steps in a row that fail meta-training.
        first_order: detach the inner gradients (zero meta-gradient; for demonstration only,
            :func:`meta_train` refuses it).
    """

    inner_steps: int = 2
    inner_lr: float = 0.1
    outer_lr: float = 0.01
    engine: str = "torch.func"
    objective: str = "foreground"
    worst_k: int = 1
    temperature: float = 0.05
    reset_every: int = 1
    max_consecutive_skips: int = 5
    first_order: bool = False

    def __post_init__(self) -> None:
        for name in ("inner_steps", "worst_k", "reset_every", "max_consecutive_skips"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ml3.{name}: must be an integer >= 1, got {value!r}")
        for name in ("inner_lr", "outer_lr", "temperature"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"ml3.{name}: must be a number, got {value!r}")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"ml3.{name}: must be finite and > 0, got {value!r}")
            object.__setattr__(self, name, float(value))
        for name in ("inner_steps", "worst_k", "reset_every", "max_consecutive_skips"):
            at_most(getattr(self, name), f"ml3.{name}")
        for name in ("inner_lr", "outer_lr", "temperature"):
            at_most(getattr(self, name), f"ml3.{name}")
        if self.engine not in ENGINES:
            raise ValueError(f"ml3.engine: {self.engine!r} is not one of {', '.join(ENGINES)}")
        if self.engine == "higher":
            import_higher()
        if self.objective not in OBJECTIVES:
            raise ValueError(
                f"ml3.objective: {self.objective!r} is not one of {', '.join(OBJECTIVES)}"
            )
        if not isinstance(self.first_order, bool):
            raise ValueError(f"ml3.first_order: must be true or false, got {self.first_order!r}")

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> MetaConfig:
        """From a YAML ``ml3:`` section; an unknown key is an error naming it."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(
                f"ml3.{unknown[0]}: unknown key; known keys: {', '.join(sorted(known))}"
            )
        return cls(**dict(raw))

    def objective_weights(self, num_classes: int) -> ObjectiveWeights:
        """The default ``v`` for ``num_classes`` classes (see ``objective``)."""
        if self.objective == "worst_k":
            return WorstK(self.worst_k, self.temperature)
        v = torch.ones(num_classes)
        if self.objective == "foreground" and num_classes > 1:
            v[0] = 0.0
        return v


@dataclass
class MetaResult:
    """The outcome of :func:`meta_train`.

    ``curve`` holds ``(outer_loss, val_objective)`` for every outer step run, skipped ones too
    (non-finite values show why); ``skipped`` counts the non-finite steps; ``steps`` the outer
    steps run. ``status`` is ``"ok"`` or ``"failed"`` (then ``reason`` says why).
    """

    status: str
    reason: str | None = None
    curve: list[tuple[float, float]] = field(default_factory=list)
    skipped: int = 0
    steps: int = 0


def meta_train(
    loss_net: LossNetwork,
    make_model: Callable[[int], nn.Module],
    sample_train: Callable[[int], Batch | Sequence[Batch]],
    sample_val: Callable[[int], Batch],
    outer_steps: int,
    config: MetaConfig,
    *,
    objective_weights: ObjectiveWeights | None = None,
    class_weights: torch.Tensor | None = None,
    on_step: Callable[[int, float, float, bool], None] | None = None,
) -> MetaResult:
    """Meta-train ``loss_net`` in place for ``outer_steps`` outer steps.

    Args:
        make_model: ``step -> model``, a fresh segmentation network (seed it for repeatability).
        sample_train: ``step -> (x, labels)`` or a sequence of them (cycled over the K steps).
        sample_val: ``step -> (x, labels)``, held out from the training batches.
        objective_weights, class_weights: see :func:`meta_gradient`.
        on_step: called after every outer step as ``(step, outer_loss, val_objective, skipped)``.

    Raises:
        ValueError: ``outer_steps < 1`` or ``config.first_order`` (named); bad data is not
            caught here, a non-finite step is (see the module docstring).
    """
    check_loop(outer_steps, config)
    loop = OuterLoop(loss_net, make_model, config)
    for step in range(outer_steps):
        loop.begin(step)
        try:
            mg = meta_gradient(
                loss_net,
                loop.model,
                sample_train(step),
                sample_val(step),
                config,
                objective_weights,
                class_weights=class_weights,
                progress=loop.progress(),
            )
        except torch.OutOfMemoryError as err:
            loop.out_of_memory(step, err)
            return loop.result
        outer, value = float(mg.outer_loss), float(mg.val_objective)
        skipped = not loop.end(step, outer, value, mg.grads, mg.params)
        if on_step is not None:
            on_step(step, outer, value, skipped)
        if loop.failed(step, outer):
            return loop.result
    return loop.result


OUT_OF_MEMORY = "out of memory"


def check_loop(outer_steps: int, config: MetaConfig) -> None:
    """The arguments every outer loop refuses, by key."""
    if isinstance(outer_steps, bool) or not isinstance(outer_steps, int) or outer_steps < 1:
        raise ValueError(f"ml3.outer_steps: must be an integer >= 1, got {outer_steps!r}")
    if config.first_order:
        raise ValueError("ml3.first_order: gives a zero meta-gradient; meta-training needs false")


class OuterLoop:
    """One loss network's outer-loop state: its Adam, its model and the model's age, its
    result and its non-finite steps in a row (shared by :func:`meta_train` and the grouped
    ``group.meta_train_group``, so that both decide alike)."""

    def __init__(self, loss_net: LossNetwork, make_model: Callable[[int], nn.Module], config):
        self.loss_net, self.make_model, self.config = loss_net, make_model, config
        self.optimizer = torch.optim.Adam(loss_net.parameters(), lr=config.outer_lr)
        self.result = MetaResult(status="ok")
        self.in_a_row, self.age = 0, 0
        self.model: nn.Module | None = None

    def begin(self, step: int) -> None:
        """A fresh model at every ``reset_every``-th step."""
        if step % self.config.reset_every == 0:
            self.model, self.age = self.make_model(step), 0

    def progress(self) -> list[float]:
        """The progress at each inner step: the fraction of the model's life spent."""
        k, horizon = self.config.inner_steps, self.config.reset_every * self.config.inner_steps
        return [(self.age * k + j) / horizon for j in range(k)]

    def end(
        self,
        step: int,
        outer: float,
        value: float,
        grads: Sequence[torch.Tensor],
        params: Mapping[str, torch.Tensor],
    ) -> bool:
        """Record the step; when the outer loss and ``grads`` are finite, take the Adam step
        and (``reset_every > 1``) move the model to ``params``. Whether it was finite."""
        grads_finite = bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())
        finite = math.isfinite(outer) and grads_finite
        self.result.curve.append((outer, value))
        self.result.steps = step + 1
        if not finite:
            self.result.skipped += 1
            self.in_a_row += 1
            return False
        self.in_a_row = 0
        for p, g in zip(self.loss_net.parameters(), grads):
            p.grad = g.detach()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.config.reset_every > 1:  # the model goes on from theta_K
            with torch.no_grad():
                for name, p in self.model.named_parameters():
                    p.copy_(params[name])
        self.age += 1
        return True

    def failed(self, step: int, outer: float) -> bool:
        """Whether ``max_consecutive_skips`` non-finite steps in a row ended meta-training."""
        if self.in_a_row < self.config.max_consecutive_skips:
            return False
        what = f"outer loss {outer}" if not math.isfinite(outer) else "a non-finite meta-gradient"
        self.result.status = "failed"
        self.result.reason = (
            f"{self.in_a_row} non-finite meta-steps in a row (last at outer step {step}: {what})"
        )
        return True

    def out_of_memory(self, step: int, err: BaseException) -> None:
        self.result.status = "failed"
        self.result.reason = f"{OUT_OF_MEMORY} at outer step {step}: {err}"
