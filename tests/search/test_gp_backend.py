"""The gp backend in a study: its section and space are checked by name, a generation is a
batch of screened individuals, the search stops after its generations, and the parent run
records each generation (fitness, screen counts, best expression). Budget, resume, workers and
NaN candidates are the contract test's (``test_backend_contract.py``)."""

from __future__ import annotations

import pytest

from losslab.config import ConfigError
from losslab.search import load_study, run_study
from losslab.tracking.tracker import Tracker

from .fakes import FakeTrainer
from .studies import write_study

LOSS_SPACE = {"target": "loss", "seeds": ["dice", "ce", "focal"]}
SMALL = {"population": 4, "generations": 2, "screen_steps": 40}


@pytest.fixture(autouse=True)
def _fresh_fake():
    FakeTrainer.trained, FakeTrainer.fail_every, FakeTrainer.epoch_seconds = [], 0, 0.0
    yield


def _write(folder, **changes):
    return write_study(folder, backend="gp", **{"space": LOSS_SPACE, "gp": SMALL, **changes})


@pytest.mark.parametrize(
    ("gp", "where"),
    [
        ({"populaton": 4}, "gp.populaton"),
        ({"cxpb": 1.5}, "gp.cxpb"),
        ({"height_limit": 40}, "gp.height_limit"),
        ({"tournament_size": 0}, "gp.tournament_size"),
        ({"generations": "many"}, "gp.generations"),
    ],
)
def test_a_bad_gp_setting_is_named(tmp_path, gp, where):
    with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
        load_study(_write(tmp_path, gp=gp))


@pytest.mark.parametrize(
    ("space", "where"),
    [
        ({"target": "optimizer"}, "space.target"),
        ({"target": "loss", "seeds": ["no_such_loss"]}, r"space.seeds\[0\]"),
        ({"target": "loss", "loss": {"dice": {}}}, "space.loss"),
        (
            {"target": "loss", "class_schedule": {"tcf": {"threshold": {"float": [0.5, 0.9]}}}},
            "space.class_schedule.tcf.threshold",
        ),
        ({"target": "class_schedule"}, "space.loss"),
        ({"target": "class_schedule", "loss": "dice", "seeds": ["where(q > 1, 1, 0)"]}, "q"),
    ],
)
def test_a_space_the_gp_backend_cannot_search_is_named(tmp_path, space, where):
    with pytest.raises(ConfigError, match=where):
        load_study(_write(tmp_path, space=space))


def test_a_gp_study_trains_screened_generations_and_records_each(tmp_path):
    config = load_study(_write(tmp_path, budget={"trials": 50}))
    outcome = run_study(config, progress=False, trainer=FakeTrainer)
    generations = {r.params["gp.generation"] for r in outcome.records}
    assert generations == {0, 1}  # stops after its generations, below the budget
    first = [r for r in outcome.records if r.params["gp.generation"] == 0]
    assert {r.params["gp.expression"] for r in first} >= {
        "1 - (2 * vsum(p * y) + 1e-05) / (vsum(p) + vsum(y) + 1e-05)",
        "nc * vmean(-y * logp)",
    }
    texts = [r.params["gp.expression"] for r in outcome.records]
    assert len(texts) == len(set(texts))  # the screen trains no canonical duplicate
    tracker = Tracker(config.tracking_uri, experiment=config.experiment)
    client = tracker.client
    parent = client.get_run(outcome.parent_run_id)
    history = {m.step for m in client.get_metric_history(parent.info.run_id, "gp/best")}
    assert history == {0, 1}
    screened = client.get_metric_history(parent.info.run_id, "screen/passed")
    assert [m.value for m in sorted(screened, key=lambda m: m.step)][0] == len(first)
    assert parent.data.tags["gp.best_expression"] in texts
    best = max(outcome.records, key=lambda r: r.value)
    assert parent.data.tags["gp.best_expression"] == best.params["gp.expression"]
    runs = [r for r in tracker.find_runs() if r.tags.get("losslab.role") == "trial"]
    assert {r.tags["losslab.gp.generation"] for r in runs} == {"0", "1"}


def test_a_gp_study_of_class_schedule_rules_trains_rule_candidates(tmp_path):
    space = {"target": "class_schedule", "loss": "dice"}
    config = load_study(_write(tmp_path, space=space, budget={"trials": 6}))
    outcome = run_study(config, progress=False, trainer=FakeTrainer)
    assert outcome.records
    for record in outcome.records:
        schedule = record.candidate.class_schedule
        assert schedule.name == "rule"
        assert dict(schedule.params)["expression"] == record.params["gp.expression"]
        assert [t.expression for t in record.candidate.terms] == [
            "1 - (2 * vsum(p * y) + eps) / (vsum(p) + vsum(y) + eps)"
        ]


def test_a_kill_while_a_generation_is_stored_resumes_as_if_uninterrupted(tmp_path, monkeypatch):
    """The generation's screen memory is written before its commit (its number): a kill in
    between must not leave the screen remembering verdicts of a generation bred again."""
    from losslab.search.store.cache import AttrState

    (tmp_path / "plain").mkdir()
    (tmp_path / "killed").mkdir()
    plain = load_study(
        _write(tmp_path / "plain", budget={"trials": 50}, gp={**SMALL, "generations": 3})
    )
    expected = [
        r.params["gp.expression"]
        for r in run_study(plain, progress=False, trainer=FakeTrainer).records
    ]

    killed = load_study(
        _write(tmp_path / "killed", budget={"trials": 50}, gp={**SMALL, "generations": 3})
    )
    put, seen = AttrState.put, []

    def dying_put(self, key, value):
        if key == "reused":
            seen.append(key)
            if len(seen) == 2:  # generation 1: its screen is written, its number not yet
                raise KeyboardInterrupt("killed while storing a generation")
        return put(self, key, value)

    monkeypatch.setattr(AttrState, "put", dying_put)
    with pytest.raises(KeyboardInterrupt):
        run_study(killed, progress=False, trainer=FakeTrainer)
    monkeypatch.setattr(AttrState, "put", put)
    resumed = run_study(killed, resume=True, progress=False, trainer=FakeTrainer)
    assert [r.params["gp.expression"] for r in resumed.records] == expected


def test_on_a_ladder_parents_are_ranked_by_the_rung_reached_then_by_rung_zero_fitness():
    from types import SimpleNamespace

    from losslab.search.backend import TrialRecord
    from losslab.search.gp.backend import EXPRESSION, GpBackend, rank_parents

    def entry(number, text, value, rung=0, root=None):
        return TrialRecord(
            number, None, "ok", value, params={EXPRESSION: text}, rung=rung, root=root
        )

    records = [entry(0, "a", 0.6), entry(1, "b", 0.8), entry(2, "c", 0.7), entry(3, "a", 0.9, 1, 0)]
    backend = object.__new__(GpBackend)
    backend.context = SimpleNamespace(records=lambda: records, state={"reused": {}})
    fitness = backend._fitness()
    assert fitness == {"a": 0.6, "b": 0.8, "c": 0.7}  # rung 0 only: comparable values
    reached = backend._reached()
    assert reached == {"a": 1, "b": 0, "c": 0}
    assert [t for t, _ in rank_parents(fitness, reached, 2)] == ["a", "b"]
    assert [t for t, _ in rank_parents(fitness, {}, 3)] == ["b", "c", "a"]
