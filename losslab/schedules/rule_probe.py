"""A learned class rule checked on a probe of training states before anything trains with it.

:class:`~losslab.schedules.rules.RuleSchedule` keeps a class's weight wherever its rule is not
finite, so a rule that is NaN or infinite everywhere (``log(s - 2)``: the score is at most 1)
would train as uniform weights without a word, and a rule below 0 everywhere as weights 0. :func:`check_rule_values` evaluates the rule on
``PROBE_STATES`` seeded random states, each feature drawn within its range (scores and best
scores in [0, 1], epochs since the best in 0..20, frequencies, weights up to the cap, progress
in [0, 1], 2 to 14 classes), and refuses a rule that gives no finite foreground weight in any, or weight 0 to every
foreground class in all of them (``log(s - 2)``: the protected log floors its argument, so the
value is about -13.8 and the weights are clipped to 0).
"""

from __future__ import annotations

import random

import torch

from losslab.schedules.rules import Rule, parse_rule

__all__ = ["PROBE_STATES", "check_rule_values"]

PROBE_STATES = 64


def _states(cap: float) -> list[tuple[dict[str, torch.Tensor | float], int]]:
    draw = random.Random(0)  # the same probe in every process
    states = []
    for _ in range(PROBE_STATES):
        c = draw.randint(2, 14)
        s = [draw.random() for _ in range(c)]
        best = [max(x, draw.random()) for x in s]
        w = [draw.choice((1.0, 0.1, draw.uniform(0.0, cap))) for _ in range(c)]
        freq = [draw.random() for _ in range(c)]
        total = sum(freq)

        def vector(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float64)

        features: dict[str, torch.Tensor | float] = {
            "s": vector(s),
            "best": vector(best),
            "since": vector([float(draw.randint(0, 20)) for _ in range(c)]),
            "delta": vector([draw.uniform(-0.2, 0.2) for _ in range(c)]),
            "freq": vector([f / total for f in freq]),
            "w": vector(w),
            "frozen": vector([1.0 if x < 1 else 0.0 for x in w]),
            "fg": vector([0.0] + [1.0] * (c - 1)),
            "t": draw.random(),
            "nc": float(c),
        }
        states.append((features, c))
    return states


def check_rule_values(rule: Rule | str, cap: float = 2.0) -> None:
    """Refuse a rule that, in every probed state, is not finite for any foreground class
    (the schedule would keep every weight) or gives every foreground class weight 0 (the loss
    would ignore them all); the weights are ``clip(value, 0, cap)`` as the schedule sets them.

    Raises:
        ValueError: quoting the rule and saying what it would do.
    """
    rule = parse_rule(rule) if isinstance(rule, str) else rule
    finite = positive = False
    for features, classes in _states(cap):
        with torch.no_grad():
            values = rule.evaluate(features, num_classes=classes)[1:]
        ok = torch.isfinite(values)
        finite = finite or bool(ok.any())
        positive = positive or bool((values[ok].clamp(0.0, cap) > 0).any())
        if positive:
            return
    what = (
        "is NaN or infinite for every foreground class, so it would never change a weight"
        if not finite
        else "gives every foreground class weight 0, so the loss would ignore them all"
    )
    raise ValueError(
        f"the rule {rule} {what}, in every one of {PROBE_STATES} probed training states "
        "(scores in [0, 1], weights up to the cap...); check its domain and sign (the "
        "protected log floors its argument: log(s - 2) is log(1e-6) < 0)"
    )
