"""``PopulationTrainer``: N candidates trained at once on one device, as one batched network.

A small network leaves a large GPU mostly idle; a search evaluates many candidates with the same
architecture and training. The population stacks the N members' networks into one
:class:`~losslab.training.stacked.StackedNetwork` (``torch.func.vmap``), runs one forward pass
for all of them, then each member's own loss on its slice of the output (the losses may be
entirely different expressions, so the network is batched and the losses are looped over, with
the trainer's own :func:`~losslab.training.trainer.step_loss`), one backward pass over the sum,
per-member gradient clipping and one optimiser step over the stack.

Every member's :class:`Result` is what ``Trainer.fit`` gives it alone, up to float rounding:
the same initial weights (from its seed), patches (members of a seed share them; see
:mod:`losslab.training.members`), schedules, failure and pruning semantics, validation and test
metrics (computed by the trainer's own functions on the member's network, whose weights alias
its slice of the stack). The batched convolutions sum in another order than one network's:
with SGD the weights stay within ~1e-8 of the run alone; Adam, which scales every element's
step by its own gradient's size, turns the rounding of gradients that are 0 in exact
arithmetic (a convolution's bias before instance norm) into steps of ``lr``, so such weights
drift apart while the networks compute nearly the same function (the measured figures are in
``tests/training/test_population.py``). A member's ``wall_time`` is the time from the start of
its population to its end.

Set-up (shared data, sampler, the stack, out-of-memory halving, the fallback) is here; the
loop of one population is :mod:`losslab.training.population_run`.

- **Per-member failure.** A non-finite loss or gradient, divergence, or an exception from the
  member's loss, schedules, validation or hooks ends that member only, as ``failed`` with the
  reason and step it would have alone; ``StopTraining`` from its hooks ends it as ``pruned``.
  It leaves the population (its slices are cut out of the stack) and the others go on: their
  computations never mix with its slice. As alone, the CPU checks every step and a GPU reads
  the flags once per epoch (a member gone non-finite runs to the end of the epoch, isolated).
- **Hooks.** Each member's hooks get the member's own :class:`TrainState`: its config (with its
  seed), candidate, network, epoch, step, schedules and weights. ``optimizer`` is the
  population's (over the stack) and ``trainer`` is ``None``, so a hook that steps or restores
  the model itself (the greedy controller's look-ahead) does not belong in a population; hooks
  that work per member say so with ``population_safe = True`` (:func:`population_safe`).
- **Out of memory.** The first step's forward and backward pass is tried before training (and
  before any hook); a CUDA out-of-memory error there or later halves the population and starts
  the members still training again (their hooks see a second ``on_train_start``). A population
  of one is the plain :class:`Trainer`, whose out-of-memory failure is the member's result.
- **Fallback.** A network that cannot be batched (an operation without a batching rule, a
  random one such as dropout > 0) trains its members one at a time with :class:`Trainer`.
  The registry's three networks (unet3d, unetr, lambda3d with its batch norms) batch.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from losslab.candidate import Candidate
from losslab.data import SegmentationDataset
from losslab.training.config import TrainConfig, resolve_device
from losslab.training.determinism import TorchFlags, configure_determinism
from losslab.training.hooks import Hook
from losslab.training.members import Batches
from losslab.training.population_run import Member, OutOfMemory, Population, reason_of
from losslab.training.result import Result
from losslab.training.setup import (
    amp_dtype,
    make_optimizer,
    run_state,
    train_sampler,
    validation_patches,
)
from losslab.training.stacked import StackedNetwork
from losslab.training.trainer import Trainer

__all__ = ["DEFAULT_MAX_SIZE", "PopulationTrainer", "population_safe"]

DEFAULT_MAX_SIZE = 8


def population_safe(hooks: Iterable[Any]) -> bool:
    """Whether every hook works on a member's state (class attribute ``population_safe``)."""
    return all(getattr(hook, "population_safe", False) for hook in hooks)


class _Restart(Exception):
    """Out of memory: ``members`` start again in two smaller populations."""

    def __init__(self, members: list[Member]):
        super().__init__("out of memory")
        self.members = members


class _NotBatchable(Exception):
    """The network cannot be batched: the members train one at a time."""


