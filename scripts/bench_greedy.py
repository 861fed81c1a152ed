"""Greedy controller overhead: a steered run against a plain run at the same fidelity.

    python scripts/bench_greedy.py [--loss tversky] [--params alpha beta] [--epochs 4]
                                   [--steps 20] [--every 20] [--lookahead 3] [--repeats 2]
                                   [--device cpu|cuda]

Trains, interleaved and ``--repeats`` times each, on the phantom of ``greedy_tversky.yaml``
(12 cases of 32^3, tiny 3D U-Net, batch 2, 32^3 patches): the plain candidate, the candidate
under the greedy controller, and the controller's trajectory replayed as a piecewise parameter
schedule. Reports the median wall time of each and the ratios against the plain run measured in
the same process. The controller's cost is predictable: per decision, ``combinations x
lookahead`` extra steps plus one validation-patch pass per combination; the replay should cost
what a plain run costs.
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
    return parser.parse_args()


def main() -> None:
    args = _parse()
    import torch

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
    times: dict[str, list[float]] = {"plain": [], "greedy": [], "replay": []}
    combinations = decisions = 0
    for _ in range(args.repeats):
        start = time.perf_counter()
        plain = Trainer(config).fit(candidate, dataset)
        times["plain"].append(time.perf_counter() - start)
        controller = GreedyController(plan, Objective())
        start = time.perf_counter()
        steered = Trainer(config, [controller]).fit(candidate, dataset)
        times["greedy"].append(time.perf_counter() - start)
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
        f"torch {torch.__version__}, threads {torch.get_num_threads()}\n"
    )
    print("| run | median wall (s) | ratio to plain |")
    print("|---|---|---|")
    plain_time = statistics.median(times["plain"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {median / plain_time:.2f} |")


if __name__ == "__main__":
    main()
