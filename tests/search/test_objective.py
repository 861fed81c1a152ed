"""The study objective on hand-computed per-class Dice vectors, and on hand-built results."""

from __future__ import annotations

import math

import pytest

from losslab.search.objective import Objective
from losslab.training import EpochRecord, Result

NAN = math.nan
# Background 0.99 must never count; foreground 0.9, 0.5, 0.7, 0.1 (sorted: 0.1, 0.5, 0.7, 0.9).
DICE = [0.99, 0.9, 0.5, 0.7, 0.1]


def record(epoch: int, val_dice: list[float]) -> EpochRecord:
    n = len(val_dice)
    return EpochRecord(
        epoch=epoch,
        train_loss=1.0 / epoch,
        val_dice=val_dice,
        class_weights=[1.0] * n,
        term_weights=[1.0],
        wall_time=0.1,
    )


def result(status: str, *histories: list[float]) -> Result:
    return Result(
        status=status,
        class_names=["background", "a", "b", "c"],
        history=[record(i + 1, d) for i, d in enumerate(histories)],
    )


def test_mean_ignores_background():
    assert Objective()(DICE) == pytest.approx((0.9 + 0.5 + 0.7 + 0.1) / 4)


def test_worst_k_averages_the_lowest_k():
    assert Objective("worst_k", k=2)(DICE) == pytest.approx((0.1 + 0.5) / 2)
    assert Objective("worst_k", k=1)(DICE) == pytest.approx(0.1)
    # More k than scored classes: all of them.
    assert Objective("worst_k", k=10)(DICE) == pytest.approx(0.55)


def test_min_is_the_lowest_foreground_class():
    assert Objective("min")(DICE) == pytest.approx(0.1)
    # A background lower than every class is still ignored.
    assert Objective("min")([0.0, 0.6, 0.8]) == pytest.approx(0.6)


def test_mix_weights_the_base_kinds():
    objective = Objective("mix", k=2, weights={"mean": 0.5, "worst_k": 0.25, "min": 0.25})
    expected = 0.5 * 0.55 + 0.25 * 0.3 + 0.25 * 0.1
    assert objective(DICE) == pytest.approx(expected)


def test_nan_classes_are_left_out():
    dice = [0.99, 0.8, NAN, 0.4, NAN]
    assert Objective()(dice) == pytest.approx(0.6)
    assert Objective("min")(dice) == pytest.approx(0.4)
    assert Objective("worst_k", k=2)(dice) == pytest.approx(0.6)


@pytest.mark.parametrize("kind", ["mean", "worst_k", "min"])
def test_no_scored_class_gives_nan(kind):
    objective = Objective(kind)
    assert math.isnan(objective([NAN, NAN, NAN]))
    assert math.isnan(objective([0.95, NAN, NAN]))  # only the background is scored
    assert math.isnan(objective([0.95]))
    assert math.isnan(objective([]))


def test_mix_of_nothing_is_nan():
    assert math.isnan(Objective("mix", weights={"mean": 1.0})([0.9, NAN]))


def test_weights_are_stored_as_floats():
    objective = Objective("mix", weights={"mean": 1, "min": 2})
    assert objective.weights == {"mean": 1.0, "min": 2.0}
    assert all(type(w) is float for w in objective.weights.values())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "median"}, "'median' is not one of"),
        ({"kind": "worst_k", "k": 0}, "k=0 must be a positive integer"),
        ({"kind": "worst_k", "k": -2}, "must be a positive integer"),
        ({"kind": "worst_k", "k": 2.0}, "must be a positive integer"),
        ({"kind": "worst_k", "k": True}, "must be a positive integer"),
        ({"kind": "mix"}, "needs weights"),
        ({"kind": "mean", "weights": {"mean": 1.0}}, "only for kind 'mix'"),
        ({"kind": "min", "weights": {"min": 1.0}}, "only for kind 'mix'"),
        ({"kind": "mix", "weights": {"mean": 0.5, "max": 0.5}}, "weight 'max'"),
        ({"kind": "mix", "weights": {"mix": 1.0}}, "weight 'mix'"),
        ({"kind": "mix", "weights": {"mean": "half"}}, "must be a number"),
        ({"kind": "mix", "weights": {"mean": True}}, "must be a number"),
    ],
)
def test_bad_objective(kwargs, message):
    with pytest.raises(ValueError) as info:
        Objective(**kwargs)
    assert message in str(info.value)


def test_from_dict_names_an_unknown_key():
    assert Objective.from_dict({"kind": "worst_k", "k": 2}) == Objective("worst_k", k=2)
    with pytest.raises(ValueError, match="kk"):
        Objective.from_dict({"kind": "worst_k", "kk": 2})


def test_to_dict_round_trips():
    objective = Objective("mix", k=2, weights={"mean": 0.5, "worst_k": 0.5})
    assert Objective.from_dict(objective.to_dict()) == objective


def test_describe_names_the_kind():
    assert Objective().describe() == "mean Dice"
    assert "2 worst" in Objective("worst_k", k=2).describe()
    assert Objective("mix", weights={"mean": 0.5, "min": 0.5}).describe() == (
        "0.5 x mean Dice + 0.5 x min class Dice"
    )


# --- epochs and results ------------------------------------------------------------------------


def test_of_epoch_scores_its_validation_dice():
    assert Objective().of_epoch(record(1, [0.9, 0.2, 0.4, NAN])) == pytest.approx(0.3)
    assert math.isnan(Objective().of_epoch(record(2, [NAN, NAN, NAN, NAN])))


def test_of_result_uses_the_last_validated_epoch():
    run = result(
        "ok",
        [0.9, 0.1, 0.1, 0.1],
        [0.9, 0.5, 0.6, 0.7],  # the last validated epoch
        [NAN, NAN, NAN, NAN],  # not validated
    )
    assert Objective().of_result(run) == pytest.approx(0.6)
    assert Objective("min").of_result(run) == pytest.approx(0.5)


def test_of_result_of_a_pruned_run_uses_its_history():
    run = result("pruned", [0.9, 0.2, 0.3, 0.4])
    assert Objective().of_result(run) == pytest.approx(0.3)


def test_failed_result_is_nan_even_with_history():
    run = result("failed", [0.9, 0.5, 0.6, 0.7])
    assert math.isnan(Objective().of_result(run))


def test_result_never_validated_is_nan():
    assert math.isnan(Objective().of_result(result("ok")))
    assert math.isnan(Objective().of_result(result("ok", [NAN] * 4)))


def test_of_test_reads_the_test_dice_of_an_ok_run():
    run = result("ok", [0.9, 0.5, 0.6, 0.7])
    run.test_metrics = {"dice": [0.95, 0.2, NAN, 0.4]}
    assert Objective().of_test(run) == pytest.approx(0.3)
    run.status = "pruned"
    assert math.isnan(Objective().of_test(run))


def test_mean_objective_and_the_report_share_the_foreground_mean():
    run = result("ok", [0.9, 0.5, 0.6, 0.7])
    run.test_metrics = {"dice": [0.95, 0.2, NAN, 0.4]}
    assert Objective().of_test(run) == run.foreground_mean("dice")
