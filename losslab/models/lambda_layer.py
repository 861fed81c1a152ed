"""The lambda layer in 3D: a content lambda plus a local 3D position lambda (lambda convolution).

Bello, "LambdaNetworks: Modeling long-range interactions without attention", ICLR 2021
(arXiv:2102.08602): Sec. 3.1 (content and position lambdas), Sec. 3.2 (multi-query lambdas),
Appendix B.1 (the lambda convolution that computes position lambdas over a local context of
size r). The 2D code of lucidrains' ``lambda-networks`` is the model of brevity; the 3D
extension is the Lambda3D of Willoughby and Voiculescu (2024).

Notation (Bello): a context of ``|m|`` positions and ``|n|`` query positions (here both the voxels
of the same grid), key depth ``|k|``, intra-depth ``|u|``, heads ``|h|``, value depth
``|v| = dim_out / |h|``.

    Q = X W_Q  [n, h, k]      K = X W_K  [m, k, u]      V = X W_V  [m, v, u]
    K_bar = softmax_m(K)                                (keys normalised over the context)
    lambda_c   = sum_{m,u} K_bar[m, k, u] V[m, v, u]                           [k, v]
    lambda_p_n = sum_{m,u} E[n, m, k, u] V[m, v, u],  E[n, m] = R[m - n]      [k, v]
    y_n^h      = (lambda_c + lambda_p_n)^T q_n^h;  y_n = concat_h y_n^h       [h * v]

The relative embeddings ``R`` are zero beyond ``r // 2`` voxels in any axis, so ``lambda_p`` is a
3D convolution (cross-correlation, zero padding) of every value channel ``v`` with the kernel
``R [k, u, r, r, r]``: that is what makes a position lambda cheap and translation equivariant.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

__all__ = ["LambdaLayer3D"]


class LambdaLayer3D(nn.Module):
    """Multi-query lambda layer over a 3D grid: ``[B, dim, D, H, W] -> [B, dim_out, D, H, W]``.

    Args:
        dim: input channels.
        dim_out: output channels ``|h| * |v|``; defaults to ``dim``.
        dim_k: key/query depth ``|k|`` (Bello uses 16).
        heads: number of queries per position ``|h|``; must divide ``dim_out``.
        dim_u: intra-depth ``|u|`` (Bello's default 1).
        receptive_field: edge ``r`` of the local context of the position lambda (odd); 0
            disables the position lambda and leaves the global content lambda only.
        norm_qv: batch-normalise queries and values, as Bello's reference code does.
    """

    def __init__(
        self,
        dim: int,
        *,
        dim_out: int | None = None,
        dim_k: int = 16,
        heads: int = 4,
        dim_u: int = 1,
        receptive_field: int = 7,
        norm_qv: bool = True,
    ) -> None:
        super().__init__()
        dim_out = dim if dim_out is None else dim_out
        if dim_out % heads:
            raise ValueError(f"dim_out {dim_out} must be divisible by heads {heads}")
        if receptive_field < 0 or (receptive_field and receptive_field % 2 == 0):
            raise ValueError(f"receptive_field must be 0 or odd, got {receptive_field}")
        dim_v = dim_out // heads
        self.heads, self.dim_u = heads, dim_u
        self.to_q = nn.Conv3d(dim, dim_k * heads, 1, bias=False)
        self.to_k = nn.Conv3d(dim, dim_k * dim_u, 1, bias=False)
        self.to_v = nn.Conv3d(dim, dim_v * dim_u, 1, bias=False)
        self.norm_q = nn.BatchNorm3d(dim_k * heads) if norm_qv else nn.Identity()
        self.norm_v = nn.BatchNorm3d(dim_v * dim_u) if norm_qv else nn.Identity()
        self.rel_pos: nn.Parameter | None = None
        if receptive_field:
            # R of Bello's lambda convolution, [k, u, r, r, r], laid out as a conv3d weight; a
            # fan-in scale keeps lambda_p on the scale of the (normalised) values.
            r = receptive_field
            self.rel_pos = nn.Parameter(torch.randn(dim_k, dim_u, r, r, r) * (dim_u * r**3) ** -0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer.

        Args:
            x: ``[B, dim, D, H, W]``, the context and the queries at once.

        Returns:
            ``[B, dim_out, D, H, W]``.
        """
        d, hh, ww = x.shape[-3:]
        q = rearrange(self.norm_q(self.to_q(x)), "b (hd k) d y x -> b hd k (d y x)", hd=self.heads)
        k = rearrange(self.to_k(x), "b (u k) d y x -> b u k (d y x)", u=self.dim_u)
        v = rearrange(self.norm_v(self.to_v(x)), "b (u v) d y x -> b u v (d y x)", u=self.dim_u)

        k = k.softmax(dim=-1)
        content_lambda = torch.einsum("b u k m, b u v m -> b k v", k, v)
        y = torch.einsum("b h k n, b k v -> b h v n", q, content_lambda)

        if self.rel_pos is not None:
            # Each value channel v is convolved separately: fold v into the batch.
            v_grid = rearrange(v, "b u v (d y x) -> (b v) u d y x", d=d, y=hh, x=ww)
            pos = F.conv3d(v_grid, self.rel_pos, padding=self.rel_pos.shape[-1] // 2)
            position_lambdas = rearrange(pos, "(b v) k d y x -> b k v (d y x)", b=x.shape[0])
            y = y + torch.einsum("b h k n, b k v n -> b h v n", q, position_lambdas)

        return rearrange(y, "b hd v (d y x) -> b (hd v) d y x", d=d, y=hh, x=ww)
