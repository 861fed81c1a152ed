"""Lambda3D: UNETR's skeleton with lambda blocks (Willoughby and Voiculescu 2024, Sec. 2.2.1)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from losslab.models import LambdaBlock3D, get_model

from .overfit import assert_overfits_one_case

# MONAI UNETR module -> Lambda3D module, for everything outside the transformer blocks.
UNETR_TO_LAMBDA3D = {
    "vit.patch_embedding.": "patch_embedding.",
    "vit.norm.": "norm.",
    "encoder1.": "encoder1.",
    "encoder2.": "encoders.0.",
    "encoder3.": "encoders.1.",
    "encoder4.": "encoders.2.",
    "decoder5.": "decoders.0.",
    "decoder4.": "decoders.1.",
    "decoder3.": "decoders.2.",
    "decoder2.": "decoders.3.",
    "out.": "out.",
}


class _AddConstant(nn.Module):
    """Stands in for block ``i`` on both networks: ``x + 0.1 * (i + 1)``."""

    def __init__(self, i: int) -> None:
        super().__init__()
        self.shift = 0.1 * (i + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.shift


def _rename(key: str) -> str:
    for old, new in UNETR_TO_LAMBDA3D.items():
        if key.startswith(old):
            return new + key[len(old) :]
    raise KeyError(key)


def test_skeleton_is_unetr_with_other_blocks() -> None:
    """With embed_patch=16 and 12 layers, Lambda3D computes UNETR when given UNETR's blocks."""
    torch.manual_seed(0)
    widths = {"hidden_size": 24, "mlp_dim": 48, "feature_size": 4}
    patch = (32, 16, 32)
    unetr = get_model("unetr", num_classes=3, patch_size=patch, num_heads=2, **widths)
    lam = get_model(
        "lambda3d",
        num_classes=3,
        patch_size=patch,
        embed_patch=16,
        num_layers=12,
        heads=2,
        **widths,
    )
    unetr.vit.blocks = nn.ModuleList(_AddConstant(i) for i in range(12))
    lam.blocks = nn.ModuleList(_AddConstant(i) for i in range(12))
    state = {_rename(k): v for k, v in unetr.state_dict().items() if not k.startswith("vit.blocks")}
    lam.load_state_dict(state, strict=True)  # same modules, same shapes, nothing left over

    x = torch.randn(1, 1, *patch)
    torch.testing.assert_close(lam.eval()(x), unetr.eval()(x))


def test_lambda_block_keeps_the_token_shape_and_mixes_tokens() -> None:
    torch.manual_seed(0)
    block = LambdaBlock3D(16, 32, (2, 3, 4), dim_k=4, heads=4, dim_u=1, receptive_field=3)
    x = torch.randn(2, 24, 16)
    y = block(x)
    assert y.shape == x.shape
    # Changing one token changes the others (the MLP alone would not).
    x2 = x.clone()
    x2[:, 0] += 1.0
    assert not torch.allclose(block(x2)[:, 1:], y[:, 1:])


def test_lambda_block_reads_tokens_in_patch_embedding_order() -> None:
    """Tokens are ``grid.flatten(2).transpose(1, 2)`` (MONAI's PatchEmbeddingBlock, UNETR)."""
    torch.manual_seed(0)
    block = LambdaBlock3D(16, 32, (2, 3, 4), dim_k=4, heads=4, dim_u=1, receptive_field=3)
    x = torch.randn(2, 24, 16)
    grid = block.norm1(x).transpose(1, 2).reshape(2, 16, 2, 3, 4)
    h = x + block.lambda_layer(grid).flatten(2).transpose(1, 2)
    torch.testing.assert_close(block(x), h + block.mlp(block.norm2(h)))


@pytest.mark.parametrize("embed_patch", [2, 8])
def test_other_patch_embeddings_give_full_resolution_logits(embed_patch: int) -> None:
    model = get_model(
        "lambda3d", num_classes=2, patch_size=(16, 16, 32), embed_patch=embed_patch, num_layers=3
    )
    assert model(torch.randn(1, 1, 16, 16, 32)).shape == (1, 2, 16, 16, 32)


def test_overfits_one_case() -> None:
    assert_overfits_one_case("lambda3d", steps=100, lr=3e-3)


def test_no_absolute_position_embedding_means_none_is_trained() -> None:
    model = get_model("lambda3d", num_classes=2, patch_size=(16, 16, 16), pos_embed_type="none")
    embedding = model.patch_embedding.position_embeddings
    assert not embedding.requires_grad and not embedding.any()
