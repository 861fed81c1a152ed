"""Search for training objectives: candidates, fidelities, objectives, the evaluator, studies and
the backends that propose candidates, by name (``registry.py``).

Only this package talks to Optuna (the study store and the Optuna backend) and, later, DEAP.

The names below are imported on first use (``losslab._lazy``).
"""

from __future__ import annotations

from losslab._lazy import lazy_exports

_EXPORTS = {
    "Candidate": "losslab.candidate",
    "ScheduleSpec": "losslab.candidate",
    "BackendContext": "losslab.search.backend",
    "SearchBackend": "losslab.search.backend",
    "Proposal": "losslab.search.backend",
    "Slot": "losslab.search.backend",
    "StudyMismatch": "losslab.search.store.ledger",
    "StudyStore": "losslab.search.store.ledger",
    "TrialRecord": "losslab.search.backend",
    "backend_names": "losslab.search.registry",
    "get_backend": "losslab.search.registry",
    "register_backend": "losslab.search.registry",
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
    "OptunaBackend": "losslab.search.optuna.backend",
    "LossOption": "losslab.search.space",
    "ScheduleOption": "losslab.search.space",
    "SearchSpace": "losslab.search.space",
    "SpaceError": "losslab.search.space",
    "Study": "losslab.search.study",
    "StudyOutcome": "losslab.search.study",
    "run_study": "losslab.search.study",
    "Budget": "losslab.search.study_config",
    "StudyConfig": "losslab.search.study_config",
    "load_study": "losslab.search.study_config",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "BackendContext",
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
    "Proposal",
    "ScheduleOption",
    "ScheduleSpec",
    "SearchBackend",
    "SearchSpace",
    "Slot",
    "SpaceError",
    "Study",
    "StudyConfig",
    "StudyMismatch",
    "StudyOutcome",
    "StudyStore",
    "TrialRecord",
    "backend_names",
    "get_backend",
    "load_study",
    "parse_distribution",
    "register_backend",
    "run_study",
]
