"""A MONAI tutorial-style loop (MONAI ``UNet``, ``Dataset``, ``DataLoader``, ``DiceMetric``)
trains on the phantom with the loss of an exported module, which it advances by
``set_progress`` and ``on_epoch_end``; its loss falls and the schedule sees the Dice."""

from __future__ import annotations

import pytest
import torch
from monai.data import DataLoader, Dataset
from monai.metrics import DiceMetric
from monai.networks.nets import UNet
from monai.networks.utils import one_hot

from losslab.candidate import Candidate, ScheduleSpec
from losslab.export.source import ExportSource
from losslab.export.writers import write_monai
from losslab.training.setup import start_context

from .test_commands import load_module

EPOCHS = 8


def test_a_monai_loop_trains_with_the_exported_loss_and_its_loss_falls(tmp_path, tiny_phantom):
    data = tiny_phantom
    candidate = Candidate.from_loss("dice_ce", class_schedule=ScheduleSpec.of("tcf", threshold=0.5))
    context = start_context(data, EPOCHS)
    source = ExportSource(candidate, "a test", data.num_classes, list(context.frequencies))
    write_monai(source, tmp_path / "found")
    build_loss = load_module(tmp_path / "found" / "losslab_loss.py", "found_loss").build_loss

    # From here on as in MONAI's tutorials, with the exported loss.
    cases = [{"image": data.images[i], "label": data.labels[i][None]} for i in range(4)]
    train_loader = DataLoader(Dataset(cases[:3]), batch_size=3, shuffle=False)
    val_loader = DataLoader(Dataset(cases[3:]), batch_size=1)
    torch.manual_seed(0)
    model = UNet(3, 1, data.num_classes, channels=(8, 16), strides=(2,), num_res_units=0)
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    loss_function = build_loss(epochs=EPOCHS)
    dice_metric = DiceMetric(include_background=False, reduction="mean_batch")
    epoch_losses = []
    for epoch in range(EPOCHS):
        model.train()
        losses = []
        for i, batch in enumerate(train_loader):
            loss_function.set_progress(epoch * len(train_loader) + i, EPOCHS * len(train_loader))
            optimizer.zero_grad()
            loss = loss_function(model(batch["image"]), batch["label"])
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        epoch_losses.append(sum(losses) / len(losses))
        model.eval()
        with torch.no_grad():
            for batch in val_loader:
                prediction = model(batch["image"]).argmax(1, keepdim=True)
                dice_metric(
                    one_hot(prediction, data.num_classes), one_hot(batch["label"], data.num_classes)
                )
        per_class_dice = dice_metric.aggregate()  # foreground classes
        dice_metric.reset()
        loss_function.on_epoch_end(per_class_dice)
    assert epoch_losses[-1] < 0.8 * epoch_losses[0], epoch_losses
    assert loss_function.context.epoch == EPOCHS
    assert loss_function.step == EPOCHS - 1
    # The classes above the threshold (0.5) in the last validation are frozen, the others not.
    scores = loss_function.context.scores
    frozen = [c for c in range(1, data.num_classes) if scores[c] > 0.5]
    assert frozen, scores  # the schedule acted on the Dice it was given
    expected = [0.1 if c in frozen else 1.0 for c in range(data.num_classes)]
    assert loss_function.class_weights.tolist() == pytest.approx(expected)
