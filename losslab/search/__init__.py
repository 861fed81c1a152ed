"""Search for training objectives: candidates, fidelities, objectives, the evaluator, studies and
the backends that propose candidates (Optuna first).

Only this package talks to Optuna (and, later, DEAP).

The names below are imported on first use (``losslab._lazy``).
"""

from __future__ import annotations

from losslab._lazy import lazy_exports

_EXPORTS = {
    "Candidate": "losslab.candidate",
    "ScheduleSpec": "losslab.candidate",
    "SearchBackend": "losslab.search.backend",
    "TrialRecord": "losslab.search.backend",
    "Choice": "losslab.search.distributions",
    "Constant": "losslab.search.distributions",
    "FloatRange": "losslab.search.distributions",
    "IntRange": "losslab.search.distributions",
    "parse_distribution": "losslab.search.distributions",
    "CachedEvaluation": "losslab.search.evaluator",
    "Evaluation": "losslab.search.evaluator",
    "EvaluationCache": "losslab.search.evaluator",
    "Evaluator": "losslab.search.evaluator",
    "MemoryCache": "losslab.search.evaluator",
    "Fidelity": "losslab.search.fidelity",
    "Objective": "losslab.search.objective",
    "OptunaBackend": "losslab.search.optuna_backend",
    "StudyMismatch": "losslab.search.optuna_backend",
    "LossOption": "losslab.search.space",
    "ScheduleOption": "losslab.search.space",
    "SearchSpace": "losslab.search.space",
    "SpaceError": "losslab.search.space",
    "StudyOutcome": "losslab.search.study",
    "run_study": "losslab.search.study",
    "Budget": "losslab.search.study_config",
    "StudyConfig": "losslab.search.study_config",
    "load_study": "losslab.search.study_config",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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
