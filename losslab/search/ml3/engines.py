"""The meta-gradient of a loss network through K unrolled SGD steps, with two engines.

Inner loop (the segmentation network's parameters ``theta``, initial ``theta_0`` taken from the
model and detached, so the model itself is never changed)::

    theta_{k+1} = theta_k - eta * grad_theta mean_c(w_c * L_c(f(x_k; theta_k), y_k; phi))

with ``L_c = L_c^base + L_c^learned(phi)`` (``LossNetwork.loss``), ``k = 0 .. K-1``; the inner
batches are cycled when fewer than ``K`` are given. Meta-objective on a held-out batch::

    d_c = soft Dice of class c of f(x_val; theta_K)      (1 - the library's ``dice``)
    V   = sum_c v_c d_c / sum_c v_c                       (v: the caller's class weights)
    outer loss = 1 - V,   meta-gradient = d(outer loss) / d phi

``v`` is a fixed ``[C]`` vector (e.g. the foreground mean) or a function of ``d`` such as
:class:`WorstK`, a soft minimum, so that a worst-k objective meta-learns for the rare classes.

Engines: ``"torch.func"`` (default) runs the model with ``torch.func.functional_call`` on a
dict of parameter tensors and differentiates each inner step with
``torch.autograd.grad(create_graph=True)``; ``"higher"`` runs ``higher.innerloop_ctx`` with a
plain ``torch.optim.SGD``, the reference of the original ML3 code. Both see the model in the mode
the caller left it in, and the same buffers. ``first_order=True`` detaches the inner gradients
(``create_graph=False`` / ``track_higher_grads=False``): ``theta_K`` then no longer depends on
``phi`` and the meta-gradient of the loss network is exactly zero; it exists to show that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from losslab.losses.grad_mode import twice_differentiable
from losslab.losses.learned import LossNetwork, evaluate_library_loss
from losslab.losses.resolve import resolve_loss
from losslab.losses.spec import reduce

if TYPE_CHECKING:
    from losslab.search.ml3.meta import MetaConfig

__all__ = [
    "ENGINES",
    "MetaGradient",
    "WorstK",
    "import_higher",
    "inner_objective",
    "meta_gradient",
    "outer_objective",
    "progress_list",
    "soft_dice",
    "validation_objective",
]

ENGINES = ("torch.func", "higher")
Batch = tuple[torch.Tensor, torch.Tensor]
ObjectiveWeights = torch.Tensor | Callable[[torch.Tensor], torch.Tensor]
_DICE = resolve_loss("dice").compile()


def import_higher():
    """The ``higher`` module, or a ``ValueError`` naming ``ml3.engine`` when it cannot be imported."""
    try:
        import higher
    except ImportError as err:
        raise ValueError(
            f"ml3.engine: 'higher' cannot be imported ({err}); install it or use "
            "engine='torch.func'"
        ) from None
    return higher


def soft_dice(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``[C]`` soft Dice per class over batch and voxels: ``1 - dice`` of the library."""
    return 1.0 - evaluate_library_loss(_DICE, logits, labels)


