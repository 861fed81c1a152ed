"""Training steps per second: losslab's trainer against a plain MONAI training loop.

    python scripts/bench_trainer.py [--shape 64] [--patch 48] [--steps 30] [--model-size tiny]

The peer is written the way MONAI's tutorials write it: a ``CacheDataset`` with
``RandCropByLabelClassesd`` and flips, a ``DataLoader``, ``DiceCELoss``, AMP with a ``GradScaler``
on CUDA, and ``loss.item()`` every step. Both train the same network on the same phantom cases
with the same patch, batch, loss and AMP setting; the ratio ours / peer (higher is better) is
printed. Validation is off for both (``val_every`` beyond the last epoch). The trainer runs its
network channels-last on the CPU (``training.setup.fastest_layout``), which a tutorial does not;
the loop is also timed with its network in that layout, to tell that gain from the rest.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from monai.data import CacheDataset, DataLoader
from monai.losses import DiceCELoss
from monai.transforms import Compose, RandCropByLabelClassesd, RandFlipd

from losslab.candidate import Candidate
from losslab.data import load_dataset
from losslab.models import get_model
from losslab.training import Hook, StopTraining, TrainConfig, Trainer
from losslab.training.setup import fastest_layout


class _Clock(Hook):
    """Times the steps after a warm-up, then stops the run before any evaluation."""

    def __init__(self, warmup: int, steps: int, device: torch.device):
        self.warmup, self.steps, self.device = warmup, steps, device
        self.start = self.elapsed = 0.0

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def on_step_end(self, state) -> None:
        if state.step == self.warmup:
            self._sync()
            self.start = time.perf_counter()
        elif state.step == self.warmup + self.steps:
            self._sync()
            self.elapsed = time.perf_counter() - self.start

    def on_epoch_end(self, state, record) -> None:
        raise StopTraining("benchmark done")


def ours(dataset, args, device) -> float:
    config = TrainConfig(
        model="unet3d",
        model_size=args.model_size,
        epochs=2,  # the first is timed, then the clock stops the run (no validation before)
        steps_per_epoch=args.steps + args.warmup,
        batch_size=args.batch,
        patch_size=(args.patch,) * 3,
        device=str(device),
        val_every=10**6,
        augment=True,
        hd95=False,
    )
    clock = _Clock(args.warmup, args.steps, device)
    result = Trainer(config, [clock]).fit(Candidate.from_loss("dice_ce"), dataset)
    assert result.status == "pruned", result.reason
    return args.steps / clock.elapsed


def monai_loop(dataset, args, device, layout: bool = False) -> float:
    """Steps per second of the tutorial loop; ``layout``: its network in the trainer's layout
    (``fastest_layout``), which a tutorial does not do, to tell that gain from the rest."""
    num_classes = dataset.num_classes
    items = [
        {"image": dataset.images[i].numpy(), "label": dataset.labels[i][None].numpy()}
        for i in dataset.splits["train"]
    ]
    transforms = Compose(
        [
            RandCropByLabelClassesd(
                keys=["image", "label"],
                label_key="label",
                spatial_size=(args.patch,) * 3,
                num_classes=num_classes,
                num_samples=1,
            ),
            RandFlipd(keys=["image", "label"], prob=0.5, spatial_axis=0),
            RandFlipd(keys=["image", "label"], prob=0.5, spatial_axis=1),
            RandFlipd(keys=["image", "label"], prob=0.5, spatial_axis=2),
        ]
    )
    loader = DataLoader(
        CacheDataset(items, transforms, progress=False),
        batch_size=args.batch,
        shuffle=True,
        num_workers=args.workers,
    )
    torch.manual_seed(0)
    model = get_model(
        "unet3d", num_classes=num_classes, patch_size=(args.patch,) * 3, size=args.model_size
    ).to(device)
    if layout:
        model = fastest_layout(model, device)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-5)
    scaler = torch.amp.GradScaler(enabled=device.type == "cuda")
    model.train()
    step, start, losses = 0, 0.0, []
    while step < args.steps + args.warmup:
        for batch in loader:
            if step == args.warmup:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
            images, labels = batch["image"].to(device), batch["label"].to(device)
            optimizer.zero_grad()
            with torch.autocast(device.type, enabled=device.type == "cuda"):
                loss = loss_fn(model(images), labels)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            losses.append(loss.item())
            step += 1
            if step == args.steps + args.warmup:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    assert np.isfinite(losses).all()
    return args.steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, default=64, help="phantom edge length")
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--patch", type=int, default=48)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the peer")
    parser.add_argument("--model-size", default="tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    dataset = load_dataset("phantom", cases=args.cases, shape=(args.shape,) * 3, seed=0)
    peer = monai_loop(dataset, args, device)
    mine = ours(dataset, args, device)
    same_layout = monai_loop(dataset, args, device, layout=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"unet3d-{args.model_size}, phantom {args.shape}^3, patch {args.patch}^3, batch "
        f"{args.batch}, {args.steps} timed steps on {name} ({torch.get_num_threads()} threads)"
    )
    print(f"{'loop':<28} {'steps/s':>8}")
    print(f"{'MONAI tutorial loop':<28} {peer:8.2f}")
    print(f"{'losslab trainer':<28} {mine:8.2f}")
    print(f"{'MONAI loop, trainer layout':<28} {same_layout:8.2f}")
    print(
        f"ratio losslab / MONAI: {mine / peer:.2f}x (against the loop in the trainer's layout: "
        f"{mine / same_layout:.2f}x)"
    )


if __name__ == "__main__":
    main()
