"""Learned class schedules: the rule language, its features, the ``rule`` schedule and the seed
rules written after TCF, PCF and CBS."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch

from losslab.candidate import Candidate, ScheduleSpec
from losslab.config import ConfigError, parse_candidate
from losslab.losses import Kind, LossSyntaxError
from losslab.losses.nodes import BinOp, Call, Compare, Num, Var
from losslab.schedules import (
    CBS_RULE,
    PCF_RULE,
    RULE_VOCABULARY,
    SEED_RULES,
    TCF_RULE,
    ClassBoostStrategy,
    EpochContext,
    PlateauClassFreezing,
    Rule,
    RuleSchedule,
    ThresholdClassFreezing,
    get_class_schedule,
    list_class_schedules,
    parse_rule,
    rule_features,
)

from .helpers import at, contexts, run
from .test_class_freezing import BEST, design_rows

NAN = math.nan
F = torch.tensor(0.1).item()  # the frozen weight as float32 stores it


def test_the_vocabulary():
    kinds = {name: kind for name, (kind, _) in RULE_VOCABULARY.terminals.items()}
    assert kinds == {
        **dict.fromkeys(["s", "best", "since", "delta", "freq", "w", "frozen", "fg"], Kind.CLASS),
        "t": Kind.SCALAR,
        "nc": Kind.SCALAR,
    }
    assert not RULE_VOCABULARY.parameters
    assert set(RULE_VOCABULARY.functions) == {
        *("log", "sqrt", "exp", "abs", "pow", "min", "max", "clamp", "where"),
        *("csum", "cmean", "cmax", "cmin"),
    }
    assert RULE_VOCABULARY.name == "rule"


@pytest.mark.parametrize("name", sorted(SEED_RULES))
def test_seed_rules_are_canonical_and_round_trip(name):
    text = SEED_RULES[name]
    rule = parse_rule(text)
    assert str(rule) == text
    assert parse_rule(str(rule)) == rule
    assert Rule.from_tree(rule.tree) == rule
    assert rule.kind is Kind.CLASS


def test_text_is_normalised():
    assert TCF_RULE == "where(s > 0.9, 0.1, 1)"
    assert str(parse_rule("  where( (s)>0.90 ,0.1,1.0 ) ")) == TCF_RULE
    assert parse_rule("t * 2").kind is Kind.SCALAR


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("q * s", "unknown name 'q'; terminals are s, best, since, delta, freq, w, frozen, fg"),
        ("vsum(s)", "unknown function 'vsum'"),
        ("topk_mean(s, 0.1)", "unknown function 'topk_mean'"),
        ("p * s", "unknown name 'p'"),  # a loss terminal
        ("s ** gamma", "unknown name 'gamma'"),  # a loss parameter
        ("s; gamma=2", "unknown parameter 'gamma'"),
        ("s > 0.5", "a comparison is only allowed as the condition of where"),
        ("s +", "not a valid expression"),
    ],
)
def test_bad_rules_are_refused_naming_the_fault(text, reason):
    with pytest.raises(LossSyntaxError) as info:
        parse_rule(text)
    assert info.value.reason.startswith(reason)
    assert info.value.what == "rule" and info.value.expression == text
    with pytest.raises(ValueError, match="is not a valid rule") as info:
        RuleSchedule(3, expression=text)
    assert repr(text) in str(info.value)


def test_trees_built_in_code_are_checked():
    with pytest.raises(LossSyntaxError, match="unknown function 'vsum'"):
        Rule.from_tree(Call("vsum", (Var("s"),)))
    with pytest.raises(LossSyntaxError, match="unknown name 'y'"):
        Rule.from_tree(BinOp("*", Var("s"), Var("y")))
    with pytest.raises(LossSyntaxError, match="condition of where"):
        Rule.from_tree(Compare(">", Var("s"), Num(0.5)))
    with pytest.raises(LossSyntaxError, match="cmax expects a class vector"):
        Rule.from_tree(Call("cmax", (Var("t"),)))
    assert str(Rule.from_tree(BinOp("*", Var("s"), Var("t")))) == "s * t"


def test_evaluate_broadcasts_scalars_and_compares_classes():
    features = {"s": torch.tensor([0.2, 0.7, 0.7]), "t": 0.25}
    best = parse_rule("where(s >= cmax(s), 1, 0)").evaluate(features)
    assert best.dtype == torch.float32 and best.tolist() == [0.0, 1.0, 1.0]
    assert parse_rule("t * 2").evaluate(features).tolist() == [0.5] * 3
    assert parse_rule("3").evaluate({}, num_classes=2).tolist() == [3.0, 3.0]
    with pytest.raises(ValueError, match="no value for the feature.*since"):
        parse_rule("s + since").evaluate(features)
    with pytest.raises(ValueError, match="num_classes"):
        parse_rule("t").evaluate({"t": 0.5})


def test_features_of_a_scripted_run():
    rows = [[0.9, 0.5, NAN], [0.8, 0.6, 0.4], [0.85, NAN, 0.3]]
    _, first, second, third = contexts(rows)
    weights = torch.tensor([1.0, 0.1, 1.5])
    f = rule_features(third, weights, second.scores)
    assert f["s"].dtype == torch.float64
    assert f["s"].tolist() == [0.85, 0.0, 0.3]
    assert f["best"].tolist() == [0.9, 0.6, 0.4]
    assert f["since"].tolist() == [2.0, 1.0, 1.0]
    assert f["delta"].tolist() == pytest.approx([0.05, 0.0, -0.1])
    assert f["freq"].tolist() == pytest.approx([1 / 3] * 3)
    assert f["w"].tolist() == pytest.approx([1.0, 0.1, 1.5])
    assert f["frozen"].tolist() == [0.0, 1.0, 0.0]
    assert f["fg"].tolist() == [0.0, 1.0, 1.0]
    assert (f["t"], f["nc"]) == (1.0, 3.0)
    f = rule_features(first, weights, None, include_background=True)
    assert f["delta"].tolist() == [0.0, 0.0, 0.0]  # first scored epoch
    assert f["best"].tolist() == [0.9, 0.5, 0.0]  # never scored: 0
    assert f["fg"].tolist() == [1.0, 1.0, 1.0]
    assert f["t"] == pytest.approx(1 / 3)
    delta = rule_features(second, weights, first.scores)["delta"]
    assert delta.tolist() == pytest.approx([-0.1, 0.1, 0.0])  # the previous score was NaN


# The scripted sequences of the TCF tests (test_class_freezing.py) and the schedules to compare.
TCF_CASES = [
    ({}, [[0.99, 0.5, 0.95], [0.99, 0.95, NAN], [0.99, 0.85, 0.9]]),
    ({"include_background": True}, [[0.99, 0.2], [NAN, 0.95], [0.5, NAN]]),
    ({"threshold": 0.5, "frozen_weight": 0.3}, [[0.99, 0.6], [0.99, 0.5], [0.2, 0.51]]),
]


def _tcf_pair(params):
    threshold, frozen = params.get("threshold", 0.9), params.get("frozen_weight", 0.1)
    background = params.get("include_background", False)
    rule = RuleSchedule(
        3, expression=f"where(s > {threshold}, {frozen}, 1)", include_background=background
    )
    return ThresholdClassFreezing(3, **params), rule


@pytest.mark.parametrize(("params", "rows"), TCF_CASES)
def test_tcf_as_a_rule_gives_exactly_the_weights_of_tcf(params, rows):
    tcf, rule = _tcf_pair(params)
    rows = [(row + [0.4])[:3] for row in rows]
    assert run(rule, rows) == run(tcf, rows)
    if params == {}:
        assert rule.expression == TCF_RULE


def test_tcf_as_a_rule_equals_tcf_on_random_sequences():
    generator = random.Random(0)
    values = [NAN, 0.9, 0.5, 0.3, 0.9 + 1e-12, 0.5 - 1e-12, 0.0, 1.0]
    for case in range(60):
        params = dict(TCF_CASES[case % 3][0])
        tcf, rule = _tcf_pair(params)
        rows = [
            [generator.choice(values + [generator.random()]) for _ in range(3)] for _ in range(8)
        ]
        assert run(rule, rows) == run(tcf, rows), (params, rows)


def test_weights_are_clipped_to_zero_and_cap():
    schedule = RuleSchedule(4, expression="s * 10 - 5", cap=1.5)
    # rule values 4, -3, 1.2, 4.9: background kept, then clipped to [0, 1.5]
    assert run(schedule, [[0.9, 0.2, 0.62, 0.99]])[0] == pytest.approx([1.0, 0.0, 1.2, 1.5])
    for cap in (0, -1.0, math.inf, math.nan, True, "2"):
        with pytest.raises(ValueError, match="cap must be finite and > 0"):
            RuleSchedule(2, expression="s", cap=cap)


def test_unscored_classes_and_non_finite_values_keep_their_weight():
    schedule = RuleSchedule(3, expression="s + 1")
    out = run(schedule, [[0.5, 0.2, 0.4], [0.5, NAN, 0.1]])
    assert out == [pytest.approx([1.0, 1.2, 1.4]), pytest.approx([1.0, 1.2, 1.1])]

    class Infinite:  # the language keeps values finite, so a non-finite one is staged here
        def evaluate(self, features, num_classes):
            return torch.tensor([math.inf, math.nan, 0.5])

    schedule.rule = Infinite()
    assert schedule.update(at(3, [0.5, 0.2, 0.4])).tolist() == pytest.approx([1.0, 1.2, 0.5])


def test_background_is_scheduled_only_when_asked():
    rows = [[0.95, 0.95]]
    assert run(RuleSchedule(2, expression=TCF_RULE), rows)[0] == [1.0, F]
    assert run(RuleSchedule(2, expression=TCF_RULE, include_background=True), rows)[0] == [F, F]


def test_state_round_trips_with_the_previous_scores():
    rows = [[0.5, 0.2, 0.4], [0.5, 0.3, NAN], [0.5, 0.6, 0.5]]
    start, *ctxs = contexts(rows)
    a = RuleSchedule(3, expression="w + delta")
    a.begin(start)
    a.update(ctxs[0])
    a.update(ctxs[1])
    state = json.loads(json.dumps(a.state_dict(), allow_nan=False))
    assert state["previous_scores"] == [0.5, 0.3, None]
    b = get_class_schedule("rule", num_classes=3, **a.get_params())
    b.load_state_dict(state)
    fresh = RuleSchedule(3, expression="w + delta")  # no previous scores: delta 0
    fresh.load_state_dict({**state, "previous_scores": None})
    expected = a.update(ctxs[2])
    assert torch.equal(b.update(ctxs[2]), expected)
    assert expected.tolist() == pytest.approx([1.0, 1.4, 1.0])  # 1.1 + 0.3; class 2: NaN before
    assert not torch.equal(fresh.update(ctxs[2]), expected)


def test_registry_and_parameters():
    assert "rule" in list_class_schedules()
    schedule = get_class_schedule("rule", num_classes=3, expression=" where(s>0.9,0.1,1) ")
    assert isinstance(schedule, RuleSchedule)
    assert schedule.get_params() == {
        "expression": TCF_RULE,
        "cap": 2.0,
        "include_background": False,
    }
    with pytest.raises(ValueError, match="unknown parameter.*zeta"):
        get_class_schedule("rule", num_classes=3, expression=TCF_RULE, zeta=0.1)


def test_a_candidate_with_a_rule_schedule_builds_from_config_and_json():
    candidate = parse_candidate(
        {"loss": "dice", "class_schedule": {"name": "rule", "expression": PCF_RULE}}, "c"
    )
    assert candidate.class_schedule == ScheduleSpec.of("rule", expression=PCF_RULE)
    data = json.loads(candidate.to_json())
    assert data["class_schedule"] == {"name": "rule", "params": {"expression": PCF_RULE}}
    again = Candidate.from_dict(data)
    assert again.key == candidate.key
    params = again.class_schedule.to_dict()["params"]
    assert get_class_schedule("rule", num_classes=4, **params).expression == PCF_RULE
    with pytest.raises(ConfigError) as info:
        parse_candidate(
            {"loss": "dice", "class_schedule": {"name": "rule", "expression": "vsum(s)"}}, "c"
        )
    assert info.value.where == "c.class_schedule.expression"
    assert "'vsum(s)'" in str(info.value) and "unknown function 'vsum'" in str(info.value)


def test_pcf_rule_freezes_the_best_class_and_never_unfreezes_it():
    rows = design_rows() + [[0.99, 0.8, 0.3], [0.99, 0.9, 0.3]]  # class 1 recovers: still frozen
    out = run(RuleSchedule(3, expression=PCF_RULE), rows)
    assert out[:5] == [[1.0, 1.0, 1.0]] * 5
    assert out[5:] == [[1.0, F, 1.0]] * 3
    assert out == run(PlateauClassFreezing(3), rows)


def test_pcf_rule_differs_from_pcf_where_the_docstring_says():
    # No last-trigger epoch: class 2's best (0.66, epoch 5) predates the trigger at 6, so the
    # rule freezes it at 8 (since 3) while PCF's window restarts at u = 6 and waits until 9.
    class2 = [0.4, 0.5, 0.6, 0.65, 0.66, 0.66, 0.64, 0.64, 0.64, 0.64]
    rows = [[0.99, a, b] for a, b in zip([*BEST, 0.8, 0.8, 0.8, 0.3], class2)]
    rule, pcf = run(RuleSchedule(3, expression=PCF_RULE), rows), run(PlateauClassFreezing(3), rows)
    assert (rule[6], pcf[6]) == ([1.0, F, 1.0], [1.0, F, 1.0])
    assert (rule[7], pcf[7]) == ([1.0, F, F], [1.0, F, 1.0])
    assert rule[8] == pcf[8] == [1.0, F, F]
    # A plateau at a constant score is no drop (epsilon), as in PCF.
    flat = [[0.99, 0.5, 0.3]] * 6
    assert run(RuleSchedule(3, expression=PCF_RULE), flat)[-1] == [1.0, 1.0, 1.0]


def test_cbs_rule_boosts_unfrozen_classes_on_trigger_within_the_cap():
    rows = [[0.99, s, 0.3, 0.3, 0.3] for s in BEST[:5]]
    rows.append([0.99, 0.68, 0.65, 0.15, NAN])
    rows.append([0.99, 0.9, 0.7, 0.5, 0.5])  # a new best: no trigger, weights kept
    out = run(RuleSchedule(5, expression=CBS_RULE), rows)
    assert out[:5] == [[1.0] * 5] * 5
    # 1 / (0.65 + 0.1) = 4/3; 1 / (0.15 + 0.1) = 4 -> 2; NaN keeps 1; background untouched.
    assert out[5] == out[6] == pytest.approx([1.0, F, 4 / 3, 2.0, 1.0])
    assert out[:6] == run(ClassBoostStrategy(5), rows)[:6]
    lower_cap = run(RuleSchedule(5, expression=CBS_RULE, cap=1.25), rows)
    assert lower_cap[5] == pytest.approx([1.0, F, 1.25, 1.25, 1.0])


def test_cbs_rule_does_not_mistake_a_boost_below_one_for_a_freeze():
    # Class 2 at 0.95 is boosted to 1 / 1.05 < 1 on the trigger at 6; at 10 it plateaus as the
    # best unfrozen class and is frozen in turn (a frozen class would never be a candidate).
    class1 = [0.9, 0.95, 0.98, 0.97, 0.97, 0.97, 0.6, 0.6, 0.6, 0.6]  # triggers at 6
    class2 = [0.3, 0.3, 0.3, 0.3, 0.3, 0.95, 0.96, 0.94, 0.94, 0.94]
    rows = [[0.99, a, b] for a, b in zip(class1, class2)]
    out = run(RuleSchedule(3, expression=CBS_RULE), rows)
    assert out[5] == pytest.approx([1.0, F, 1 / 1.05])
    assert out[8] == out[5]
    assert out[9] == [1.0, F, F]


def test_a_scalar_rule_depending_on_progress():
    schedule = RuleSchedule(3, expression="1 + t")
    start = EpochContext.start([0.5, 0.3, 0.2], total_epochs=4)
    schedule.begin(start)
    assert schedule.update(start.next([0.5, 0.5, 0.5])).tolist() == [1.0, 1.25, 1.25]
