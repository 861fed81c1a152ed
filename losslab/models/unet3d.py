"""3D U-Net: MONAI's residual ``UNet`` with ``spatial_dims=3`` and a 1x1x1 convolution head.

Çiçek et al., "3D U-Net: Learning dense volumetric segmentation from sparse annotation",
MICCAI 2016; residual units as in Kerfoot et al., "Left-ventricle quantification using residual
U-Net", STACOM 2018 (the form MONAI implements). Paper 000 (Runtime Freezing) uses it as the
convolutional baseline "3DUNet" of Table 1.

MONAI's ``UNet`` makes its last decoder block (a 3^3 transposed convolution and a residual unit)
``out_channels`` wide, so the cost of the full-resolution level grows with the number of classes
(the tiny network would have 35 k parameters at 3 classes, 454 k at 117). Here, as in nnU-Net, that block
is ``channels[0]`` wide with normalisation and activation like every other block, and a 1x1x1
convolution head maps it to the class logits: only the head, ``num_classes * (channels[0] + 1)``
parameters, depends on the class count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from monai.networks.nets import UNet
from torch import nn

from losslab.models._common import NetworkConfig, as_int, as_int_tuple

__all__ = ["UNet3D", "UNet3DConfig"]


class UNet3D(UNet):
    """MONAI's ``UNet`` with a decoder as wide as ``channels[0]`` and a 1x1x1 convolution head.

    The top up-sampling block is built like the others (normalisation and activation after every
    convolution, ``channels[0]`` output channels) instead of being MONAI's ``out_channels``-wide
    linear output; ``head`` maps its ``channels[0]`` features to ``num_classes`` logits.

    Args:
        num_classes: output channels (logits, background included).
        channels: as ``UNet``; ``channels[0]`` is also the width the head reads.
        **kwargs: the other parameters of ``monai.networks.nets.UNet`` except ``out_channels``.
    """

    def __init__(self, *, num_classes: int, channels: tuple[int, ...], **kwargs: Any) -> None:
        super().__init__(out_channels=channels[0], channels=channels, **kwargs)
        self.out_channels = num_classes
        self.head = nn.Conv3d(channels[0], num_classes, kernel_size=1)

    def _get_up_layer(
        self, in_channels: int, out_channels: int, strides: int, is_top: bool
    ) -> nn.Module:
        # Never the linear top layer: the head is the only layer without norm and activation.
        return super()._get_up_layer(in_channels, out_channels, strides, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``x [B, in_channels, D, H, W]`` to logits ``[B, num_classes, D, H, W]``."""
        return self.head(self.model(x))


@dataclass(frozen=True, kw_only=True)
class UNet3DConfig(NetworkConfig):
    """Parameters of the residual 3D U-Net (:class:`UNet3D`, on ``monai.networks.nets.UNet``).

    Sizes (``SIZES``):
        - ``tiny``: channels (8, 16, 32), strides (2, 2), 1 residual unit per block: 39 k
          parameters (39,111 + 9 per class), patch sizes multiple of 4, for CPU tests.
        - ``base``: channels (32, 64, 128, 256, 320), strides (2, 2, 2, 2), 2 residual units:
          12.9 M parameters (12,942,898 + 33 per class), patch sizes multiple of 16 and at
          least 32 along one axis. Five levels down to 1/16 of the patch and the 320-channel
          cap follow nnU-Net's 3D full-resolution plans; 2 residual units is MONAI's usual
          choice.

    Attributes:
        channels: feature channels per level, from the full-resolution level to the bottleneck.
        strides: downsampling stride between consecutive levels (``len(channels) - 1`` ints);
            every patch dimension must be a multiple of their product.
        num_res_units: residual units per block (0 gives plain convolution blocks).
        kernel_size: convolution kernel size.
        up_kernel_size: kernel size of the transposed convolutions of the decoder.
        act: activation name known to MONAI (``"PRELU"``, ``"RELU"``, ``"LEAKYRELU"``...).
        norm: normalisation name known to MONAI (``"INSTANCE"``, ``"BATCH"``...).
        dropout: dropout probability.
    """

    # 2: the top decoder block is channels[0] wide and a 1x1x1 head gives the classes (it was
    # as wide as the class count).
    REVISION: ClassVar[int] = 2

    name: ClassVar[str] = "unet3d"
    SIZES: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"channels": (8, 16, 32), "strides": (2, 2), "num_res_units": 1},
        "base": {
            "channels": (32, 64, 128, 256, 320),
            "strides": (2, 2, 2, 2),
            "num_res_units": 2,
        },
    }

    channels: tuple[int, ...]
    strides: tuple[int, ...]
    num_res_units: int
    kernel_size: int = 3
    up_kernel_size: int = 3
    act: str = "PRELU"
    norm: str = "INSTANCE"
    dropout: float = 0.0

    def __post_init__(self) -> None:
        self._set("channels", as_int_tuple(self.channels, "channels"))
        self._set("strides", as_int_tuple(self.strides, "strides"))
        if len(self.channels) < 2 or len(self.strides) != len(self.channels) - 1:
            raise ValueError(
                f"unet3d needs at least 2 channels and len(strides) == len(channels) - 1, got "
                f"channels={self.channels} strides={self.strides}"
            )
        self._set("num_res_units", as_int(self.num_res_units, "num_res_units", minimum=0))
        self._set("kernel_size", as_int(self.kernel_size, "kernel_size"))
        self._set("up_kernel_size", as_int(self.up_kernel_size, "up_kernel_size"))
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        super().__post_init__()

    def patch_rule(self) -> tuple[int, int, str]:
        # Instance norm (and batch norm at batch 1) fails on a 1x1x1 bottleneck.
        return math.prod(self.strides), 2, f"the downsampling factor prod(strides={self.strides})"

    def build(self) -> nn.Module:
        """Build :class:`UNet3D`: ``[B, in_channels, D, H, W] -> logits [B, num_classes, D, H, W]``."""
        return UNet3D(
            spatial_dims=3,
            in_channels=self.in_channels,
            num_classes=self.num_classes,
            channels=self.channels,
            strides=self.strides,
            kernel_size=self.kernel_size,
            up_kernel_size=self.up_kernel_size,
            num_res_units=self.num_res_units,
            act=self.act,
            norm=self.norm,
            dropout=float(self.dropout),
        )
