"""The parts of ``gpu_check.py``: the GPU tests (through pytest) and the benchmarks (through the
functions of the ``bench_*.py`` scripts beside this file).

Each part takes a :class:`Context` (``cpu``: the tiny wiring sizes; ``deadline``: when its cap
ends), adds its figures to ``ctx.rows`` with :meth:`Context.emit` (written at once to the
part's result file when it runs in a process of its own, so a part stopped at its cap keeps
the rows it finished) and returns a one-line summary for the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Context:
    """What a part knows and fills: the mode, its deadline, its rows and its status."""

    cpu: bool
    deadline: float
    result: Path | None = None
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    status: str = ""  # empty: ok; a part sets it to a skip or a failure of its own

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def emit(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if self.result is not None:
            self.write({"status": "", "summary": "", "rows": self.rows})

    def write(self, record: dict[str, Any]) -> None:
        if self.result is not None:
            self.result.write_text(json.dumps(record, default=str))

    @property
    def device(self):
        import torch

        return torch.device("cpu" if self.cpu else "cuda")


def run_isolated(
    command: list[str], cap_s: float, cwd: Path = ROOT, lines: int = 15
) -> tuple[str, str]:
    """Run ``command`` in its own process group, killed (with its children) after ``cap_s``.

    Returns ``(status, output)``: ``ok``, ``failed: exit <rc>`` or ``timed out after <cap> s``,
    and the output's last ``lines`` lines (0: all of it).
    """
    process = subprocess.Popen(
        command,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=max(cap_s, 0.1))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        return f"timed out after {cap_s:.0f} s", tail(output, lines)
    status = "ok" if process.returncode == 0 else f"failed: exit {process.returncode}"
    return status, tail(output, lines)


def tail(text: str | None, lines: int = 15) -> str:
    """The last ``lines`` lines of ``text`` (0: all)."""
    return "\n".join((text or "").strip().splitlines()[-lines:] if lines else [text or ""])


# -- the GPU tests ---------------------------------------------------------------------------------

SYNC = "tests/training/test_sync_free.py"
TESTS = {
    "sync_free": [
        f"{SYNC}::test_training_steps_do_not_sync_the_gpu",
        f"{SYNC}::test_the_gpu_check_catches_a_sync_in_a_step",
        "tests/export/test_sync_free.py::test_the_exported_loss_does_not_sync_the_gpu_under_autocast",
    ],
    "distance": [
        "tests/losses/test_distance.py::test_on_the_gpu_the_map_is_made_there_without_a_sync"
    ],
    "population_cuda": [
        "tests/training/test_population.py::test_population_on_the_gpu_trains_as_alone",
        "tests/search/test_greedy_batched.py::test_on_cuda_auto_batches_and_scores_as_one_at_a_time",
        "tests/search/test_ml3_group_cuda.py::test_on_cuda_a_group_equals_each_network_alone",
    ],
    "amp": ["tests/training/test_amp.py", "-k", "cuda"],
}


_COLLECTED: list[str] = []  # the wiring mode's node ids, collected once for every part


def _collected(ctx: Context) -> list[str]:
    """Every GPU test's node id, from one ``pytest --collect-only`` (raises when it fails)."""
    if not _COLLECTED:
        paths = sorted({i for ids in TESTS.values() for i in ids if i.startswith("tests/")})
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        status, out = run_isolated([*command, "--collect-only", *paths], ctx.time_left(), lines=0)
        if status != "ok":
            raise RuntimeError(f"collecting the GPU tests: {status}: {tail(out, 3)}")
        _COLLECTED.extend(line for line in out.splitlines() if "::" in line)
    return _COLLECTED