class PopulationTrainer:
    """Trains candidates with one :class:`TrainConfig`, up to ``max_size`` at once.

    Args:
        config: the training of every member (the seed may differ, see :meth:`fit_many`).
        max_size: the most members in one population (more candidates are cut into
            populations of this size); 1 trains one at a time with :class:`Trainer`.

    Attributes:
        sizes: the size of every population trained (1: a run of the plain trainer).
    """

    def __init__(self, config: TrainConfig, *, max_size: int = DEFAULT_MAX_SIZE):
        if max_size < 1:
            raise ValueError(f"max_size must be >= 1, got {max_size}")
        self.config, self.max_size = config, max_size
        self.sizes: list[int] = []

    def fit_many(
        self,
        candidates: Sequence[Candidate],
        dataset: SegmentationDataset,
        hooks: Sequence[Sequence[Hook]] | None = None,
        seeds: Sequence[int] | None = None,
    ) -> list[Result]:
        """Train every candidate on ``dataset``; one :class:`Result` each, in order.

        ``hooks[i]`` are candidate ``i``'s hooks, ``seeds[i]`` its seed (default: the config's).
        Never raises for a run, except an interruption (as ``Trainer.fit``): the members
        training then end as ``interrupted`` and the interruption is raised (the candidates of
        later populations never start).
        """
        n = len(candidates)
        hook_lists = [list(h) for h in hooks] if hooks is not None else [[] for _ in range(n)]
        seed_list = [int(s) for s in seeds] if seeds is not None else [self.config.seed] * n
        if len(hook_lists) != n or len(seed_list) != n:
            raise ValueError(
                f"{n} candidates need {n} hook lists and seeds, got {len(hook_lists)} and "
                f"{len(seed_list)}"
            )
        members = [
            Member(
                i,
                candidate,
                dataclasses.replace(self.config, seed=seed),
                hook_lists[i],
                Result(status="failed", class_names=list(dataset.class_names)),
            )
            for i, (candidate, seed) in enumerate(zip(candidates, seed_list))
        ]
        results: list[Result | None] = [None] * n
        queue = [members[i : i + self.max_size] for i in range(0, n, self.max_size)]
        while queue:
            group = queue.pop(0)
            try:
                self._fit_group(group, dataset)
            except _Restart as restart:
                left = [m.fresh() for m in restart.members]
                half = (len(left) + 1) // 2
                queue[:0] = [g for g in (left[:half], left[half:]) if g]
            for member in group:
                if member.done:
                    results[member.index] = member.result
        return [r for r in results if r is not None]

    def _fit_group(self, group: list[Member], dataset: SegmentationDataset) -> None:
        if len(group) > 1:
            try:
                self._fit_population(group, dataset)
                return
            except _NotBatchable:
                pass
        for member in group:
            member.state = None
            self.sizes.append(1)
            member.result = Trainer(member.config, member.hooks).fit(member.candidate, dataset)
            member.done = True

    # -- one population ----------------------------------------------------------------------

    def _fit_population(self, group: list[Member], dataset: SegmentationDataset) -> None:
        flags = TorchFlags.save()  # process-wide: put back however the population ends
        pop = Population(self.config, started=time.perf_counter(), live=list(group))
        try:
            if self._setup(pop, dataset):
                self.sizes.append(len(pop.live))
                pop.train()
        except OutOfMemory:
            live = [m for m in group if not m.done]
            for member in live:  # free the stack (the members' networks alias it) first
                member.state = None
            pop.net = None
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            raise _Restart(live) from None
        except _NotBatchable:
            raise
        except Exception as exc:  # from the shared part of a step: every member's failure
            for member in list(pop.live):
                pop.end(member, "failed", reason_of(exc))
        except BaseException:
            for member in list(pop.live):
                pop.end(member, "interrupted", "interrupted by the user or a signal")
            raise
        finally:
            flags.restore()
        if pop.errors:
            raise pop.errors[0]

    def _setup(self, pop: Population, dataset: SegmentationDataset) -> bool:
        """The shared data, sampler and stacked network of ``pop.live``; ``False`` when fewer
        than two members are left to train together (a member whose set-up fails ends as
        ``Trainer.fit`` ends it; a last one trains alone)."""
        config, group = self.config, list(pop.live)
        seeds = [m.config.seed for m in group]
        try:
            device = resolve_device(config.device)
            configure_determinism(config.deterministic, device)
            data = dataset.to(device)
            sampler = train_sampler(config, data, device, seeds[0])
            patches = {s: validation_patches(config, dataset, s) for s in dict.fromkeys(seeds)}
            batches = Batches(sampler, seeds, device, augment=config.augment)
        except Exception as exc:
            for member in group:
                pop.end(member, "failed", reason_of(exc))
            return False
        amp_type = amp_dtype(config, device)
        for member in group:
            try:
                member.state = run_state(
                    member.config,
                    member.candidate,
                    data,
                    device=device,
                    sampler=sampler,
                    augment_generator=batches.generators[member.config.seed],
                    val_patches=patches[member.config.seed],
                    amp_dtype=amp_type,
                )
            except Exception as exc:
                pop.end(member, "failed", reason_of(exc))
        pop.live = [m for m in group if not m.done]
        if len(pop.live) < 2:
            for member in pop.live:  # the last one: the plain trainer, from the start
                member.state = None
                self.sizes.append(1)
                member.result = Trainer(member.config, member.hooks).fit(member.candidate, dataset)
                member.done = True
            pop.live = []
            return False
        try:
            pop.net = StackedNetwork(
                [m.state.model for m in pop.live], lambda module: make_optimizer(config, module)
            )
            pop.device, pop.batches, pop.amp_dtype = device, batches, amp_type
            with pop.autocast():  # the first step's shape, before any hook
                pop.net.check(torch.zeros(self._input_shape(pop, data), device=device))
        except OutOfMemory:
            raise
        except Exception as exc:
            raise _NotBatchable(reason_of(exc)) from exc
        pop.bind()
        return True

    def _input_shape(self, pop: Population, data: SegmentationDataset) -> tuple[int, ...]:
        config = self.config
        shape = (config.batch_size, data.images[0].shape[0], *config.patch_size)
        if len({m.config.seed for m in pop.live}) > 1:
            shape = (len(pop.live), *shape)
        return shape
