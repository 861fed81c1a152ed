from __future__ import annotations

import pytest

from losslab.data import make_splits
from losslab.data.splits import min_cases, split_problem


@pytest.mark.parametrize("n", [3, 4, 7, 10, 31])
def test_splits_are_disjoint_and_cover_all_cases(n: int):
    splits = make_splits(n, seed=5)
    together = splits["train"] + splits["val"] + splits["test"]
    assert sorted(together) == list(range(n))
    assert all(part == sorted(part) for part in splits.values())


def test_sizes_follow_the_fractions():
    splits = make_splits(10)
    assert [len(splits[k]) for k in ("train", "val", "test")] == [6, 2, 2]
    splits = make_splits(20, fractions=(0.7, 0.3, 0.0))
    assert [len(splits[k]) for k in ("train", "val", "test")] == [14, 6, 0]


@pytest.mark.parametrize("n", [3, 4])
def test_each_split_gets_a_case_from_three_cases_on(n: int):
    splits = make_splits(n)
    assert all(len(splits[k]) >= 1 for k in ("train", "val", "test"))
    assert len(splits["train"]) == n - 2


@pytest.mark.parametrize("n", [1, 2])
def test_too_few_cases_for_the_splits_are_refused(n: int):
    with pytest.raises(ValueError) as info:
        make_splits(n)
    assert str(info.value).startswith(
        f"{n} case(s) cannot give the train/val/test splits of split_fractions "
        "(train 0.6, val 0.2, test 0.2): every split with a positive fraction needs a case of "
        "its own, so at least 3 cases are needed"
    )
    assert split_problem(n) == str(info.value) and min_cases() == 3


def test_a_zero_fraction_says_which_splits_to_do_without():
    assert make_splits(1, fractions=(1, 0, 0)) == {"train": [0], "val": [], "test": []}
    assert make_splits(2, fractions=(0.5, 0.5, 0)) == {"train": [0], "val": [1], "test": []}
    assert split_problem(1, (0.5, 0.5, 0)) is not None and min_cases((0.5, 0.5, 0)) == 2


def test_split_is_deterministic_and_depends_on_the_seed():
    assert make_splits(12, seed=1) == make_splits(12, seed=1)
    assert any(make_splits(12, seed=1) != make_splits(12, seed=s) for s in range(2, 6))


@pytest.mark.parametrize("fractions", [(0.5, 0.5, 0.5), (1.2, -0.1, -0.1), (0.5, 0.5)])
def test_bad_fractions_are_refused(fractions):
    with pytest.raises(ValueError, match="fractions"):
        make_splits(10, fractions=fractions)