@dataclass(frozen=True)
class WorstK:
    """Soft "mean of the k lowest Dice" weights over the foreground (class 0 gets 0).

    A sigmoid threshold: ``v_c = sigmoid((tau - d_c) / T) / k`` with ``tau`` such that
    ``sum_c sigmoid((tau - d_c) / T) = k`` over the foreground, so ``v`` sums to 1. As
    ``T -> 0`` it selects the k worst classes with weight ``1/k`` each; ``k`` at least the
    foreground count gives their plain mean. ``tau`` is found by bisection (in float64, without
    gradient); its gradient is the implicit one, ``d tau / d d_c = s'_c / sum_j s'_j`` with
    ``s'`` the sigmoid's slopes, computed as a softmax of their logarithms so that it stays
    finite when the slopes underflow. (A successive softmax, ``softmax(-d/T + log(1 - taken))``,
    was tried first: at small ``T`` it ties the best and the next class and gives 0.75/0.25.)
    """

    k: int = 1
    temperature: float = 0.05

    def __call__(self, dice: torch.Tensor) -> torch.Tensor:
        fg = torch.ones(dice.shape[0], dtype=torch.bool, device=dice.device)
        fg[0] = False
        n = int(fg.sum())
        if n == 0:
            raise ValueError("ml3.objective: worst_k needs at least one foreground class")
        if self.k >= n:
            return fg.to(dice.dtype) / n
        d, t = dice[fg], self.temperature
        with torch.no_grad():
            d64 = d.detach().double().cpu()  # one read-back, then host arithmetic
            lo, hi = float(d64.min()) - 50 * t, float(d64.max()) + 50 * t
            for _ in range(100):
                mid = 0.5 * (lo + hi)
                if float(torch.sigmoid((mid - d64) / t).sum()) < self.k:
                    lo = mid
                else:
                    hi = mid
            x = (0.5 * (lo + hi) - d64) / t
            slope = torch.softmax(F.logsigmoid(x) + F.logsigmoid(-x), 0).to(d.device, d.dtype)
        tau = 0.5 * (lo + hi) + (slope * (d - d.detach())).sum()
        weights = torch.sigmoid((tau - d) / t) / self.k
        return torch.zeros_like(dice).masked_scatter(fg, weights)


def validation_objective(dice: torch.Tensor, weights: ObjectiveWeights) -> torch.Tensor:
    """``V = sum_c v_c d_c / sum_c v_c`` with ``v`` fixed (``[C]``) or ``weights(d)``.

    Raises:
        ValueError: ``objective_weights`` of the wrong shape, negative, or summing to zero.
    """
    v = weights(dice) if callable(weights) else torch.as_tensor(weights)
    v = v.to(dice.device, dice.dtype)
    if v.shape != dice.shape:
        raise ValueError(
            f"ml3.objective_weights: need {dice.numel()} class weights, got shape {tuple(v.shape)}"
        )
    if not callable(weights) and (bool((v < 0).any()) or float(v.sum()) <= 0):
        raise ValueError(
            f"ml3.objective_weights: non-negative with a positive sum, got {v.tolist()}"
        )
    return (v * dice).sum() / v.sum()


@dataclass
class MetaGradient:
    """One meta-step: ``outer_loss = 1 - val_objective``; ``grads`` match
    ``loss_net.parameters()`` (zeros where the outer loss does not reach a parameter);
    ``params`` are the detached inner parameters ``theta_K`` by name."""

    outer_loss: torch.Tensor
    val_objective: torch.Tensor
    dice: torch.Tensor
    grads: tuple[torch.Tensor, ...]
    params: dict[str, torch.Tensor]


def as_batches(batches: Batch | Sequence[Batch], what: str = "inner_batches") -> list[Batch]:
    """A single ``(x, labels)`` pair or a non-empty sequence of them, as a list."""
    if isinstance(batches, tuple) and len(batches) == 2 and isinstance(batches[0], torch.Tensor):
        return [batches]
    batches = list(batches)
    if not batches:
        raise ValueError(f"ml3.{what}: at least one (x, labels) batch")
    return batches


def progress_list(progress: float | Sequence[float], steps: int) -> list[float]:
    """The progress fed to the loss network at each of ``steps`` inner steps."""
    if isinstance(progress, (int, float)):
        return [float(progress)] * steps
    progresses = list(progress)
    if len(progresses) != steps:
        raise ValueError(f"ml3.progress: one value or {steps}, got {len(progresses)}")
    return progresses


