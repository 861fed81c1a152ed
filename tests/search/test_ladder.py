"""The fidelity ladder: its YAML, the promotion rule on scripted entries, and a real 2-rung study."""

from __future__ import annotations

import math

import pytest

from losslab.errors import ConfigError
from losslab.search import load_study, run_study
from losslab.search.backend import TrialRecord
from losslab.search.fidelity import Fidelity
from losslab.search.ladder import Ladder, LadderJob, Rung, ladder_jobs, promotable

from .studies import write_study

THREE = Ladder(
    (Rung(Fidelity(epochs=1)), Rung(Fidelity(epochs=2)), Rung(Fidelity(epochs=4), seeds=3)),
    keep=0.5,
)


def entry(number, value, rung=0, root=None, seed=0, status="ok") -> TrialRecord:
    return TrialRecord(number, None, status, value, rung=rung, root=root, seed=seed)


def test_the_best_share_of_a_rung_is_promotable_failed_and_pruned_never():
    rung = {n: {0: entry(n, v)} for n, v in enumerate([0.5, 0.9, 0.7, 0.8])}
    assert promotable(THREE, rung) == [1, 3]  # floor(0.5 * 4) = 2, best first
    rung[1] = {0: entry(1, math.nan, status="failed")}
    rung[3] = {0: entry(3, 0.95, status="pruned")}
    assert promotable(THREE, rung) == [2, 0]  # the failed and the pruned rank last
    assert promotable(THREE, {0: {0: entry(0, 0.9)}}) == []  # floor(0.5 * 1) = 0


def test_jobs_come_races_first_then_promotions_from_the_top_down():
    records = [entry(0, 0.6), entry(1, 0.9), entry(2, 0.8), entry(3, 0.7)]
    assert ladder_jobs(THREE, records) == [LadderJob(1, 1), LadderJob(1, 2)]
    records += [entry(4, 0.91, rung=1, root=1), entry(5, 0.85, rung=1, root=2)]
    assert ladder_jobs(THREE, records)[0] == LadderJob(2, 1)  # rung 1 -> 2 before 0 -> 1
    records += [entry(6, 0.92, rung=2, root=1)]
    jobs = ladder_jobs(THREE, records)
    assert jobs[0] == LadderJob(2, 1, seed=1)  # a race seed first
    # A position an entry holds (running, queued) is not offered again; a dropped racer is
    # fed no seed.
    assert LadderJob(2, 1, 1) not in ladder_jobs(THREE, records, taken=[(2, 1, 1)])
    assert all(j.root != 1 or j.rung < 2 for j in ladder_jobs(THREE, records, eliminated=[1]))


def test_a_plain_fidelity_is_one_rung_with_no_jobs():
    ladder = Ladder.single(Fidelity(epochs=3))
    assert ladder.plain and ladder_jobs(ladder, [entry(0, 0.9), entry(1, 0.8)]) == []


@pytest.mark.parametrize(
    ("fidelity", "key"),
    [
        ({"rungs": []}, "fidelity.rungs"),
        ({"rungs": [{"epochs": 0}]}, "fidelity.rungs[0]"),
        ({"rungs": [{"epochs": 1, "seeds": 2}, {"epochs": 2}]}, "fidelity.rungs[0].seeds"),
        ({"rungs": [{"epochs": 1}], "keep": 1.5}, "fidelity.keep"),
        ({"rungs": [{"epochs": 1}], "kep": 0.5}, "fidelity.kep"),
        ({"rungs": [{"epochs": 1}, {"epochs": 2, "seeds": "3"}]}, "fidelity.rungs[1].seeds"),
    ],
)
def test_a_bad_ladder_is_refused_naming_its_key(tmp_path, fidelity, key):
    with pytest.raises(ConfigError) as error:
        load_study(write_study(tmp_path, fidelity=fidelity))
    assert f": {key}" in str(error.value)


def test_a_ladder_study_is_another_study_and_its_rung_zero_is_the_search_fidelity(tmp_path):
    plain = load_study(write_study(tmp_path, fidelity={"epochs": 1, "steps_per_epoch": 2}))
    ladder = load_study(
        write_study(
            tmp_path,
            name="ladder.yaml",
            fidelity={"rungs": [{"epochs": 1, "steps_per_epoch": 2}, {"epochs": 2}]},
        )
    )
    assert ladder.fidelity == plain.fidelity  # what compare and the backends call "search"
    assert ladder.fingerprint != plain.fingerprint
    assert "->" in ladder.run_params("x")["fidelity"]


