"""Search for training objectives: candidates, fidelities, objectives, the evaluator, studies and
the backends that propose candidates (Optuna first).

Only this package talks to Optuna (and, later, DEAP).
"""

from __future__ import annotations

from losslab.candidate import Candidate, ScheduleSpec
from losslab.search.backend import SearchBackend, TrialRecord
from losslab.search.distributions import Choice, Constant, FloatRange, IntRange, parse_distribution
from losslab.search.evaluator import (
    CachedEvaluation,
    Evaluation,
    EvaluationCache,
    Evaluator,
    MemoryCache,
)
from losslab.search.fidelity import Fidelity
from losslab.search.objective import Objective
from losslab.search.optuna_backend import OptunaBackend, StudyMismatch
from losslab.search.space import LossOption, ScheduleOption, SearchSpace, SpaceError
from losslab.search.study import StudyOutcome, run_study
from losslab.search.study_config import Budget, StudyConfig, load_study

__all__ = [
    "Budget",
    "CachedEvaluation",
    "Candidate",
    "Choice",
    "Constant",
    "Evaluation",
    "EvaluationCache",
    "Evaluator",
    "Fidelity",
    "FloatRange",
    "IntRange",
    "LossOption",
    "MemoryCache",
    "Objective",
    "OptunaBackend",
    "ScheduleOption",
    "ScheduleSpec",
    "SearchBackend",
    "SearchSpace",
    "SpaceError",
    "StudyConfig",
    "StudyMismatch",
    "StudyOutcome",
    "TrialRecord",
    "load_study",
    "parse_distribution",
    "run_study",
]