def _pytest(ctx: Context, name: str) -> str:
    """The part's tests on CUDA; without CUDA only collected (a renamed test fails here)."""
    if ctx.cpu:
        ids, keyword = [i for i in TESTS[name] if i.startswith("tests/")], "-k" in TESTS[name]
        found = [
            node
            for node in _collected(ctx)
            if any(node == i or node.startswith(f"{i}[") or node.startswith(f"{i}::") for i in ids)
            and (not keyword or "cuda" in node)
        ]
        ctx.emit({"collected": found})
        ctx.status = "skipped: no CUDA" if found else "failed: no test collected"
        return f"{len(found)} tests collected"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS[name]]
    status, out = run_isolated(command, ctx.time_left())
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?)", out)}
    failures = [line.split(" - ")[0] for line in out.splitlines() if line.startswith("FAILED")]
    ctx.emit({"command": " ".join(command[1:]), "counts": counts, "failures": failures})
    summary = ", ".join(f"{n} {kind}" for kind, n in counts.items()) or "nothing ran"
    if status != "ok":
        ctx.status = status if status.startswith("timed out") else "failed"
        if not counts:
            summary = tail(out, 1) or status
    if failures:
        summary += "; " + "; ".join(failures[:4])
    return summary


def test_sync_free(ctx: Context) -> str:
    return _pytest(ctx, "sync_free")


def test_distance(ctx: Context) -> str:
    return _pytest(ctx, "distance")


def test_population(ctx: Context) -> str:
    return _pytest(ctx, "population_cuda")


def test_amp(ctx: Context) -> str:
    return _pytest(ctx, "amp")


# -- the benchmarks --------------------------------------------------------------------------------


def _phantom(cases: int, edge: int):
    from losslab.data import load_dataset

    return load_dataset("phantom", cases=cases, shape=(edge,) * 3, seed=0)


def bench_trainer(ctx: Context) -> str:
    """Steps per second of the trainer and of the MONAI tutorial loop (``bench_trainer``)."""
    import bench_trainer

    grid = [("tiny", 16, 24, 2)] if ctx.cpu else [("tiny", 48, 64, 30), ("base", 96, 128, 15)]
    out = []
    for size, patch, edge, steps in grid:
        if ctx.time_left() < 5:
            break
        args = argparse.Namespace(
            model_size=size, patch=patch, batch=2, steps=steps, warmup=1 if ctx.cpu else 3,
            workers=0,
        )  # fmt: skip
        dataset = _phantom(4 if ctx.cpu else 8, edge)
        peer = bench_trainer.monai_loop(dataset, args, ctx.device)
        mine = bench_trainer.ours(dataset, args, ctx.device)
        ctx.emit({"size": size, "patch": patch, "monai_steps_s": peer, "ours_steps_s": mine})
        out.append(f"{size} {patch}^3: {mine / peer:.2f}x ({mine:.1f} vs {peer:.1f} steps/s)")
    return "; ".join(out)


def bench_ml3_group(ctx: Context) -> str:
    """ML3 loss networks meta-trained as one group against in turn (``bench_ml3_group``)."""
    import bench_ml3_group

    args = argparse.Namespace(
        patch=8 if ctx.cpu else 32, batch=1 if ctx.cpu else 2, classes=3 if ctx.cpu else 4,
        inner_steps=2, steps=1 if ctx.cpu else 3, model_size="tiny",
    )  # fmt: skip
    bench_ml3_group.measure(argparse.Namespace(**{**vars(args), "steps": 1}), 1, ctx.device)
    out = []
    for n in [2] if ctx.cpu else [2, 4, 8]:
        if ctx.time_left() < 5:
            break
        alone, together = bench_ml3_group.measure(args, n, ctx.device)
        ctx.emit({"networks": n, "in_turn_s_step": alone, "grouped_s_step": together})
        out.append(f"N={n}: {alone / together:.2f}x")
    return "; ".join(out)


