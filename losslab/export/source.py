"""What ``losslab export`` exports: a candidate file, or the best candidate of a study.

A study also gives the number of classes and the class frequencies of its training split
(what frequency-based class schedules and learned rules reading ``freq`` need), measured as
losslab's trainer measures them (:func:`~losslab.training.setup.start_context`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from losslab.candidate import Candidate
from losslab.losses.learned_term import LearnedTerm, add_search_folder, find_network

__all__ = ["ExportSource", "copy_networks", "network_files", "resolve_source"]


@dataclass(frozen=True)
class ExportSource:
    """A candidate to export, where it came from, and what its data says when known."""

    candidate: Candidate
    origin: str  # "candidate file x.json" or "study s (trial 12, the best)"
    num_classes: int | None = None
    frequencies: list[float] | None = None
    balancing_frequencies: list[float] | None = None


def resolve_source(
    spec: str, *, storage: str | None = None, tracking_uri: str | None = None
) -> ExportSource:
    """A candidate JSON file (``*.json``), else a study (its YAML file or its name in
    ``storage``), whose best finished trial is exported.

    Raises:
        ConfigError: a bad candidate or study file. ValueError: no such study, or a study with
            no finished trial.
    """
    path = Path(spec).expanduser()
    if path.suffix == ".json":
        from losslab.config import read_candidate_file

        beside = path.parent / "lossnets"  # an export's or a study's networks
        if beside.is_dir():
            add_search_folder(beside)
        return ExportSource(
            read_candidate_file(path, "CANDIDATE_OR_STUDY"), f"candidate file {spec}"
        )
    return _best_of_study(spec, storage, tracking_uri)


def _best_of_study(spec: str, storage: str | None, tracking_uri: str | None) -> ExportSource:
    from losslab.analysis.finished import open_finished, resolve_study
    from losslab.training.setup import start_context

    study = open_finished(resolve_study(spec, storage=storage, tracking_uri=tracking_uri))
    ranked = [r for r in study.ranked() if r.candidate is not None]
    if not ranked:
        raise ValueError(f"study {study.config.name!r} has no finished trial to export")
    best = ranked[0]
    context = start_context(study.dataset, study.config.train.epochs)
    return ExportSource(
        best.candidate,
        f"study {study.config.name} (trial {best.number}, the best: {best.value:.4g}"
        + (f" at rung {best.rung} of its ladder)" if best.root is not None else ")"),
        num_classes=study.dataset.num_classes,
        frequencies=list(context.frequencies),
        balancing_frequencies=list(context.balancing_frequencies),
    )


def network_files(candidate: Candidate) -> list[Path]:
    """The files of the learned loss networks ``candidate`` names, from the search path.

    Raises:
        FileNotFoundError: a network found nowhere on the search path (naming it).
    """
    return [find_network(t.hash) for t in candidate.terms if isinstance(t, LearnedTerm)]


def copy_networks(files: list[Path], folder: Path) -> list[Path]:
    """Copy network ``files`` (from :func:`network_files`) into ``folder``."""
    copied = []
    for source in files:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / source.name
        if source.resolve() != target.resolve():
            shutil.copyfile(source, target)
        copied.append(target)
    return copied
