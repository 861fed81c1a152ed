"""The statistics of a comparison on scripted results, against values computed by hand."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from losslab.config import parse_candidate
from losslab.search.compare_tables import class_table, summary_table
from losslab.search.comparison import Comparison, Entrant
from losslab.search.comparison_stats import compute_stats
from losslab.search.fidelity import Fidelity
from losslab.search.objective import Objective
from losslab.stats import BETTER
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
    from losslab.search.compare_tables import power_note

    comparison = _scripted()
    stats = compute_stats(comparison)
    assert power_note(comparison, stats) == ""
    comparison.dataset.num_classes = 14
    note = power_note(comparison, stats)
    assert "9 (seed, case) pairs" in note and "0.0039" in note and "13 classes" in note
    assert "0.051" in note
