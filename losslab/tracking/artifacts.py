"""A run's artifacts, written straight to its artifact store.

MLflow's client finds a run's artifact store by reading the run back from the tracking store
(one query per run, the first time an artifact is written: on a SQLite store a third of the
cost of writing ``candidate.json``). A run created here already knows its artifact location,
so :class:`RunArtifacts` remembers the store of each run it creates and writes there directly:
the same files at the same place, one query less per run. A run it did not create (another
process's, a resumed one) goes through the client as before.

It also switches MLflow's artifact progress bars (:func:`artifact_bars`).
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import tempfile
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from losslab.tracking.format import table_json

__all__ = ["TABLES_TAG", "RunArtifacts", "artifact_bars"]

TABLES_TAG = "mlflow.loggedArtifacts"  # the tables MLflow's artifact view compares across runs
_BARS = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
_REMEMBERED = 256  # artifact stores kept (the runs of one worker's recent evaluations)


@contextlib.contextmanager
def artifact_bars(show: bool) -> Iterator[None]:
    """MLflow's download and upload bars (tqdm, drawn when MLflow reads back an artifact it
    appends to: ``log_table``, or one it is asked for) off while the block runs, unless
    ``show``."""
    old = os.environ.get(_BARS)
    if not show:
        os.environ[_BARS] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(_BARS, None)
        else:
            os.environ[_BARS] = old


class RunArtifacts:
    """The artifacts of the runs of one MLflow client (see the module docstring)."""

    def __init__(self, client: Any, tracking_uri: str):
        self.client, self.tracking_uri = client, tracking_uri
        self._stores: OrderedDict[str, Any] = OrderedDict()

    def remember(self, run_id: str, artifact_uri: str) -> None:
        """The artifact store of a run just created (its ``run.info.artifact_uri``)."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        try:
            store = get_artifact_repository(artifact_uri, tracking_uri=self.tracking_uri)
        except Exception:  # a scheme this MLflow resolves otherwise: the client's way
            return
        self._stores[run_id] = store
        while len(self._stores) > _REMEMBERED:
            self._stores.popitem(last=False)

    def _upload(self, run_id: str, local: str, folder: str | None) -> None:
        store = self._stores.get(run_id)
        if os.path.isdir(local):
            if store is None:
                self.client.log_artifacts(run_id, local, folder)
            else:
                store.log_artifacts(local, folder)
        elif store is None:
            self.client.log_artifact(run_id, local, folder)
        else:
            store.log_artifact(local, folder)

    def log_text(self, run_id: str, text: str, path: str) -> None:
        """The text file ``path`` (``candidate.json``, ``lossnets/x.txt``) in the run."""
        path = posixpath.normpath(path)
        folder = posixpath.dirname(path) or None
        with tempfile.TemporaryDirectory(prefix="losslab-artifact-") as scratch:
            local = os.path.join(scratch, posixpath.basename(path))
            with open(local, "w", encoding="utf-8") as handle:
                handle.write(text)
            self._upload(run_id, local, folder)

    def log_file(self, run_id: str, local_path: str | os.PathLike, folder: str = "") -> None:
        """Copy the file ``local_path`` into the run's artifacts (under ``folder`` if given)."""
        self._upload(run_id, os.fspath(local_path), folder or None)

    def log_files(
        self,
        run_id: str,
        files: Mapping[str, bytes],
        tables: Mapping[str, Mapping[str, Sequence[Any]]] | None = None,
    ) -> dict[str, str]:
        """Artifacts from bytes (``{"plots/val_dice.png": b"..."}``) and ``tables`` (path ->
        columns, as MLflow's ``log_table`` writes them), in one upload. Returns the tag that
        lists the tables in MLflow's artifact view (``{}`` without tables), for the caller to
        set with its other tags."""
        files = {**files, **{path: table_json(data) for path, data in (tables or {}).items()}}
        if not files:
            return {}
        with tempfile.TemporaryDirectory(prefix="losslab-artifacts-") as folder:
            for name, data in files.items():
                target = os.path.join(folder, name)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "wb") as handle:
                    handle.write(data)
            self._upload(run_id, folder, None)
        if not tables:
            return {}
        listed = [{"path": path, "type": "table"} for path in tables]
        return {TABLES_TAG: json.dumps(listed)}

    def read(self, run_id: str, path: str) -> bytes | None:
        """The bytes of the artifact ``path`` of a run, or ``None`` when it has none."""
        from mlflow.exceptions import MlflowException

        with (
            tempfile.TemporaryDirectory(prefix="losslab-artifact-") as folder,
            artifact_bars(show=_BARS in os.environ),  # off unless the user set them
        ):
            try:
                local = self.client.download_artifacts(run_id, path, folder)
            except (MlflowException, OSError):
                return None
            if not os.path.isfile(local):
                return None
            with open(local, "rb") as handle:
                return handle.read()
