"""A probe batch and the cheap, network-free fitness of a loss on it.

A :class:`Probe` is a small fixed batch of integer labels and a starting point for the raw
logits. :func:`raw_logit_dice` optimises those logits directly (a leaf tensor, no network) with a
loss and reports the foreground Dice of their argmax before and after: a loss that cannot raise
the Dice of free logits will not teach a network to segment either. It serves the loss screen
(:mod:`losslab.search.gp.screening`) and, being deterministic and well under a second on a CPU, as
the fitness of quick genetic-programming runs::

    >>> from losslab.losses import get_loss
    >>> probe = Probe.synthetic()
    >>> start, end = raw_logit_dice(get_loss("dice"), probe)
    >>> end > start + 0.5
    True
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from losslab.losses import CompiledLoss, Terminals

if TYPE_CHECKING:
    from losslab.data.dataset import SegmentationDataset

__all__ = [
    "DEFAULT_LR",
    "DEFAULT_STEPS",
    "LOGIT_SCALE",
    "LogitRun",
    "Probe",
    "foreground_dice",
    "loss_function",
    "optimise_logits",
    "raw_logit_dice",
    "single_thread",
]

DEFAULT_STEPS = 150
# Adam moves every logit by about ``lr`` per step whatever the scale of the loss, so 150 steps of
# 0.1 can carry a logit ~15 units: far enough for a sound loss to reach a clean argmax, small
# enough that the run stays stable for the bounded losses of the language.
DEFAULT_LR = 0.1
# Starting logits are small (softmax nearly uniform, argmax random), like an untrained network's.
LOGIT_SCALE = 0.01

# Terminals that depend on the labels only: computed once per probe, not at every step.
_LABEL_TERMINALS = frozenset({"y", "fg", "dist", "w"})


@dataclass(frozen=True, eq=False)
class Probe:
    """A fixed batch to screen losses on: labels and the raw logits optimisation starts from.

    Attributes:
        logits: float32 ``[B, C, *spatial]``, the starting raw logits (small random values).
        labels: int64 ``[B, *spatial]``, values in ``0..C-1``, 0 the background.
    """

    logits: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        # The screen runs on the CPU: small batches, and no device sync in its many tiny steps.
        object.__setattr__(self, "logits", self.logits.detach().to("cpu", torch.float32))
        object.__setattr__(self, "labels", self.labels.detach().to("cpu", torch.int64))
        if self.logits.dim() < 3 or self.logits.shape[1] < 2:
            raise ValueError(f"logits must be [B, C>=2, *spatial], got {tuple(self.logits.shape)}")
        expected = (self.logits.shape[0], *self.logits.shape[2:])
        if tuple(self.labels.shape) != expected:
            raise ValueError(f"labels {tuple(self.labels.shape)} do not match logits {expected}")

    @property
    def num_classes(self) -> int:
        return int(self.logits.shape[1])

    @classmethod
    def synthetic(
        cls,
        num_classes: int = 4,
        shape: Sequence[int] = (16, 16, 16),
        batch: int = 2,
        seed: int = 0,
    ) -> Probe:
        """A deterministic volume of balls and boxes with an imbalanced class mix.

        Class 1 is a ball of radius ``0.3 * min(shape)`` (about 10% of the voxels), every later
        class a smaller ball or box (alternating) at a random place, each about half the radius
        of the one before and at least 1 voxel, so the last class is rare (below 1% of the
        voxels on the default shape). Shapes are painted from the largest to the smallest, so
        every class is present in every image; the rest is background.
        """
        if num_classes < 2:
            raise ValueError(f"a probe needs at least 2 classes, got {num_classes}")
        shape = tuple(int(s) for s in shape)
        generator = np.random.default_rng(seed)
        grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), axis=-1)
        labels = np.zeros((batch, *shape), dtype=np.int64)
        size = np.array(shape, dtype=float)
        for b in range(batch):
            radius = 0.3 * size.min()
            for c in range(1, num_classes):
                if c == 1:  # the large class, about the middle
                    centre = size / 2 - 0.5 + generator.uniform(-1, 1, len(shape))
                else:  # anywhere, inside the volume where it fits
                    low, high = np.minimum(radius, size / 2), np.maximum(size - radius, size / 2)
                    centre = generator.uniform(low, high)
                offset = grid - centre
                if c % 2:  # ball
                    mask = (offset**2).sum(-1) <= radius**2
                else:  # box
                    mask = (np.abs(offset) <= radius).all(-1)
                mask[tuple(np.round(np.clip(centre, 0, size - 1)).astype(int))] = True
                labels[b][mask] = c
                radius = max(1.0, radius / 2)
        return cls(_start_logits(batch, num_classes, shape, seed), torch.from_numpy(labels))

    @classmethod
    def from_dataset(
        cls,
        dataset: SegmentationDataset,
        *,
        patches: int = 2,
        patch_size: Sequence[int] = (16, 16, 16),
        seed: int = 0,
    ) -> Probe:
        """Label patches cropped from the training cases of a ``SegmentationDataset``.

        Patch ``i`` comes from a training case drawn at random; its centre is a voxel of a
        foreground class drawn uniformly among the classes present in that case (not in
        proportion to their volume), so rare classes get into the probe. The patch is shifted to
        lie inside the volume; a volume smaller than the patch is padded with background. All
        the cases are used when the dataset has no training split. Deterministic in ``seed``.
        """
        size = tuple(int(s) for s in patch_size)
        cases = list(dataset.splits.get("train", [])) or list(range(len(dataset)))
        if not cases:
            raise ValueError("the dataset has no case to take a probe from")
        generator = np.random.default_rng(seed)
        crops = []
        for _ in range(patches):
            labels = dataset.labels[cases[int(generator.integers(len(cases)))]].cpu()
            present = [c for c in torch.unique(labels).tolist() if c != 0]
            if present:
                target = present[int(generator.integers(len(present)))]
                voxels = torch.nonzero(labels == target)
                centre = voxels[int(generator.integers(len(voxels)))].tolist()
            else:
                centre = [s // 2 for s in labels.shape]
            crops.append(_crop(labels, centre, size))
        logits = _start_logits(patches, dataset.num_classes, size, seed)
        return cls(logits, torch.stack(crops))


def _start_logits(batch: int, num_classes: int, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return LOGIT_SCALE * torch.randn((batch, num_classes, *shape), generator=generator)


def _crop(labels: torch.Tensor, centre: list[int], size: tuple[int, ...]) -> torch.Tensor:
    """A ``size`` patch around ``centre``, inside the volume, padded with 0 where it is smaller."""
    pads = [max(0, s - d) for s, d in zip(size, labels.shape)]
    if any(pads):
        padding = [v for pad in reversed(pads) for v in (0, pad)]
        labels = torch.nn.functional.pad(labels, padding, value=0)
    slices = []
    for c, s, d in zip(centre, size, labels.shape):
        start = min(max(0, c - s // 2), d - s)
        slices.append(slice(start, start + s))
    return labels[tuple(slices)].clone().long()


def foreground_dice(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean hard Dice of ``argmax(logits)`` over the foreground classes present in ``labels``.

    Per class ``2|A∩B| / (|A| + |B|)`` pooled over the batch; classes ``1..C-1`` absent from
    the labels are left out (their Dice says nothing about the loss); 0 when no foreground
    class is present.
    """
    num_classes = logits.shape[1]
    predicted = logits.argmax(1).reshape(-1)
    target = labels.reshape(-1)
    both = torch.bincount(target[predicted == target], minlength=num_classes).double()
    sizes = torch.bincount(predicted, minlength=num_classes) + torch.bincount(
        target, minlength=num_classes
    )
    present = torch.bincount(target, minlength=num_classes) > 0
    present[0] = False
    if not present.any():
        return 0.0
    dice = 2 * both[present] / sizes[present].double()
    return float(dice.mean())


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch's CPU operations on one thread inside the block; the count is restored after.

    A probe holds about 10^5 values: a second thread gains little on them, and when the cores
    are busy (a training beside the search, tests in parallel) the threads waiting on each other
    made every step of the raw-logit run about thirty times slower.
    """
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class _ProbeTerminals(Terminals):
    """Terminals whose label-only values come from a store shared by every step of a run."""

    def __init__(self, shared: dict, **kwargs):
        super().__init__(**kwargs)
        self.shared = shared

    def get(self, name: str):
        if name not in _LABEL_TERMINALS:
            return super().get(name)
        if name not in self.shared:
            self.shared[name] = super().get(name)
        return self.shared[name]


def loss_function(loss, labels: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``logits -> scalar`` for ``loss`` on fixed ``labels``, reduced as the engine does.

    ``loss`` is a ``LossSpec`` or anything whose ``.compile()`` returns a callable
    ``(logits, labels) -> value``; a ``[C]`` value is reduced by its mean (uniform class
    weights), a scalar is used as is, and the values of a compound loss's terms are summed
    (unit term weights). For the language's own compiled losses the terminals that
    depend on the labels alone (the one-hot target, the distance maps of ``dist``: a SciPy
    distance transform per image and class) are computed once, not at every step.
    """
    compiled = loss.compile()
    shared: dict = {}

    def function(logits: torch.Tensor) -> torch.Tensor:
        if isinstance(compiled, CompiledLoss):
            values = compiled.evaluate(_ProbeTerminals(shared, logits=logits, labels=labels))
        else:
            values = compiled(logits, labels)
        if not isinstance(values, (list, tuple)):
            values = [values]
        reduced = []
        for value in values:
            value = torch.as_tensor(value, dtype=torch.float32)
            reduced.append(value if value.dim() == 0 else value.mean())
        return torch.stack(reduced).sum()

    return function


