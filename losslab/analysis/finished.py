"""A study found again after it ran: its file (or its name in a storage), ledger and results.

``losslab compare``, ``report`` and ``show`` start here. A study is given as its YAML file or as
its name: the study's store keeps the file it was started from (``losslab.config``), so a name
and a storage are enough. Nothing here trains, and :func:`open_finished` writes nothing: a
study that does not exist is an error before any file, database or MLflow store is touched.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from losslab.data import SegmentationDataset, build_dataset
from losslab.losses.learned_term import add_search_folder
from losslab.search.backend import TrialRecord
from losslab.search.evaluator import Evaluation, Evaluator
from losslab.search.store import default_storage_url, study_folder
from losslab.search.store.ledger import StudyStore
from losslab.search.study_config import StudyConfig, load_study
from losslab.search.study_outcome import StudyOutcome
from losslab.search.study_verdict import TopRung
from losslab.tracking.tracker import resolve_tracking_uri

__all__ = ["FinishedStudy", "open_finished", "resolve_study"]


def _storage_url(config_storage: str | None, storage: str | None, tracking_uri: str | None) -> str:
    return storage or config_storage or default_storage_url(resolve_tracking_uri(tracking_uri))


def resolve_study(
    spec: str, *, storage: str | None = None, tracking_uri: str | None = None
) -> StudyConfig:
    """The study ``spec`` names: a YAML file, else a study name in ``storage`` (default: the
    journal beside the local MLflow store), read from the file the study was started with.
    ``storage`` and ``tracking_uri`` override the file's.

    Raises:
        ConfigError: a bad file. ValueError: no such file nor study (the message lists the
            studies the storage holds).
    """
    path = Path(spec)
    if path.is_file():
        config = load_study(path)
    elif path.suffix in (".yaml", ".yml"):
        raise ValueError(f"{spec}: no such file")
    else:
        config = _from_storage(spec, _storage_url(None, storage, tracking_uri))
    changes = {}
    if storage:
        changes["storage"] = storage
    if tracking_uri:
        changes["tracking_uri"] = tracking_uri
    return dataclasses.replace(config, **changes)


def _missing(url: str) -> bool:
    """Whether a file storage does not exist (opening it would create it)."""
    from losslab.search.store.storage import journal_path

    path = journal_path(url)
    if path is None and url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
    return path is not None and not Path(path).is_file()


def _from_storage(name: str, url: str) -> StudyConfig:
    import optuna

    from losslab.search.store.storage import open_storage

    if _missing(url):
        raise ValueError(
            f"{name}: neither a study file nor a study in {url} (no such storage; give the "
            "study's YAML file, or --storage)"
        )
    storage = open_storage(url, retry_seconds=0)
    summaries = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    if name not in summaries:
        there = ", ".join(sorted(summaries)) or "none"
        raise ValueError(
            f"{name}: neither a study file nor a study in {url} (studies there: {there})"
        )
    source = summaries[name].user_attrs.get("losslab.config")
    if not source:
        raise ValueError(f"study {name!r} in {url} was not made by losslab (no study file)")
    return load_study(f"{name} (the study file kept in {url})", text=source)


@dataclass
class FinishedStudy:
    """A study's configuration, store (opened to read), data and ledger."""

    config: StudyConfig
    store: StudyStore
    dataset: SegmentationDataset
    records: list[TrialRecord]
    storage_url: str

    def search_evaluator(self) -> Evaluator:
        """An evaluator at the study's own fidelity and seed (no MLflow): it gives the keys the
        study's evaluations were cached under."""
        config = self.config
        return Evaluator(
            self.dataset,
            config.train,
            config.fidelity,
            config.objective,
            seed=config.seed,
            cache=self.store.cache,
        )

    def _outcome(self) -> StudyOutcome:
        return StudyOutcome(
            self.config, self.dataset, self.records, [], {}, "", None, self.storage_url
        )

    def ranked(self) -> list[TrialRecord]:
        """Finished (ok) entries that can be trained again as they are, best objective first,
        one per evaluation key. A run steered by its backend's hooks (a greedy controller's:
        ``variant``) is left out: its candidate alone is the unsteered loss, and its replay (a
        trial of its own) is what reproduces it. On a fidelity ladder the verdict's winner
        comes first, then each proposal once, at the highest rung it reached."""
        outcome = self._outcome()
        if self.config is not None and not self.config.ladder.plain:  # the verdict's winner first
            outcome.winner = self.outcome().winner
        return [r for r in outcome.best() if not r.variant]

    def baselines(self, rung: int = 0, seed: int = 0) -> list[Evaluation]:
        """The baselines the study evaluated at its fidelity (``rung`` of its ladder, the
        study's seed plus ``seed``), from the cache (those it has)."""
        config = self.config
        evaluator = Evaluator(
            self.dataset,
            config.train,
            config.ladder.rungs[rung].fidelity,
            config.objective,
            seed=config.seed + seed,
            cache=self.store.cache,
        )
        found = []
        for candidate in self.config.baselines:
            key = evaluator.key(candidate)
            hit = self.store.cache.get(key)
            if hit is not None:
                value = self.config.objective.of_result(hit.result) if hit.result.ok else math.nan
                found.append(
                    Evaluation(key, candidate, hit.result, value, run_id=hit.run_id, cached=True)
                )
        return found

    def outcome(self) -> StudyOutcome:
        """The study as ``losslab search`` ends it (its tables print from this)."""
        outcome = self._outcome()
        outcome.baselines = self.baselines()
        ladder = self.config.ladder
        outcome.rung_baselines = {
            (r, s): self.baselines(r, s)
            for r, rung in enumerate(ladder.rungs)
            for s in range(rung.seeds)
        }
        top = TopRung(
            ladder, self.store.cache, list(self.dataset.class_names), outcome.rung_baselines
        )
        outcome.verdict, outcome.winner = top.verdict(self.records, self.config.seed)
        outcome.collect_results(self.store.cache)
        return outcome


def open_finished(config: StudyConfig) -> FinishedStudy:
    """Open ``config``'s study to read: its store (``ValueError`` when the storage holds no
    such study, naming the storage and the studies it holds), data and ledger."""
    url = _storage_url(config.storage, None, config.tracking_uri)
    if _missing(url):
        raise ValueError(f"no study '{config.name}': the storage {url} does not exist")
    store = config.store(url)
    store.load()
    lossnets = study_folder(url, resolve_tracking_uri(config.tracking_uri)) / "lossnets"
    if lossnets.is_dir():  # an ML3 study's networks, for its candidates to train again
        add_search_folder(lossnets)
    dataset = build_dataset(config.data)
    return FinishedStudy(config, store, dataset, store.records(), url)
