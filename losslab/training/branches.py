"""Branches of one run: copies of its current state trained together for a few steps.

A hook that looks ahead (the greedy controller) asks "what would the next ``steps`` steps give
with these loss parameters?" for several sets of values from one snapshot. Asked one at a
time, each set restores the snapshot, takes real ``Trainer.step`` steps and scores the network.
:func:`train_branches` answers all of them at once: the run's network and optimiser state are
copied once per branch into one :class:`~losslab.training.stacked.StackedNetwork`, every branch
gets its own loss (compiled from its values), term schedule and step counter, and every step is
one batched forward pass, each branch's own :func:`~losslab.training.trainer.step_loss` on its
slice, one backward pass, per-branch gradient clipping and one optimiser step over the stack.

- **Same data.** One at a time, every branch draws the same batches: the snapshot puts the
  patch sampler and the augmentation generator back before each. Here the ``steps`` batches
  are drawn once, as ``Trainer.step`` draws them (sample, then augment with the run's
  generator), shared by every branch, and the sampler's and generator's states are put back
  afterwards. Neither stream depends on the network, so drawing them first changes nothing.
- **Same start.** Each branch starts from the run's current weights, buffers and optimiser
  state (Adam's moments and step, SGD's momentum), stacked ``N`` times; the run's own network,
  optimiser, loss and schedules are not touched.
- **Same scores.** Each branch is scored by the run's trainer (``Trainer.patch_scores``) on its
  network, which aliases its slice of the stack. A branch whose loss or gradient went
  non-finite at any step gets ``None`` and is not scored, as a look-ahead alone.
- **Float rounding.** The batched convolutions sum in another order than one network's: the
  scores agree with those of the one-at-a-time look-ahead up to rounding (see
  ``losslab.training.population`` for how far Adam carries it).

What cannot be batched (a network with dropout, an operation without a batching rule, a run
without a trainer, an error in a branch's loss) raises :class:`BranchesUnsupported` with the
reason, and a CUDA out-of-memory error is raised as it is; either leaves the run as it was (the
branches train copies), so the caller can take the one-at-a-time path or fewer branches. The
first batched step is the check: no separate trial pass is paid for.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from losslab.data import augment
from losslab.training.setup import make_optimizer
from losslab.training.stacked import StackedNetwork
from losslab.training.state import TrainState
from losslab.training.trainer import step_loss

__all__ = ["BranchesUnsupported", "draw_batches", "train_branches"]

Batch = tuple[torch.Tensor, torch.Tensor]


class BranchesUnsupported(Exception):
    """The run's branches cannot be trained as one population; the message says why."""


def draw_batches(state: TrainState, steps: int) -> list[Batch]:
    """The next ``steps`` training batches of the run, drawn as ``Trainer.step`` draws them;
    the sampler's and the augmentation generator's states are put back afterwards."""
    if state.sampler is None:
        raise BranchesUnsupported("the run has no patch sampler")
    sampler_state = state.sampler.get_rng_state()
    generator = state.augment_generator
    generator_state = generator.get_state() if generator is not None else None
    try:
        batches = []
        for _ in range(steps):
            images, labels = state.sampler.sample()
            if state.config.augment:
                images, labels = augment(images, labels, generator)
            batches.append((images, labels))
    finally:
        state.sampler.set_rng_state(sampler_state)
        if generator is not None and generator_state is not None:
            generator.set_state(generator_state)
    return batches


def _stacked_optimizer_state(state: TrainState, size: int) -> dict:
    """The run's optimiser state with every per-parameter tensor repeated ``size`` times."""
    saved = copy.deepcopy(state.optimizer.state_dict())
    shapes = [p.shape for p in state.trainable]
    for number, entry in saved["state"].items():
        for name, value in entry.items():
            if torch.is_tensor(value) and value.shape == shapes[number]:
                entry[name] = value.unsqueeze(0).repeat(size, *[1] * value.dim())
    return saved


