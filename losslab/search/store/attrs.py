"""The names of what the study store writes on each ledger entry (an Optuna trial's user
attributes) and on the study; see ``optuna_store.py``."""

from __future__ import annotations

INTERRUPTED = "losslab.interrupted"  # why an entry was cut short (not a real failure)
WORKER = "losslab.worker"
HEARTBEAT = "losslab.heartbeat"
FAILURE = "losslab.failure"
CANDIDATE, OVERRIDES, PARAMS = "losslab.candidate", "losslab.overrides", "losslab.params"
VARIANT = "losslab.variant"
LADDER = "losslab.ladder"  # {rung, root, seed}: a promotion's or race seed's place (ladder.py)
RETRY_OF, RUN_ID = "losslab.retry_of", "losslab.mlflow_run_id"
ALIVE = "losslab.alive."  # + worker id: the worker's last heartbeat (a study attribute)
