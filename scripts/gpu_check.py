"""The GPU check: the GPU tests, then the benchmarks, in one command of under 8 minutes.

    python scripts/gpu_check.py [--out DIR] [--cpu] [--only PART ...] [--in-process]

Run it first whenever a GPU is available. It runs, each part under its own time cap:

- the GPU tests: the sync-free training step (``set_sync_debug_mode("error")``), the distance
  transform on the device, population training against runs alone on CUDA, bf16 autocast and a
  ``GradScaler`` with every library loss and a learned term;
- the benchmarks, through the functions of ``scripts/bench_*.py``: the trainer against the MONAI
  tutorial loop (``bench_trainer``), the trainer's step against the bare network's step per loss
  (``bench_overhead``), populations of N = 1, 2, 4, 8 against N runs in turn for tiny and base
  unet3d at 64^3 and 96^3 (``bench_population``), ML3 loss networks meta-trained as one group
  against in turn, N = 2, 4, 8 (``bench_ml3_group``), the losses against MONAI
  (``bench_losses``), and a 3-minute genetic study with ``workers.population: 8``
  (``bench_study``).

On CUDA every part runs in its own process, killed at its cap: a part over its cap is recorded
as ``timed out`` with the rows it finished, and the next part runs. The check writes
``gpu_check.md`` (one table, a row per part) and ``gpu_check.json`` (every figure) into
``--out`` (default ``$OUT`` where set, else ``gpu_check/``) and prints the table.

Without CUDA (or with ``--cpu``) it checks the wiring: the CUDA parts are recorded as
``skipped: no CUDA`` (their tests collected, so a renamed test fails the check) and every
benchmark runs at a tiny size, in this process unless ``--isolate``, each part capped at
``WIRING_CAP_S`` (a loaded CI machine is slow, and speed is not what this mode checks); CI runs
it so.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench_* scripts beside this one

import gpu_check_parts as parts  # noqa: E402
from gpu_check_parts import run_isolated  # noqa: E402,F401  (re-exported)


@dataclasses.dataclass(frozen=True)
class Part:
    """One part of the check: ``run(ctx)`` fills ``ctx.rows`` and returns a one-line summary."""

    name: str
    title: str
    cap_s: float  # on CUDA; a part past it is stopped and recorded as timed out
    run: Callable[[parts.Context], str]
    cuda_only: bool = False


PARTS: list[Part] = [
    Part("sync_free", "test: no host sync in a training step", 55, parts.test_sync_free, True),
    Part("distance", "test: distance transform on the device", 15, parts.test_distance, True),
    Part(
        "population_cuda",
        "test: population, greedy look-ahead and ML3 group equal runs alone",
        35,
        parts.test_population,
        True,
    ),
    Part("amp", "test: bf16 autocast, GradScaler, every loss", 25, parts.test_amp, True),
    Part("trainer", "bench: trainer vs MONAI tutorial loop", 30, parts.bench_trainer),
    Part("overhead", "bench: trainer step vs bare network step", 35, parts.bench_overhead),
    Part("population", "bench: population vs N runs in turn", 40, parts.bench_population),
    Part("ml3_group", "bench: ML3 networks grouped vs in turn", 20, parts.bench_ml3_group),
    Part("losses", "bench: losses vs MONAI", 15, parts.bench_losses),
    Part("study", "bench: 3-minute study, workers.population 8", 210, parts.bench_study),
]
TOTAL_S = 480  # the whole check on CUDA, every cap included
WIRING_CAP_S = 300  # each part's cap in the CPU mode, which checks wiring, not speed


def _run_here(part: Part, ctx: parts.Context) -> dict[str, Any]:
    try:
        summary = part.run(ctx)
        status = ctx.status or "ok"
    except Exception as exc:  # a part that fails must not stop the others
        summary, status = "", f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return {"status": status, "summary": summary, "rows": ctx.rows}


def _run_in_child(part: Part, cpu: bool, cap_s: float) -> dict[str, Any]:
    """The part in a fresh process (``--run-part``); its rows so far survive a timeout."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "part.json"
        command = [sys.executable, __file__, "--run-part", part.name, "--result", str(result)]
        status, tail = parts.run_isolated(command + (["--cpu"] if cpu else []), cap_s)
        record = json.loads(result.read_text()) if result.exists() else {"rows": []}
    if status != "ok" or not record.get("status"):
        record["status"] = status if status != "ok" else "failed: no result written"
        record["output"] = tail
    record.setdefault("summary", "")
    return record


