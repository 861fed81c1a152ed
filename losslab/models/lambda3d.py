"""Lambda3D: UNETR with its transformer blocks replaced by 3D lambda layers.

Willoughby and Voiculescu, "Runtime freezing: dynamic class loss for multi-organ 3D segmentation"
(arXiv 2024, Sec. 2.2.1) extend the lambda layers of Bello (ICLR 2021) to 3D and put them in place of the
self-attention of UNETR (Hatamizadeh et al., WACV 2022). The skeleton here is UNETR's, built from
MONAI's own blocks (``PatchEmbeddingBlock``, ``UnetrBasicBlock``, ``UnetrPrUpBlock``,
``UnetrUpBlock``, ``UnetOutBlock``): with ``embed_patch=16`` and ``num_layers=12`` every
parameter outside ``blocks`` matches ``monai.networks.nets.UNETR`` one for one. Two numbers that
MONAI fixes are free here: the patch embedding edge (a power of two; the decoder gets one
up-sampling level per factor 2) and the number of layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from einops import rearrange
from monai.networks.blocks import (
    MLPBlock,
    PatchEmbeddingBlock,
    UnetOutBlock,
    UnetrBasicBlock,
    UnetrPrUpBlock,
    UnetrUpBlock,
)
from torch import nn

from losslab.models._common import NetworkConfig, as_bool, as_int
from losslab.models.lambda_layer import LambdaLayer3D

__all__ = ["Lambda3D", "Lambda3DConfig", "LambdaBlock3D"]


class LambdaBlock3D(nn.Module):
    """Pre-norm block on tokens: ``x + Lambda(LN(x))`` then ``x + MLP(LN(x))``.

    The same layout as MONAI's ``TransformerBlock`` with self-attention replaced by
    :class:`LambdaLayer3D`, which sees the tokens as their 3D grid.

    Args:
        hidden_size: token width.
        mlp_dim: hidden width of the MLP.
        grid_size: token grid ``(d, h, w)``; tokens are ordered ``(d h w)`` as MONAI's patch
            embedding flattens them.
        dim_k, heads, dim_u, receptive_field, norm_qv: see :class:`LambdaLayer3D`.
        dropout_rate: dropout of the MLP.
    """

    def __init__(
        self,
        hidden_size: int,
        mlp_dim: int,
        grid_size: tuple[int, int, int],
        *,
        dim_k: int,
        heads: int,
        dim_u: int,
        receptive_field: int,
        norm_qv: bool = True,
        dropout_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.grid_size = grid_size
        # With norm_qv a per-channel shift of the input is cancelled by the softmax over keys and
        # the batch norms of queries and values, so a LayerNorm bias would never learn.
        self.norm1 = nn.LayerNorm(hidden_size, bias=not norm_qv)
        self.lambda_layer = LambdaLayer3D(
            hidden_size,
            dim_k=dim_k,
            heads=heads,
            dim_u=dim_u,
            receptive_field=receptive_field,
            norm_qv=norm_qv,
        )
        self.norm2 = nn.LayerNorm(hidden_size)
        self.mlp = MLPBlock(hidden_size, mlp_dim, dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map tokens ``[B, N, hidden]`` (``N = d * h * w``) to ``[B, N, hidden]``."""
        d, h, w = self.grid_size
        grid = rearrange(self.norm1(x), "b (d h w) c -> b c d h w", d=d, h=h, w=w)
        x = x + rearrange(self.lambda_layer(grid), "b c d h w -> b (d h w) c")
        return x + self.mlp(self.norm2(x))


