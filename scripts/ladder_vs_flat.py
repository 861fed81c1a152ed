"""A fidelity ladder against the same time spent at one fidelity: which finds the better candidate?

For a study file with a ladder (``fidelity: {rungs: ...}``) and each study seed, two variants run
as users run them (``losslab search``, one thread each, two at a time): the ladder as written,
and "flat", the same study at one fidelity (``--flat``, JSON), both with ``--minutes`` of trials.
Then each variant's best candidate (the study's ``losslab.best_trial``: the verdict's winner on
a ladder) is trained at the study's ``final:`` fidelity over ``--final-seeds`` seeds (answered
from the study's cache where the ladder's top rung trained it already), and the script prints,
per variant: the evaluations spent per rung, Spearman's rho of each rung's values with the top
rung's (over the entries that reached the top), the verdict, and the winner's final mean
foreground Dice on the test split with a 95% hierarchical interval (seeds, then cases).

    python scripts/ladder_vs_flat.py search_spaces/quickstart.yaml --seeds 0 1 --minutes 5 \\
        --flat '{"epochs": 12, "steps_per_epoch": 25}' --out ladder-vs-flat
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml

from losslab.search import load_study
from losslab.search.evaluator import Evaluator
from losslab.search.ladder import rung_table
from losslab.stats import hierarchical_interval, spearman
from losslab.tracking.tracker import Tracker


def variant(study: Path, out: Path, mode: str, seed: int, flat: dict, minutes: float) -> Path:
    raw = yaml.safe_load(study.read_text())
    folder = out / f"{raw['study']}-{mode}-s{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    raw.update(
        study=f"{raw['study']}-{mode}-s{seed}",
        seed=seed,
        storage=f"journal:{folder / 'optuna.log'}",
        tracking_uri=f"sqlite:///{folder / 'mlflow.db'}",
    )
    raw["budget"] = {**raw.get("budget", {}), "minutes": minutes}
    if mode == "flat":
        raw["fidelity"] = flat
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def search(path: Path) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    log = path.parent / "search.log"
    with open(log, "w") as handle:
        started = os.times()
        subprocess.run(
            [sys.executable, "-m", "losslab.cli.main", "search", str(path), "--no-progress"],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            check=True,
        )
        ended = os.times()
    return (ended.children_user + ended.children_system) - (
        started.children_user + started.children_system
    )


def final_evaluator(config, final, store) -> Evaluator:
    """An evaluator at ``final`` with the study's data, seed and cache (no MLflow)."""
    from losslab.data import build_dataset

    return Evaluator(
        build_dataset(config.data),
        config.train,
        final,
        config.objective,
        seed=config.seed,
        cache=store.cache,
    )


def case_means(result) -> list[float]:
    rows = result.test_cases.get("dice", [])
    return [float(np.nanmean(row[1:])) if np.isfinite(row[1:]).any() else math.nan for row in rows]


def summarise(path: Path, final_seeds: int) -> dict:
    import torch

    torch.set_num_threads(1)
    config = load_study(path)
    store = config.store(config.storage)
    store.open(resume=True, seed=config.seed)
    records = store.records()
    tracker = Tracker(config.tracking_uri, experiment=config.experiment)
    (parent,) = [r for r in tracker.find_runs() if r.tags.get("losslab.role") == "study"]
    best_number = int(parent.tags.get("losslab.best_trial", "-1"))
    per_rung = {}
    for record in records:
        per_rung[record.rung] = per_rung.get(record.rung, 0) + 1
    table = rung_table(records)
    top = config.ladder.top
    correlations = {}
    for rung in range(top):
        pairs = [
            (seeds[0].value, np.mean([r.value for r in table[top][root].values()]))
            for root, seeds in table.get(rung, {}).items()
            if 0 in seeds and root in table.get(top, {})
        ]
        if len(pairs) >= 2:
            rc = spearman([a for a, _ in pairs], [b for _, b in pairs])
            correlations[rung] = {"rho": rc.rho, "low": rc.low, "high": rc.high, "n": rc.n}
        else:
            correlations[rung] = {"n": len(pairs)}
    (best,) = [r for r in records if r.number == best_number] or [None]
    final_name, final = config.final_fidelity()
    found = {}
    if best is not None and best.candidate is not None:
        evaluator = final_evaluator(config, final, store)
        groups = []
        for offset in range(final_seeds):
            evaluation = evaluator.evaluate(
                best.candidate, seed=config.seed + offset, overrides=best.overrides
            )
            groups.append(case_means(evaluation.result))
        interval = hierarchical_interval([np.asarray(g) for g in groups])
        found = {
            "winner": best.candidate.name,
            "trial": best.number,
            "rung": best.rung,
            "final_dice": interval.mean,
            "low": interval.low,
            "high": interval.high,
            "per_seed": [float(np.nanmean(g)) for g in groups],
        }
    store.close()
    return {
        "study": config.name,
        "evaluations": per_rung,
        "correlation_with_top": correlations,
        "verdict": parent.tags.get("losslab.verdict", ""),
        "final": final_name,
        **found,
    }