def _branch_state(state: TrainState, model: torch.nn.Module, values: dict) -> TrainState:
    """A shallow copy of the run's state for one branch: its own network (a slice of the
    stack), loss at ``values``, term schedule and step counter."""
    branch = copy.copy(state)
    branch.model = model
    branch.term_schedule = copy.deepcopy(state.term_schedule)
    branch.term_weights = state.term_weights.clone()
    branch.set_loss_parameters(values)
    return branch


def _stack(state: TrainState, size: int) -> StackedNetwork:
    """``size`` copies of the run's network and optimiser state as one stacked network."""
    models = [copy.deepcopy(state.model) for _ in range(size)]
    net = StackedNetwork(models, lambda module: make_optimizer(state.config, module))
    net.optimizer.load_state_dict(_stacked_optimizer_state(state, size))
    return net


def _autocast(state: TrainState) -> torch.autocast:
    dtype = state.amp_dtype or torch.float32
    return torch.autocast(state.device.type, dtype=dtype, enabled=state.amp_dtype is not None)


def _step(
    net: StackedNetwork, branches: list[TrainState], images: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """One training step of every branch, as ``Trainer.step`` takes it alone; ``[N]`` flags of
    a non-finite loss or gradient (no host sync)."""
    for branch in branches:  # the parameter schedule first
        if branch.param_schedule is not None:
            branch.set_loss_parameters(branch.param_schedule.values_at(branch.step))
    with _autocast(branches[0]):
        logits = net(images)  # raises for a network that cannot be batched (dropout)
    totals = torch.stack([step_loss(b, logits[j], labels) for j, b in enumerate(branches)])
    net.optimizer.zero_grad(set_to_none=True)
    totals.sum().backward()  # the branches are independent: each gets its own gradient
    norms = net.clip_grad_norms(branches[0].config.grad_clip)
    net.step()
    for branch in branches:
        branch.step += 1
    return ~torch.isfinite(totals.detach()) | ~torch.isfinite(norms)


def train_branches(
    state: TrainState,
    values: Sequence[dict[str, float]],
    steps: int,
    metric: str = "soft_dice",
    *,
    batches: Sequence[Batch] | None = None,
) -> list[list[float] | None]:
    """Train one branch per entry of ``values`` for ``steps`` steps from the run's current
    state, together, and score each on the validation patches (see the module docstring).

    Args:
        state: the run (its trainer scores the branches); left as it was.
        values: each branch's loss parameters (addresses -> values), set before its first step.
        steps: the training steps of every branch.
        metric: what ``Trainer.patch_scores`` computes (``soft_dice``, ``dice``...).
        batches: the ``steps`` batches to train on (default: :func:`draw_batches`), so that a
            caller cutting many branches into groups draws them once.

    Returns:
        Per branch, in order: its per-class scores, or ``None`` when a step's loss or gradient
        was not finite.

    Raises:
        BranchesUnsupported: the network cannot be stacked or batched, a branch's step raised,
            or the run has no trainer; the run is left as it was.
        torch.cuda.OutOfMemoryError: the branches do not fit at once (try fewer).
    """
    if state.trainer is None or state.optimizer is None:
        raise BranchesUnsupported("the run has no trainer of its own (a population member)")
    if not values:
        return []
    if batches is None:
        batches = draw_batches(state, steps)
    if len(batches) != steps:
        raise ValueError(f"{steps} steps need {steps} batches, got {len(batches)}")
    size = len(values)
    bad = torch.zeros(size, dtype=torch.bool, device=state.device)
    try:  # the stack and its branches are copies: an error leaves the run as it was
        net = _stack(state, size)
        branches = [_branch_state(state, net.members[j], values[j]) for j in range(size)]
        for images, labels in batches:
            bad |= _step(net, branches, images, labels)
    except torch.cuda.OutOfMemoryError:
        raise
    except Exception as exc:
        raise BranchesUnsupported(f"{type(exc).__name__}: {exc}") from exc
    flags = bad.tolist()  # one host sync for all the branches
    scores: list[list[float] | None] = []
    for branch, failed in zip(branches, flags):
        if failed:
            scores.append(None)
            continue
        branch.val_patches = state.val_patches  # chosen on first use: once, for the run
        scores.append(state.trainer.patch_scores(branch, metric))
        state.val_patches = branch.val_patches
    return scores
