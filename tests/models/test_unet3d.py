"""unet3d: MONAI's residual UNet with a channels[0]-wide decoder and a 1x1x1 head."""

from __future__ import annotations

from monai.networks.blocks import ADN
from torch import nn

from losslab.models import UNet3D, count_parameters, get_model

from .overfit import assert_overfits_one_case


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
    assert_overfits_one_case("unet3d", steps=60, lr=1e-2)
