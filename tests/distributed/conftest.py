"""Fixtures: one PostgreSQL cluster for the session (a database per test), one MLflow server for
the session (an experiment per test). Skipped, with the reason, where PostgreSQL or its Python driver is not installed."""

from __future__ import annotations

import importlib.util
import uuid

import pytest

from .servers import MlflowServer, PostgresServer, postgres_bin


@pytest.fixture(scope="session")
def postgres():
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (no initdb; Debian: apt-get install postgresql)")
    if importlib.util.find_spec("psycopg") is None:
        pytest.skip('the PostgreSQL driver is not installed: pip install "losslab[postgres]"')
    server = PostgresServer(bindir)
    server.start()
    yield server
    server.close()


@pytest.fixture
def database(postgres) -> str:
    """The URL of a fresh database of the session's cluster."""
    return postgres.create_database(f"study_{uuid.uuid4().hex[:10]}")


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """One server for the session (it takes seconds to start); each test uses its own
    experiment."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    yield server
    server.stop()
