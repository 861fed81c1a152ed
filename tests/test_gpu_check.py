"""``scripts/gpu_check.py``: every part wired (its CPU mode, as CI runs it), a part over its cap
stopped and recorded without stopping the rest, the caps within the check's 8 minutes."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


gpu_check = _load()
parts = gpu_check.parts


def test_the_caps_fit_in_eight_minutes_and_every_issue_part_is_there():
    assert sum(p.cap_s for p in gpu_check.PARTS) <= gpu_check.TOTAL_S <= 480
    names = [p.name for p in gpu_check.PARTS]
    assert names == [
        "sync_free", "distance", "population_cuda", "amp",
        "trainer", "overhead", "population", "ml3_group", "losses", "study",
    ]  # fmt: skip
    assert [p.name for p in gpu_check.PARTS if p.cuda_only] == names[:4]


def test_a_command_over_its_cap_is_killed_with_its_children():
    start = time.monotonic()
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); print('started', flush=True); time.sleep(60)"  # noqa: E501
    status, out = parts.run_isolated([sys.executable, "-c", code], cap_s=3)
    assert status == "timed out after 3 s"
    assert "started" in out
    assert time.monotonic() - start < 30
    status, out = parts.run_isolated([sys.executable, "-c", "raise SystemExit(3)"], cap_s=30)
    assert status == "failed: exit 3"


def test_a_failing_part_is_recorded_and_the_next_still_runs():
    def broken(ctx):
        raise ValueError("no such device\nsecond line")

    def fine(ctx):
        ctx.emit({"x": 1.0})
        return "one row"

    selected = [
        gpu_check.Part("broken", "a broken part", 5, broken),
        gpu_check.Part("fine", "a fine part", 5, fine),
        gpu_check.Part("gpu", "a CUDA part", 5, fine, cuda_only=True),
    ]
    records = gpu_check.run_check(selected, cpu=True, isolate=False, log=lambda line: None)
    assert [r["status"] for r in records] == ["failed: ValueError: no such device", "ok", "ok"]
    assert records[1]["rows"] == [{"x": 1.0}] and records[1]["summary"] == "one row"
    table = gpu_check.markdown_table(records, "header")
    assert table.count("\n| a ") == 3 and "failed: ValueError" in table


def test_a_part_in_a_child_over_its_cap_is_recorded_as_timed_out():
    losses = next(p for p in gpu_check.PARTS if p.name == "losses")
    start = time.monotonic()
    record = gpu_check._run_in_child(losses, cpu=True, cap_s=1)  # killed while importing
    assert record["status"] == "timed out after 1 s" and record["rows"] == []
    assert time.monotonic() - start < 20


def test_the_child_writes_its_rows_as_they_come(tmp_path):
    result = tmp_path / "part.json"
    ctx = parts.Context(cpu=True, deadline=time.monotonic() + 5, result=result)
    ctx.emit({"n": 1})
    assert json.loads(result.read_text())["rows"] == [{"n": 1}]
    ctx.emit({"n": 2})
    assert [r["n"] for r in json.loads(result.read_text())["rows"]] == [1, 2]


@pytest.mark.slow
def test_the_cpu_mode_runs_every_part_and_writes_the_table_and_json(tmp_path):
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--cpu", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    payload = json.loads((out / "gpu_check.json").read_text())
    records = {r["name"]: r for r in payload["parts"]}
    assert list(records) == [p.name for p in gpu_check.PARTS]
    for part in gpu_check.PARTS:
        record = records[part.name]
        if part.cuda_only:
            assert record["status"] == "skipped: no CUDA", record
            assert record["rows"][0]["collected"], record  # its tests exist under that name
        else:
            assert record["status"] == "ok", record
            assert record["rows"], record
    figures = [
        value
        for record in records.values()
        for row in record["rows"]
        for key, value in row.items()
        if key in ("ratio", "overhead", "ours_steps_s", "monai_steps_s", "trials_per_minute")
    ]
    assert len(figures) >= 10 and all(math.isfinite(v) and v > 0 for v in figures)
    assert records["study"]["rows"][0]["trials"] >= 2
    table = (out / "gpu_check.md").read_text()
    assert table in run.stdout
    for part in gpu_check.PARTS:
        assert f"| {part.title} |" in table
