"""A class rule that gives no usable weight on the probe of training states is refused."""

from __future__ import annotations

import math

import pytest
import torch

from losslab.config import ConfigError, check_schedule
from losslab.schedules.rule_probe import check_rule_values
from losslab.schedules.rules import CBS_RULE, PCF_RULE, TCF_RULE, Rule, parse_rule


@pytest.mark.parametrize("rule", [TCF_RULE, PCF_RULE, CBS_RULE, "w", "1", "1 / (s + 0.1)"])
def test_the_paper_rules_and_plain_ones_pass(rule):
    check_rule_values(rule)


@pytest.mark.parametrize("rule", ["log(s - 2)", "0", "-1", "where(s > 2, 1, 0)", "fg * 0"])
def test_a_rule_that_zeroes_every_foreground_class_everywhere_is_refused(rule):
    with pytest.raises(ValueError, match="gives every foreground class weight 0"):
        check_rule_values(rule)


def test_a_rule_that_is_nowhere_finite_is_refused(monkeypatch):
    monkeypatch.setattr(
        Rule, "evaluate", lambda self, features, num_classes: torch.full((num_classes,), math.nan)
    )
    with pytest.raises(ValueError, match="is NaN or infinite for every foreground class"):
        check_rule_values(parse_rule("s"))


def test_a_study_or_suite_rule_is_refused_naming_its_key():
    with pytest.raises(ConfigError, match=r"^b\[0\]\.class_schedule: the rule log\(s - 2\)"):
        check_schedule("class", "rule", {"expression": "log(s - 2)"}, where="b[0].class_schedule")
