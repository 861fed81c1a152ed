"""The most every numeric setting may be: one table, checked before anything is created.

A value far beyond any real use is a typo (``epochs: 1e30``, ``greedy.lookahead: 1000000000``),
and without a ceiling it surfaces late: a loop that runs for ever, a ``MemoryError`` inside a
trial, a study that only fails once its MLflow and Optuna stores exist. ``CEILINGS`` gives each
setting of a study file, a suite file and the command line its ceiling, keyed by its path in a
study file (``train.epochs``, ``greedy.lookahead``); a flag reads the key of the setting it sets
(``losslab train --epochs``: ``train.epochs``; ``losslab compare --seeds``: ``compare.seeds``).
The ``fidelity:`` and ``final:`` sections and ``space.train`` share the ``train.`` ceilings.
:func:`check_ceilings` walks a file's mapping as read, before any section is built, and
:func:`at_most` checks one value where a setting is built. ``docs/limits.md`` lists the table.
The ceiling bounds the magnitude (``-1e30`` is refused as ``1e30`` is); lower bounds and types
are the checks of each section. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from losslab.errors import ConfigError
from losslab.strict_yaml import short_repr

__all__ = ["CEILINGS", "Ceiling", "at_most", "ceiling_of", "check_ceilings", "ceilings_markdown"]

_SEED = 2**32 - 1
_DAY_S = 24 * 3600


@dataclass(frozen=True)
class Ceiling:
    """The largest magnitude ``most`` a setting may have, and what it counts."""

    most: float
    what: str


CEILINGS: dict[str, Ceiling] = {
    # train: (also fidelity:, final:, space.train: and the flags of losslab train)
    "train.epochs": Ceiling(100_000, "epochs of one evaluation"),
    "train.steps_per_epoch": Ceiling(1_000_000, "optimiser steps per epoch"),
    "train.batch_size": Ceiling(4096, "patches per step"),
    "train.patch_size": Ceiling(1024, "voxels per side of a patch"),
    "train.lr": Ceiling(100, "learning rate"),
    "train.weight_decay": Ceiling(100, "weight decay"),
    "train.seed": Ceiling(_SEED, "random seed"),
    "train.val_every": Ceiling(100_000, "epochs between validations"),
    "train.val_patches_per_class": Ceiling(1000, "validation patches per class"),
    "train.grad_clip": Ceiling(1e6, "gradient norm clip"),
    "train.divergence_factor": Ceiling(1e12, "loss growth taken for divergence"),
    "train.sw_batch_size": Ceiling(4096, "sliding-window patches per batch"),
    "train.sw_overlap": Ceiling(1, "sliding-window overlap"),
    "fidelity.train_cases": Ceiling(100_000, "training cases used"),
    "fidelity.rungs": Ceiling(20, "rungs of a fidelity ladder"),
    "fidelity.seeds": Ceiling(100, "seeds the top rung races over"),
    # data:
    "data.cases": Ceiling(100_000, "cases"),
    "data.shape": Ceiling(512, "voxels per side of a generated case"),
    "data.seed": Ceiling(_SEED, "random seed of the data"),
    "data.jitter": Ceiling(1, "proxy organ position sd (normalised units)"),
    "data.split_seed": Ceiling(_SEED, "random seed of the split"),
    "data.spacing": Ceiling(1000, "mm per voxel"),
    "data.ct_window": Ceiling(100_000, "Hounsfield units"),
    "data.foreground_threshold": Ceiling(1e9, "intensity"),
    "data.split_fractions": Ceiling(1, "fraction of the cases"),
    # the study
    "seed": Ceiling(_SEED, "random seed of the study"),
    "top": Ceiling(1000, "best trials compared"),
    "budget.trials": Ceiling(1_000_000, "trials in the whole study"),
    "budget.minutes": Ceiling(366 * 24 * 60, "minutes of one invocation"),
    "objective.k": Ceiling(1000, "classes in the worst-k mean"),
    "objective.weights": Ceiling(1000, "weight of a part of the objective"),
    "workers.stale_after": Ceiling(7 * _DAY_S, "seconds without a heartbeat"),
    "workers.heartbeat": Ceiling(7 * _DAY_S, "seconds between heartbeats"),
    "workers.retry_minutes": Ceiling(7 * 24 * 60, "minutes of retrying a storage"),
    "workers.batch": Ceiling(10_000, "entries a worker takes at once"),
    "workers.population": Ceiling(1024, "evaluations trained at once"),
    # optuna:
    "optuna.sampler.seed": Ceiling(_SEED, "random seed of the sampler"),
    "optuna.sampler.n_startup_trials": Ceiling(1_000_000, "random trials first"),
    "optuna.sampler.n_ei_candidates": Ceiling(100_000, "candidates per TPE draw"),
    "optuna.pruner.n_startup_trials": Ceiling(1_000_000, "trials before pruning"),
    "optuna.pruner.n_min_trials": Ceiling(1_000_000, "trials reporting a step"),
    "optuna.pruner.n_warmup_steps": Ceiling(100_000, "epochs before pruning"),
    "optuna.pruner.interval_steps": Ceiling(100_000, "epochs between pruning checks"),
    "optuna.pruner.min_resource": Ceiling(100_000, "epochs"),
    "optuna.pruner.max_resource": Ceiling(100_000, "epochs"),
    "optuna.pruner.reduction_factor": Ceiling(100, "reduction factor"),
    "optuna.pruner.min_early_stopping_rate": Ceiling(100, "rungs"),
    "optuna.pruner.bootstrap_count": Ceiling(1_000_000, "trials"),
    # gp:
    "gp.population": Ceiling(10_000, "individuals per generation"),
    "gp.generations": Ceiling(100_000, "generations"),
    "gp.height_limit": Ceiling(17, "tree height"),
    "gp.init_min_height": Ceiling(17, "tree height"),
    "gp.init_max_height": Ceiling(17, "tree height"),
    "gp.tournament_size": Ceiling(100, "individuals per tournament"),
    "gp.screen_steps": Ceiling(10_000, "steps of the raw-logit screen"),
    "gp.cxpb": Ceiling(1, "probability"),
    "gp.mutpb": Ceiling(1, "probability"),
    "gp.parsimony": Ceiling(1, "fitness per node"),
    "gp.cap": Ceiling(1e6, "largest class weight of a rule"),
    # greedy:
    "greedy.every": Ceiling(1_000_000, "steps between decisions; fewer than a run has"),
    "greedy.lookahead": Ceiling(1000, "steps each combination trains"),
    "greedy.step": Ceiling(1, "relative change per action"),
    "greedy.max_joint": Ceiling(8, "parameters tried jointly (3^n combinations)"),
    # ml3:
    "ml3.networks": Ceiling(100, "loss networks"),
    "ml3.group": Ceiling(100, "loss networks meta-trained at once"),
    "ml3.outer_steps": Ceiling(100_000, "meta-training steps"),
    "ml3.checkpoints": Ceiling(100, "proposals per network"),
    "ml3.hidden": Ceiling(1024, "units per hidden layer"),
    "ml3.patch_size": Ceiling(1024, "voxels per side of a patch"),
    "ml3.batch_size": Ceiling(4096, "patches per step"),
    "ml3.inner_steps": Ceiling(100, "unrolled SGD steps; memory grows with each"),
    "ml3.inner_lr": Ceiling(1000, "inner learning rate"),
    "ml3.outer_lr": Ceiling(1000, "outer learning rate"),
    "ml3.worst_k": Ceiling(1000, "classes in the soft worst-k"),
    "ml3.temperature": Ceiling(1000, "softmin temperature"),
    "ml3.reset_every": Ceiling(100_000, "outer steps per segmentation network"),
    "ml3.max_consecutive_skips": Ceiling(100_000, "non-finite meta-steps in a row"),
    # schedule parameters (a candidate's, a baseline's, a searched range's, --class-schedule-params)
    "class_schedule.threshold": Ceiling(1, "score"),
    "class_schedule.frozen_weight": Ceiling(1000, "class weight"),
    "class_schedule.delta": Ceiling(100_000, "epochs"),
    "class_schedule.epsilon": Ceiling(1, "score difference"),
    "class_schedule.zeta": Ceiling(1000, "added to the score"),
    "class_schedule.cap": Ceiling(1e6, "largest class weight"),
    "class_schedule.frequencies": Ceiling(1, "class frequency"),
    "class_schedule.weights": Ceiling(1e6, "class weight"),
    "term_schedule.start": Ceiling(1, "training progress"),
    "term_schedule.end": Ceiling(1, "training progress"),
    "term_schedule.at": Ceiling(1, "training progress"),
    "term_schedule.beta": Ceiling(1000, "softmax temperature"),
    "term_schedule.window": Ceiling(100_000, "steps"),
    "term_schedule.eps": Ceiling(1, "smoothing constant"),
    "term_schedule.mean_decay": Ceiling(1, "decay"),
    "term_schedule.weights": Ceiling(1e6, "term weight"),
    "param_schedule.steps": Ceiling(1e11, "training step"),
    # command-line flags with no key in a study file
    "compare.seeds": Ceiling(1000, "seeds per entrant (losslab compare --seeds)"),
}

# Sections that take the ceilings of another (a fidelity overrides train settings).
_SHARED = {"fidelity": "train", "final": "train"}


def ceiling_of(key: str) -> Ceiling | None:
    """The ceiling of the setting at ``key`` (``fidelity.epochs`` -> ``train.epochs``)."""
    if key in CEILINGS:
        return CEILINGS[key]
    section, _, rest = key.partition(".")
    if section in _SHARED:
        return CEILINGS.get(f"{_SHARED[section]}.{rest}")
    return None


def at_most(value: Any, key: str, where: str | None = None) -> None:
    """``value`` (a number, or a list or mapping of them) is within the ceiling of ``key``.

    Raises:
        ConfigError: at ``where`` (default ``key``), naming the value and the ceiling.
        KeyError: ``key`` has no ceiling (a programming error).
    """
    ceiling = ceiling_of(key)
    if ceiling is None:
        raise KeyError(f"no ceiling for {key!r}")
    for number in _numbers(value):
        if not abs(number) <= ceiling.most:  # NaN included
            raise ConfigError(
                where or key,
                f"{short_repr(number)} is more than {_shown(ceiling.most)} ({ceiling.what}), "
                "the most allowed",
            )


def _numbers(value: Any) -> Iterator[float]:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _numbers(item)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _numbers(item)


def _settings(raw: Mapping[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """``(table key, key path, value)`` of every setting of a study or suite mapping that has a
    ceiling; named fidelities under ``final:`` and ``space.train``'s ranges included."""
    for section, body in raw.items():
        section = str(section)
        if not isinstance(body, Mapping):
            yield section, section, body
            continue
        if section == "final" and body and all(isinstance(v, Mapping) for v in body.values()):
            for name, fidelity in body.items():
                for key, value in fidelity.items():
                    yield f"final.{key}", f"final.{name}.{key}", value
            continue
        if section == "fidelity" and isinstance(body.get("rungs"), list):  # a ladder
            rungs = body["rungs"]
            yield "fidelity.rungs", "fidelity.rungs", len(rungs)
            for index, rung in enumerate(rungs):
                for key, value in rung.items() if isinstance(rung, Mapping) else ():
                    yield f"fidelity.{key}", f"fidelity.rungs[{index}].{key}", value
            continue
        if section == "space":
            train = body.get("train")
            for key, value in train.items() if isinstance(train, Mapping) else ():
                yield f"train.{key}", f"space.train.{key}", value
            continue
        for key, value in body.items():
            path = f"{section}.{key}"
            if isinstance(value, Mapping) and not ceiling_of(path):
                for sub, inner in value.items():  # optuna.sampler.seed...
                    yield f"{path}.{sub}", f"{path}.{sub}", inner
            else:
                yield path, path, value


def check_ceilings(raw: Mapping[str, Any], where: str = "") -> None:
    """Every setting of a study or suite file's mapping ``raw`` is within its ceiling.

    ``where`` prefixes the key path of the error (``study.yaml: ``). Settings without a
    ceiling and values that are not numbers are left to the checks of their section.

    Raises:
        ConfigError: ``study.yaml: greedy.lookahead``, naming the value and the ceiling.
    """
    for key, path, value in _settings(raw):
        if ceiling_of(key) is not None:
            at_most(value, key, f"{where}{path}")


def ceilings_markdown() -> str:
    """The table as ``docs/limits.md`` lists it (one row per setting)."""
    rows = ["| setting | at most | what |", "|---|---|---|"]
    rows += [f"| `{key}` | {_shown(c.most)} | {c.what} |" for key, c in CEILINGS.items()]
    return "\n".join(rows)


def _shown(most: float) -> str:
    """``4,294,967,295``, ``100``, ``1e+12``: every digit of a ceiling under 1e12."""
    return f"{int(most):,}" if float(most).is_integer() and abs(most) < 1e12 else f"{most:g}"
