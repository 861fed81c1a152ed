"""What a study costs beyond training: ``losslab search`` against the same trainings run bare.

    python scripts/bench_study.py [--trials 8] [--epochs 2] [--steps 10] [--shape 32]

Runs a study (Optuna journal storage, MLflow SQLite store, random sampler, no pruner, no
baselines) on the phantom, then trains the very candidates it evaluated, with the same configs
and seeds, in a plain loop of ``Trainer.fit`` with no hooks (no Optuna, no MLflow, no cache).
Prints the wall time of both and the ratio study / bare (1.0 = no overhead), and the overhead per
trial in seconds. Both run in this process, one after the other, on the same data.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import yaml

from losslab.data import build_dataset
from losslab.search import load_study, run_study
from losslab.search.evaluator import Evaluator
from losslab.training import Trainer


def _study_file(folder: Path, args: argparse.Namespace) -> Path:
    config = {
        "study": "bench",
        "storage": f"journal:{folder / 'optuna.log'}",
        "tracking_uri": f"sqlite:///{folder / 'mlflow.db'}",
        "experiment": "bench",
        "data": {"source": "phantom", "cases": 8, "shape": [args.shape] * 3, "seed": 0},
        "train": {"batch_size": 2, "patch_size": [args.patch] * 3, "hd95": False, "lr": 0.003},
        "fidelity": {"epochs": args.epochs, "steps_per_epoch": args.steps},
        "budget": {"trials": args.trials},
        "optuna": {"sampler": {"name": "random", "seed": 0}},
        "space": {
            "loss": {"dice": {}, "focal": {"gamma": {"float": [0.5, 4.0]}}},
            "class_schedule": {"uniform": {}, "cbs": {"zeta": {"float": [0.05, 0.5]}}},
            "train": {"lr": {"float": [1.0e-3, 1.0e-2], "log": True}},
        },
    }
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--shape", type=int, default=32)
    parser.add_argument("--patch", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = load_study(_study_file(Path(tmp), args))
        start = time.perf_counter()
        outcome = run_study(config, progress=False)
        study_time = time.perf_counter() - start
        evaluator = Evaluator(
            outcome.dataset, config.train, config.fidelity, config.objective, seed=config.seed
        )
        start = time.perf_counter()
        build_dataset(config.data)  # the study built it too: both pay for it once
        for record in outcome.records:
            train = evaluator.config_for(config.seed, record.overrides)
            Trainer(dataclasses.replace(train)).fit(record.candidate, evaluator.dataset)
        bare_time = time.perf_counter() - start
    n = len(outcome.records)
    print(
        f"{n} trials of {args.epochs}x{args.steps} steps, phantom {args.shape}^3, patch {args.patch}^3"
    )
    print(f"study (Optuna + MLflow + cache): {study_time:.2f} s")
    print(f"bare data + Trainer.fit loop:    {bare_time:.2f} s")
    print(f"ratio study / bare: {study_time / bare_time:.3f}")
    print(f"overhead per trial: {(study_time - bare_time) / n:.3f} s")


if __name__ == "__main__":
    main()
