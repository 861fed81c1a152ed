"""What the loss screen says of one loss (:class:`Verdict`), shared by the screen and its
saved state."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from losslab.losses import LossSpec

__all__ = ["Verdict"]


@dataclass(frozen=True)
class Verdict:
    """What the screen said of one loss.

    Attributes:
        stage: the stage of :data:`STAGES` that rejected the loss, ``None`` when it passed (it
            is to be trained).
        reason: human-readable detail.
        spec: the parsed loss (``None`` when it is ``invalid``).
        same_as: for ``duplicate`` and ``gradient_duplicate``, the canonical text of the loss
            that passed before and whose fitness applies.
        gradient_hash: sha256 of the rounded gradient sketch (set from stage 6 on).
        gain: foreground Dice gained by the raw-logit run (set from stage 5 on, else NaN), a
            cheap proxy of the loss's fitness.
    """

    stage: str | None
    reason: str = ""
    spec: LossSpec | None = None
    same_as: str = ""
    gradient_hash: str = ""
    gain: float = math.nan

    @property
    def passed(self) -> bool:
        return self.stage is None
