"""Class-weight schedules (static, TCF, PCF, CBS, learned rules), the epoch context they see,
loss-term weight schedules and loss-parameter schedules."""

from __future__ import annotations

from losslab.schedules.adaptive_terms import CoVWeighting, SoftAdapt
from losslab.schedules.class_freezing import (
    ClassBoostStrategy,
    PlateauClassFreezing,
    ThresholdClassFreezing,
)
from losslab.schedules.class_schedules import (
    ClassSchedule,
    InverseFrequencyWeights,
    MedianFrequencyWeights,
    UniformWeights,
)
from losslab.schedules.context import EpochContext
from losslab.schedules.param_schedules import ParamSchedule, PiecewiseParams
from losslab.schedules.registry import (
    get_class_schedule,
    get_param_schedule,
    get_term_schedule,
    list_class_schedules,
    list_param_schedules,
    list_term_schedules,
)
from losslab.schedules.rules import (
    CBS_RULE,
    PCF_RULE,
    RULE_VOCABULARY,
    SEED_RULES,
    TCF_RULE,
    Rule,
    RuleSchedule,
    parse_rule,
    rule_features,
)
from losslab.schedules.term_schedules import (
    LinearRamp,
    Rebalance,
    StaticTermWeights,
    StepSwitch,
    TermSchedule,
)

__all__ = [
    "CBS_RULE",
    "PCF_RULE",
    "RULE_VOCABULARY",
    "SEED_RULES",
    "TCF_RULE",
    "ClassBoostStrategy",
    "ClassSchedule",
    "CoVWeighting",
    "EpochContext",
    "InverseFrequencyWeights",
    "LinearRamp",
    "MedianFrequencyWeights",
    "ParamSchedule",
    "PiecewiseParams",
    "PlateauClassFreezing",
    "Rebalance",
    "Rule",
    "RuleSchedule",
    "SoftAdapt",
    "StaticTermWeights",
    "StepSwitch",
    "TermSchedule",
    "ThresholdClassFreezing",
    "UniformWeights",
    "get_class_schedule",
    "get_param_schedule",
    "get_term_schedule",
    "list_class_schedules",
    "list_param_schedules",
    "list_term_schedules",
    "parse_rule",
    "rule_features",
]
