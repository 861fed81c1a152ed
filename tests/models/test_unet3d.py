"""unet3d: MONAI's residual UNet with a channels[0]-wide decoder and a 1x1x1 head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.blocks import ADN
from torch import nn

from losslab.models import UNet3D, count_parameters, get_model


def test_the_head_is_the_only_layer_without_norm_and_activation() -> None:
    model = get_model("unet3d", num_classes=5, patch_size=(16, 16, 16))
    assert isinstance(model, UNet3D)
    assert isinstance(model.head, nn.Conv3d) and model.head.kernel_size == (1, 1, 1)
    assert (model.head.in_channels, model.head.out_channels) == (8, 5)
    # The last decoder block ends with normalisation and activation, 8 channels wide.
    last_adn = [m for m in model.model.modules() if isinstance(m, ADN)][-1]
    assert isinstance(last_adn.N, nn.InstanceNorm3d) and last_adn.N.num_features == 8
    assert count_parameters(model) == 39_111 + 5 * 9


def test_overfits_one_case() -> None:
    """Fixed random input, three classes as two blobs on background: Dice > 0.9 in 60 steps."""
    torch.manual_seed(0)
    x = torch.randn(1, 1, 16, 16, 16)
    z, y, w = torch.meshgrid(*[torch.arange(16.0)] * 3, indexing="ij")
    label = torch.zeros(1, 16, 16, 16, dtype=torch.long)
    label[0][(z - 5) ** 2 + (y - 5) ** 2 + (w - 6) ** 2 < 16] = 1
    label[0][(z - 11) ** 2 + (y - 10) ** 2 + (w - 9) ** 2 < 12] = 2

    model = get_model("unet3d", num_classes=3, patch_size=(16, 16, 16))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), label)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    model.eval()
    with torch.no_grad():
        pred = model(x).argmax(1)
    dice = [
        2 * ((pred == c) & (label == c)).sum() / ((pred == c).sum() + (label == c).sum())
        for c in range(3)
    ]
    assert losses[-1] < 0.2 * losses[0]
    assert min(dice) > 0.9, dice
