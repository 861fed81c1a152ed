"""MLflow tracking: with ``tracking/artifacts.py``, the only module that imports MLflow.

One run per evaluation, nested under a parent run when called from a study or a suite, named
by its role and content (``trial-004 tversky(alpha=0.283)``). It holds what reproduces it
(``candidate.json`` with every digit, seed, fidelity, data fingerprint, version; readable params,
see ``tracking.format``), curves per epoch (``val_dice/<class>``, ``weight/<class>``,
``term_weight/<term>`` (``dice``, ``ce``), ``objective``, ``train_loss``), single values (``test_<metric>/mean``,
``test_objective``, ``objective``, ``wall_time``, ``steps``), the per-class test metrics as a
table (``test_per_class.json``, compared across runs in MLflow's artifact view) and
``per_class.csv``, tags (status, failure reason...), ``history.json`` and learned networks
(``lossnets/``). A failed evaluation is a FAILED run with its reason, never a missing run.
Connecting quiets MLflow: no INFO lines (unless ``MLFLOW_LOGGING_LEVEL`` is set), no run links.
The tracking URI is, in order: the one given, ``MLFLOW_TRACKING_URI``, ``sqlite:///mlflow.db``.
Its experiments carry MLflow 3's kind ``custom_model_development``, so the UI opens them on
their runs. A local SQLite store is created atomically, under a lock (see ``sqlite_store``): a process
killed while it creates the store leaves nothing that a later start cannot open.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from losslab import __version__
from losslab.describe import param_text
from losslab.tracking.artifacts import TABLES_TAG, RunArtifacts, artifact_bars
from losslab.tracking.format import RUN_NAME_LIMIT, RunRecord, fit_name, metric_key
from losslab.tracking.sqlite_store import init_lock, prepare_store, sqlite_path, use_wal

__all__ = [
    "DEFAULT_TRACKING_URI",
    "TABLES_TAG",
    "MetricPoint",
    "RunRecord",
    "Tracker",
    "artifact_bars",
    "check_tracking_uri",
    "resolve_tracking_uri",
]

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
# MLflow 3's UI opens an experiment by its kind: without one it may open the GenAI view (traces,
# an assistant); "custom_model_development" opens it on its runs ("Model training"). A kind a
# user chose is kept; one the UI only inferred is replaced.
EXPERIMENT_KIND, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"
_CONNECT_ATTEMPTS = 5


def resolve_tracking_uri(uri: str | None = None) -> str:
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def check_tracking_uri(uri: str) -> None:
    """Raise ``ValueError`` for a URI MLflow has no tracking store for; creates nothing."""
    from mlflow.exceptions import MlflowException

    try:
        from mlflow.tracking._tracking_service.utils import _tracking_store_registry as registry
    except ImportError:  # another MLflow layout: the first connection reports a bad URI
        return
    try:
        registry.get_store_builder(uri)
    except MlflowException:
        known = sorted(s for s in getattr(registry, "_registry", {}) if s)
        scheme = uri.partition(":")[0] if ":" in uri else ""
        raise ValueError(
            f"{uri!r} is not an MLflow tracking URI (no store for the scheme {scheme!r}; known "
            f"schemes: {', '.join(known)}), e.g. sqlite:///mlflow.db or http://HOST:5000"
        ) from None


def quiet_mlflow() -> None:
    """No MLflow INFO lines (store creation, migrations) and no printed run links in the user's
    terminal; ``MLFLOW_LOGGING_LEVEL`` set by the user wins."""
    import mlflow  # noqa: F401  (configures its loggers on import: set the levels after)

    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    if os.environ.get("MLFLOW_LOGGING_LEVEL"):
        return
    for name in ("mlflow", "alembic"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)


def _release_engines(path: str) -> None:
    """Close MLflow's cached connections to the file ``path`` (best effort: MLflow internals)."""
    with contextlib.suppress(Exception):
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        engines = SqlAlchemyStore._engine_map
        for uri in [u for u in engines if path in u]:
            engines.pop(uri).dispose()


def _build_sqlite_store(path: str) -> None:
    """Create and migrate every table of an MLflow store in the SQLite file ``path``."""
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(f"sqlite:///{path}").search_experiments(max_results=1)
    finally:
        _release_engines(path)


def _quoted(value: str) -> str:
    """A value in an MLflow filter string (single quotes; a quote inside is doubled)."""
    return "'" + str(value).replace("'", "''") + "'"


