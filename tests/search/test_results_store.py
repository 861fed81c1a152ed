"""The evaluation cache keeps results in losslab's own store beside the Optuna storage (a table
of the study's database, or one JSON file per key beside a journal), out of the study's
attributes; a study made before keeps its results as attributes, still found."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

from losslab.search.evaluator import CachedEvaluation
from losslab.search.store.cache import AttrCache, ResultsCache
from losslab.search.store.optuna_store import OptunaStudyStore
from losslab.search.store.results_table import FileResults, SqlResults, safe_name
from losslab.search.store.storage import open_storage
from losslab.training import EpochRecord, Result

KEY = "0123456789abcdef0123"


def _url(kind: str, tmp_path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'studies.db'}"
    return f"journal:{tmp_path / 'studies.log'}"


def _store(url: str, name: str = "s", *, load: bool = False) -> OptunaStudyStore:
    store = OptunaStudyStore(url, study_name=name, fingerprint="f")
    if load:
        store.load()
    else:
        store.open(resume=False, seed=0)
    return store


def _result(seed: float = 0.0) -> Result:
    history = [
        EpochRecord(e, 0.5 - 0.1 * e + seed, [0.1 * e, 0.2], [1.0, 2.0], [1.0], 1.5 * e)
        for e in range(3)
    ]
    return Result(
        "ok",
        ["bg", "a"],
        history=history,
        test_metrics={"dice": [0.9, 0.25 + seed]},
        wall_time=12.5,
        steps=6,
        series={"greedy.zeta": [[1, 0.1], [2, 0.2]]},
        tags={"greedy.mode": "up"},
        test_cases={"dice": [[0.9, 0.3], [0.8, 0.2]]},
        test_case_ids=["case_1", "case_2"],
        logit_hist={"a": {"edges": [-1.0, 0.0, 1.0], "foreground": [1, 2], "background": [3, 4]}},
    )


@pytest.fixture(params=["journal", "sqlite"])
def url(request, tmp_path):
    return _url(request.param, tmp_path)


def test_a_result_survives_a_round_trip(url):
    store = _store(url)
    cache = store.cache
    assert isinstance(cache, ResultsCache) and AttrCache is ResultsCache
    assert cache.get(KEY) is None
    result = _result()
    cache.put(KEY, CachedEvaluation(result, run_id="run1", origin="trial 3"))
    hit = _store(url).cache.get(KEY)  # a fresh store reads it back from the storage
    assert hit.result == result and hit.result.to_dict() == result.to_dict()
    assert isinstance(hit.result.history[0], EpochRecord)
    assert (hit.run_id, hit.origin) == ("run1", "trial 3")


def test_no_result_is_a_study_attribute(url):
    store = _store(url)
    store.cache.put(KEY, CachedEvaluation(_result(), "run1", "trial 0"))
    attrs = optuna.load_study(study_name="s", storage=open_storage(url)).user_attrs
    assert not [name for name in attrs if name.startswith("losslab.eval.")]
    assert attrs["losslab.fingerprint"] == "f"  # the study's own attributes are still there


def test_a_legacy_attribute_is_found(url):
    store = _store(url)
    legacy = CachedEvaluation(_result(1.0), "old-run", "trial 7")
    body = {"result": legacy.result.to_dict(), "run_id": "old-run", "origin": "trial 7"}
    optuna.load_study(study_name="s", storage=open_storage(url)).set_user_attr(
        f"losslab.eval.{KEY}", body
    )
    for reader in (store, _store(url, load=True)):
        hit = reader.cache.get(KEY)
        assert hit.result == legacy.result and (hit.run_id, hit.origin) == ("old-run", "trial 7")
    assert store.cache.get("f" * 20) is None


def test_two_workers_share_results(url):
    first, second = _store(url), _store(url)
    assert second.cache.get(KEY) is None
    first.cache.put(KEY, CachedEvaluation(_result(), "run1", "trial 0"))
    hit = second.cache.get(KEY)
    assert hit is not None and hit.run_id == "run1"
    second.cache.put(KEY, CachedEvaluation(_result(), "run2", "trial 1"))  # a racing worker
    assert first.cache.get(KEY).run_id == "run1"  # the first put is kept
    assert _store(url, load=True).cache.get(KEY).run_id == "run1"


def test_results_of_another_study_are_apart(url):
    one, other = _store(url, "one"), _store(url, "other")
    one.cache.put(KEY, CachedEvaluation(_result(), "run1", "trial 0"))
    assert other.cache.get(KEY) is None


def test_many_workers_put_at_once(url):
    stores = [_store(url) for _ in range(6)]
    start, errors = threading.Barrier(len(stores)), []

    def put(store, i):
        start.wait()
        try:
            store.cache.put(KEY, CachedEvaluation(_result(), f"run{i}", f"trial {i}"))
        except Exception as exc:  # pragma: no cover - what the test looks for
            errors.append(exc)

    threads = [threading.Thread(target=put, args=(s, i)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert stores[0].cache.get(KEY).result == _result()


# --- on a journal file ------------------------------------------------------------------------


def test_journal_results_are_files_beside_the_journal(tmp_path):
    url = _url("journal", tmp_path)
    store = _store(url, "my/study")
    for i in range(5):
        store.cache.put(f"key{i}", CachedEvaluation(_result(i), f"run{i}", f"trial {i}"))
    folder = tmp_path / "studies.log.results" / "my%2Fstudy"
    assert sorted(p.name for p in folder.iterdir()) == [f"key{i}.json" for i in range(5)]
    assert list(tmp_path.rglob("*.tmp")) == []  # written atomically: no temp file left
    body = json.loads((folder / "key2.json").read_text())
    assert body["run_id"] == "run2" and Result.from_dict(body["result"]) == _result(2)


def test_a_journal_result_is_moved_into_place_whole(tmp_path, monkeypatch):
    results = FileResults(tmp_path / "studies.log", "s")
    moves, replace = [], os.replace

    def watched(source, target):
        assert Path(source).parent == Path(target).parent  # same folder: an atomic rename
        assert json.loads(Path(source).read_text())["run_id"] == "run1"  # written in full
        assert results.get(KEY) is None  # nothing visible before the move
        moves.append(Path(target).name)
        replace(source, target)

    monkeypatch.setattr("losslab.search.store.results_table.os.replace", watched)
    results.put(KEY, {"result": _result().to_dict(), "run_id": "run1", "origin": "trial 0"})
    assert moves == [f"{KEY}.json"] and results.get(KEY)["run_id"] == "run1"
    assert [p.name for p in results.folder.iterdir()] == [f"{KEY}.json"]


def test_a_failed_journal_write_leaves_nothing(tmp_path):
    results = FileResults(tmp_path / "studies.log", "s")
    with pytest.raises(TypeError):
        results.put(KEY, {"result": object()})
    assert list(results.folder.iterdir()) == []
    assert results.get(KEY) is None


def test_file_names_are_safe():
    assert safe_name("a/b") == "a%2Fb"
    assert safe_name("..") == "%2E%2E" and safe_name(".") == "%2E"
    assert safe_name("tiny-1.v2") == "tiny-1.v2"


def test_a_read_only_journal_open_makes_no_folder(tmp_path):
    url = _url("journal", tmp_path)
    optuna.create_study(study_name="s", storage=open_storage(url))
    assert _store(url, load=True).cache.get(KEY) is None
    assert not (tmp_path / "studies.log.results").exists()


# --- on a database ----------------------------------------------------------------------------


def _tables(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        return sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_sqlite_results_are_a_table(tmp_path):
    url = _url("sqlite", tmp_path)
    _store(url).cache.put(KEY, CachedEvaluation(_result(), "run1", "trial 0"))
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT study, key, body FROM losslab_results")).all()
    engine.dispose()
    assert [(r.study, r.key) for r in rows] == [("s", KEY)]
    assert json.loads(rows[0].body)["run_id"] == "run1"


def test_a_read_only_open_makes_no_table_and_finds_nothing(tmp_path):
    url = _url("sqlite", tmp_path)
    optuna.create_study(study_name="s", storage=open_storage(url))  # a study from before
    store = _store(url, load=True)
    assert store.cache.get(KEY) is None
    assert "losslab_results" not in _tables(url)
    _store(url).cache.put(KEY, CachedEvaluation(_result(), "run1", "trial 0"))  # a worker
    assert store.cache.get(KEY).run_id == "run1"  # seen once the table is there


def test_the_table_is_made_once_per_store(tmp_path, monkeypatch):
    url = _url("sqlite", tmp_path)
    made = []
    create = SqlResults._create
    monkeypatch.setattr(SqlResults, "_create", lambda self: made.append(1) or create(self))
    store = _store(url)
    for _ in range(5):
        store.cache.get(KEY)
    store.cache.put(KEY, CachedEvaluation(_result(), "run1", "trial 0"))
    assert len(made) == 1


def test_workers_making_the_table_at_once(tmp_path):
    storage = open_storage(_url("sqlite", tmp_path))
    start, made, errors = threading.Barrier(8), [], []

    def make():
        start.wait()
        try:
            made.append(SqlResults(storage.rdb.engine, "s"))
        except Exception as exc:  # pragma: no cover - what the test looks for
            errors.append(exc)

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(made) == 8
    made[0].put(KEY, {"x": 1})
    assert made[-1].get(KEY) == {"x": 1}
