"""The exported loss never syncs a GPU with the host in a training step: under autocast with
``torch.cuda.set_sync_debug_mode("error")`` on CUDA (skipped without a GPU), and on the CPU
under the trainer tests' spy of what would sync (values read back, tensors from host data)."""

from __future__ import annotations

import pytest
import torch
from training.test_sync_free import host_syncs

import losslab.losses.distance as distance
from losslab.candidate import Candidate, ScheduleSpec
from losslab.export import ExportedLoss
from losslab.losses import resolve_loss
from losslab.losses.learned import LossNetwork, save_network

STEPS, EPOCHS = 3, 2


def _candidates(lossnet_folder) -> list[Candidate]:
    torch.manual_seed(0)
    digest, _ = save_network(
        LossNetwork(features=("p", "y", "logp", "progress"), hidden=(4,)), lossnet_folder
    )
    tversky = Candidate.from_loss("tversky")
    return [
        Candidate.from_loss("dice_ce", class_schedule=ScheduleSpec.of("tcf", threshold=0.0)),
        Candidate.from_loss(
            [resolve_loss("ce"), resolve_loss("dice")], term_schedule=ScheduleSpec.of("ramp")
        ),
        Candidate.from_loss("dice_focal", term_schedule=ScheduleSpec.of("softadapt")),
        Candidate.from_loss(f"lossnet:{digest}", absent_classes="ignore"),
        Candidate(
            terms=tversky.terms,
            param_schedule=ScheduleSpec.of("piecewise", steps=[2], values={"beta": [0.9]}),
        ),
        Candidate.from_loss("boundary"),
    ]


def _train(loss: ExportedLoss, device: str, check) -> None:
    """``EPOCHS`` epochs of ``STEPS`` steps with deep supervision; ``check()`` is the context
    of every step but the first (first-use set-up may sync); the epoch ends outside it."""
    generator = torch.Generator().manual_seed(0)
    for epoch in range(EPOCHS):
        for i in range(STEPS):
            logits = torch.randn(2, 4, 8, 8, 8, generator=generator).to(device)
            low = torch.randn(2, 4, 4, 4, 4, generator=generator).to(device)
            labels = torch.randint(0, 4, (2, 1, 8, 8, 8), generator=generator).to(device)
            logits.requires_grad_()
            first = epoch == 0 and i == 0
            with check(first):
                loss.set_progress(epoch * STEPS + i, EPOCHS * STEPS)
                with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
                    value = loss([logits, low, low[:, :, ::2, ::2, ::2]], labels)
                value.backward()
        loss.on_epoch_end([0.9, 0.95, 0.5, 0.7])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_exported_loss_does_not_sync_the_gpu_under_autocast(lossnet_folder):
    import contextlib

    @contextlib.contextmanager
    def sync_error(first: bool):
        torch.cuda.set_sync_debug_mode("default" if first else "error")
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode("default")

    for candidate in _candidates(lossnet_folder):
        _train(ExportedLoss(candidate, 4, epochs=EPOCHS), "cuda", sync_error)


def test_the_exported_loss_would_not_sync_a_gpu(lossnet_folder, monkeypatch):
    import contextlib

    monkeypatch.setattr(distance, "CPU_BACKEND", "torch")  # the CPU's reads the host on purpose

    found: list[str] = []

    @contextlib.contextmanager
    def spy(first: bool):
        if first:
            yield
            return
        with host_syncs() as events:
            yield
        found.extend(events)

    weights = []
    for candidate in _candidates(lossnet_folder):
        loss = ExportedLoss(candidate, 4, epochs=EPOCHS)
        _train(loss, "cpu", spy)
        weights.append(loss.class_weights.tolist())
    assert found == []
    assert weights[0] == pytest.approx([1.0, 0.1, 0.1, 0.1])  # TCF acted at the epoch ends
