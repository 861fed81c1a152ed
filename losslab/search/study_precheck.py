"""The checks of a study file that need neither torch nor the backends: run first, so that a
mistake in the file is reported in a fraction of a second, before the heavy imports of loading
the study (torch, MONAI, MLflow, Optuna take seconds, more on a loaded machine).

:func:`precheck_study` reads the file strictly (``losslab.strict_yaml``: binary or non-UTF-8
files, duplicate keys, alias bombs), refuses unknown top-level keys (with the closest known
one), an unknown backend or another backend's section, sections that are not mappings, unknown
keys of the sections whose configs import no torch (``train``, ``fidelity``, ``final``,
``budget``, ``objective``, ``workers``) and every number beyond its ceiling (``losslab.limits``). :func:`losslab.search.study_config.load_study` repeats all of it
and checks the rest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from losslab.errors import ConfigError
from losslab.hints import did_you_mean, unknown_key
from losslab.limits import check_ceilings
from losslab.search.fidelity import Fidelity
from losslab.search.objective import Objective
from losslab.search.registry import DEFAULT_BACKEND, backend_names
from losslab.search.workers import WorkerSettings
from losslab.strict_yaml import read_yaml_mapping, short_repr
from losslab.training.config import TrainConfig

__all__ = ["STUDY_KEYS", "precheck_study"]

STUDY_KEYS = frozenset(
    {
        *("study", "backend", "data", "train", "fidelity", "objective", "budget", "seed"),
        *("storage", "experiment", "tracking_uri", "baselines", "space", "top", "workers"),
        "final",
    }
)
_MAPPINGS = ("data", "train", "fidelity", "objective", "budget", "space", "workers")
_LIGHT_SECTIONS = {
    "train": tuple(f.name for f in dataclasses.fields(TrainConfig)),
    "fidelity": tuple(f.name for f in dataclasses.fields(Fidelity)),
    "budget": ("trials", "minutes"),
    "objective": tuple(f.name for f in dataclasses.fields(Objective)),
    "workers": tuple(f.name for f in dataclasses.fields(WorkerSettings)),
}


def precheck_study(path: str | Path) -> Mapping[str, Any]:
    """The mapping of the study file at ``path`` after the cheap checks (module docstring).

    Raises:
        ConfigError: ``study.yaml: key.path: problem``, as ``load_study`` would say it.
    """
    _, raw = read_yaml_mapping(path)
    where = f"{path}: "
    backends = backend_names()
    for key in raw:
        if str(key) not in STUDY_KEYS and str(key) not in backends:
            raise ConfigError(where + str(key), unknown_key(key, STUDY_KEYS | set(backends)))
    backend = raw.get("backend", DEFAULT_BACKEND)
    if backend not in backends:
        hint = did_you_mean(backend, backends)
        raise ConfigError(
            where + "backend",
            f"{short_repr(backend)} is not one of {', '.join(backends)}; {hint}".rstrip("; "),
        )
    for other in sorted(set(raw) & set(backends) - {backend}):
        raise ConfigError(
            where + other,
            f"settings of the backend {other!r}, but the study's backend is {backend!r}",
        )
    for section in (*_MAPPINGS, backend):
        body = raw.get(section)
        if body is not None and not isinstance(body, Mapping):
            raise ConfigError(where + section, f"a mapping, got {short_repr(body)}")
    sections = [(section, raw.get(section)) for section in _LIGHT_SECTIONS]
    fidelity = raw.get("fidelity")
    if isinstance(fidelity, Mapping) and "rungs" in fidelity:  # a ladder: each rung a fidelity
        sections = [(s, b) for s, b in sections if s != "fidelity"]
        rungs = fidelity["rungs"] if isinstance(fidelity["rungs"], list) else []
        sections += [
            (f"fidelity.rungs[{i}]", {k: v for k, v in rung.items() if k != "seeds"})
            for i, rung in enumerate(rungs)
            if isinstance(rung, Mapping)
        ]
    final = raw.get("final")
    if isinstance(final, Mapping) and final and all(isinstance(v, Mapping) for v in final.values()):
        sections += [(f"final.{name}", body) for name, body in final.items()]
    elif isinstance(final, Mapping):
        sections.append(("final", final))
    for section, body in sections:
        known = _LIGHT_SECTIONS[section.partition(".")[0].replace("final", "fidelity")]
        for key in body or {}:
            if str(key) not in known:
                raise ConfigError(f"{where}{section}.{key}", unknown_key(key, known))
    check_ceilings(raw, where)
    return raw
