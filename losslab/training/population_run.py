"""The training of one population once it is set up: steps, epochs, hooks and each member's end.

:class:`Population` holds the members still training, in the order of the stacked network's
slices, and plays ``Trainer.fit``'s loop for all of them at once (the semantics are in
``losslab.training.population``'s docstring): one batched forward pass and each member's loss
per step, the trainer's own checks, validation and test per member, each member's hooks on its
own state. A member that ends (failed, pruned, done) gets its :class:`Result` and its hooks'
``on_train_end`` at once, and is cut out of the stack before the next step.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from losslab.candidate import Candidate
from losslab.training.config import TrainConfig
from losslab.training.hooks import Hook, StopTraining, epoch_end, stop_is_late
from losslab.training.members import Batches
from losslab.training.result import EpochRecord, Result
from losslab.training.stacked import StackedNetwork
from losslab.training.state import TrainState
from losslab.training.trainer import Trainer, _Failure, step_loss

__all__ = ["Member", "OutOfMemory", "Population", "reason_of"]

OutOfMemory = torch.cuda.OutOfMemoryError


def reason_of(exc: BaseException) -> str:
    """A failure's reason, as ``Trainer.fit`` words it."""
    return f"{type(exc).__name__}: {exc}"


@dataclass(eq=False)
class Member:
    """One candidate of a population: what it trains with, its state and its result."""

    index: int  # in the caller's list
    candidate: Candidate
    config: TrainConfig  # the population's, with the member's seed
    hooks: list[Hook]
    result: Result
    state: TrainState | None = None
    done: bool = False

    def fresh(self) -> Member:
        """The member as before it started (to train it again)."""
        result = Result(status="failed", class_names=list(self.result.class_names))
        return Member(self.index, self.candidate, self.config, self.hooks, result)

    def trainer(self) -> Trainer:
        """A plain trainer of the member's config: its validation, test and failure checks."""
        return Trainer(self.config)


