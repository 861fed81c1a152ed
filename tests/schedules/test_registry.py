"""Registry lookups and the contract every registered schedule must satisfy."""

from __future__ import annotations

import json

import pytest
import torch

from losslab.schedules import (
    get_class_schedule,
    get_term_schedule,
    list_class_schedules,
    list_term_schedules,
)

from .helpers import contexts

C = 4
CLASS_PARAMS = {
    "inverse_frequency": {"frequencies": [0.9, 0.05, 0.04, 0.01]},
    "median_frequency": {"frequencies": [0.9, 0.05, 0.04, 0.01]},
    "pcf": {"epsilon": 0.001},
    "cbs": {"epsilon": 0.001},
    "rule": {"expression": "clamp(w + delta, 0.1, 2)"},  # reads the previous scores and weights
}


def class_scores(n: int) -> list[list[float]]:
    g = torch.Generator().manual_seed(0)
    rows = torch.rand(n, C, generator=g).tolist()
    rows[3][2] = float("nan")
    return rows


def build_class(name: str, params: dict):
    return get_class_schedule(name, num_classes=C, **params)


CONTRACT_CASES = [(name, CLASS_PARAMS.get(name, {})) for name in list_class_schedules()]
# the frequency schedules also without frequencies: they take the context's in begin()
CONTRACT_CASES += [("inverse_frequency", {}), ("median_frequency", {})]


@pytest.mark.parametrize(("name", "params"), CONTRACT_CASES)
def test_class_schedule_contract(name, params):
    rows = class_scores(10)
    start, *ctxs = contexts(rows)
    a = build_class(name, params)
    a.begin(start)
    first = [a.update(ctx) for ctx in ctxs[:6]]
    state = json.loads(json.dumps(a.state_dict(), allow_nan=False))
    b = get_class_schedule(name, num_classes=C, **a.get_params())
    assert b.get_params() == a.get_params()
    b.load_state_dict(state)
    assert torch.equal(b.weights, a.weights)
    rest_a = [a.update(ctx) for ctx in ctxs[6:]]
    rest_b = [b.update(ctx) for ctx in ctxs[6:]]
    fresh = build_class(name, params)
    fresh.begin(start)
    again = [fresh.update(ctx) for ctx in ctxs]
    for w, v in zip(first + rest_a, again):
        assert w.shape == (C,) and w.dtype == torch.float32
        assert torch.isfinite(w).all()
        assert torch.equal(w, v)
    for w, v in zip(rest_a, rest_b):
        assert torch.equal(w, v)


TERM_PARAMS = {"softadapt": {"window": 3, "loss_weighted": True}}


@pytest.mark.parametrize("name", list_term_schedules())
def test_term_schedule_contract(name):
    g = torch.Generator().manual_seed(1)
    values = torch.rand(12, 2, generator=g) + 0.1
    total = len(values)
    a = get_term_schedule(name, num_terms=2, **TERM_PARAMS.get(name, {}))
    first = [a.step(t, total, values[t]).clone() for t in range(6)]
    state = json.loads(json.dumps(a.state_dict(), allow_nan=False))
    b = get_term_schedule(name, num_terms=2, **a.get_params())
    assert b.get_params() == a.get_params()
    b.load_state_dict(state)
    rest_a = [a.step(t, total, values[t]).clone() for t in range(6, total)]
    rest_b = [b.step(t, total, values[t]).clone() for t in range(6, total)]
    fresh = get_term_schedule(name, num_terms=2, **TERM_PARAMS.get(name, {}))
    again = [fresh.step(t, total, values[t]).clone() for t in range(total)]
    for w, v in zip(first + rest_a, again):
        assert w.shape == (2,) and torch.isfinite(w).all()
        assert torch.equal(w, v)
    for w, v in zip(rest_a, rest_b):
        assert torch.equal(w, v)


def test_aliases_resolve_to_the_same_schedule():
    assert type(get_class_schedule("plateau_class_freezing", num_classes=3)).name == "pcf"
    assert type(get_class_schedule("Threshold_Class_Freezing", num_classes=3)).name == "tcf"
    assert type(get_class_schedule("class_boost_strategy", num_classes=3)).name == "cbs"
    assert type(get_term_schedule("cov_weighting", num_terms=3)).name == "cov"


def test_unknown_names_and_params_are_named():
    with pytest.raises(ValueError, match="'nope'.*pcf"):
        get_class_schedule("nope", num_classes=3)
    with pytest.raises(ValueError, match="treshold.*threshold"):
        get_class_schedule("tcf", num_classes=3, treshold=0.5)
    with pytest.raises(ValueError, match="'nope'.*softadapt"):
        get_term_schedule("nope", num_terms=2)
    with pytest.raises(ValueError, match="betta.*beta"):
        get_term_schedule("softadapt", num_terms=2, betta=0.5)
    with pytest.raises(ValueError, match="threshold must be in"):
        get_class_schedule("tcf", num_classes=3, threshold=1.5)