@dataclass(frozen=True, kw_only=True)
class Lambda3DConfig(NetworkConfig):
    """Parameters of :class:`Lambda3D`.

    Sizes (``SIZES``):
        - ``tiny``: 4^3 patch embedding, 4 lambda blocks of width 48 (mlp 96, |k| 8, 4 heads,
          r=5), feature_size 8: 0.10 M parameters for a 16^3 patch (a 4^3 token grid), 0.12 M for
          32^3 (the learned position embedding grows with the patch).
        - ``base``: UNETR's skeleton (16^3 patches, 12 blocks, width 768, mlp 3072,
          feature_size 16) with Bello's lambda settings |k|=16, |h|=4, |u|=1 and r=7:
          67.0 M parameters for a 96^3 patch (UNETR's 92.8 M with
          each 2.4 M attention replaced by a 0.2 M lambda layer).

    Attributes:
        hidden_size: token width.
        mlp_dim: hidden width of the MLP of each block.
        num_layers: number of lambda blocks; must be at least log2(embed_patch).
        embed_patch: edge of the cubic patch embedding, a power of two >= 2 (UNETR: 16).
        feature_size: channels of the full-resolution decoder level (x2 per level down).
        dim_k, heads, dim_u, receptive_field, norm_qv: see :class:`LambdaLayer3D`.
        pos_embed_type: absolute position embedding of the tokens (``"learnable"`` as UNETR,
            ``"sincos"`` or ``"none"``: the position lambdas are relative already).
        norm_name: normalisation of the convolutional blocks.
        conv_block: extra convolution blocks in the encoder skip paths.
        res_block: residual convolution blocks.
        dropout_rate: dropout of the patch embedding and the MLPs.
    """

    name: ClassVar[str] = "lambda3d"
    SIZES: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {
            "hidden_size": 48,
            "mlp_dim": 96,
            "num_layers": 4,
            "embed_patch": 4,
            "feature_size": 8,
            "dim_k": 8,
            "heads": 4,
            "receptive_field": 5,
        },
        "base": {
            "hidden_size": 768,
            "mlp_dim": 3072,
            "num_layers": 12,
            "embed_patch": 16,
            "feature_size": 16,
            "dim_k": 16,
            "heads": 4,
            "receptive_field": 7,
        },
    }

    hidden_size: int
    mlp_dim: int
    num_layers: int
    embed_patch: int
    feature_size: int
    dim_k: int
    heads: int
    receptive_field: int
    dim_u: int = 1
    norm_qv: bool = True
    pos_embed_type: str = "learnable"
    norm_name: str = "instance"
    conv_block: bool = True
    res_block: bool = True
    dropout_rate: float = 0.0

    def __post_init__(self) -> None:
        for key in ("hidden_size", "mlp_dim", "num_layers", "feature_size", "dim_k", "heads"):
            self._set(key, as_int(getattr(self, key), key))
        self._set("dim_u", as_int(self.dim_u, "dim_u"))
        self._set("embed_patch", as_int(self.embed_patch, "embed_patch", minimum=2))
        self._set("receptive_field", as_int(self.receptive_field, "receptive_field", minimum=0))
        for key in ("norm_qv", "conv_block", "res_block"):
            as_bool(getattr(self, key), key)
        if self.embed_patch & (self.embed_patch - 1):
            raise ValueError(f"embed_patch must be a power of two >= 2, got {self.embed_patch}")
        if self.num_layers < self.levels:
            raise ValueError(
                f"num_layers {self.num_layers} must be >= log2(embed_patch) = {self.levels}"
            )
        if self.hidden_size % self.heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} must be divisible by heads {self.heads}"
            )
        if self.receptive_field and self.receptive_field % 2 == 0:
            raise ValueError(f"receptive_field must be 0 or odd, got {self.receptive_field}")
        if self.pos_embed_type not in ("learnable", "sincos", "none"):
            raise ValueError(
                "pos_embed_type must be 'learnable', 'sincos' or 'none', "
                f"got {self.pos_embed_type!r}"
            )
        if not 0.0 <= float(self.dropout_rate) <= 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1], got {self.dropout_rate!r}")
        super().__post_init__()

    @property
    def levels(self) -> int:
        """Down-sampling levels of the skeleton, ``log2(embed_patch)`` (UNETR: 4)."""
        return self.embed_patch.bit_length() - 1

    def patch_rule(self) -> tuple[int, int, str]:
        # A lambda over a single token is degenerate (and batch norm fails on it at batch 1).
        return self.embed_patch, 2, f"the patch embedding edge embed_patch={self.embed_patch}"

    def build(self) -> nn.Module:
        """Build :class:`Lambda3D`: ``[B, in_channels, D, H, W] -> [B, num_classes, D, H, W]``."""
        return Lambda3D(self)


