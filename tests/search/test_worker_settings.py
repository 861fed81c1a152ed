"""The study file's ``workers:`` section, worker ids and the heartbeat thread."""

from __future__ import annotations

import threading
import time

import pytest

from losslab.config import ConfigError
from losslab.search import load_study
from losslab.search.workers import Heartbeat, WorkerSettings, is_stale, worker_id

from .studies import write_study


def test_the_section_is_read_and_defaults_to_minutes_not_an_hour(tmp_path):
    default = load_study(write_study(tmp_path)).workers
    assert default.stale_after == 300 and default.interval == 60
    config = load_study(write_study(tmp_path, workers={"stale_after": 20, "heartbeat": 2}))
    assert config.workers == WorkerSettings(stale_after=20, heartbeat=2)
    assert WorkerSettings(stale_after=20).interval == 4  # a fifth of stale_after


def test_the_section_is_not_part_of_the_studys_identity(tmp_path):
    plain = load_study(write_study(tmp_path)).fingerprint
    assert load_study(write_study(tmp_path, workers={"stale_after": 20})).fingerprint == plain


@pytest.mark.parametrize(
    ("workers", "key"),
    [
        ({"stale_after": 10, "heartbeat": 6}, "workers.heartbeat"),
        ({"stale_after": -1}, "workers.stale_after"),
        ({"retry_minutes": "soon"}, "workers.retry_minutes"),
        ({"stale": 10}, "workers"),
    ],
)
def test_bad_values_name_their_key(tmp_path, workers, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_study(write_study(tmp_path, workers=workers))


def test_a_worker_on_another_host_is_stale_by_its_heartbeat_only(monkeypatch):
    monkeypatch.setenv("LOSSLAB_WORKER_HOST", "node7")
    assert worker_id().startswith("node7:")
    elsewhere = "node9:123"
    assert not is_stale(elsewhere, None, 10)  # nothing known: never taken for dead
    assert not is_stale(elsewhere, time.time() - 5, 10)
    assert is_stale(elsewhere, time.time() - 11, 10)


def test_the_heartbeat_beats_until_its_block_ends_and_survives_a_failing_beat():
    beats, failed = [], threading.Event()

    def beat():
        beats.append(1)
        if len(beats) == 2:
            failed.set()
            raise ConnectionError("storage unreachable")

    with Heartbeat(beat, interval=0.01) as heartbeat:
        assert failed.wait(5)
        while len(beats) < 4:
            pass
    count = len(beats)
    assert heartbeat.missed == 1
    threading.Event().wait(0.05)
    assert len(beats) == count  # stopped with the block
