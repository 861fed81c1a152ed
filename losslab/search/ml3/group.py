"""Several loss networks meta-trained at once (one group), each as :func:`meta_train` would.

:func:`meta_train_group` runs N independent meta-trainings (N loss networks, each with its own
models, samplers and Adam) in one outer loop whose segmentation networks are batched:

- **Inner networks.** At every outer step the N members' models (built per network by its own
  ``make_model``, under its own seed, and carried on as :func:`meta_train` carries them) are
  stacked (``torch.func.stack_module_state``: parameters ``[N, ...]``, the buffers detached
  copies, as the engine's clones) and run by one ``vmap(functional_call)`` over per-member
  inputs ``[N, B, ...]``, as ``training/stacked.py`` runs a population.
- **Inner steps.** Each loss network computes its inner loss on its member's slice of the
  logits (a Python loop: the loss networks are separate modules), and one
  ``torch.autograd.grad(sum of the inner losses, stacked theta, create_graph=True)`` per inner
  step gives every member its own gradient (the members share no parameter, so the sum's
  gradient on a member's slice is its own loss's gradient).
- **Outer step.** The validation forward is batched the same way; each member's outer loss is
  its own soft-Dice objective, read back to the host once for all members. One
  ``torch.autograd.grad`` of the sum of the *finite* outer losses gives every ``phi`` its
  meta-gradient (a member whose outer loss is not finite is left out of the sum, so its NaN
  never reaches another member's gradient; its own gradient is then not computed and the step
  is skipped for it, as alone).
- **Per member, as alone.** The bookkeeping is :class:`~losslab.search.ml3.meta.OuterLoop`,
  the same object :func:`meta_train` uses: ``reset_every``, age and progress, a non-finite
  outer loss or meta-gradient skips that member's Adam step and ``theta_K`` only, its own
  consecutive skips fail it (it leaves the group, the others go on), ``on_step(i, ...)``.
  Running out of memory fails every member still in the group, with the reason (a caller
  halves the group and tries again, as ``runner.meta_train_networks`` does).

Only the ``torch.func`` engine groups (``higher``'s patched modules have no batching rules); a
network that cannot be batched (an operation without a batching rule, dropout) raises from
``vmap``, and the caller meta-trains its members one at a time. The batched convolutions sum
in another order than one network's, so a member equals its :func:`meta_train` within float
rounding, not bit for bit (``tests/search/test_ml3_group.py``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from losslab.losses.grad_mode import twice_differentiable
from losslab.losses.learned import LossNetwork
from losslab.search.ml3.engines import (
    Batch,
    ObjectiveWeights,
    as_batches,
    inner_objective,
    outer_objective,
)
from losslab.search.ml3.meta import MetaConfig, MetaResult, OuterLoop, check_loop

__all__ = ["meta_train_group"]


def meta_train_group(
    loss_nets: Sequence[LossNetwork],
    make_models: Sequence[Callable[[int], nn.Module]],
    sample_trains: Sequence[Callable[[int], Batch | Sequence[Batch]]],
    sample_vals: Sequence[Callable[[int], Batch]],
    outer_steps: int,
    config: MetaConfig,
    *,
    objective_weights: ObjectiveWeights | None = None,
    class_weights: torch.Tensor | None = None,
    on_step: Callable[[int, int, float, float, bool], None] | None = None,
) -> list[MetaResult]:
    """Meta-train every ``loss_nets[i]`` in place, together; one :class:`MetaResult` each.

    Network ``i`` gets ``make_models[i]``, ``sample_trains[i]`` and ``sample_vals[i]``, the
    functions :func:`meta_train` would get for it alone; ``on_step`` is called after every outer
    step of every member still training as ``(i, step, outer_loss, val_objective, skipped)``.

    Raises:
        ValueError: as :func:`meta_train`, and for the ``higher`` engine or lists of unequal
            length (named). Whatever batching raises (an operation without a batching rule, a
            random one) is raised: the caller then meta-trains the networks one at a time.
    """
    check_loop(outer_steps, config)
    if config.engine != "torch.func":
        raise ValueError(
            f"ml3.engine: {config.engine!r} meta-trains one network at a time; "
            "a group needs torch.func"
        )
    n = len(loss_nets)
    if not n or any(len(f) != n for f in (make_models, sample_trains, sample_vals)):
        raise ValueError(
            f"ml3.group: one model, sampler and validation sampler per loss network, got "
            f"{n}, {len(make_models)}, {len(sample_trains)} and {len(sample_vals)}"
        )
    loops = [OuterLoop(net, make, config) for net, make in zip(loss_nets, make_models)]
    live = list(range(n))
    for step in range(outer_steps):
        for i in live:
            loops[i].begin(step)
        try:
            outers, values, grads, params = _group_step(
                [loops[i] for i in live],
                [as_batches(sample_trains[i](step)) for i in live],
                [sample_vals[i](step) for i in live],
                config,
                objective_weights,
                class_weights,
            )
        except torch.OutOfMemoryError as err:
            for i in live:
                loops[i].out_of_memory(step, err)
            break
        for j, i in enumerate(list(live)):
            skipped = not loops[i].end(step, outers[j], values[j], grads[j], params[j])
            if on_step is not None:
                on_step(i, step, outers[j], values[j], skipped)
            if loops[i].failed(step, outers[j]):
                live.remove(i)
        if not live:
            break
    return [loop.result for loop in loops]


def _stacked_model(models: Sequence[nn.Module]):
    """The members' parameters ``[N, ...]`` as fresh leaves, their buffers detached copies,
    and a parameterless skeleton of the architecture to call them with."""
    names = [name for name, _ in models[0].named_parameters()]
    for model in models[1:]:
        if [name for name, _ in model.named_parameters()] != names:
            raise ValueError("ml3.group: the members' models differ in their parameters")
    stacked, buffers = stack_module_state(list(models))
    params = {name: stacked[name].detach().requires_grad_() for name in names}
    buffers = {name: b.detach().clone() for name, b in buffers.items()}
    skeleton = copy.deepcopy(models[0]).to("meta")  # the mode the caller left the model in
    return names, params, buffers, skeleton


def _group_step(loops, inner_batches, val_batches, config, objective_weights, class_weights):
    """One outer step of the members ``loops``: per member the outer loss and objective (host
    floats), the meta-gradient of its ``phi`` and its ``theta_K`` by name."""
    names, params, buffers, skeleton = _stacked_model([loop.model for loop in loops])

    def call(p, b, x):
        return functional_call(skeleton, (p, b), (x,))

    forward = vmap(call, in_dims=(0, 0, 0), randomness="error")
    inner = [inner_objective(loop.loss_net, class_weights, loop.progress()) for loop in loops]
    outer = [outer_objective(val[1], objective_weights, config) for val in val_batches]
    with twice_differentiable():  # the inner steps' gradients are differentiated again
        for k in range(config.inner_steps):
            batches = [b[k % len(b)] for b in inner_batches]
            logits = forward(params, buffers, torch.stack([x for x, _ in batches]))
            loss = sum(f(logits[j], batches[j][1], k) for j, f in enumerate(inner))
            found = torch.autograd.grad(
                loss, [params[name] for name in names], create_graph=True, allow_unused=True
            )
            params = {
                name: params[name] if g is None else params[name] - config.inner_lr * g
                for name, g in zip(names, found)
            }
        logits = forward(params, buffers, torch.stack([x for x, _ in val_batches]))
        results = [f(logits[j]) for j, f in enumerate(outer)]
    outer_losses = torch.stack([r[0] for r in results])
    both = torch.stack([outer_losses, torch.stack([r[1] for r in results])]).detach()
    outers, values = (row.tolist() for row in both.double().cpu())  # one read-back
    finite = [j for j, value in enumerate(outers) if math.isfinite(value)]
    phis = [list(loop.loss_net.parameters()) for loop in loops]
    grads: list[tuple[torch.Tensor, ...]] = [
        tuple(torch.full_like(p, float("nan")) for p in phi) for phi in phis
    ]  # not computed: the member's step is skipped for its outer loss
    if finite:
        wanted = [p for j in finite for p in phis[j]]
        total = sum(outer_losses[j] for j in finite)
        found = iter(torch.autograd.grad(total, wanted, allow_unused=True))
        for j in finite:
            grads[j] = tuple(
                torch.zeros_like(p) if g is None else g for p, g in zip(phis[j], found)
            )
    theta = [{name: p.detach()[j] for name, p in params.items()} for j in range(len(loops))]
    return outers, values, grads, theta
