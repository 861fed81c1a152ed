"""The statistics of a comparison on scripted results, against values computed by hand."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from losslab.analysis.compare_tables import class_table, summary_table
from losslab.analysis.comparison import Comparison, Entrant
from losslab.analysis.comparison_stats import compute_stats
from losslab.config import parse_candidate
from losslab.search.fidelity import Fidelity
from losslab.search.objective import Objective
from losslab.stats import BETTER, WORSE
from losslab.training import Result

CLASSES = ["background", "liver", "tumour"]
CASES = ["a", "b", "c"]


def _result(rows: list[list[float]]) -> Result:
    """A result whose test cases have the given per-class Dice (background first)."""
    mean = [sum(col) / len(col) for col in zip(*rows)]
    return Result(
        "ok",
        CLASSES,
        test_metrics={"dice": mean},
        test_cases={"dice": rows},
        test_case_ids=CASES,
    )


def _entrant(label: str, role: str, search: float, per_seed: list[list[list[float]]]) -> Entrant:
    return Entrant(
        label,
        role,
        parse_candidate({"name": label, "loss": "dice"}, label),
        search_value=search,
        results=[_result(rows) for rows in per_seed],
    )


def _comparison(entrants: list[Entrant]) -> Comparison:
    dataset = SimpleNamespace(
        num_classes=3,
        class_names=CLASSES,
        splits={"test": [0, 1, 2]},
        foreground_shares=lambda: [0.9, 0.1],
    )
    config = SimpleNamespace(objective=Objective(), name="scripted")
    return Comparison(config, "final", Fidelity(epochs=9), [0, 1, 2], dataset, entrants, "base")


def _scripted():
    # 3 seeds x 3 cases. The candidate beats the baseline on the liver in all nine (seed, case)
    # pairs, by distinct amounts 0.01 .. 0.09; on the tumour both are equal everywhere.
    base = [[[1.0, 0.5, 0.3] for _ in CASES] for _ in range(3)]
    better = [[[1.0, 0.5 + 0.01 * (3 * s + c + 1), 0.3] for c in range(3)] for s in range(3)]
    return _comparison(
        [
            _entrant("trial-001", "candidate", 0.40, better),
            _entrant("base", "baseline", 0.35, base),
        ]
    )


def test_paired_tests_holm_and_marks_by_hand():
    comparison = _scripted()
    stats = compute_stats(comparison)
    pair = stats.pair("trial-001", "base")
    liver, tumour = pair.classes["dice"][1], pair.classes["dice"][2]
    # Wilcoxon, 9 positive distinct differences: exact two-sided p = 2 / 2**9.
    assert liver.n == 9 and liver.p == pytest.approx(2 / 512)
    assert liver.difference.mean == pytest.approx(0.05)  # mean of 0.01 .. 0.09
    assert tumour.p == 1.0  # all differences zero
    # Holm over the two foreground classes: [2/512 * 2, max(2/512 * 2, 1 * 1)].
    assert pair.adjusted["dice"][1:] == pytest.approx([4 / 512, 1.0])
    assert pair.marks["dice"] == ["", BETTER, ""]
    # The objective (mean foreground Dice of a case) differs by half the liver's difference.
    assert pair.objective.difference.mean == pytest.approx(0.025)
    assert pair.objective.p == pytest.approx(2 / 512) and pair.objective_mark == BETTER


def test_intervals_over_seed_and_case_values():
    stats = compute_stats(_scripted())
    liver = stats.classes["trial-001"]["dice"][1]
    assert liver.n == 9 and liver.mean == pytest.approx(0.55)
    assert 0.5 < liver.low < 0.55 < liver.high < 0.6
    constant = stats.classes["base"]["dice"][1]
    assert (constant.mean, constant.low, constant.high) == (0.5, 0.5, 0.5)
    objective = stats.objective["trial-001"]  # one value per seed: the test split's mean Dice
    seeds = [(0.3 + 0.5 + 0.01 * (3 * s + 2)) / 2 for s in range(3)]
    assert objective.n == 3 and objective.mean == pytest.approx(sum(seeds) / 3)


def test_rank_correlation_on_scripted_scores():
    # Search values 0.1 .. 0.5 against final objectives ranked 2, 1, 4, 3, 5:
    # rho = 1 - 6 * (1 + 1 + 1 + 1) / (5 * 24) = 0.8.
    finals = [0.2, 0.1, 0.4, 0.3, 0.5]
    entrants = [
        _entrant(f"e{i}", "candidate", 0.1 * (i + 1), [[[1.0, f, f] for _ in CASES]])
        for i, f in enumerate(finals)
    ]
    stats = compute_stats(_comparison(entrants))
    assert stats.rank.n == 5 and stats.rank.rho == pytest.approx(0.8)
    assert stats.rank.low < 0 < stats.rank.high  # five candidates say little


def test_tables_show_intervals_marks_and_the_split():
    comparison = _scripted()
    stats = compute_stats(comparison)
    table = class_table(comparison, stats, "dice")
    assert "3 cases x 3 seeds" in table.title
    liver_row = table.rows[1]
    assert liver_row[0] == "liver" and liver_row[1] == "90.00%"
    assert liver_row[2].endswith(BETTER) and liver_row[2].startswith("0.550 [")
    assert table.classes[1][2] == "better"
    assert not liver_row[3].endswith(BETTER)  # the reference itself
    summary = summary_table(comparison, stats)
    assert summary.rows[0][5] == "1/0" and summary.rows[1][5] == "-"
    assert not math.isnan(stats.objective["base"].mean)


def test_the_tables_say_when_no_class_can_be_marked():
    """3 seeds x 3 cases = 9 pairs: smallest p 2/512 = 0.0039; over 2 classes Holm gives 0.0078
    (markable); over 13 classes 0.051 (not)."""
    from losslab.analysis.compare_tables import power_note

    comparison = _scripted()
    stats = compute_stats(comparison)
    assert power_note(comparison, stats) == ""
    comparison.dataset.num_classes = 14
    note = power_note(comparison, stats)
    assert "9 (seed, case) pairs" in note and "0.0039" in note and "13 classes" in note
    assert "0.051" in note


def test_identical_entrants_count_once():
    from losslab.analysis.comparison import merge_identical

    same = [[[1.0, 0.6, 0.4] for _ in CASES]]
    trial = _entrant("trial-004", "candidate", 0.40, same)
    other = _entrant("trial-007", "candidate", 0.30, [[[1.0, 0.2, 0.1] for _ in CASES]])
    third = _entrant("trial-009", "candidate", 0.20, [[[1.0, 0.3, 0.2] for _ in CASES]])
    base = _entrant("dice", "baseline", math.nan, same)  # the same definition as trial-004
    focal = _entrant("focal", "baseline", 0.10, [[[1.0, 0.1, 0.0] for _ in CASES]])
    focal.candidate = parse_candidate({"name": "focal", "loss": "focal"}, "focal")
    for entrant in (other, third):  # a different definition each
        entrant.candidate = parse_candidate({"name": entrant.label, "loss": "ce"}, "x")
    third.overrides = {"lr": 0.01}
    merged = merge_identical(
        [trial, other, third, base, focal],
        lambda e: e.candidate.key + str(sorted(e.overrides.items())),
    )
    assert [e.label for e in merged] == ["trial-007", "trial-009", "dice", "focal"]
    dice = merged[2]
    assert dice.role == "baseline" and dice.aliases == ["trial-004"]
    assert dice.display == "dice = trial-004"
    assert dice.search_value == 0.40  # the trial's: the baseline had none
    comparison = _comparison(merged)
    comparison.reference = "dice"
    stats = compute_stats(comparison)
    assert stats.rank.n == 4  # four distinct entrants, not five
    assert ("trial-004", "dice") not in stats.pairs
    summary = summary_table(comparison, stats)
    assert "dice = trial-004" in [row[0] for row in summary.rows]
    assert "dice = trial-004" in class_table(comparison, stats, "dice").headers


def _focal_pair():
    # asymmetric focal beats focal on the tumour in all nine (seed, case) pairs
    focal = [[[1.0, 0.5, 0.2] for _ in CASES] for _ in range(3)]
    asym = [[[1.0, 0.5, 0.2 + 0.01 * (3 * s + c + 1)] for c in range(3)] for s in range(3)]
    entrants = [
        _entrant("trial-001", "candidate", 0.40, focal),
        _entrant("focal", "baseline", 0.35, focal),
        _entrant("asymmetric_focal", "baseline", 0.36, asym),
    ]
    comparison = _comparison(entrants)
    comparison.reference = "focal"
    return comparison


def test_baselines_are_tested_against_each_other():
    from losslab.analysis.compare_tables import pairs_table

    comparison = _focal_pair()
    stats = compute_stats(comparison)
    assert set(stats.pairs) == {
        ("trial-001", "focal"),
        ("trial-001", "asymmetric_focal"),
        ("focal", "asymmetric_focal"),
    }
    pair = stats.pair("asymmetric_focal", "focal")  # tested the other way round, flipped
    assert pair.marks["dice"] == ["", "", BETTER]
    assert pair.classes["dice"][2].difference.mean == pytest.approx(0.05)
    assert stats.pair("focal", "asymmetric_focal").marks["dice"][2] == WORSE
    summary = summary_table(comparison, stats)
    rows = {row[0]: row[5] for row in summary.rows}
    assert rows == {"trial-001": "0/0", "focal": "-", "asymmetric_focal": "1/0"}
    tumour = class_table(comparison, stats, "dice").rows[2]
    assert tumour[-1].endswith(BETTER)  # the baseline column gets its mark
    table = pairs_table(comparison, stats)
    assert ["focal", "asymmetric_focal"] in [row[:2] for row in table.rows]
    only = compute_stats(comparison, pairs="candidates")
    assert ("focal", "asymmetric_focal") not in only.pairs
    assert summary_table(comparison, only).rows[2][5] == "-"
    with pytest.raises(ValueError, match="unknown pairs 'some'"):
        compute_stats(comparison, pairs="some")
    with pytest.raises(ValueError, match="unknown bootstrap 'nested'"):
        compute_stats(comparison, bootstrap="nested")


def test_hierarchical_bootstrap_is_wider_when_seeds_differ():
    # seeds at 0.2, 0.5, 0.8 with cases close around each: the seed-to-seed spread dominates
    per_seed = [[[1.0, level + 0.01 * c, 0.3] for c in range(3)] for level in (0.2, 0.5, 0.8)]
    comparison = _comparison([_entrant("base", "baseline", 0.3, per_seed)])
    nested = compute_stats(comparison).classes["base"]["dice"][1]
    flat = compute_stats(comparison, bootstrap="flat").classes["base"]["dice"][1]
    assert nested.mean == pytest.approx(flat.mean) and nested.n == flat.n == 9
    assert nested.high - nested.low > 1.5 * (flat.high - flat.low)
    # the resampled seeds reach the extremes: a draw of three times the 0.2 seed
    assert nested.low < 0.3 < 0.7 < nested.high
    stats = compute_stats(comparison)
    assert (
        "hierarchical bootstrap: seeds, then cases" in class_table(comparison, stats, "dice").note
    )
    flat_stats = compute_stats(comparison, bootstrap="flat")
    assert "as if independent" in summary_table(comparison, flat_stats).note


def test_kendall_beside_spearman_with_exact_p():
    from losslab.analysis.compare_tables import rank_line

    finals = [0.1, 0.2, 0.3]  # three entrants in perfect order: exact p = 1/3
    entrants = [
        _entrant(f"e{i}", "candidate", 0.1 * (i + 1), [[[1.0, f, f] for _ in CASES]])
        for i, f in enumerate(finals)
    ]
    stats = compute_stats(_comparison(entrants))
    assert stats.rank.rho == 1.0 and stats.rank.p == pytest.approx(1 / 3)
    assert stats.kendall.rho == 1.0 and stats.kendall.p == pytest.approx(1 / 3)
    line = rank_line(stats)
    assert "exact p=0.33" in line and "does not predict" in line and "Kendall's tau" in line


def test_on_a_ladder_the_rank_correlation_uses_one_rung_and_says_which():
    from losslab.analysis.compare_tables import rank_line

    base = [[[1.0, 0.5, 0.3] for _ in CASES] for _ in range(3)]
    finals = [0.2, 0.4, 0.6, 0.8]
    entrants = []
    for i, (final, search, rung) in enumerate(
        zip(finals, [0.30, 0.50, 0.70, 0.10], [2, 2, 2, 1])  # the last: a lower rung's value
    ):
        rows = [[[1.0, final, final] for _ in CASES] for _ in range(3)]
        entrants.append(_entrant(f"trial-00{i}", "candidate", search, rows))
        entrants[-1].rung = rung
    entrants.append(_entrant("base", "baseline", 0.05, base))
    entrants[-1].rung = 2
    stats = compute_stats(_comparison(entrants))
    # Ranked at rung 2 only: base (0.05 -> 0.4), trials 0, 1, 2 (0.3, 0.5, 0.7 -> 0.2, 0.4, 0.6).
    assert stats.rank.n == 4 and stats.rank_rung == 2 and stats.rank_left_out == 1
    line = rank_line(stats)
    assert "at rung 2 of the ladder (1 valued at a lower rung left out)" in line
    for entrant in entrants:
        entrant.rung = 0  # no ladder: every value ranks, and the line says nothing of rungs
    plain = compute_stats(_comparison(entrants))
    assert plain.rank.n == 5 and "rung" not in rank_line(plain)
