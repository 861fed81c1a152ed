from __future__ import annotations

import pytest

from losslab.data import make_splits


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 10, 31])
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


def test_split_is_deterministic_and_depends_on_the_seed():
    assert make_splits(12, seed=1) == make_splits(12, seed=1)
    assert any(make_splits(12, seed=1) != make_splits(12, seed=s) for s in range(2, 6))


@pytest.mark.parametrize("fractions", [(0.5, 0.5, 0.5), (1.2, -0.1, -0.1), (0.5, 0.5)])
def test_bad_fractions_are_refused(fractions):
    with pytest.raises(ValueError, match="fractions"):
        make_splits(10, fractions=fractions)
