"""A backend built on nothing but the study store, for the backend contract test; the fake
trainer is ``losslab.testing``'s."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import ClassVar

from losslab.candidate import Candidate
from losslab.losses import resolve_loss
from losslab.search import Proposal, SearchBackend, Slot, SpaceError, register_backend
from losslab.testing.fakes import FakeTrainer, StopAfter  # noqa: F401


@register_backend
class RandomBatchBackend(SearchBackend):
    """Random draws three at a time, with no Optuna: its draw counter lives in the store, so a
    resumed study or a second worker goes on to new candidates. A structural space part,
    ``space.expressions`` (loss texts), is drawn from when given."""

    name: ClassVar[str] = "batch_random"
    space_keys: ClassVar[frozenset[str]] = frozenset({"expressions"})

    @classmethod
    def check_space(cls, space) -> None:
        texts = space.structure.get("expressions", [])
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise SpaceError("space.expressions", f"a list of loss expressions, got {texts!r}")
        for k, text in enumerate(texts):
            try:
                resolve_loss(text)
            except ValueError as exc:
                raise SpaceError(f"space.expressions[{k}]", str(exc)) from None

    def batch_size(self) -> int:
        return 3

    def ask(self, slots: Sequence[Slot]) -> list[Proposal]:
        state = self.context.state
        drawn = state.get("drawn", 0)
        proposals = []
        for _ in slots:
            rng = random.Random(self.context.seed * 1_000_003 + drawn)
            drawn += 1
            texts = self.context.space.structure.get("expressions")
            if texts:
                text = rng.choice(texts)
                candidate, overrides = Candidate.from_loss(resolve_loss(text), name=text), {}
            else:
                candidate, overrides = self.context.space.build(
                    lambda name, dist, rng=rng: dist.sample(rng)
                )
            proposals.append(Proposal(candidate, overrides, {"draw": drawn}))
        state.put("drawn", drawn)
        return proposals
