"""UNETR: MONAI's ``monai.networks.nets.UNETR``.

Hatamizadeh et al., "UNETR: Transformers for 3D medical image segmentation", WACV 2022. A ViT
encoder (patches of 16^3 voxels, 12 transformer layers) whose layers 4, 7, 10 and 12 feed a
convolutional U-shaped decoder. Paper 000 (Runtime Freezing) trains it as its main network
(Table 1). In MONAI 1.6 the patch size (16) and the number of layers (12) are fixed by the
constructor, so the ``tiny`` size can only shrink the widths; ``lambda3d`` reproduces the same
skeleton with these two numbers free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from monai.networks.nets import UNETR
from torch import nn

from losslab.models._common import NetworkConfig, as_bool, as_int

__all__ = ["UNETR_PATCH", "UNETRConfig"]

UNETR_PATCH = 16
"""Edge of MONAI UNETR's patch embedding, fixed by its constructor."""


@dataclass(frozen=True, kw_only=True)
class UNETRConfig(NetworkConfig):
    """Parameters of ``monai.networks.nets.UNETR`` (``img_size = patch_size``).

    Sizes (``SIZES``):
        - ``tiny``: hidden_size 48, mlp_dim 96, num_heads 3, feature_size 8: 1.06 M
          parameters (12 layers of 19 k, a 0.2 M 16^3 patch embedding, the decoder);
          a 16^3 patch is a single token, a 32^3 patch 8 tokens.
        - ``base``: the paper's hidden_size 768, mlp_dim 3072, num_heads 12, feature_size 16:
          92.8 M parameters (for a 96^3 patch; the learned position embedding grows with
          the patch).

    Attributes:
        feature_size: channels of the full-resolution decoder level (x2 per level down).
        hidden_size: token width of the ViT encoder.
        mlp_dim: hidden width of the transformer MLP.
        num_heads: attention heads; must divide ``hidden_size``.
        norm_name: normalisation of the convolutional blocks (``"instance"``, ``"batch"``...).
        conv_block: extra convolution blocks in the encoder skip paths.
        res_block: residual convolution blocks.
        dropout_rate: dropout of the transformer.
        qkv_bias: bias of the query/key/value projection.
        proj_type: patch embedding, ``"conv"`` or ``"perceptron"``.
    """

    name: ClassVar[str] = "unetr"
    SIZES: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"hidden_size": 48, "mlp_dim": 96, "num_heads": 3, "feature_size": 8},
        "base": {"hidden_size": 768, "mlp_dim": 3072, "num_heads": 12, "feature_size": 16},
    }

    feature_size: int
    hidden_size: int
    mlp_dim: int
    num_heads: int
    norm_name: str = "instance"
    conv_block: bool = True
    res_block: bool = True
    dropout_rate: float = 0.0
    qkv_bias: bool = False
    proj_type: str = "conv"

    def __post_init__(self) -> None:
        for key in ("feature_size", "hidden_size", "mlp_dim", "num_heads"):
            self._set(key, as_int(getattr(self, key), key))
        for key in ("conv_block", "res_block", "qkv_bias"):
            as_bool(getattr(self, key), key)
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} must be divisible by num_heads {self.num_heads}"
            )
        if not 0.0 <= float(self.dropout_rate) <= 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1], got {self.dropout_rate!r}")
        if self.proj_type not in ("conv", "perceptron"):
            raise ValueError(f"proj_type must be 'conv' or 'perceptron', got {self.proj_type!r}")
        super().__post_init__()

    def patch_rule(self) -> tuple[int, int, str]:
        return UNETR_PATCH, 1, "UNETR's fixed 16^3 patch embedding"

    def build(self) -> nn.Module:
        """Build ``UNETR``: ``[B, in_channels, D, H, W] -> logits [B, num_classes, D, H, W]``.

        MONAI's ``TransformerBlock`` always creates a ``norm_cross_attn`` LayerNorm that UNETR
        never calls; it is frozen (``requires_grad=False``, kept in the state dict for checkpoint
        compatibility) so that every trainable parameter gets a gradient.
        """
        model = UNETR(
            in_channels=self.in_channels,
            out_channels=self.num_classes,
            img_size=self.patch_size,
            feature_size=self.feature_size,
            hidden_size=self.hidden_size,
            mlp_dim=self.mlp_dim,
            num_heads=self.num_heads,
            proj_type=self.proj_type,
            norm_name=self.norm_name,
            conv_block=self.conv_block,
            res_block=self.res_block,
            dropout_rate=float(self.dropout_rate),
            spatial_dims=3,
            qkv_bias=self.qkv_bias,
        )
        for name, module in model.named_modules():
            if name.endswith("norm_cross_attn"):
                module.requires_grad_(False)
        return model
