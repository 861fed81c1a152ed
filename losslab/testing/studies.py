"""Tiny study files for tests of the search (a few seconds per trial on a CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

BASE: dict[str, Any] = {
    "study": "tiny",
    "data": {"source": "phantom", "cases": 6, "shape": [24, 24, 24], "seed": 0},
    "train": {
        "model": "unet3d",
        "batch_size": 1,
        "patch_size": [16, 16, 16],
        "hd95": False,
        "lr": 0.003,
        "device": "cpu",
    },
    "fidelity": {"epochs": 2, "steps_per_epoch": 2},
    "objective": {"kind": "mean"},
    "budget": {"trials": 3},
    "seed": 0,
    "baselines": ["dice"],
    "space": {
        "loss": {"dice": {}, "focal": {"gamma": {"float": [0.5, 4.0]}}},
        "class_schedule": {
            "uniform": {},
            "cbs": {"zeta": {"float": [0.05, 0.5]}, "cap": {"float": [1.5, 4.0]}},
        },
    },
}


def write_study(folder: Path, name: str = "study.yaml", **changes: Any) -> Path:
    """A study file in ``folder`` whose storage and MLflow store live in ``folder`` too."""
    config = {
        **BASE,
        "storage": f"journal:{folder / 'optuna.log'}",
        "tracking_uri": f"sqlite:///{folder / 'mlflow.db'}",
        "experiment": "tests",
        **changes,
    }
    path = folder / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_workers(path: Path, backend_module: str, target: Any, count: int = 2) -> tuple[list, list]:
    """Run ``target(path, queue, backend_module)`` in ``count`` fresh processes at once (a
    backend registers on import there); their exit codes and what each put on the queue."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [
        context.Process(target=target, args=(str(path), queue, backend_module))
        for _ in range(count)
    ]
    for worker in workers:
        worker.start()
    reports = [queue.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    return workers, reports
