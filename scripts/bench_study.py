"""What a study costs beyond training: ``losslab search`` against the same trainings run bare.

    python scripts/bench_study.py [--trials 8] [--epochs 2] [--steps 10] [--shape 32]

Runs a study (Optuna journal storage, MLflow SQLite store, random sampler, no pruner, no
baselines) on the phantom, then trains the very candidates it evaluated, with the same configs
and seeds, in a plain loop of ``Trainer.fit`` with no hooks (no Optuna, no MLflow, no cache).
Prints the wall time of both and the ratio study / bare (1.0 = no overhead), and the overhead per
trial in seconds. Both run in this process, one after the other, on the same data.

``--fake`` measures the study's own cost per trial alone: the trials train nothing
(``losslab.testing.FakeTrainer`` calls every hook of ``--epochs`` epochs and returns a result at
once), so the time of the trial loop (``Study.run``: opening the stores and the parent run and
closing them are left out) divided by the trials is the overhead per trial: the store's reserve,
budget check, proposal, claim, heartbeats, objective curve and finish, the evaluation cache, the
backend's draws and the MLflow run. ``--storage sqlite`` keeps the study in a SQLite file instead
of a journal file. ``--profile`` runs it under ``cProfile`` and prints seconds per trial by part
(cProfile slows Python down: compare the parts with each other). Plots follow ``LOSSLAB_PLOTS``.

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
    storage = f"journal:{folder / 'optuna.log'}"
    if getattr(args, "storage", "journal") == "sqlite":
        storage = f"sqlite:///{folder / 'optuna.db'}"
    config = {
        "study": "bench",
        "storage": storage,
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


# The parts of a trial's overhead (--profile): (label, [(file, function), ...]), cumulative time.
PARTS = [
    ("reserve (ask, worker)", [("store/optuna_store.py", "reserve")]),
    (
        "budget check (ledger reads)",
        [("store/optuna_store.py", "within_budget"), ("store/optuna_store.py", "used")],
    ),
    ("backend draws (Optuna suggest)", [("search/study.py", "_proposals")]),
    ("start (the proposal)", [("store/optuna_store.py", "start")]),
    ("cache read and claim", [("store/cache.py", "get"), ("store/cache.py", "claim")]),
    ("link the run", [("store/optuna_store.py", "link_run")]),
    (
        "epochs: heartbeat, objective",
        [("store/entry_hook.py", "on_epoch_end"), ("store/optuna_store.py", "on_epoch_end")],
    ),
    ("cache write", [("store/cache.py", "put")]),
    ("finish (key, tell, record)", [("store/optuna_store.py", "finish")]),
    ("MLflow run start (run, params, candidate.json)", [("tracking/hook.py", "on_train_start")]),
    ("MLflow epochs", [("tracking/hook.py", "on_epoch_end")]),
    ("MLflow end (files, metrics, tags, end)", [("tracking/hook.py", "on_train_end")]),
    (
        "MLflow: superseded attempts (a search)",
        [("search/evaluation_runs.py", "supersede_interrupted")],
    ),
]


def measure_fake(args: argparse.Namespace) -> dict[str, float]:
    """The trial loop of a study whose trials train nothing (``--fake``, module docstring):
    ``trials``, ``loop_s``, ``per_trial_s`` and, with ``args.profile``, ``part:<label>`` seconds
    per trial."""
    import cProfile
    import pstats

    from losslab.search.study import Study
    from losslab.testing.fakes import FakeTrainer

    with tempfile.TemporaryDirectory() as tmp:
        config = load_study(_study_file(Path(tmp), args))
        study = Study(config, progress=False, trainer=FakeTrainer).open()
        profile = cProfile.Profile() if args.profile else None
        try:
            with study.display, study.store.heartbeat():
                study.start_trials()
                start = time.perf_counter()
                if profile is not None:
                    profile.enable()
                study.run()
                if profile is not None:
                    profile.disable()
                loop = time.perf_counter() - start
        finally:
            study.close()
    n = max(1, args.trials)
    out = {"trials": float(args.trials), "loop_s": loop, "per_trial_s": loop / n}
    if profile is not None:
        stats = pstats.Stats(profile).stats
        for label, places in PARTS:
            out[f"part:{label}"] = sum(
                cumulative / n
                for (path, _, name), (_, _, _, cumulative, _) in stats.items()
                if any(path.endswith(file) and name == function for file, function in places)
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
    parser.add_argument("--storage", choices=("journal", "sqlite"), default="journal")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--no-bare", dest="bare", action="store_false")
    parser.add_argument("--fake", action="store_true", help="trials that train nothing")
    parser.add_argument("--profile", action="store_true", help="with --fake: time by part")
    args = parser.parse_args()
    if args.fake:
        out = measure_fake(args)
        print(
            f"{args.trials} trials of {args.epochs} epochs training nothing, {args.storage} "
            f"storage: trial loop {out['loop_s']:.2f} s, {out['per_trial_s']:.3f} s per trial"
        )
        for key, value in out.items():
            if key.startswith("part:"):
                print(f"  {key[5:]:<48} {value:.4f} s per trial")
        return
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