def bench_overhead(ctx: Context) -> str:
    """Trainer step / bare network step per loss (``bench_overhead.measure``, compile off)."""
    import bench_overhead

    from losslab.candidate import Candidate
    from losslab.training.determinism import TorchFlags

    size, patch = ("tiny", 16) if ctx.cpu else ("base", 96)
    args = argparse.Namespace(
        model_size=size, patch=patch, batch=2, steps=2 if ctx.cpu else 20,
        block=1 if ctx.cpu else 5, warmup=1 if ctx.cpu else 3, amp="on", seed=0,
        breakdown=True,
    )  # fmt: skip
    dataset = _phantom(4 if ctx.cpu else 6, patch + 16)
    losses = ["dice_ce", "random"] if ctx.cpu else ["dice", "dice_ce", "gdl", "boundary", "random"]
    out = []
    flags = TorchFlags.save()  # the trainer's set-up sets process-wide flags
    try:
        for name in losses:
            if ctx.time_left() < 5:
                break
            if name == "random":
                candidate = Candidate.from_loss(bench_overhead.random_expression(0), name="random")
            else:
                candidate = Candidate.from_loss(name)
            figures = bench_overhead.measure(dataset, candidate, False, args, ctx.device)
            ratio = figures["trainer"] / figures["bare"]
            ctx.emit({"loss": name, "size": size, "patch": patch, "overhead": ratio, **figures})
            out.append(f"{name} {ratio:.2f}x")
    finally:
        flags.restore()
    return f"{size} {patch}^3: " + ", ".join(out)


def bench_population(ctx: Context) -> str:
    """Population of N against N runs in turn (``bench_population``), smallest first."""
    import bench_population

    sizes, patches, ns = (
        (["tiny"], [16], [1, 2]) if ctx.cpu else (["tiny", "base"], [64, 96], [1, 2, 4, 8])
    )
    args = argparse.Namespace(
        steps=1 if ctx.cpu else 5, warmup=1 if ctx.cpu else 2, repeat=1, batch=2,
        seeds="shared", device=str(ctx.device),
    )  # fmt: skip
    dataset = _phantom(4 if ctx.cpu else 6, max(patches))
    out = []
    for size in sizes:
        for patch in patches:
            config = bench_population._config(args, size, patch)
            alone: dict[str, float] = {}
            for n in ns:
                if ctx.time_left() < 5:
                    return "; ".join(out + ["(out of time)"])
                for candidate in bench_population._candidates(n):
                    if candidate.name not in alone:
                        alone[candidate.name] = bench_population.alone_seconds(
                            args, config, dataset, candidate
                        )
                turn = sum(alone[c.name] for c in bench_population._candidates(n))
                together = bench_population.population_seconds(args, config, dataset, n)
                ratio = turn / together
                ctx.emit(
                    {"size": size, "patch": patch, "n": n, "population_s": together,
                     "in_turn_s": turn, "ratio": ratio}
                )  # fmt: skip
                out.append(f"{size} {patch}^3 N={n} {ratio:.2f}x")
    return "; ".join(out)


def bench_losses(ctx: Context) -> str:
    """Forward + backward of the compiled losses against MONAI (``bench_losses``)."""
    import bench_losses

    shape = [1, 3, 8, 8, 8] if ctx.cpu else [2, 14, 96, 96, 96]
    rows = bench_losses.measure_losses(shape, ctx.device, 1 if ctx.cpu else 10)
    for row in rows:
        ctx.emit({"shape": shape, **row})
    return ", ".join(f"{r['loss']} {r['ratio']:.2f}x" for r in rows)


def bench_study(ctx: Context) -> str:
    """A genetic study with populations for a time budget (``bench_study``)."""
    import bench_study

    parser = argparse.ArgumentParser()
    bench_study.add_arguments(parser)
    if ctx.cpu:
        argv = (
            "--backend gp --population 2 --trials 2 --epochs 1 --steps 1 --shape 16 --patch 16 "
            "--screen-steps 10"
        )
    else:
        argv = (
            "--backend gp --population 8 --minutes 3 --trials 10000 --epochs 4 --steps 25 "
            "--shape 64 --patch 64 --model-size tiny --device cuda"
        )
    args = parser.parse_args(argv.split())
    figures = bench_study.measure_study(args, bare=False)
    per_minute = 60 * figures["trials"] / figures["study_s"]
    ctx.emit({"argv": argv, **figures, "trials_per_minute": per_minute})
    return (
        f"{figures['trials']:.0f} trials ({figures['ok']:.0f} ok) in {figures['study_s']:.0f} s: "
        f"{per_minute:.1f} trials/min"
    )