@pytest.mark.slow
def test_a_two_rung_study_trains_on_the_tiny_phantom(tmp_path):
    config = load_study(
        write_study(
            tmp_path,
            fidelity={
                "rungs": [{"epochs": 1, "steps_per_epoch": 2}, {"epochs": 2, "steps_per_epoch": 2}],
                "keep": 0.5,
            },
            budget={"trials": 3},
        )
    )
    outcome = run_study(config, progress=False)
    rungs = sorted(r.rung for r in outcome.records)
    assert rungs == [0, 0, 1]  # two proposals, the better promoted
    (promoted,) = [r for r in outcome.records if r.rung == 1]
    firsts = {r.number: r for r in outcome.records if r.rung == 0}
    assert firsts[promoted.root].value >= max(r.value for r in firsts.values())
    assert promoted.candidate.key == firsts[promoted.root].candidate.key
    assert promoted.eval_key != firsts[promoted.root].eval_key  # another fidelity, another key
    assert outcome.verdict is not None and outcome.verdict.sentence
    assert outcome.winner is not None and outcome.winner.number == promoted.number


def test_a_finished_ladder_study_ranks_its_verdicts_winner_first(tmp_path):
    from losslab.analysis.finished import open_finished
    from losslab.testing.fakes import FakeTrainer
    from losslab.testing.ladder_contract import LADDER

    FakeTrainer.test_cases = 4
    config = load_study(write_study(tmp_path, fidelity=LADDER, budget={"trials": 10}))
    outcome = run_study(config, progress=False, trainer=FakeTrainer)
    finished = open_finished(config)
    ranked = finished.ranked()
    assert ranked[0].number == outcome.winner.number  # what export and compare take first
    assert finished.outcome().verdict.sentence == outcome.verdict.sentence
    roots = [r.number if r.root is None else r.root for r in ranked]
    assert len(roots) == len(set(roots))


def test_the_summary_names_a_promoted_trial_by_its_proposal_as_the_verdict_does(tmp_path):
    from losslab.search.ladder import root_of
    from losslab.search.study_verdict import trial_label
    from losslab.search.summary import summary_rows
    from losslab.testing.fakes import FakeTrainer
    from losslab.testing.ladder_contract import LADDER

    FakeTrainer.test_cases = 4
    config = load_study(write_study(tmp_path, fidelity=LADDER, budget={"trials": 10}))
    outcome = run_study(config, progress=False, trainer=FakeTrainer)
    winner = outcome.winner
    assert winner is not None and root_of(winner) != winner.number  # promoted to the top
    assert trial_label(winner).startswith(f"trial {root_of(winner)} ")
    (row,) = [r for r in summary_rows(outcome) if r["run_id"] == winner.run_id]
    assert row["where"] == f"trial {root_of(winner)}, rung {winner.rung} (#{winner.number})"
    assert row["label"].endswith(f"(#{root_of(winner)} at rung {winner.rung})")
    firsts = [r for r in summary_rows(outcome) if r["where"].endswith(", rung 0")]
    assert all(r["where"].startswith(("trial ", "baseline")) for r in firsts)


def test_compare_reads_the_baselines_search_value_at_the_compared_trials_rung(tmp_path):
    from losslab.analysis.comparison import _entrants
    from losslab.analysis.finished import open_finished
    from losslab.testing.fakes import FakeTrainer
    from losslab.testing.ladder_contract import LADDER

    FakeTrainer.test_cases, FakeTrainer.epoch_gain = 4, 0.5
    config = load_study(write_study(tmp_path, fidelity=LADDER, budget={"trials": 10}))
    run_study(config, progress=False, trainer=FakeTrainer)
    finished = open_finished(config)
    top = max(r.rung for r in finished.ranked()[:1])
    assert top > 0
    entrants = _entrants([finished], 1)
    at_top = {e.candidate.name: e.value for e in finished.baselines(rung=top)}
    at_zero = {e.candidate.name: e.value for e in finished.baselines(rung=0)}
    baselines = [e for e in entrants if e.role == "baseline"]
    assert baselines and all(e.search_value == at_top[e.label] for e in baselines)
    assert any(at_top[name] != at_zero[name] for name in at_top)  # the test can tell them apart
    (trial,) = [e for e in entrants if e.role == "candidate"]
    winner = finished.ranked()[0]
    assert winner.root is not None and trial.label == f"trial-{winner.root:03d}"  # as the verdict
