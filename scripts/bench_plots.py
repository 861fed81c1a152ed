"""Time the per-run plots (``losslab.plots``) against the same functions at a baseline commit.

    python scripts/bench_plots.py [--repeat 9] [--classes 7] [--epochs 20] [--baseline REV]

The result is synthetic but shaped like a trainer's: ``--epochs`` epochs validated every other
epoch and at the last, one class absent from the validation split, a class schedule that
freezes class 1 early and boosts the last class, two loss terms (``dice``, ``ce``) reweighted
over the run, and per foreground class the test split's logit-margin histograms over the
trainer's own bins (``losslab.training.inference.LOGIT_EDGES``), with voxel counts of a few
96^3 test volumes (background up to ~1e6 per bin, empty tail bins).

The baseline is ``losslab/plots.py`` as committed at ``--baseline`` (default: the last commit
before the plots were made cheaper), read with ``git show`` and loaded as a module beside the
current one. Each figure is drawn once by each to warm up (fonts, caches), then ``--repeat``
times alternating baseline and current; the table gives the median CPU time of this process
per call (less disturbed by other processes than wall time) and before/after, the ratio of the
medians. On a shared machine read the ratios, not the times.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import math
import os
import random
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from losslab import plots
from losslab.training.inference import LOGIT_EDGES
from losslab.training.result import EpochRecord, Result

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "32413cfec9dff40b59fdde5ac9b499f39b200516"
TERMS = ["dice", "ce"]


def make_result(n_classes: int, epochs: int, seed: int = 0) -> Result:
    """A trainer-like result (see the module docstring)."""
    rng = random.Random(seed)
    history = []
    for e in range(epochs):
        validated = e % 2 == 1 or e == epochs - 1
        dice = [math.nan] + [
            min(1.0, 0.1 * c + 0.04 * e + 0.05 * rng.random()) if validated else math.nan
            for c in range(1, n_classes)
        ]
        if n_classes > 2:
            dice[2] = math.nan  # absent from the validation split
        weights = [1.0] * n_classes
        weights[1] = 0.0 if e < epochs // 3 else 1.0
        weights[-1] = 1.0 + 2.0 * e / max(1, epochs - 1)
        share = e / max(1, epochs - 1)
        history.append(EpochRecord(e, 1.0 / (e + 1), dice, weights, [1 - share / 2, share], 5.0))
    edges = [float(v) for v in LOGIT_EDGES.tolist()]
    centres = [(a + b) / 2 for a, b in zip(edges, edges[1:])]
    names = ["background"] + [f"organ{c}" for c in range(1, n_classes)]
    hist = {}
    for c in range(1, n_classes):
        volume = 2e5 / c  # voxels of the class in the test split
        shift = 4.0 - 0.5 * c  # smaller classes sit closer to the boundary
        fg = [round(volume * 0.1 * math.exp(-((x - shift) ** 2) / 8)) for x in centres]
        bg = [round(1.5e6 * math.exp(-((x + 9) ** 2) / 12)) for x in centres]
        hist[names[c]] = {"edges": edges, "foreground": fg, "background": bg}
    return Result(
        status="ok",
        class_names=names,
        history=history,
        test_metrics={"dice": [math.nan] + [0.6] * (n_classes - 1)},
        logit_hist=hist,
    )


def load_baseline(rev: str) -> ModuleType:
    """``losslab/plots.py`` at ``rev`` as a module of its own."""
    source = subprocess.run(
        ["git", "show", f"{rev}:losslab/plots.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    spec = importlib.util.spec_from_loader("plots_baseline", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, f"{rev[:8]}:losslab/plots.py", "exec"), module.__dict__)
    return module


def figures(module: ModuleType, result: Result) -> dict[str, Callable[[], object]]:
    """Figure name -> a call that draws it with ``module``'s functions."""
    return {
        "val_dice.png": lambda: module._val_dice_plot(result),
        "class_weights.png": lambda: module._class_weights_plot(result),
        "term_weights.png": lambda: module._term_weights_plot(result, TERMS),
        "logits.png": lambda: module._logits_plot(result),
        "all four (evaluation_plots)": lambda: module.evaluation_plots(result, TERMS),
    }


def cpu_ms(draw: Callable[[], object]) -> float:
    start = time.process_time()
    draw()
    return 1000 * (time.process_time() - start)


def png_shape(png: object) -> tuple[int, ...]:
    from matplotlib.image import imread

    assert isinstance(png, bytes) and png.startswith(b"\x89PNG")
    return tuple(imread(io.BytesIO(png)).shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=9, help="timed calls per figure and side")
    parser.add_argument("--classes", type=int, default=7, help="classes, background included")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--baseline", default=BASELINE, help="commit of the old plots.py")
    args = parser.parse_args()
    os.environ["LOSSLAB_PLOTS"] = "1"
    result = make_result(args.classes, args.epochs)
    before = figures(load_baseline(args.baseline), result)
    after = figures(plots, result)
    print(
        f"{args.classes} classes, {args.epochs} epochs, {len(LOGIT_EDGES) - 1} margin bins; "
        f"baseline {args.baseline[:8]}; median CPU ms of {args.repeat} calls\n"
    )
    print("| figure | PNG px | before ms | after ms | before/after |")
    print("|---|---|---|---|---|")
    for name in after:
        old, new = before[name](), after[name]()  # warm-up
        if isinstance(new, bytes):
            assert png_shape(old) == png_shape(new), name
            size = "x".join(str(v) for v in png_shape(new)[1::-1])
        else:
            size = ""
        times: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(args.repeat):
            times["before"].append(cpu_ms(before[name]))
            times["after"].append(cpu_ms(after[name]))
        old_ms = statistics.median(times["before"])
        new_ms = statistics.median(times["after"])
        print(f"| {name} | {size} | {old_ms:.0f} | {new_ms:.0f} | {old_ms / new_ms:.2f}x |")


if __name__ == "__main__":
    main()
