"""Greedy controller overhead: a steered run against a plain run at the same fidelity.

    python scripts/bench_greedy.py [--loss tversky] [--params alpha beta] [--epochs 4]
                                   [--steps 20] [--every 20] [--lookahead 3] [--repeats 2]
                                   [--device cpu|cuda] [--threads N]

Trains, interleaved and ``--repeats`` times each, on the phantom of ``greedy_tversky.yaml``
(12 cases of 32^3, tiny 3D U-Net, batch 2, 32^3 patches): the plain candidate, the candidate
under the greedy controller with the one-at-a-time look-ahead (``batched="off"``) and with the
batched one (``batched="on"``: a decision's combinations train as one population), and the
controller's trajectory replayed as a piecewise parameter schedule. Reports the median wall
time of each run, the time its decisions took, and the ratios against the plain run measured in
the same process, and whether the two look-aheads chose the same parameters. The controller's
cost is predictable: per decision, ``combinations x lookahead`` extra steps plus one
validation-patch pass per combination; the replay should cost what a plain run costs.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import time


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loss", default="tversky")
    parser.add_argument("--params", nargs="+", default=["alpha", "beta"])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20, help="steps per epoch")
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--lookahead", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    return parser.parse_args()


def _timed(controller) -> list[float]:
    """Time every ``decide`` of ``controller`` (the seconds land in the returned list)."""
    spent: list[float] = []
    decide = controller.decide

    def timed(state):
        start = time.perf_counter()
        try:
            return decide(state)
        finally:
            spent.append(time.perf_counter() - start)

    controller.decide = timed
    return spent


def main() -> None:
    args = _parse()
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)

    from losslab.candidate import Candidate, ScheduleSpec
    from losslab.data import load_dataset
    from losslab.search.greedy.controller import GreedyController, GreedyPlan
    from losslab.search.objective import Objective
    from losslab.training import TrainConfig, Trainer

    dataset = load_dataset("phantom", cases=12, shape=(32, 32, 32), seed=0)
    config = TrainConfig(
        model="unet3d",
        model_size="tiny",
        epochs=args.epochs,
        steps_per_epoch=args.steps,
        batch_size=2,
        patch_size=(32, 32, 32),
        lr=3e-3,
        device=args.device,
        hd95=False,
    )
    plan = GreedyPlan(
        addresses=tuple(args.params), every=args.every, lookahead=args.lookahead, step=0.25
    )
    candidate = Candidate.from_loss(args.loss)
    names = {"plain": "plain", "off": "greedy, one at a time", "on": "greedy, batched"}
    times: dict[str, list[float]] = {name: [] for name in (*names.values(), "replay")}
    deciding: dict[str, list[float]] = {name: [] for name in times}
    combinations = decisions = 0
    same = True
    for _ in range(args.repeats):
        start = time.perf_counter()
        plain = Trainer(config).fit(candidate, dataset)
        times["plain"].append(time.perf_counter() - start)
        trajectories = {}
        for mode in ("off", "on"):
            controller = GreedyController(plan, Objective(), batched=mode)
            spent = _timed(controller)
            start = time.perf_counter()
            steered = Trainer(config, [controller]).fit(candidate, dataset)
            times[names[mode]].append(time.perf_counter() - start)
            deciding[names[mode]].append(sum(spent))
            assert steered.ok, steered.reason
            assert steered.tags["greedy.lookahead"] == ("batched" if mode == "on" else "sequential")
            trajectories[mode] = controller.trajectory
        same = same and trajectories["on"] == trajectories["off"]
        decisions = len(controller.decisions)
        combinations = len(controller.decisions[0]["scores"]) if decisions else 0
        replay = dataclasses.replace(
            candidate,
            param_schedule=ScheduleSpec.of("piecewise", **controller.schedule().get_params()),
        )
        start = time.perf_counter()
        replayed = Trainer(config).fit(replay, dataset)
        times["replay"].append(time.perf_counter() - start)
        for result in (plain, steered, replayed):
            assert result.ok, result.reason
        assert replayed.history[-1].val_dice == steered.history[-1].val_dice or args.device != "cpu"
    device = (
        torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor()
    )
    steps = args.epochs * args.steps
    print(
        f"\n{args.loss} steering {', '.join(args.params)}: {steps} steps, {decisions} decisions x "
        f"{combinations} combinations x {args.lookahead} look-ahead steps "
        f"({decisions * combinations * args.lookahead} extra steps); device {device or 'cpu'}, "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}; the two look-aheads "
        f"chose {'the same' if same else 'DIFFERENT'} parameters\n"
    )
    print("| run | median wall (s) | ratio to plain | decisions (s) |")
    print("|---|---|---|---|")
    plain_time = statistics.median(times["plain"])
    for name, values in times.items():
        median = statistics.median(values)
        spent = f"{statistics.median(deciding[name]):.2f}" if deciding[name] else "-"
        print(f"| {name} | {median:.2f} | {median / plain_time:.2f} | {spent} |")


if __name__ == "__main__":
    main()
