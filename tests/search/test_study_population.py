"""A study trains a batch (a GP generation) as populations, with the results it gets one at a
time."""

from __future__ import annotations

import math

import pytest

from losslab.search import load_study, run_study
from losslab.training import PopulationTrainer

from .studies import write_study

pytestmark = pytest.mark.slow

GP = {
    "backend": "gp",
    "space": {"target": "loss", "seeds": ["dice", "ce", "focal", "tversky"]},
    "gp": {"population": 4, "generations": 1, "screen_steps": 60},
    "budget": {"trials": 4},
    "baselines": [],
}


def _values(outcome):
    return {r.candidate.key: r.value for r in outcome.records}


def test_a_generation_trains_as_one_population_with_the_same_results(tmp_path, monkeypatch):
    sizes = []
    real = PopulationTrainer.fit_many

    def spy(self, candidates, *args, **kwargs):
        results = real(self, candidates, *args, **kwargs)
        sizes.extend(self.sizes)
        return results

    monkeypatch.setattr(PopulationTrainer, "fit_many", spy)
    (tmp_path / "alone").mkdir()
    (tmp_path / "together").mkdir()
    alone = run_study(
        load_study(write_study(tmp_path / "alone", **GP, workers={"population": 1})),
        progress=False,
    )
    assert sizes == []  # population 1: the plain trainer, one at a time
    together = run_study(
        load_study(write_study(tmp_path / "together", **GP, workers={"population": 4})),
        progress=False,
    )
    assert sizes and max(sizes) >= 2  # trained together
    assert all(r.status == "ok" for r in together.records)
    one, many = _values(alone), _values(together)
    assert one.keys() == many.keys() and len(one) >= 2
    for key in one:  # Adam turns rounding noise into small weight differences: see population.py
        assert math.isclose(one[key], many[key], abs_tol=2e-3), (key, one[key], many[key])
    assert together.trained == alone.trained == len(one)