def inner_objective(
    loss_net: LossNetwork, class_weights: torch.Tensor | None, progresses: Sequence[float]
) -> Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]:
    """``(logits, labels, k) -> `` the reduced inner loss ``mean_c(w_c L_c)`` of inner step k."""

    def inner_loss(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
        return reduce(loss_net.loss(logits, labels, class_weights, progresses[k]), class_weights)

    return inner_loss


def outer_objective(
    val_labels: torch.Tensor, objective_weights: ObjectiveWeights | None, config: MetaConfig
) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``logits -> (1 - V, V, d)`` on the held-out labels (``v`` default: the config's)."""

    def outer(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dice = soft_dice(logits, val_labels)
        weights = objective_weights
        if weights is None:
            weights = config.objective_weights(dice.shape[0])
        value = validation_objective(dice, weights)
        return 1.0 - value, value, dice

    return outer


def meta_gradient(
    loss_net: LossNetwork,
    model: nn.Module,
    inner_batches: Batch | Sequence[Batch],
    val_batch: Batch,
    config: MetaConfig,
    objective_weights: ObjectiveWeights | None = None,
    *,
    class_weights: torch.Tensor | None = None,
    progress: float | Sequence[float] = 0.0,
) -> MetaGradient:
    """The meta-gradient of ``loss_net`` (see the module docstring) with ``config.engine``.

    Args:
        inner_batches: ``(x, labels)`` for the inner steps, cycled over ``config.inner_steps``.
        val_batch: the held-out ``(x, labels)`` of the meta-objective.
        objective_weights: ``v`` (``[C]`` or a callable of the Dice); default
            ``config.objective_weights(C)``.
        class_weights: ``w`` of the inner loss (ones when omitted).
        progress: the training progress fed to the loss network, one value or one per step.
    """
    batches = as_batches(inner_batches)
    progresses = progress_list(progress, config.inner_steps)
    run = _ENGINE_FUNCTIONS.get(config.engine)
    if run is None:
        raise ValueError(f"ml3.engine: {config.engine!r} is not one of {', '.join(ENGINES)}")
    inner_loss = inner_objective(loss_net, class_weights, progresses)
    outer = outer_objective(val_batch[1], objective_weights, config)
    schedule = [batches[k % len(batches)] for k in range(config.inner_steps)]
    with twice_differentiable():  # the inner steps' gradients are differentiated again
        outer_loss, value, dice, params = run(
            model, schedule, val_batch[0], inner_loss, outer, config
        )
    phi = list(loss_net.parameters())
    found = torch.autograd.grad(outer_loss, phi, allow_unused=True)
    grads = tuple(torch.zeros_like(p) if g is None else g for p, g in zip(phi, found))
    return MetaGradient(outer_loss.detach(), value.detach(), dice.detach(), grads, params)


def _run_torch_func(model, schedule, x_val, inner_loss, outer, config):
    from torch.func import functional_call

    names = [name for name, _ in model.named_parameters()]
    params = {name: p.detach().requires_grad_() for name, p in model.named_parameters()}
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    for k, (x, labels) in enumerate(schedule):
        loss = inner_loss(functional_call(model, (params, buffers), (x,)), labels, k)
        grads = torch.autograd.grad(
            loss, [params[n] for n in names], create_graph=not config.first_order, allow_unused=True
        )
        params = {
            n: params[n] if g is None else params[n] - config.inner_lr * g
            for n, g in zip(names, grads)
        }
    outer_loss, value, dice = outer(functional_call(model, (params, buffers), (x_val,)))
    return outer_loss, value, dice, {n: p.detach() for n, p in params.items()}


def _run_higher(model, schedule, x_val, inner_loss, outer, config):
    higher = import_higher()
    names = [name for name, _ in model.named_parameters()]
    sgd = torch.optim.SGD(model.parameters(), lr=config.inner_lr)
    with higher.innerloop_ctx(
        model, sgd, copy_initial_weights=True, track_higher_grads=not config.first_order
    ) as (fmodel, diffopt):
        for k, (x, labels) in enumerate(schedule):
            diffopt.step(inner_loss(fmodel(x), labels, k))
        outer_loss, value, dice = outer(fmodel(x_val))
        params = {n: p.detach() for n, p in zip(names, fmodel.parameters())}
    return outer_loss, value, dice, params


_ENGINE_FUNCTIONS = {"torch.func": _run_torch_func, "higher": _run_higher}
