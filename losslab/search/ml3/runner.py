"""Meta-training one loss network of a study: its data, inner network, objective and snapshots.

:func:`meta_train_network` wires :func:`~losslab.search.ml3.meta.meta_train` to a study:

- **data**: the inner SGD steps read patches of the training split (``PatchSampler``, balanced
  as the trainer samples, K patches batches per outer step), the meta-objective a patch batch of
  the validation split (its own sampler), at ``ml3.patch_size`` / ``ml3.batch_size`` (default:
  the study's train settings), on the study's device;
- **inner network**: the study's model family (``train.model`` and its overrides) at
  ``ml3.model_size``, a fresh one (seeded by network and step) every ``reset_every`` steps;
- **objective**: the meta-objective's class weights follow the study's objective
  (:func:`study_objective_weights`) unless ``ml3.objective`` names one;
- **snapshots**: after each of ``ml3.checkpoint_steps()`` the network is saved under its
  content hash in the study's folder; those hashes are what the study proposes.

Every random draw comes from the network's seed (initial weights, models, both samplers), so a
network meta-trained again on the same data and settings is the same file, with the same hash.
A meta-training that raises (bad data, out of memory) ends ``failed`` with the reason, as a
non-finite one does in ``meta_train``; an interruption (Ctrl-C) is not caught.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from losslab.data import PatchSampler, SegmentationDataset
from losslab.losses.learned import save_network
from losslab.models import get_model
from losslab.search.ml3.engines import ObjectiveWeights, WorstK
from losslab.search.ml3.group import meta_train_group
from losslab.search.ml3.meta import OUT_OF_MEMORY, MetaResult, meta_train
from losslab.search.ml3.settings import Ml3Settings
from losslab.search.objective import Objective
from losslab.training import TrainConfig
from losslab.training.config import resolve_device

__all__ = [
    "MetaTrained",
    "meta_train_network",
    "meta_train_networks",
    "study_objective_weights",
]


@dataclass
class MetaTrained:
    """What one meta-training left: the hash of each snapshot, in order, and its curve's ends.

    ``start`` and ``end`` are ``(outer loss, validation objective)`` of the first and last
    outer step; ``status`` is ``ok`` or ``failed`` (``reason`` says why).
    """

    status: str
    reason: str = ""
    hashes: list[str] = field(default_factory=list)
    start: tuple[float, float] | None = None
    end: tuple[float, float] | None = None
    steps: int = 0
    skipped: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "hashes": list(self.hashes),
            "start": list(self.start) if self.start else None,
            "end": list(self.end) if self.end else None,
            "steps": self.steps,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
        }


def study_objective_weights(
    objective: Objective, temperature: float, k: int | None = None
) -> ObjectiveWeights:
    """The meta-objective's class weights ``v(d)`` for the study's objective.

    ``mean`` -> the foreground mean; ``worst_k`` -> a soft mean of the ``k`` lowest foreground
    Dice (:class:`WorstK`, ``k`` the study's unless given); ``min`` -> the same with ``k = 1``;
    ``mix`` -> the mix of those weights (each sums to one over the foreground), so that
    ``V = sum_kind weight * V_kind / sum weights``.
    """

    def of(kind: str) -> Callable[[torch.Tensor], torch.Tensor]:
        if kind == "mean":
            return lambda d: WorstK(d.shape[0], temperature)(d)  # k >= foreground: plain mean
        return WorstK(k or (1 if kind == "min" else objective.k), temperature)

    if objective.kind != "mix":
        return of(objective.kind)
    parts = [(of(kind), weight) for kind, weight in objective.weights.items()]
    return lambda d: sum(weight * v(d) for v, weight in parts)


@dataclass
class _Study:
    """What every network of a study shares: settings, data on the device, patch and batch,
    the meta-objective's class weights."""

    settings: Ml3Settings
    dataset: SegmentationDataset
    train: TrainConfig
    device: torch.device
    data: SegmentationDataset
    patch: tuple[int, int, int]
    batch: int
    weights: ObjectiveWeights | None

    @classmethod
    def of(
        cls,
        settings: Ml3Settings,
        dataset: SegmentationDataset,
        train: TrainConfig,
        objective: Objective,
    ) -> _Study:
        device = resolve_device(train.device)
        weights = None
        if settings.objective is None:
            weights = study_objective_weights(
                objective, settings.meta.temperature, settings.worst_k
            )
        return cls(
            settings,
            dataset,
            train,
            device,
            dataset.to(device),
            settings.patch_size or train.patch_size,
            settings.batch_size or train.batch_size,
            weights,
        )


class _Network:
    """One network's meta-training in a study: its samplers and models (all from its seed),
    its loss network, its snapshots and what it left (:class:`MetaTrained`)."""

    def __init__(self, study: _Study, seed: int, folder: Path, on_step, started: float):
        self.study, self.seed, self.folder, self.on_step = study, seed, folder, on_step
        self.started = started
        self.out = MetaTrained(status="failed")
        self.snapshots = set(study.settings.checkpoint_steps())
        self.samplers = [
            PatchSampler(
                study.data, split, study.patch, study.batch, device=study.device, seed=seed + offset
            )
            for offset, split in enumerate(("train", "val"))
        ]
        torch.manual_seed(seed)
        self.net = study.settings.new_network().to(study.device)

    def make_model(self, step: int) -> torch.nn.Module:
        study = self.study
        torch.manual_seed(self.seed + 7919 * (step + 1))
        return get_model(
            study.train.model,
            in_channels=study.dataset.images[0].shape[0],
            num_classes=study.dataset.num_classes,
            patch_size=study.patch,
            size=study.settings.model_size,
            **study.train.model_overrides,
        ).to(study.device)

    def sample_train(self, step: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [self.samplers[0].sample() for _ in range(self.study.settings.meta.inner_steps)]

    def sample_val(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.samplers[1].sample()

    def step_done(self, step: int, outer: float, value: float, skipped: bool) -> None:
        out = self.out
        if out.start is None:
            out.start = (outer, value)
        out.end = (outer, value)
        if step + 1 in self.snapshots:
            out.hashes.append(save_network(self.net, self.folder)[0])
        if self.on_step is not None:
            self.on_step(step, outer, value)

    def finish(self, result: MetaResult | None, error: Exception | None = None) -> MetaTrained:
        out = self.out
        if result is not None:
            out.status, out.reason = result.status, result.reason or ""
            out.steps, out.skipped = result.steps, result.skipped
        if error is not None:  # as in the trainer: a failing meta-training never kills a study
            out.status, out.reason = "failed", f"{type(error).__name__}: {error}"
        out.seconds = time.perf_counter() - self.started
        if out.status != "ok":
            out.hashes = []
        return out


def _failed(error: Exception, started: float) -> MetaTrained:
    seconds = time.perf_counter() - started
    return MetaTrained("failed", f"{type(error).__name__}: {error}", seconds=seconds)


def meta_train_network(
    settings: Ml3Settings,
    dataset: SegmentationDataset,
    train: TrainConfig,
    objective: Objective,
    seed: int,
    folder: Path,
    on_step: Callable[[int, float, float], None] | None = None,
) -> MetaTrained:
    """Meta-train one loss network from ``seed`` (see the module docstring).

    ``on_step(step, outer_loss, val_objective)`` is called after every outer step.
    """
    started = time.perf_counter()
    try:
        job = _Network(
            _Study.of(settings, dataset, train, objective), seed, folder, on_step, started
        )
    except Exception as exc:
        return _failed(exc, started)
    try:
        result = meta_train(
            job.net,
            job.make_model,
            job.sample_train,
            job.sample_val,
            settings.outer_steps,
            settings.meta,
            objective_weights=job.study.weights,
            on_step=job.step_done,
        )
    except Exception as exc:
        return job.finish(None, exc)
    return job.finish(result)


def meta_train_networks(
    settings: Ml3Settings,
    dataset: SegmentationDataset,
    train: TrainConfig,
    objective: Objective,
    seeds: Sequence[int],
    folder: Path,
    on_steps: Sequence[Callable[[int, float, float], None] | None] | None = None,
) -> list[MetaTrained]:
    """Meta-train one network per seed, all in one group (:func:`meta_train_group`); each
    :class:`MetaTrained` is what :func:`meta_train_network` gives that seed, up to float
    rounding. Out of memory halves the group and meta-trains its networks again (down to one
    at a time, whose failure is final); a group that raises anything else (a network that
    cannot be batched) meta-trains its networks one at a time. A network meta-trained again
    logs its curve again from step 0.
    """
    callbacks = list(on_steps) if on_steps is not None else [None] * len(seeds)
    done: dict[int, MetaTrained] = {}
    queue = [list(range(len(seeds)))]
    while queue:
        members = queue.pop(0)
        if len(members) == 1:
            j = members[0]
            done[j] = meta_train_network(
                settings, dataset, train, objective, seeds[j], folder, callbacks[j]
            )
            continue
        outs = _meta_train_group(
            settings,
            dataset,
            train,
            objective,
            [seeds[j] for j in members],
            folder,
            [callbacks[j] for j in members],
        )
        again = [j for j, out in zip(members, outs) if out.reason.startswith(OUT_OF_MEMORY)]
        done.update((j, out) for j, out in zip(members, outs) if j not in again)
        if again:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            half = (len(again) + 1) // 2
            queue[:0] = [part for part in (again[:half], again[half:]) if part]
    return [done[j] for j in range(len(seeds))]


def _meta_train_group(settings, dataset, train, objective, seeds, folder, callbacks):
    started = time.perf_counter()
    try:
        study = _Study.of(settings, dataset, train, objective)
        jobs = [_Network(study, s, folder, f, started) for s, f in zip(seeds, callbacks)]
    except Exception as exc:
        return [_failed(exc, started) for _ in seeds]
    try:
        results = meta_train_group(
            [job.net for job in jobs],
            [job.make_model for job in jobs],
            [job.sample_train for job in jobs],
            [job.sample_val for job in jobs],
            settings.outer_steps,
            settings.meta,
            objective_weights=study.weights,
            on_step=lambda i, *args: jobs[i].step_done(*args),
        )
    except Exception:  # not batchable, or an error of one network: one at a time, as alone
        return [
            meta_train_network(settings, dataset, train, objective, s, folder, f)
            for s, f in zip(seeds, callbacks)
        ]
    return [job.finish(result) for job, result in zip(jobs, results)]