def correlate(path: Path, count: int) -> dict:
    """Train the ``count`` best distinct rung-0 proposals of a finished variant at the final
    fidelity (the study's seed; answered from the cache where it holds them) and give
    Spearman's rho of each rung's values with the final values, over the proposals that have
    both, with a 95% interval and an exact p."""
    import torch

    torch.set_num_threads(1)
    config = load_study(path)
    store = config.store(config.storage)
    store.open(resume=True, seed=config.seed)
    records = store.records()
    table = rung_table(records)
    firsts = sorted(
        (seeds[0] for seeds in table.get(0, {}).values() if 0 in seeds and seeds[0].status == "ok"),
        key=lambda r: -r.value,
    )
    chosen, seen = [], set()
    for record in firsts:
        key = (record.candidate.key, json.dumps(record.overrides, sort_keys=True))
        if key not in seen:
            seen.add(key)
            chosen.append(record)
    chosen = chosen[:count]
    _, final = config.final_fidelity()
    evaluator = final_evaluator(config, final, store)
    finals = {
        r.number: evaluator.evaluate(r.candidate, overrides=r.overrides).value for r in chosen
    }
    out = {"study": config.name, "final_trained": len(finals)}
    for rung in range(len(config.ladder.rungs)):
        pairs = [
            (table[rung][root][0].value, finals[root])
            for root in finals
            if root in table.get(rung, {}) and 0 in table[rung][root]
        ]
        rc = spearman([a for a, _ in pairs], [b for _, b in pairs])
        out[f"rung{rung}"] = {"rho": rc.rho, "low": rc.low, "high": rc.high, "p": rc.p, "n": rc.n}
    store.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--flat", type=json.loads, required=True)
    parser.add_argument("--final-seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("ladder-vs-flat"))
    parser.add_argument(
        "--correlate",
        type=int,
        default=0,
        help="only: train the N best rung-0 proposals of the variants already run in --out at "
        "the final fidelity and print each rung's Spearman rho with it",
    )
    args = parser.parse_args(argv)
    if args.correlate:
        from concurrent.futures import ProcessPoolExecutor

        raw = yaml.safe_load(args.study.read_text())
        paths = [
            args.out / f"{raw['study']}-{mode}-s{seed}" / "study.yaml"
            for seed in args.seeds
            for mode in ("ladder", "flat")
        ]
        with ProcessPoolExecutor(args.jobs) as pool:
            for row in pool.map(correlate, paths, [args.correlate] * len(paths)):
                print(json.dumps(row, default=float))
        return 0
    paths = [
        variant(args.study, args.out, mode, seed, args.flat, args.minutes)
        for seed in args.seeds
        for mode in ("ladder", "flat")
    ]
    with ThreadPoolExecutor(args.jobs) as pool:
        cpu = list(pool.map(search, paths))
    rows = []
    for path, seconds in zip(paths, cpu):
        row = summarise(path, args.final_seeds)
        row["search_cpu_s"] = round(seconds, 1)
        rows.append(row)
        print(json.dumps(row, default=float))
    (args.out / f"{args.study.stem}.json").write_text(json.dumps(rows, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
