"""What a study costs beyond training: ``losslab search`` against the same trainings run bare.

    python scripts/bench_study.py [--trials 8] [--epochs 2] [--steps 10] [--shape 32]

Runs a study (Optuna journal storage, MLflow SQLite store, random sampler, no pruner, no
baselines) on the phantom, then trains the very candidates it evaluated, with the same configs
and seeds, in a plain loop of ``Trainer.fit`` with no hooks (no Optuna, no MLflow, no cache).
Prints the wall time of both and the ratio study / bare (1.0 = no overhead), and the overhead per
trial in seconds. Both run in this process, one after the other, on the same data.

``--backend gp --population 8 --minutes 3 --no-bare`` runs instead a genetic search (the library
losses seed it; generations of 8 trained as populations, ``workers.population``) for a time
budget and prints trials per minute without the bare loop: the GPU check's study.
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
    if getattr(args, "model_size", None):
        config["train"]["model_size"] = args.model_size
    if getattr(args, "device", None):
        config["train"]["device"] = args.device
    if getattr(args, "minutes", None):
        config["budget"]["minutes"] = args.minutes
    if getattr(args, "population", None):
        config["workers"] = {"population": args.population}
    if getattr(args, "backend", "optuna") == "gp":
        del config["optuna"]
        config["backend"] = "gp"
        config["gp"] = {"population": args.population or 8, "generations": 1000}
        if getattr(args, "screen_steps", None):
            config["gp"]["screen_steps"] = args.screen_steps
        config["space"] = {
            "target": "loss",
            "seeds": ["dice", "ce", "focal", "tversky", "gdl", "iou", "ss", "asymmetric_focal"],
            "class_schedule": "uniform",
        }
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def measure_study(args: argparse.Namespace, *, bare: bool = True) -> dict[str, float]:
    """Run the study of ``args`` (and, with ``bare``, the bare loop over its candidates).

    Returns ``trials``, ``ok`` (trials whose run ended ``ok``), ``study_s`` and, with ``bare``,
    ``bare_s``, ``ratio`` (study / bare) and ``overhead_per_trial_s``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        config = load_study(_study_file(Path(tmp), args))
        start = time.perf_counter()
        outcome = run_study(config, progress=False)
        study_time = time.perf_counter() - start
        records = outcome.records
        out = {
            "trials": float(len(records)),
            "ok": float(sum(1 for r in records if r.status == "ok")),
            "study_s": study_time,
        }
        if not bare:
            return out
        evaluator = Evaluator(
            outcome.dataset, config.train, config.fidelity, config.objective, seed=config.seed
        )
        start = time.perf_counter()
        build_dataset(config.data)  # the study built it too: both pay for it once
        for record in records:
            train = evaluator.config_for(config.seed, record.overrides)
            Trainer(dataclasses.replace(train)).fit(record.candidate, evaluator.dataset)
        bare_time = time.perf_counter() - start
    n = max(1, len(records))
    out.update(
        bare_s=bare_time,
        ratio=study_time / bare_time,
        overhead_per_trial_s=(study_time - bare_time) / n,
    )
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The study's options (shared with the GPU check)."""
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--shape", type=int, default=32)
    parser.add_argument("--patch", type=int, default=32)
    parser.add_argument("--backend", choices=("optuna", "gp"), default="optuna")
    parser.add_argument("--population", type=int, default=None, help="workers.population")
    parser.add_argument("--minutes", type=float, default=None, help="budget.minutes")
    parser.add_argument("--model-size", default=None, help="train.model_size (default tiny)")
    parser.add_argument("--device", default=None, help="train.device (default auto)")
    parser.add_argument("--screen-steps", type=int, default=None, help="gp.screen_steps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--no-bare", dest="bare", action="store_false")
    args = parser.parse_args()
    out = measure_study(args, bare=args.bare)
    n = int(out["trials"])
    print(
        f"{n} trials ({int(out['ok'])} ok) of {args.epochs}x{args.steps} steps, phantom "
        f"{args.shape}^3, patch {args.patch}^3, backend {args.backend}"
    )
    print(f"study (Optuna + MLflow + cache): {out['study_s']:.2f} s")
    print(f"trials per minute: {60 * n / out['study_s']:.1f}")
    if args.bare:
        print(f"bare data + Trainer.fit loop:    {out['bare_s']:.2f} s")
        print(f"ratio study / bare: {out['ratio']:.3f}")
        print(f"overhead per trial: {out['overhead_per_trial_s']:.3f} s")


if __name__ == "__main__":
    main()
