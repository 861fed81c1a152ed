"""The ``optuna`` section of a study file: sampler and pruner, validated before anything runs.

::

    optuna:
      sampler: {name: tpe, n_startup_trials: 6}   # tpe | random, with Optuna's arguments
      pruner: {name: hyperband, min_resource: 3}   # none | median | hyperband | successive_halving

Optuna accepts many nonsense values silently (``n_startup_trials: -5``, Hyperband with
``reduction_factor: 1``); every count is checked here against a range, every flag for being a
boolean, and a pruner's resources (epochs) against the epochs of an evaluation. An error is a
``ValueError`` whose message starts with the key path (``optuna.pruner.min_resource: ...``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import optuna

from losslab.limits import CEILINGS

__all__ = ["check_settings", "make_pruner", "make_sampler"]

_SAMPLERS = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
_PRUNERS = {
    "none": optuna.pruners.NopPruner,
    "median": optuna.pruners.MedianPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
}
# Integer arguments of the samplers and pruners: (least, most). ``None`` in a range: unbounded.
_LEAST = {  # the most of each is its ceiling in losslab.limits (optuna.sampler/pruner.<key>)
    "seed": 0,
    "n_startup_trials": 0,
    "n_ei_candidates": 1,
    "n_min_trials": 1,
    "n_warmup_steps": 0,
    "interval_steps": 1,
    "min_resource": 1,
    "max_resource": 1,
    "reduction_factor": 2,
    "min_early_stopping_rate": 0,
    "bootstrap_count": 0,
}
_COUNTS = {
    key: (
        least,
        int((CEILINGS.get(f"optuna.pruner.{key}") or CEILINGS[f"optuna.sampler.{key}"]).most),
    )
    for key, least in _LEAST.items()
}
_AUTO = {"min_resource", "max_resource"}  # may also be "auto"
_FLAGS = {
    "multivariate",
    "group",
    "constant_liar",
    "consider_prior",
    "consider_magic_clip",
    "consider_endpoints",
    "warn_independent_sampling",
}


def _split(raw: Any, what: str, default: str, known: Mapping[str, Any]) -> tuple[str, dict]:
    if raw is None:
        return default, {}
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, Mapping):
        raise ValueError(f"optuna.{what}: a name or a mapping with 'name', got {raw!r}")
    name = str(raw.get("name", default))
    if name not in known:
        raise ValueError(f"optuna.{what}.name: {name!r} is not one of {', '.join(known)}")
    params = {k: v for k, v in raw.items() if k != "name"}
    for key, value in params.items():
        where = f"optuna.{what}.{key}"
        if key in _FLAGS and not isinstance(value, bool):
            raise ValueError(f"{where}: must be true or false, got {value!r}")
        if key in _COUNTS and not (key in _AUTO and value == "auto"):
            least, most = _COUNTS[key]
            if type(value) is not int or not least <= value <= most:
                auto = " or 'auto'" if key in _AUTO else ""
                raise ValueError(
                    f"{where}: must be an integer from {least} to {most:,}{auto}, got {value!r}"
                )
    return name, params


def make_sampler(settings: Mapping[str, Any], seed: int) -> optuna.samplers.BaseSampler:
    """``{name: tpe|random, ...}``; TPE is multivariate with groups (conditional spaces)."""
    name, params = _split(settings.get("sampler"), "sampler", "tpe", _SAMPLERS)
    params.setdefault("seed", seed)
    if name == "tpe":
        params.setdefault("multivariate", True)
        params.setdefault("group", True)
        params.setdefault("n_startup_trials", 5)
    try:
        with warnings.catch_warnings():  # ``group`` is experimental in Optuna, and needed here
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return _SAMPLERS[name](**params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"optuna.sampler: {exc}") from None


def make_pruner(settings: Mapping[str, Any], epochs: int) -> optuna.pruners.BasePruner:
    """``{name: none|median|hyperband|successive_halving, ...}``; Hyperband's ``max_resource``
    defaults to the fidelity's epochs (the resource is the epoch)."""
    name, params = _split(settings.get("pruner"), "pruner", "none", _PRUNERS)
    if name == "hyperband":
        params.setdefault("max_resource", epochs)
    try:
        return _PRUNERS[name](**params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"optuna.pruner: {exc}") from None


def check_settings(settings: Mapping[str, Any], epochs: int) -> None:
    """Validate an ``optuna`` section for evaluations of ``epochs`` epochs (see the module
    docstring); builds the sampler and the pruner once."""
    unknown = sorted(set(settings) - {"sampler", "pruner"})
    if unknown:
        raise ValueError(f"optuna.{unknown[0]}: unknown key; known: ['pruner', 'sampler']")
    make_sampler(settings, 0)
    make_pruner(settings, epochs)
    name, params = _split(settings.get("pruner"), "pruner", "none", _PRUNERS)
    if name not in ("hyperband", "successive_halving"):
        return
    least = params.get("min_resource", 1)
    most = params.get("max_resource", epochs)
    if least != "auto" and least > epochs:
        raise ValueError(
            f"optuna.pruner.min_resource: {least} is more than the {epochs} epoch(s) of an "
            "evaluation (the resource is the epoch)"
        )
    if most != "auto" and least != "auto" and least > most:
        raise ValueError(f"optuna.pruner.min_resource: {least} is more than max_resource ({most})")