def run_check(
    selected: list[Part], cpu: bool, isolate: bool, log: Callable[[str], None] = print
) -> list[dict[str, Any]]:
    """Every selected part, in order; one record per part (name, title, status, seconds...)."""
    records = []
    for part in selected:
        start = time.monotonic()
        cap = WIRING_CAP_S if cpu else part.cap_s
        if cpu and part.cuda_only:
            ctx = parts.Context(cpu=True, deadline=start + cap)
            record = _run_here(part, ctx)
        elif isolate:
            record = _run_in_child(part, cpu, cap)
        else:
            record = _run_here(part, parts.Context(cpu=cpu, deadline=start + cap))
        seconds = time.monotonic() - start
        if record["status"] == "ok" and seconds > cap and not cpu:
            record["status"] = f"over its cap ({seconds:.0f} s > {cap:g} s)"
        records.append({"name": part.name, "title": part.title, "cap_s": cap, **record})
        records[-1]["seconds"] = round(seconds, 1)
        log(f"[{part.name}] {record['status']} in {seconds:.1f} s: {record['summary']}")
    return records


def markdown_table(records: list[dict[str, Any]], header: str) -> str:
    """One table, a row per part."""
    lines = [header, "", "| part | status | seconds (cap) | result |", "|---|---|---|---|"]
    for r in records:
        result = r["summary"].replace("|", "/") or "-"
        lines.append(
            f"| {r['title']} | {r['status']} | {r['seconds']:.0f} ({r['cap_s']:g}) | {result} |"
        )
    return "\n".join(lines) + "\n"


def _environment(cpu: bool) -> dict[str, str]:
    import torch

    cuda = torch.cuda.is_available() and not cpu
    return {
        "device": torch.cuda.get_device_name() if cuda else f"CPU ({platform.machine()})",
        "mode": "cuda" if cuda else "cpu wiring (tiny sizes, CUDA parts skipped)",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": str(torch.get_num_threads()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu_check"))
    parser.add_argument("--cpu", action="store_true", help="wiring mode (automatic without CUDA)")
    parser.add_argument("--only", nargs="+", choices=[p.name for p in PARTS], default=None)
    parser.add_argument("--isolate", action="store_true", help="CPU mode: a process per part")
    parser.add_argument("--in-process", action="store_true", help="CUDA: no process per part")
    parser.add_argument("--run-part", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import torch

    cpu = args.cpu or not torch.cuda.is_available()
    if args.run_part:  # the child of one isolated part
        part = next(p for p in PARTS if p.name == args.run_part)
        ctx = parts.Context(cpu=cpu, deadline=time.monotonic() + part.cap_s, result=args.result)
        ctx.write(_run_here(part, ctx))
        return 0
    selected = [p for p in PARTS if args.only is None or p.name in args.only]
    env = _environment(cpu)
    print(f"GPU check on {env['device']}, {env['mode']}, torch {env['torch']}", flush=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    records = run_check(selected, cpu, isolate=args.isolate or not (cpu or args.in_process))
    header = f"GPU check, {started}: {env['device']}, {env['mode']}, torch {env['torch']}"
    table = markdown_table(records, header)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.md").write_text(table)
    payload = {"started": started, **env, "parts": records}
    (args.out / "gpu_check.json").write_text(json.dumps(payload, indent=2, default=str))
    print("\n" + table)
    print(f"written: {args.out / 'gpu_check.md'}, {args.out / 'gpu_check.json'}")
    failed = [r for r in records if re.match(r"failed|timed out|over", r["status"])]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
