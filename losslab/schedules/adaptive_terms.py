"""Term schedules driven by the loss values themselves: SoftAdapt and CoV weighting (Hun 2021)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from losslab.schedules.term_schedules import TermSchedule, on_device


def _tensor_state(value: Tensor | None) -> list[Any] | None:
    return None if value is None else value.tolist()


def _load_tensor(value: list[Any] | None) -> Tensor | None:
    return None if value is None else torch.tensor(value, dtype=torch.float32)


class SoftAdapt(TermSchedule):
    """SoftAdapt (Heydari et al., used by Hun 2021): ``alpha = softmax(beta * s)``.

    ``s_k`` is the slope of the last ``window`` values of term ``k``; choice: the mean first
    difference ``(L(t) - L(t - n + 1)) / (n - 1)``, which is ``L(t) - L(t - 1)`` for the default
    ``window = 2``. The max is subtracted before ``exp``. ``normalized`` divides the slopes by
    ``sum_l |s_l| + eps``; ``loss_weighted`` multiplies ``exp(beta s_k)`` by the current
    ``max(|L_k|, eps)`` and renormalises. Weights are uniform (``1 / K``) until ``window`` values
    were seen; they are always finite, >= 0 and sum to 1.

    Signed or zero terms (the boundary loss is 0 on a background-only batch and negative once the
    prediction sits inside the target): the slopes keep their sign (a term that falls gets less
    weight, whatever its sign), but the loss weighting uses the magnitude ``|L_k|``, because a
    negative weight would make the optimiser maximise that term; the floor ``eps`` keeps the
    normaliser > 0 when every term is 0 (a term at 0 gets a weight near 0 for that step).
    """

    name = "softadapt"

    def __init__(
        self,
        num_terms: int,
        *,
        beta: float = 0.1,
        window: int = 2,
        loss_weighted: bool = False,
        normalized: bool = False,
        eps: float = 1e-8,
    ) -> None:
        super().__init__(num_terms)
        if int(window) != window or window < 2:
            raise ValueError(f"window must be an integer >= 2, got {window!r}")
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        self.beta = beta
        self.window = window
        self.loss_weighted = loss_weighted
        self.normalized = normalized
        self.eps = eps
        self._weights = torch.full((self.num_terms,), 1.0 / self.num_terms)
        self._history: Tensor | None = None  # [window, K], newest last
        self._seen = 0

    def step(self, step: int, total_steps: int, term_values: Tensor | None = None) -> Tensor:
        values = self._values(term_values)
        if self._history is None:
            self._history = values.new_zeros(self.window, self.num_terms)
        history = self._history.to(values.device)
        self._history = torch.cat([history[1:], values[None]])
        self._seen += 1
        if self._seen < self.window:
            if self._weights.device != values.device:  # written there, not copied from the host
                self._weights = on_device(self._weights.tolist(), values.device)
            return self._weights
        slopes = (self._history[-1] - self._history[0]) / (self.window - 1)
        if self.normalized:
            slopes = slopes / (slopes.abs().sum() + self.eps)
        logits = self.beta * slopes
        unnormalised = torch.exp(logits - logits.max())
        if self.loss_weighted:
            unnormalised = unnormalised * values.abs().clamp_min(self.eps)
        self._weights = unnormalised / unnormalised.sum()
        return self._weights

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        return {**state, "history": _tensor_state(self._history), "seen": self._seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._history = _load_tensor(state["history"])
        self._seen = int(state["seen"])


class CoVWeighting(TermSchedule):
    """CoV weighting (Groenendijk et al. 2021, used by Hun 2021).

    ``l_k(t) = L_k(t) / mean_{s<t} L_k(s)`` (``l = 1`` at the first step) and
    ``alpha_k = (1/z) sigma(l_k) / mu(l_k)`` with ``z`` making the weights sum to 1, the statistics
    of ``l`` being Welford running mean and (population) standard deviation. Follows the reference
    implementation (rickgroen/cov-weighting): weights are uniform for the first two steps, and the
    weights of step ``t`` use the statistics of ``l`` up to ``t - 1``; ``sigma = sqrt(var + 1e-8)``.
    ``mean_decay`` (None = plain running means) replaces the running means by decaying ones.

    Signed or zero terms (the boundary loss is 0 on a background-only batch, then negative): the
    ratios use magnitudes, ``l_k = |L_k| / mean |L_k|``, since a negative ratio gives a negative
    weight, which maximises that term. A term whose running mean magnitude is ``<= eps`` has no
    scale to compare with yet and gets ``l_k = 1`` (instead of a division by 0, which made every
    weight NaN), and ``mu(l_k)`` is floored at ``eps``. So the weights are always finite, >= 0
    and sum to 1. On positive terms nothing changes.
    """

    name = "cov"

    def __init__(
        self, num_terms: int, *, mean_decay: float | None = None, eps: float = 1e-8
    ) -> None:
        super().__init__(num_terms)
        if mean_decay is not None and not 0.0 <= mean_decay < 1.0:
            raise ValueError(f"mean_decay must be None or in [0, 1), got {mean_decay!r}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        self.mean_decay = mean_decay
        self.eps = eps
        self._weights = torch.full((self.num_terms,), 1.0 / self.num_terms)
        self._seen = 0
        self._mean_loss: Tensor | None = None
        self._mean_ratio: Tensor | None = None
        self._m2_ratio: Tensor | None = None

    def step(self, step: int, total_steps: int, term_values: Tensor | None = None) -> Tensor:
        values = self._values(term_values).abs()  # magnitudes: see the class docstring
        device = values.device
        if self._mean_loss is None:
            self._mean_loss = values.clone()
            self._mean_ratio = torch.zeros_like(values)
            self._m2_ratio = torch.zeros_like(values)
        mean_loss = self._mean_loss.to(device)
        mean_ratio = self._mean_ratio.to(device)  # type: ignore[union-attr]
        m2_ratio = self._m2_ratio.to(device)  # type: ignore[union-attr]
        scaled = mean_loss > self.eps
        if self._seen > 0:
            ratio = torch.where(scaled, values / mean_loss.clamp_min(self.eps), 1.0)
        else:
            ratio = torch.ones_like(values)
        if self._seen < 2:
            self._weights = torch.full_like(values, 1.0 / self.num_terms)
        else:
            std = torch.sqrt(m2_ratio / self._seen + 1e-8)
            cov = std / mean_ratio.clamp_min(self.eps)
            self._weights = cov / cov.sum()
        if self._seen == 0:
            keep = 0.0
        elif self.mean_decay is not None:
            keep = self.mean_decay
        else:
            keep = 1.0 - 1.0 / (self._seen + 1)
        new_mean_ratio = keep * mean_ratio + (1.0 - keep) * ratio
        self._m2_ratio = m2_ratio + (ratio - mean_ratio) * (ratio - new_mean_ratio)
        self._mean_ratio = new_mean_ratio
        self._mean_loss = keep * mean_loss + (1.0 - keep) * values
        self._seen += 1
        return self._weights

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "seen": self._seen,
            "mean_loss": _tensor_state(self._mean_loss),
            "mean_ratio": _tensor_state(self._mean_ratio),
            "m2_ratio": _tensor_state(self._m2_ratio),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._seen = int(state["seen"])
        self._mean_loss = _load_tensor(state["mean_loss"])
        self._mean_ratio = _load_tensor(state["mean_ratio"])
        self._m2_ratio = _load_tensor(state["m2_ratio"])
