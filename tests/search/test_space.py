"""The conditional search space: drawing from real Optuna trials and rebuilding from params."""

from __future__ import annotations

import optuna
import pytest

from losslab.candidate import ScheduleSpec
from losslab.search.distributions import Constant, FloatRange
from losslab.search.space import (
    LossOption,
    ScheduleOption,
    SearchSpace,
    SpaceError,
    parse_loss_options,
    parse_schedule_options,
)
from losslab.search.study_config import parse_space

optuna.logging.set_verbosity(optuna.logging.WARNING)

CBS = {"zeta": {"float": [0.05, 0.5]}, "cap": {"float": [1.5, 4.0]}}
RAW = {
    "loss": {
        "dice": {},
        "focal": {"gamma": {"float": [0.5, 4.0]}},
        "tversky": {"alpha": {"float": [0.1, 0.9]}, "beta": {"float": [0.1, 0.9]}},
        "dice_ce": {"term_weights": [1.0, {"float": [0.25, 2.0]}]},
        "wce_wdice": {"terms": ["ce", "dice"]},
    },
    "class_schedule": {"uniform": {}, "cbs": CBS},
    "term_schedule": ["static"],
    "train": {"lr": {"float": [1e-4, 1e-2], "log": True}},
}
CBS_PARAMS = {"class_schedule.cbs.zeta", "class_schedule.cbs.cap"}


def study(seed: int = 0) -> optuna.Study:
    sampler = optuna.samplers.RandomSampler(seed=seed)
    return optuna.create_study(direction="maximize", sampler=sampler)


def draws(space: SearchSpace, n: int, seed: int = 0):
    """``(trial, candidate, overrides)`` of ``n`` trials of a real study (each told 0)."""
    s = study(seed)
    for _ in range(n):
        trial = s.ask()
        candidate, overrides = space.sample(trial)
        yield trial, candidate, overrides
        s.tell(trial, 0.0)


def fixed(values: dict):
    """A draw function answering from ``values`` (constants answer themselves)."""

    def draw(name, dist):
        return values[name] if dist.searched else dist.values()[0]

    return draw


def params_of(spec) -> dict:
    return dict(spec.params)


def test_cbs_parameters_appear_only_when_cbs_is_drawn():
    space = parse_space(RAW)
    schedules = set()
    for trial, candidate, _ in draws(space, 30):
        drawn = trial.params["class_schedule"]
        schedules.add(drawn)
        assert candidate.class_schedule.name == drawn
        if drawn == "cbs":
            assert set(trial.params) >= CBS_PARAMS
            assert params_of(candidate.class_schedule) == {
                "zeta": trial.params["class_schedule.cbs.zeta"],
                "cap": trial.params["class_schedule.cbs.cap"],
            }
        else:
            assert not CBS_PARAMS & set(trial.params)
            assert candidate.class_schedule == ScheduleSpec("uniform")
    assert schedules == {"uniform", "cbs"}  # both branches were seen


def test_loss_parameters_appear_only_for_the_drawn_loss():
    space = parse_space(RAW)
    seen = set()
    for trial, _, _ in draws(space, 30, seed=1):
        loss = trial.params["loss"]
        seen.add(loss)
        mine = {k for k in trial.params if k.startswith("loss.")}
        assert all(k.startswith(f"loss.{loss}.") for k in mine)
    assert len(seen) >= 4


def test_from_params_rebuilds_the_same_candidate():
    space = parse_space(RAW)
    for trial, candidate, overrides in draws(space, 25, seed=2):
        rebuilt, rebuilt_overrides = space.from_params(trial.params)
        assert rebuilt.key == candidate.key
        assert rebuilt == candidate  # the label too
        assert rebuilt_overrides == overrides
        assert set(overrides) == {"lr"}
        assert 1e-4 <= overrides["lr"] <= 1e-2
        assert overrides["lr"] == trial.params["train.lr"]


def test_from_params_names_a_missing_parameter():
    space = parse_space(RAW)
    with pytest.raises(SpaceError) as info:
        space.from_params({"loss": "focal", "class_schedule": "uniform", "train.lr": 1e-3})
    assert info.value.key == "loss.focal.gamma"


def test_focal_gamma_lands_in_the_focal_term():
    space = parse_space(RAW)
    values = {"loss": "focal", "loss.focal.gamma": 3.5, "class_schedule": "uniform"}
    candidate, _ = space.build(fixed({**values, "train.lr": 1e-3}))
    (term,) = candidate.terms
    assert term.parameters["gamma"] == 3.5
    assert candidate.term_weights == (1.0,)
    assert candidate.name == "focal"


def test_tversky_alpha_and_beta_land_in_the_term():
    space = parse_space(RAW)
    values = {"loss": "tversky", "loss.tversky.alpha": 0.2, "loss.tversky.beta": 0.8}
    candidate, _ = space.build(
        fixed(
            {
                **values,
                "class_schedule": "cbs",
                "train.lr": 1e-3,
                "class_schedule.cbs.zeta": 0.1,
                "class_schedule.cbs.cap": 2.0,
            }
        )
    )
    (term,) = candidate.terms
    assert (term.parameters["alpha"], term.parameters["beta"]) == (0.2, 0.8)
    assert candidate.name == "tversky+cbs"
    assert candidate.class_schedule == ScheduleSpec.of("cbs", zeta=0.1, cap=2.0)


