"""A study or a comparison run with the fake trainer in a fresh process, to be killed there with
SIGKILL: mid-training (by the test, see :func:`wait_for`) or by the process itself at the moment
a result is cached and its MLflow run not yet ended (``die_after_cache``). Every evaluation that
starts to train appends its line of ``FakeTrainer.trained`` (the candidate's key and a greedy
controller's plan) to a trace file, so a test counts what trained twice across processes. The process prints its records (study) or results
(comparison) as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1]

RUNNER = r"""
import json, os, signal, sys
options = json.loads(sys.argv[1])
sys.path.insert(0, options["tests"])
from search.fakes import FakeTrainer  # registers the batch_random backend too
from losslab.tracking import hook as tracking_hook
from losslab.search import load_study, run_study

FakeTrainer.epoch_seconds = options["epoch_seconds"]
fit = FakeTrainer.fit

def traced_fit(self, candidate, dataset):
    plans = "".join(f"/{h.plan!r}" for h in self.hooks if hasattr(h, "plan"))  # greedy steers
    line = f"{candidate.key}{plans}".replace("\n", " ")
    if options["fidelity_trace"]:  # as FakeTrainer.evaluated has it: the fidelity and seed
        config = self.config
        line += f"@{config.epochs}:{config.steps_per_epoch}:{config.seed}"
    with open(options["trace"], "a") as handle:  # as FakeTrainer.trained has it
        handle.write(line + "\n")
    return fit(self, candidate, dataset)

FakeTrainer.fit = traced_fit
end_run, ended = tracking_hook.MLflowHook.on_train_end, []

def dying_end(self, state, result):
    ended.append(result.status)
    if len(ended) == options["die_after_cache"]:  # the result is cached, its run not ended
        os.kill(os.getpid(), signal.SIGKILL)
    end_run(self, state, result)

tracking_hook.MLflowHook.on_train_end = dying_end
if options["compare"] is None:
    outcome = run_study(
        load_study(options["path"]), resume=options["resume"], progress=False, trainer=FakeTrainer
    )
    rows = [[r.params.get("gp.expression") or r.eval_key, r.value, r.status] for r in outcome.records]
else:
    from losslab.analysis.comparison import run_comparison
    from losslab.analysis.finished import open_finished, resolve_study

    study = open_finished(resolve_study(options["path"]))
    comparison = run_comparison([study], progress=False, trainer=FakeTrainer, **options["compare"])
    rows = [[e.label, [r.status for r in e.results]] for e in comparison.entrants]
print("RESULT " + json.dumps(rows))
"""


def start(
    path: Path,
    trace: Path,
    *,
    hash_seed: int = 0,
    resume: bool = False,
    epoch_seconds: float = 0.0,
    die_after_cache: int = 0,
    compare: dict[str, Any] | None = None,
    fidelity_trace: bool = False,
) -> subprocess.Popen:
    """Run the study file ``path`` (or compare it, with ``compare``'s arguments) in a fresh
    process with ``PYTHONHASHSEED=hash_seed``."""
    options = {
        "tests": str(TESTS),
        "path": str(path),
        "trace": str(trace),
        "resume": resume,
        "epoch_seconds": epoch_seconds,
        "die_after_cache": die_after_cache,
        "compare": compare,
        "fidelity_trace": fidelity_trace,
    }
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER, json.dumps(options)],
        cwd=path.parent,
        env={**os.environ, "PYTHONHASHSEED": str(hash_seed)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen, timeout: float = 600.0) -> list:
    """The rows the process printed; fails with its output if it did not end well."""
    out = process.communicate(timeout=timeout)[0]
    assert process.returncode == 0, out
    (line,) = [line for line in out.splitlines() if line.startswith("RESULT ")]
    return json.loads(line[len("RESULT ") :])


def killed(process: subprocess.Popen, timeout: float = 600.0) -> str:
    """Wait for a process that kills itself with SIGKILL; its output."""
    out = process.communicate(timeout=timeout)[0]
    assert process.returncode == -9, out
    return out


def wait_for(process: subprocess.Popen, ready: Callable[[], bool], timeout: float = 300.0) -> None:
    """Poll ``ready`` until it holds, then SIGKILL the process."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the process ended early: {process.communicate()[0]}")
        try:
            if ready():
                process.kill()
                process.wait()
                return
        except (KeyError, ValueError):  # the study is not there yet
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError("the process did not reach the moment to kill it in time")


def traced(trace: Path) -> list[str]:
    """The ``FakeTrainer.trained`` lines of every evaluation that started to train, in order."""
    return trace.read_text().splitlines() if trace.exists() else []