@dataclass(eq=False)
class Population:
    """Members training together (set up by ``PopulationTrainer``)."""

    config: TrainConfig
    started: float
    live: list[Member]  # the members training, in the order of the stack
    device: torch.device = torch.device("cpu")
    net: StackedNetwork | None = None
    batches: Batches | None = None
    amp_dtype: torch.dtype | None = None
    steps: int = 0  # every live member has taken these steps
    errors: list[BaseException] = field(default_factory=list)  # from hooks' on_train_end

    def autocast(self) -> torch.autocast:
        dtype = self.amp_dtype or torch.float32
        return torch.autocast(self.device.type, dtype=dtype, enabled=self.amp_dtype is not None)

    def bind(self) -> None:
        """Give every member's state the population's optimiser and its own parameters."""
        for member in self.live:
            member.state.optimizer = self.net.optimizer
            member.state.trainable = [p for p in member.state.model.parameters() if p.requires_grad]

    def drop(self) -> list[int]:
        """Cut the members that ended out of the stack; the positions of those kept."""
        keep = [j for j, m in enumerate(self.live) if not m.done]
        if len(keep) < len(self.live):
            if keep:
                self.net.select(keep)
            self.live = [self.live[j] for j in keep]
            self.bind()
        return keep

    # -- the loop ----------------------------------------------------------------------------

    def train(self) -> None:
        """Every member's ``on_train_start``, epochs and test, as ``Trainer.fit``."""
        for member in list(self.live):
            self.call_hooks(member, "on_train_start")
        self.drop()
        config = self.config
        eager = self.device.type == "cpu"  # a host sync costs nothing there: stop at the first NaN
        for _ in range(config.epochs):
            if not self.live:
                return
            start = time.perf_counter()
            for member in self.live:
                member.state.epoch += 1
            weights = {m: m.state.class_weights.clone() for m in self.live}
            loss_sum = torch.zeros(len(self.live), device=self.device)
            bad = torch.full((len(self.live), 2), -1, dtype=torch.long, device=self.device)
            for _ in range(config.steps_per_epoch):
                live = list(self.live)
                totals, norms, errors = self.step()
                loss_sum += totals
                finite = torch.stack([torch.isfinite(totals), torch.isfinite(norms)], dim=1)
                bad = torch.where(~finite & (bad < 0), self.steps, bad)
                for member, reason in errors.items():
                    self.end(member, "failed", reason)
                flagged = (bad >= 0).any(dim=1).tolist() if eager else [False] * len(live)
                for j, member in enumerate(live):
                    if flagged[j] and not member.done:
                        self.check(member, bad[j].tolist(), math.nan)
                    if not member.done:
                        self.call_hooks(member, "on_step_end")
                keep = self.drop()
                if not self.live:
                    return
                if len(keep) < len(live):  # (indexing by a list copies it to the device)
                    loss_sum, bad = loss_sum[keep], bad[keep]
            train_time = time.perf_counter() - start
            live, sums, rows = list(self.live), loss_sum.tolist(), bad.tolist()
            for j, member in enumerate(live):
                self.check(member, rows[j], sums[j] / config.steps_per_epoch)
                if not member.done:
                    mean = sums[j] / config.steps_per_epoch
                    self.end_epoch(member, mean, weights[member], train_time)
            self.drop()
        for member in list(self.live):
            try:
                member.trainer().test(member.state, member.result)
            except OutOfMemory:
                raise
            except Exception as exc:
                self.end(member, "failed", reason_of(exc))
                continue
            self.end(member, "ok")

    def step(self) -> tuple[torch.Tensor, torch.Tensor, dict[Member, str]]:
        """One optimiser step of every member: ``(totals [N], gradient norms [N], errors)``,
        rows in the order of ``live`` (a member whose loss raised: total 0, in ``errors`` with
        the reason; it takes no step, as alone)."""
        live, errors = list(self.live), {}
        for member in live:
            state = member.state
            if state.param_schedule is not None:
                try:
                    state.set_loss_parameters(state.param_schedule.values_at(state.step))
                except Exception as exc:
                    errors[member] = reason_of(exc)
        images, labels = self.batches.draw([m.config.seed for m in live])
        with self.autocast():
            logits = self.net(images)
        totals: list[torch.Tensor | None] = []
        for j, member in enumerate(live):
            total = None
            if member not in errors:
                try:
                    total = step_loss(member.state, logits[j], labels[j])
                except OutOfMemory:
                    raise
                except Exception as exc:
                    errors[member] = reason_of(exc)
            totals.append(total)
        self.net.optimizer.zero_grad(set_to_none=True)
        used = [t for t in totals if t is not None]
        if used:
            torch.stack(used).sum().backward()  # members are independent: each gets its own
        norms = self.net.clip_grad_norms(self.config.grad_clip)
        self.net.step(skip=[j for j, total in enumerate(totals) if total is None])
        self.steps += 1
        zero = torch.zeros((), device=self.device)
        for member, total in zip(live, totals):
            if total is not None:
                member.state.step += 1
        stacked = torch.stack([(zero if t is None else t.detach().float()) for t in totals])
        return stacked, norms, errors

    def check(self, member: Member, bad: list[int], mean: float) -> None:
        """The trainer's checks (non-finite values, divergence) for one member."""
        try:
            member.trainer()._raise_if_bad(member.state, bad, mean)
        except _Failure as failure:
            self.end(member, "failed", str(failure), failure.step)

    def end_epoch(self, member: Member, mean: float, weights: torch.Tensor, train: float) -> None:
        """Validation, the epoch's record, the class schedule's update and the hooks, as
        ``Trainer.fit`` does them at the end of an epoch."""
        config, state = self.config, member.state
        start = time.perf_counter()
        try:
            if state.epoch % config.val_every == 0 or state.epoch == config.epochs:
                val_dice = member.trainer()._validate(state)
            else:
                val_dice = [math.nan] * state.dataset.num_classes
            record = EpochRecord(
                epoch=state.epoch,
                train_loss=mean,
                val_dice=val_dice,
                class_weights=weights.tolist(),
                term_weights=state.term_weights.tolist(),
                wall_time=train + time.perf_counter() - start,
            )
            state.history.append(record)
            state.context = state.context.next(record.val_dice)
            new_weights = state.class_schedule.update(state.context)
            state.class_weights = new_weights.to(state.device, torch.float32)
        except OutOfMemory:
            raise
        except Exception as exc:
            self.end(member, "failed", reason_of(exc))
            return
        self.call_hooks(member, "on_epoch_end", record)

    def call_hooks(self, member: Member, method: str, *args: Any) -> None:
        """Call one of the member's hook methods; its ``StopTraining`` prunes the member and
        another exception fails it (an interruption stops the whole population)."""
        try:
            if method == "on_epoch_end":  # every hook sees the epoch, as in Trainer.fit
                epoch_end(member.hooks, member.state, *args)
            else:
                for hook in member.hooks:
                    getattr(hook, method)(member.state, *args)
        except StopTraining as stop:
            epoch = member.state.epoch if method == "on_epoch_end" else 0
            if not stop_is_late(stop, epoch, self.config.epochs, member.result.tags):
                self.end(member, "pruned", str(stop) or "pruned")
        except OutOfMemory:
            raise
        except Exception as exc:
            self.end(member, "failed", reason_of(exc))

    def end(
        self, member: Member, status: str, reason: str = "", failed_step: int | None = None
    ) -> None:
        """Record the member's result and call its hooks' ``on_train_end`` (their exceptions
        are raised once the population has ended, as ``Trainer.fit`` lets them out)."""
        if member.done:
            return
        result, state = member.result, member.state
        result.status, result.reason, result.failed_step = status, reason, failed_step
        if state is not None:
            result.history, result.steps = state.history, state.step
            result.device = str(state.device)
        result.wall_time = time.perf_counter() - self.started
        member.done = True
        try:
            for hook in member.hooks:
                hook.on_train_end(state, result)
        except BaseException as exc:
            self.errors.append(exc)
        member.state = None  # its network aliases the stack: let the stack go once it is cut