def _record(run: Any) -> RunRecord:
    return RunRecord(
        run_id=run.info.run_id,
        name=run.info.run_name or "",
        status=run.info.status,
        start_time=run.info.start_time or 0,
        tags=dict(run.data.tags),
        metrics=dict(run.data.metrics),
        params=dict(run.data.params),
    )


class MetricPoint(NamedTuple):
    """Metrics of one step (``timestamp``: milliseconds, ``None``: when logged)."""

    values: Mapping[str, float]
    step: int = 0
    timestamp: int | None = None


class Tracker:
    """A thin wrapper over one MLflow client and one experiment."""

    def __init__(self, tracking_uri: str | None = None, experiment: str = "losslab"):
        """Connect (creating the store and the experiment if needed).

        Raises:
            ValueError: a URI MLflow cannot store runs at, or a store that cannot be opened.
        """
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.experiment = experiment
        quiet_mlflow()
        try:
            check_tracking_uri(self.tracking_uri)
        except ValueError as exc:
            source = "" if tracking_uri else " (from MLFLOW_TRACKING_URI or the default)"
            raise ValueError(f"MLflow tracking URI{source}: {exc}") from None
        # Workers of one study may start together on a fresh store. On a local SQLite file,
        # MLflow's schema migration must not run twice at once: a file lock serialises the
        # first connection. Elsewhere (a server) a lost race to create the experiment retries.
        path = sqlite_path(self.tracking_uri)
        with init_lock(path) if path is not None else contextlib.nullcontext():
            if path is not None and prepare_store(path, _build_sqlite_store):
                _release_engines(path)  # connections this process had to a file now replaced
            if path is not None:
                use_wal(path)  # commits 4x cheaper, as durable (sqlite_store)
            for attempt in range(_CONNECT_ATTEMPTS):
                try:
                    self._connect()
                    return
                except Exception as exc:
                    if attempt == _CONNECT_ATTEMPTS - 1:
                        raise ValueError(
                            f"cannot open the MLflow store {self.tracking_uri!r}: "
                            f"{type(exc).__name__}: {exc}"
                        ) from exc
                    time.sleep(0.5 * (attempt + 1))

    def _connect(self) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(self.tracking_uri)
        self.artifacts = RunArtifacts(self.client, self.tracking_uri)
        found = self.client.get_experiment_by_name(self.experiment)
        if found is None:
            self.experiment_id = self.client.create_experiment(
                self.experiment, tags={EXPERIMENT_KIND: TRAINING_KIND}
            )
        else:
            self.experiment_id = found.experiment_id
            kind = found.tags.get(EXPERIMENT_KIND, "")
            if not kind or kind.endswith("_inferred") or kind == "no_inferred_type":
                self.client.set_experiment_tag(self.experiment_id, EXPERIMENT_KIND, TRAINING_KIND)

    def start_run(
        self,
        name: str,
        *,
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        all_tags = {"mlflow.runName": name, "losslab.version": __version__, **(tags or {})}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(self.experiment_id, tags=all_tags, run_name=name)
        self.artifacts.remember(run.info.run_id, run.info.artifact_uri)
        return run.info.run_id

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Log ``params`` as text: floats to 4 significant digits, lists and mappings as JSON,
        ``None`` and empty values left out (``describe.param_text``)."""
        from mlflow.entities import Param

        texts = {str(k): param_text(v) for k, v in params.items()}
        items = [Param(k, v[:6000]) for k, v in texts.items() if v is not None]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i : i + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log finite values only (a NaN is a class absent from the split)."""
        self.log_batch(run_id, [MetricPoint(metrics, step)])

    def log_batch(
        self,
        run_id: str,
        points: Sequence[MetricPoint] = (),
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Metrics of any steps and tags in as few writes as MLflow allows (one request up to
        500 values and 100 tags); finite values only, as :meth:`log_metrics`. The tags go with
        the last request, after every metric."""
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        metrics = [
            Metric(metric_key(k), float(v), point.timestamp or now, point.step)
            for point in points
            for k, v in point.values.items()
            if v is not None and math.isfinite(v)
        ]
        run_tags = [RunTag(k, str(v)[:5000]) for k, v in (tags or {}).items()]
        metric_chunks = [metrics[i : i + 500] for i in range(0, len(metrics), 500)]
        tag_chunks = [run_tags[i : i + 100] for i in range(0, len(run_tags), 100)]
        calls = max(len(metric_chunks), len(tag_chunks))
        metric_chunks = metric_chunks + [[]] * (calls - len(metric_chunks))
        tag_chunks = [[]] * (calls - len(tag_chunks)) + tag_chunks  # the tags last
        for chunk, tag_chunk in zip(metric_chunks, tag_chunks):
            self.client.log_batch(run_id, metrics=chunk, tags=tag_chunk)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self.log_batch(run_id, tags=tags)

    def log_text(self, run_id: str, text: str, path: str) -> None:
        self.artifacts.log_text(run_id, text, path)

    def log_table(self, run_id: str, data: Mapping[str, Sequence[Any]], path: str) -> None:
        """A table (column -> values, all of one length) as the JSON artifact ``path``, which
        MLflow's artifact view shows and compares across runs."""
        with warnings.catch_warnings():  # pandas deprecations inside MLflow
            warnings.simplefilter("ignore", DeprecationWarning)
            self.client.log_table(run_id, {k: list(v) for k, v in data.items()}, path)

    def run_name(self, run_id: str) -> str:
        return self.client.get_run(run_id).info.run_name or ""

    def rename_run(self, run_id: str, name: str) -> None:
        """Rename a run (cut to MLflow's limit of 250 characters)."""
        self.client.update_run(run_id, name=fit_name(name, RUN_NAME_LIMIT))

    def log_artifact(self, run_id: str, local_path: str | os.PathLike, folder: str = "") -> None:
        """Copy the file ``local_path`` into the run's artifacts (under ``folder`` if given)."""
        self.artifacts.log_file(run_id, local_path, folder)

    def log_files(
        self,
        run_id: str,
        files: Mapping[str, bytes],
        tables: Mapping[str, Mapping[str, Sequence[Any]]] | None = None,
    ) -> dict[str, str]:
        """Artifacts from bytes and tables in one upload (:meth:`RunArtifacts.log_files`)."""
        return self.artifacts.log_files(run_id, files, tables)

    def read_artifact(self, run_id: str, path: str) -> bytes | None:
        """The bytes of the artifact ``path`` of a run, or ``None`` when it has none."""
        return self.artifacts.read(run_id, path)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status)

    def reopen_run(self, run_id: str) -> None:
        """Mark a terminated run RUNNING again (a resumed study's parent run)."""
        self.client.update_run(run_id, status="RUNNING")

    def delete_run(self, run_id: str) -> None:
        self.client.delete_run(run_id)

    def delete_tag(self, run_id: str, key: str) -> None:
        from mlflow.exceptions import MlflowException

        with contextlib.suppress(MlflowException):  # the tag was not set
            self.client.delete_tag(run_id, key)

    def find_runs(self, filter_string: str = "", *, deleted: bool = False) -> list[RunRecord]:
        """Every run of the experiment that matches an MLflow filter (all pages), oldest first;
        the deleted runs instead when ``deleted`` (MLflow's "Deleted" view)."""
        from mlflow.entities import ViewType

        found: list[RunRecord] = []
        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id],
                filter_string=filter_string,
                run_view_type=ViewType.DELETED_ONLY if deleted else ViewType.ACTIVE_ONLY,
                max_results=1000,
                order_by=["attributes.start_time ASC"],
                page_token=token,
            )
            found.extend(_record(run) for run in page)
            token = page.token
            if not token:
                return found

    def run(self, run_id: str) -> RunRecord | None:
        """One run (deleted or not); ``None`` when the store has no run of this id."""
        from mlflow.exceptions import MlflowException

        try:
            return _record(self.client.get_run(run_id))
        except MlflowException:
            return None

    def runs_tagged(
        self,
        tags: Mapping[str, str],
        *,
        parent_run_id: str | None = None,
        status: str | None = None,
    ) -> list[RunRecord]:
        """Runs carrying every tag in ``tags`` (children of ``parent_run_id`` only, and in
        ``status`` only, when given), oldest first. The MLflow filter is built here."""
        clauses = [f"tags.`{key}` = {_quoted(value)}" for key, value in tags.items()]
        if parent_run_id is not None:
            clauses.append(f"tags.mlflow.parentRunId = {_quoted(parent_run_id)}")
        if status is not None:
            clauses.append(f"attributes.status = {_quoted(status)}")
        return self.find_runs(" and ".join(clauses))

    def ui_command(self) -> str:
        """How to look at the runs: a server's address, or the command that serves a store."""
        if self.tracking_uri.startswith(("http://", "https://")):
            return f"a browser at {self.tracking_uri}"
        return f"mlflow ui --backend-store-uri {self.tracking_uri}"


# The hook records runs through a Tracker; it lives in its own module, exported here.