@dataclass
class LogitRun:
    """What :func:`optimise_logits` did.

    Attributes:
        start: foreground Dice of the starting logits.
        end: foreground Dice after the run (``start`` when it failed).
        steps: Adam steps taken.
        failure: why the run stopped early (a non-finite value or gradient), else ``""``.
        logits: the logits the run ended at ``[B, C, *spatial]`` (``None`` when it failed).
        lowest: the lowest value of the loss during the run (a loss with a pole or unbounded
            below dives there and comes back; ``inf`` before the first step).
    """

    start: float
    end: float
    steps: int = 0
    failure: str = ""
    logits: torch.Tensor | None = None
    lowest: float = math.inf

    @property
    def gain(self) -> float:
        return self.end - self.start


def raw_logit_dice(
    loss, probe: Probe, *, steps: int = DEFAULT_STEPS, lr: float = DEFAULT_LR
) -> tuple[float, float]:
    """Optimise the probe's logits directly with ``loss``; foreground Dice at the start and end.

    Adam on a copy of ``probe.logits`` (a leaf tensor, no network) for ``steps`` steps,
    minimising ``loss`` reduced as :func:`loss_function` does. A non-finite value or gradient
    stops the run as a failure: the end Dice is then the start Dice (no gain). Deterministic:
    the same loss and probe give the same numbers. Runs on the CPU, on one thread
    (:func:`single_thread`).
    """
    with single_thread():
        run = optimise_logits(loss_function(loss, probe.labels), probe, steps=steps, lr=lr)
    return run.start, run.end


def optimise_logits(
    function: Callable[[torch.Tensor], torch.Tensor],
    probe: Probe,
    *,
    steps: int = DEFAULT_STEPS,
    lr: float = DEFAULT_LR,
) -> LogitRun:
    """The run behind :func:`raw_logit_dice`, for a ``logits -> scalar`` function
    (:func:`loss_function`), with the reason of an early stop."""
    logits = probe.logits.detach().clone().requires_grad_(True)
    start = foreground_dice(logits.detach(), probe.labels)
    run = LogitRun(start, start)
    optimiser = torch.optim.Adam([logits], lr=lr)
    for step in range(steps):
        optimiser.zero_grad(set_to_none=True)
        value = function(logits)
        number = float(value.detach())
        if not math.isfinite(number):
            run.failure = f"non-finite loss {number} at step {step}"
            return run
        run.lowest = min(run.lowest, number)
        if not value.requires_grad:
            run.failure = "the loss has no gradient with respect to the logits"
            return run
        value.backward()
        if not bool(torch.isfinite(logits.grad).all()):
            run.failure = f"non-finite gradient at step {step}"
            return run
        optimiser.step()
        run.steps = step + 1
    run.logits = logits.detach()
    run.end = foreground_dice(run.logits, probe.labels)
    return run
