"""What the members of a population share and what each has of its own, built as ``Trainer`` would.

:func:`member_state` builds one member's :class:`TrainState` exactly as ``Trainer._setup``
builds a run's (schedules from the candidate, the model initialised right after
``torch.manual_seed(seed)``, the compiled loss), but over data, a patch sampler and validation
patches made once for the whole population: a copy of the training split per member would cost
N times the device memory for the same tensors.

:class:`Batches` draws the training batches of the members: members that share a seed share
their patches (one draw), and members of other seeds draw from the same sampler with their own
random stream, swapped in and out with the sampler's public state methods (a host-side state
for the GPU's Philox generator: no sync), and each seed has its own augmentation generator
seeded ``seed + 1``, as a run alone has.
"""

from __future__ import annotations

import torch

from losslab.candidate import Candidate
from losslab.data import PatchSampler, SegmentationDataset, augment
from losslab.losses import compile_terms
from losslab.models import get_model
from losslab.training.config import TrainConfig
from losslab.training.state import TrainState
from losslab.training.trainer import _param_schedule, _schedules, start_context

__all__ = ["Batches", "build_model", "member_state"]


def build_model(config: TrainConfig, dataset: SegmentationDataset, device: torch.device):
    """The network of a run with ``config``, initialised from ``config.seed`` as it is alone."""
    torch.manual_seed(config.seed)
    return get_model(
        config.model,
        in_channels=dataset.images[0].shape[0],
        num_classes=dataset.num_classes,
        patch_size=config.patch_size,
        size=config.model_size,
        **config.model_overrides,
    ).to(device)


def member_state(
    config: TrainConfig,
    candidate: Candidate,
    data: SegmentationDataset,
    *,
    device: torch.device,
    sampler: PatchSampler,
    augment_generator: torch.Generator,
    val_patches: list,
    amp_dtype: torch.dtype | None,
) -> TrainState:
    """One member's state, as ``Trainer._setup`` makes it (see the module docstring).

    ``optimizer`` and ``trainable`` are set by the population once the members' networks are
    stacked; ``trainer`` is ``None`` (a member takes no step of its own).
    """
    class_schedule, term_schedule = _schedules(candidate, data)
    context = start_context(data, config.epochs)
    class_schedule.begin(context)
    model = build_model(config, data, device)
    return TrainState(
        sampler=sampler,
        augment_generator=augment_generator,
        val_patches=val_patches,
        param_schedule=_param_schedule(candidate),
        trainable=[p for p in model.parameters() if p.requires_grad],
        trainer=None,
        alphas=torch.tensor(candidate.term_weights, dtype=torch.float32, device=device),
        loss_values=candidate.loss_parameters(),
        config=config,
        candidate=candidate,
        dataset=data,
        device=device,
        model=model,
        optimizer=None,  # type: ignore[arg-type]  # the population's, once stacked
        loss=compile_terms(candidate.terms),
        class_schedule=class_schedule,
        term_schedule=term_schedule,
        class_weights=class_schedule.weights.to(device),
        term_weights=torch.tensor(candidate.term_weights, device=device),
        amp_dtype=amp_dtype,
        context=context,
    )


class Batches:
    """The training batches of a population whose members have the seeds ``seeds``.

    Args:
        sampler: the population's sampler (its own seed is replaced by each member's).
        seeds: every seed of the population.
        device: where the generators live.
        augment: whether batches are augmented (``TrainConfig.augment``).
    """

    def __init__(
        self, sampler: PatchSampler, seeds: list[int], device: torch.device, *, augment: bool
    ):
        distinct = list(dict.fromkeys(seeds))
        self.sampler, self.augment, self.swap = sampler, augment, len(distinct) > 1
        self.streams = {
            s: torch.Generator(device=device).manual_seed(s).get_state() for s in distinct
        }
        self.generators = {s: torch.Generator(device=device).manual_seed(s + 1) for s in distinct}
        if not self.swap:
            sampler.set_rng_state(self.streams[distinct[0]])

    def draw(self, seeds: list[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One step's batch of the members with ``seeds`` (in order).

        Returns:
            ``(images, labels)``: ``images [B, 1, *patch]`` when every member has the same seed
            (the batched network shares it), else ``[N, B, 1, *patch]``; one label tensor per
            member.
        """
        drawn: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for seed in dict.fromkeys(seeds):
            if self.swap:
                self.sampler.set_rng_state(self.streams[seed])
            images, labels = self.sampler.sample()
            if self.swap:
                self.streams[seed] = self.sampler.get_rng_state()
            if self.augment:
                images, labels = augment(images, labels, self.generators[seed])
            drawn[seed] = (images, labels)
        if len(drawn) == 1:
            images, labels = drawn[seeds[0]]
            return images, [labels] * len(seeds)
        return torch.stack([drawn[s][0] for s in seeds]), [drawn[s][1] for s in seeds]
