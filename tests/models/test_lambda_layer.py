"""LambdaLayer3D against Bello's equations (ICLR 2021, Sec. 3.1-3.2) and their symmetries."""

from __future__ import annotations

import pytest
import torch

from losslab.models import LambdaLayer3D


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _reference(layer: LambdaLayer3D, x: torch.Tensor) -> torch.Tensor:
    """Bello's global formulation with explicit embeddings ``E[n, m] = R[m - n]``.

    Args:
        layer: a layer built with ``norm_qv=False``.
        x: ``[B, dim, D, H, W]``.

    Returns:
        ``[B, heads * v, D, H, W]`` from dense ``[n, m]`` sums, no convolution.
    """
    b, _, *grid = x.shape
    heads, u = layer.heads, layer.dim_u
    flat = x.flatten(2)  # [B, dim, N]
    q = torch.einsum("od,bdn->bon", layer.to_q.weight.flatten(1), flat)
    k = torch.einsum("od,bdn->bon", layer.to_k.weight.flatten(1), flat)
    v = torch.einsum("od,bdn->bon", layer.to_v.weight.flatten(1), flat)
    q = q.reshape(b, heads, -1, q.shape[-1])  # [B, h, k, n]
    k = k.reshape(b, u, -1, k.shape[-1]).softmax(-1)  # [B, u, k, m], softmax over context m
    v = v.reshape(b, u, -1, v.shape[-1])  # [B, u, v, m]

    lam = torch.einsum("bukm,buvm->bkv", k, v)[:, None]  # content lambda, [B, 1(n), k, v]
    if layer.rel_pos is not None:
        r = layer.rel_pos.shape[-1]
        coords = torch.stack(torch.meshgrid(*map(torch.arange, grid), indexing="ij"), -1)
        coords = coords.reshape(-1, 3)
        offset = coords[None, :, :] - coords[:, None, :] + r // 2  # [n, m, 3]: m - n + r//2
        inside = ((offset >= 0) & (offset < r)).all(-1)
        o = offset.clamp(0, r - 1)
        emb = layer.rel_pos[:, :, o[..., 0], o[..., 1], o[..., 2]] * inside  # [k, u, n, m]
        lam = lam + torch.einsum("kunm,buvm->bnkv", emb, v)  # + position lambdas
    y = torch.einsum("bhkn,bnkv->bhvn", q, lam)
    return y.reshape(b, -1, *grid)


@pytest.mark.parametrize("receptive_field", [0, 3, 5])
def test_matches_the_dense_reference(receptive_field: int) -> None:
    layer = LambdaLayer3D(
        6, dim_out=8, dim_k=4, heads=2, dim_u=2, receptive_field=receptive_field, norm_qv=False
    ).double()
    x = torch.randn(2, 6, 3, 4, 5, dtype=torch.float64)
    y = layer(x)
    assert y.shape == (2, 8, 3, 4, 5)
    torch.testing.assert_close(y, _reference(layer, x))


def test_content_lambda_alone_is_permutation_equivariant() -> None:
    # Without the position lambda every voxel sees the same summary of the whole context.
    layer = LambdaLayer3D(8, dim_k=4, heads=2, receptive_field=0).double()
    x = torch.randn(2, 8, 4, 4, 4, dtype=torch.float64)
    perm = torch.randperm(64)
    permuted = x.flatten(2)[..., perm].reshape_as(x)
    expected = layer(x).flatten(2)[..., perm].reshape_as(x)
    torch.testing.assert_close(layer(permuted), expected)


def test_position_lambda_is_translation_equivariant_away_from_borders() -> None:
    layer = LambdaLayer3D(8, dim_k=4, heads=2, receptive_field=5).double()
    x = torch.randn(1, 8, 12, 12, 12, dtype=torch.float64)
    s, c = 3, 2  # shift, r // 2
    y = layer(x)
    y_back = torch.roll(layer(torch.roll(x, (s, s, s), (2, 3, 4))), (-s, -s, -s), (2, 3, 4))
    # Voxel m of y_back saw the context of voxel m; the window of size r around it is inside the
    # volume and clear of the wrapped slab for m in [c, 12 - c - s).
    inner = slice(c, 12 - c - s)
    box = (..., inner, inner, inner)
    torch.testing.assert_close(y_back[box], y[box])
    assert not torch.allclose(y_back, y)  # near the borders zero padding differs from wrapping
    # The position lambda does depend on where the context is: not a permutation invariant.
    perm = torch.randperm(12**3)
    permuted = layer(x.flatten(2)[..., perm].reshape_as(x)).flatten(2)
    assert not torch.allclose(permuted, y.flatten(2)[..., perm])


def test_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="heads 3"):
        LambdaLayer3D(8, heads=3)
    with pytest.raises(ValueError, match="receptive_field must be 0 or odd, got 4"):
        LambdaLayer3D(8, receptive_field=4)
