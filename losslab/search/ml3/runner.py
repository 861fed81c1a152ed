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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from losslab.data import PatchSampler, SegmentationDataset
from losslab.losses.learned import save_network
from losslab.models import get_model
from losslab.search.ml3.engines import ObjectiveWeights, WorstK
from losslab.search.ml3.meta import meta_train
from losslab.search.ml3.settings import Ml3Settings
from losslab.search.objective import Objective
from losslab.training import TrainConfig
from losslab.training.config import resolve_device

__all__ = ["MetaTrained", "meta_train_network", "study_objective_weights"]


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
    out = MetaTrained(status="failed")
    snapshots = set(settings.checkpoint_steps())
    try:
        device = resolve_device(train.device)
        data = dataset.to(device)
        patch = settings.patch_size or train.patch_size
        batch = settings.batch_size or train.batch_size
        samplers = [
            PatchSampler(data, split, patch, batch, device=device, seed=seed + offset)
            for offset, split in enumerate(("train", "val"))
        ]

        def make_model(step: int) -> torch.nn.Module:
            torch.manual_seed(seed + 7919 * (step + 1))
            return get_model(
                train.model,
                in_channels=dataset.images[0].shape[0],
                num_classes=dataset.num_classes,
                patch_size=patch,
                size=settings.model_size,
                **train.model_overrides,
            ).to(device)

        torch.manual_seed(seed)
        net = settings.new_network().to(device)
        weights = None
        if settings.objective is None:
            weights = study_objective_weights(
                objective, settings.meta.temperature, settings.worst_k
            )

        def step_done(step: int, outer: float, value: float, skipped: bool) -> None:
            if out.start is None:
                out.start = (outer, value)
            out.end = (outer, value)
            if step + 1 in snapshots:
                out.hashes.append(save_network(net, folder)[0])
            if on_step is not None:
                on_step(step, outer, value)

        result = meta_train(
            net,
            make_model,
            lambda step: [samplers[0].sample() for _ in range(settings.meta.inner_steps)],
            lambda step: samplers[1].sample(),
            settings.outer_steps,
            settings.meta,
            objective_weights=weights,
            on_step=step_done,
        )
        out.status, out.reason = result.status, result.reason or ""
        out.steps, out.skipped = result.steps, result.skipped
    except Exception as exc:  # as in the trainer: a failing meta-training never kills a study
        out.status, out.reason = "failed", f"{type(exc).__name__}: {exc}"
    out.seconds = time.perf_counter() - started
    if out.status != "ok":
        out.hashes = []
    return out
