"""What the members of a population share and what each has of its own, built as ``Trainer`` would.

Each member's :class:`TrainState` is built by ``setup.run_state``, as ``Trainer._setup`` builds a
run's, but over data, a patch sampler and validation patches made once for the whole
population: a copy of the training split per member would cost N times the device memory for
the same tensors.

:class:`Batches` draws the training batches of the members: members that share a seed share
their patches (one draw), and members of other seeds draw from the same sampler with their own
random stream, swapped in and out with the sampler's public state methods (a host-side state
for the GPU's Philox generator: no sync), and each seed has its own augmentation generator
seeded ``seed + 1``, as a run alone has.
"""

from __future__ import annotations

import torch

from losslab.data import PatchSampler, augment

__all__ = ["Batches"]


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
