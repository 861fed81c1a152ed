"""One shared check: a network can overfit one fixed case of two blobs on background."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from losslab.models import get_model


def assert_overfits_one_case(model_name: str, *, steps: int, lr: float) -> None:
    """Fixed random input, three classes as two blobs on background: Dice > 0.9 after
    ``steps`` Adam steps at ``lr``, and the loss down to a fifth."""
    torch.manual_seed(0)
    x = torch.randn(1, 1, 16, 16, 16)
    z, y, w = torch.meshgrid(*[torch.arange(16.0)] * 3, indexing="ij")
    label = torch.zeros(1, 16, 16, 16, dtype=torch.long)
    label[0][(z - 5) ** 2 + (y - 5) ** 2 + (w - 6) ** 2 < 16] = 1
    label[0][(z - 11) ** 2 + (y - 10) ** 2 + (w - 9) ** 2 < 12] = 2

    model = get_model(model_name, num_classes=3, patch_size=(16, 16, 16))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), label)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    model.eval()  # normalisation on running statistics, as at inference
    with torch.no_grad():
        pred = model(x).argmax(1)
    dice = [
        2 * ((pred == c) & (label == c)).sum() / ((pred == c).sum() + (label == c).sum())
        for c in range(3)
    ]
    assert losses[-1] < 0.2 * losses[0]
    assert min(dice) > 0.9, dice