class Lambda3D(nn.Module):
    """UNETR-shaped segmentation network with lambda blocks: ``[B, C, D, H, W] -> [B, K, D, H, W]``.

    With ``L = levels = log2(embed_patch)``: tokens live at 1/2^L of the patch; for s = 1..L-1
    the output of block ``s * num_layers // L`` (0-based; UNETR: blocks 3, 6, 9) is projected to
    an encoder skip at 1/2^s with ``feature_size * 2^s`` channels; the normalised last tokens are
    decoded through L up-blocks that concatenate these skips and the full-resolution
    convolutional skip.

    Args:
        config: the validated parameters.
    """

    def __init__(self, config: Lambda3DConfig) -> None:
        super().__init__()
        c, levels, fs = config, config.levels, config.feature_size
        self.grid_size = tuple(s // c.embed_patch for s in c.patch_size)
        self.skip_layers = [s * c.num_layers // levels for s in range(1, levels)]
        norm, conv_block, res_block = c.norm_name, c.conv_block, c.res_block
        self.patch_embedding = PatchEmbeddingBlock(
            in_channels=c.in_channels,
            img_size=c.patch_size,
            patch_size=c.embed_patch,
            hidden_size=c.hidden_size,
            num_heads=c.heads,
            proj_type="conv",
            pos_embed_type=c.pos_embed_type,
            dropout_rate=float(c.dropout_rate),
            spatial_dims=3,
        )
        if c.pos_embed_type == "none":
            # MONAI's "none" still adds a zero-initialised trainable embedding; keep it zero.
            self.patch_embedding.position_embeddings.requires_grad_(False)
        self.blocks = nn.ModuleList(
            LambdaBlock3D(
                c.hidden_size,
                c.mlp_dim,
                self.grid_size,
                dim_k=c.dim_k,
                heads=c.heads,
                dim_u=c.dim_u,
                receptive_field=c.receptive_field,
                norm_qv=c.norm_qv,
                dropout_rate=float(c.dropout_rate),
            )
            for _ in range(c.num_layers)
        )
        self.norm = nn.LayerNorm(c.hidden_size)
        self.encoder1 = UnetrBasicBlock(3, c.in_channels, fs, 3, 1, norm, res_block=res_block)
        self.encoders = nn.ModuleList(
            UnetrPrUpBlock(
                3,
                c.hidden_size,
                fs * 2**s,
                num_layer=levels - s - 1,
                kernel_size=3,
                stride=1,
                upsample_kernel_size=2,
                norm_name=norm,
                conv_block=conv_block,
                res_block=res_block,
            )
            for s in range(1, levels)
        )
        widths = [c.hidden_size] + [fs * 2**s for s in range(levels - 1, -1, -1)]
        self.decoders = nn.ModuleList(
            UnetrUpBlock(3, w_in, w_out, 3, 2, norm, res_block=res_block)
            for w_in, w_out in zip(widths[:-1], widths[1:], strict=True)
        )
        self.out = UnetOutBlock(3, fs, c.num_classes)

    def _to_grid(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, N, hidden] -> [B, hidden, d, h, w]``."""
        d, h, w = self.grid_size
        return rearrange(tokens, "b (d h w) c -> b c d h w", d=d, h=h, w=w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``x [B, in_channels, D, H, W]`` to logits ``[B, num_classes, D, H, W]``."""
        tokens = self.patch_embedding(x)
        hidden = []
        for block in self.blocks:
            tokens = block(tokens)
            hidden.append(tokens)
        skips = [self.encoder1(x)]
        for encoder, layer in zip(self.encoders, self.skip_layers, strict=True):
            skips.append(encoder(self._to_grid(hidden[layer])))
        y = self._to_grid(self.norm(tokens))
        for decoder, skip in zip(self.decoders, reversed(skips), strict=True):
            y = decoder(y, skip)
        return self.out(y)
