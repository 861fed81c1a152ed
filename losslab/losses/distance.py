"""Signed distance maps of one-hot targets (the ``dist`` terminal of Kervadec et al.'s boundary
loss), computed where the target lives.

The boundary loss reads ``dist`` at every training step. Copying the target to the host for
SciPy and the map back would make every step of a GPU wait for the host, so on an accelerator
the map is computed with torch: an exact Euclidean distance transform by separability (Saito
and Toriwaki): the squared distance to the nearest seed is a lower envelope of parabolas taken
along one axis after the other, ``d2[x] = min_k f[k] + (x - k) ** 2``. Each 1-D pass is a brute
force minimum over the axis, ``O(n)`` per voxel, which is parallel, exact (squared distances are
integers, exact in float32 up to ``2 ** 24``) and cheap for patch sizes of a few hundred voxels;
it runs in blocks of lines so that its ``[lines, n, n]`` intermediate stays under
:data:`BLOCK_ELEMENTS`. The square roots are taken in float64 (float32 where the device has no
float64), which makes the map bit-identical to SciPy's.

On the CPU, where a host round trip costs nothing, SciPy's ``distance_transform_edt`` is faster
than the brute force (``scripts/bench_distance.py``), so :data:`CPU_BACKEND` is ``"scipy"``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "BACKENDS",
    "BLOCK_ELEMENTS",
    "CPU_BACKEND",
    "signed_distance",
    "signed_distance_scipy",
    "signed_distance_torch",
    "squared_distance_to_seeds",
]

BACKENDS = ("torch", "scipy")
CPU_BACKEND = "scipy"  # the faster one on the CPU (scripts/bench_distance.py); "torch" elsewhere
BLOCK_ELEMENTS = 1 << 25  # largest intermediate of a 1-D pass, in elements (128 MiB of float32)


def squared_distance_to_seeds(seeds: torch.Tensor, ndim: int) -> torch.Tensor:
    """Squared Euclidean distance (in voxels) from every element to the nearest seed.

    Args:
        seeds: bool ``[..., *spatial]``; the last ``ndim`` dimensions are spatial, the leading
            ones are independent images.
        ndim: the number of spatial dimensions.

    Returns:
        float32 of the shape of ``seeds``: 0 on a seed, ``inf`` in an image without seeds.
        Nothing is read back to the host.
    """
    if not 1 <= ndim <= seeds.dim():
        raise ValueError(f"ndim must be in [1, {seeds.dim()}], got {ndim}")
    first = seeds.dim() - ndim
    f = _nearest_on_lines(seeds, first)
    for axis in range(first + 1, seeds.dim()):
        f = _lower_envelope(f, axis)
    return f


def _nearest_on_lines(seeds: torch.Tensor, axis: int) -> torch.Tensor:
    """The first pass, on the binary seeds: the squared distance to the nearest seed on the
    same line along ``axis``, from the last seed at or before each position and the first one at
    or after it (two running maxima, ``O(1)`` per voxel instead of the envelope's ``O(n)``)."""
    n = seeds.shape[axis]
    position = torch.arange(n, dtype=torch.float32, device=seeds.device)
    position = position.reshape(n, *([1] * (seeds.dim() - axis - 1)))
    last = torch.where(seeds, position, -math.inf).cummax(axis).values
    next_ = -torch.where(seeds, -position, -math.inf).flip(axis).cummax(axis).values.flip(axis)
    return torch.minimum(position - last, next_ - position) ** 2


def _lower_envelope(f: torch.Tensor, axis: int) -> torch.Tensor:
    """``out[x] = min_k f[k] + (x - k) ** 2`` along ``axis`` (a pass of the separable EDT)."""
    n = f.shape[axis]
    if n == 1:
        return f
    lines = f.movedim(axis, -1)
    shape = lines.shape
    flat = lines.reshape(-1, n)
    k = torch.arange(n, dtype=torch.float32, device=f.device)
    parabolas = (k[:, None] - k[None, :]) ** 2  # [x, k]
    out = torch.empty_like(flat)
    rows = max(1, BLOCK_ELEMENTS // (n * n))
    for start in range(0, flat.shape[0], rows):
        block = flat[start : start + rows]
        torch.amin(block[:, None, :] + parabolas, dim=-1, out=out[start : start + rows])
    return out.reshape(shape).movedim(-1, axis)


def _root_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


def signed_distance_torch(onehot: torch.Tensor) -> torch.Tensor:
    """:func:`signed_distance` with torch on the device of ``onehot`` (no host sync)."""
    pos = onehot.detach() != 0
    ndim = onehot.dim() - 2
    # seeds of the distance outside each class (its voxels), then of the one inside (the rest)
    d2 = squared_distance_to_seeds(torch.stack([pos, ~pos]), ndim)
    distance = d2.to(_root_dtype(onehot.device)).sqrt()
    # SciPy's formula, edt(~pos) * ~pos - (edt(pos) - 1) * pos, in the same precision
    signed = torch.where(pos, 1.0 - distance[1], distance[0])
    flat = pos.flatten(2)
    partial = (flat.any(-1) & ~flat.all(-1)).reshape(*pos.shape[:2], *([1] * ndim))
    return torch.where(partial, signed, 0.0).float()


def signed_distance_scipy(onehot: torch.Tensor) -> torch.Tensor:
    """:func:`signed_distance` with SciPy on the host (the map is copied back to the device)."""
    from scipy.ndimage import distance_transform_edt

    masks = onehot.detach().to("cpu", torch.bool).numpy()
    out = np.zeros(masks.shape, dtype=np.float32)
    for b in range(masks.shape[0]):
        for c in range(masks.shape[1]):
            pos = masks[b, c]
            if pos.any() and not pos.all():
                neg = ~pos
                out[b, c] = (
                    distance_transform_edt(neg) * neg - (distance_transform_edt(pos) - 1) * pos
                )
    return torch.from_numpy(out).to(onehot.device)


def signed_distance(onehot: torch.Tensor, backend: str | None = None) -> torch.Tensor:
    """Signed distance to the boundary of each class of a one-hot target (Kervadec et al., 2019).

    Negative inside the class, positive outside, in voxels: ``d_out`` outside (the distance to
    the nearest voxel of the class) and ``1 - d_in`` inside (``d_in`` the distance to the
    nearest voxel outside it, so the boundary voxels of the class are 0); zero for a class absent
    from an image or covering all of it. Any number of spatial dimensions.

    Args:
        onehot: ``[B, C, *spatial]``; a voxel belongs to a class where its entry is not 0.
        backend: ``"torch"`` (on the device, no host sync) or ``"scipy"`` (on the host); by
            default :data:`CPU_BACKEND` on the CPU and ``"torch"`` on any other device.

    Returns:
        ``[B, C, *spatial]`` float32 on the device of ``onehot``; the two backends agree exactly.
    """
    if backend is None:
        backend = CPU_BACKEND if onehot.device.type == "cpu" else "torch"
    if backend == "torch":
        return signed_distance_torch(onehot)
    if backend == "scipy":
        return signed_distance_scipy(onehot)
    raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
