"""A ledger entry (an Optuna trial) read back: whether it counts against the budget, and the
:class:`~losslab.search.backend.TrialRecord` the study and its backends see."""

from __future__ import annotations

import math

from optuna.trial import FrozenTrial, TrialState

from losslab.candidate import Candidate
from losslab.search.backend import TrialRecord
from losslab.search.store.attrs import (
    CANDIDATE,
    FAILURE,
    INTERRUPTED,
    LADDER,
    OVERRIDES,
    PARAMS,
    RUN_ID,
    VARIANT,
    WORKER,
)

__all__ = ["FINISHED", "counted", "record_of"]

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def counted(trial: FrozenTrial) -> bool:
    """Whether the entry counts against the budget as finished (not cut short)."""
    return trial.state in FINISHED and INTERRUPTED not in trial.user_attrs


def record_of(trial: FrozenTrial) -> TrialRecord:
    """The entry as the study and its backends see it."""
    attrs = trial.user_attrs
    status = {TrialState.COMPLETE: "ok", TrialState.PRUNED: "pruned"}.get(trial.state, "failed")
    value = trial.value if trial.state == TrialState.COMPLETE else math.nan
    if trial.state == TrialState.PRUNED and trial.intermediate_values:
        value = trial.intermediate_values[max(trial.intermediate_values)]
    candidate = Candidate.from_dict(attrs[CANDIDATE]) if CANDIDATE in attrs else None
    return TrialRecord(
        number=trial.number,
        candidate=candidate,
        status=status,
        value=value if value is not None else math.nan,
        eval_key=attrs.get("losslab.eval_key", ""),
        run_id=attrs.get(RUN_ID),
        reason=attrs.get(FAILURE, ""),
        cached_from=attrs.get("losslab.cached_from", ""),
        overrides=dict(attrs.get(OVERRIDES, {})),
        params=dict(trial.params) or dict(attrs.get(PARAMS, {})),
        worker=attrs.get(WORKER, ""),
        variant=dict(attrs.get(VARIANT, {})),
        rung=attrs.get(LADDER, {}).get("rung", 0),
        seed=attrs.get(LADDER, {}).get("seed", 0),
        root=attrs.get(LADDER, {}).get("root"),
    )