def test_dice_ce_term_weights_one_fixed_one_searched():
    space = parse_space(RAW)
    for trial, candidate, _ in draws(space, 30, seed=3):
        if trial.params["loss"] != "dice_ce":
            assert "loss.dice_ce.alpha1" not in trial.params
            continue
        assert "loss.dice_ce.alpha0" not in trial.params  # the constant is not searched
        assert len(candidate.terms) == 2
        assert candidate.term_weights[0] == 1.0
        assert candidate.term_weights[1] == trial.params["loss.dice_ce.alpha1"]
        assert 0.25 <= candidate.term_weights[1] <= 2.0
        break
    else:
        pytest.fail("dice_ce was never drawn")


def test_terms_option_concatenates_terms_with_unit_weights():
    space = parse_space(RAW)
    candidate, _ = space.build(
        fixed({"loss": "wce_wdice", "class_schedule": "uniform", "train.lr": 1e-3})
    )
    assert len(candidate.terms) == 2
    assert "logp" in candidate.terms[0].expression and "vsum" in candidate.terms[1].expression
    assert candidate.term_weights == (1.0, 1.0)


def test_library_compound_keeps_its_default_weights():
    (option,) = parse_loss_options({"dice_focal": {"gamma": 1.0}})
    terms, weights = option.build(fixed({}), "loss.dice_focal")
    assert weights == (1.0, 1.0)
    assert terms[1].parameters["gamma"] == 1.0  # a constant lands in the term that uses it


def test_a_parameter_no_term_uses_is_named():
    option = LossOption("dice", ("dice",), {"gamma": Constant(2.0)})
    with pytest.raises(SpaceError) as info:
        option.build(fixed({}), "loss.dice")
    assert info.value.key == "loss.dice.gamma"


def test_several_unused_parameters_key_the_first_and_list_what_the_terms_use():
    option = LossOption(
        "dice_focal", ("dice", "focal"), {"zeta": Constant(1.0), "beta": Constant(2.0)}
    )
    with pytest.raises(SpaceError) as info:
        option.build(fixed({}), "loss.dice_focal")
    assert info.value.key == "loss.dice_focal.beta"
    assert "beta, zeta" in info.value.problem and "its terms use: eps, gamma" in info.value.problem


def test_wrong_number_of_term_weights_is_named():
    option = LossOption("dice", ("dice",), term_weights=(Constant(1.0), Constant(2.0)))
    with pytest.raises(SpaceError) as info:
        option.build(fixed({}), "loss.dice")
    assert info.value.key == "loss.dice.term_weights"


def test_a_single_option_is_not_a_choice():
    space = parse_space({"loss": {"focal": {"gamma": {"float": [0.5, 4.0]}}}})
    trial = study().ask()
    candidate, overrides = space.sample(trial)
    assert set(trial.params) == {"loss.focal.gamma"}
    assert overrides == {}
    assert candidate.class_schedule.name == "uniform" and candidate.term_schedule.name == "static"
    assert space.from_params(trial.params)[0].key == candidate.key


def test_schedule_label_and_registry_name():
    (option,) = parse_schedule_options(
        {"cbs_fast": {"name": "cbs", "delta": 1, "zeta": {"float": [0.1, 0.2]}}},
        "class_schedule",
    )
    assert option.label == "cbs_fast" and option.name == "cbs"
    spec = option.build(fixed({"class_schedule.cbs_fast.zeta": 0.15}), "class_schedule.cbs_fast")
    assert spec == ScheduleSpec.of("cbs", delta=1, zeta=0.15)


def test_candidate_key_ignores_the_label_but_not_the_parameters():
    space = parse_space(RAW)
    base = {
        "loss": "focal",
        "class_schedule": "cbs",
        "train.lr": 1e-3,
        "class_schedule.cbs.zeta": 0.1,
        "class_schedule.cbs.cap": 2.0,
    }
    one, _ = space.build(fixed({**base, "loss.focal.gamma": 2.0}))
    two, _ = space.build(fixed({**base, "loss.focal.gamma": 2.5}))
    three, _ = space.build(fixed({**base, "loss.focal.gamma": 2.0, "class_schedule.cbs.cap": 3.0}))
    assert len({one.key, two.key, three.key}) == 3


def test_dimensions_counts_choices_and_searched_parameters():
    # loss choice 1 + gamma 1 + alpha/beta 2 + dice_ce alpha1 1 + class choice 1 + cbs 2 + lr 1
    assert parse_space(RAW).dimensions() == 9
    only_focal = SearchSpace((LossOption("focal", ("focal",), {"gamma": FloatRange(0.5, 4.0)}),))
    assert only_focal.dimensions() == 1
    fixed_gamma = SearchSpace((LossOption("focal", ("focal",), {"gamma": Constant(2.0)}),))
    assert fixed_gamma.dimensions() == 0
    two_fixed = SearchSpace(
        (LossOption("dice", ("dice",)), LossOption("ce", ("ce",))),
        (ScheduleOption("uniform", "uniform"), ScheduleOption("tcf", "tcf")),
    )
    assert two_fixed.dimensions() == 2
