"""Anatomy of the abdominal phantom: body layers, spine and the 13 BTCV organs as a label map.

Coordinates are normalised to ``[-1, 1]`` on each array axis, in the RAS+ order of the NIfTI
files the phantom is written to: axis 0 ``x`` towards the patient's right, axis 1 ``y``
anterior, axis 2 ``z`` superior. Each organ is the level set of a smooth field (a deformed
ellipsoid or a tube along a polyline) and claims exactly ``k`` voxels, the ``k`` free voxels of
the abdominal cavity where its field is lowest; ``k`` follows the class share of Table 1 of
Willoughby and Voiculescu (2024) times a random size factor, so the class shares hold at any resolution.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from losslab.data._smooth import smooth_noise

PHANTOM_CLASSES: tuple[str, ...] = (
    "background",
    "spleen",
    "right_kidney",
    "left_kidney",
    "gallbladder",
    "esophagus",
    "liver",
    "stomach",
    "aorta",
    "inferior_vena_cava",
    "portal_splenic_veins",
    "pancreas",
    "right_adrenal_gland",
    "left_adrenal_gland",
)
"""Class names in BTCV label order; the index is the label value."""

PHANTOM_TARGET_SHARES: dict[str, float] = {
    "spleen": 0.091,
    "right_kidney": 0.051,
    "left_kidney": 0.051,
    "gallbladder": 0.009,
    "esophagus": 0.005,
    "liver": 0.552,
    "stomach": 0.141,
    "aorta": 0.031,
    "inferior_vena_cava": 0.028,
    "portal_splenic_veins": 0.011,
    "pancreas": 0.028,
    "right_adrenal_gland": 0.001,
    "left_adrenal_gland": 0.001,
}
"""Share of the labelled (non-background) voxels per organ, Table 1 of Willoughby and Voiculescu (2024) (BTCV)."""

LABELLED_FRACTION = 0.12
"""Average fraction of all voxels that carry an organ label."""

# Background tissue codes of the voxels labelled 0.
AIR, SUBCUT_FAT, MUSCLE, CORTICAL_BONE, CANCELLOUS_BONE, DISC, CSF = range(7)
VISCERAL_FAT, BOWEL, BOWEL_GAS, LUNG = range(7, 11)

_DEFORM = 0.035  # amplitude of the global smooth displacement, normalised units
_CLASS_INDEX = {name: i for i, name in enumerate(PHANTOM_CLASSES)}
Field = Callable[[np.ndarray], np.ndarray]


@dataclass
class Anatomy:
    """One phantom case before imaging.

    Attributes:
        label: uint8 ``[D, H, W]`` organ labels (BTCV order).
        tissue: uint8 ``[D, H, W]`` background tissue codes (meaningful where label is 0).
        depth: float32 ``[D, H, W]`` organ field over its level: 0 at the core, 1 at the surface.
        coords: float32 ``[3, D, H, W]`` deformed normalised coordinates (x, y, z).
    """

    label: np.ndarray
    tissue: np.ndarray
    depth: np.ndarray
    coords: np.ndarray


def _rotation(rng: np.random.Generator, degrees: tuple[float, float, float]) -> np.ndarray:
    """Rotation about z, y then x by the given angles plus 8 degrees of jitter, ``[3, 3]``."""
    a, b, c = np.deg2rad(np.asarray(degrees) + rng.normal(0.0, 8.0, 3))
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rx = np.array([[1, 0, 0], [0, np.cos(c), -np.sin(c)], [0, np.sin(c), np.cos(c)]])
    return (rz @ ry @ rx).astype(np.float32)


def _ellipsoid(centre: np.ndarray, radii: np.ndarray, rot: np.ndarray) -> Field:
    """Field ``|R (u - c) / r|``: 1 on the surface of the ellipsoid."""

    def field(u: np.ndarray) -> np.ndarray:
        d = [u[i] - centre[i] for i in range(3)]
        total = np.zeros(u.shape[1:], dtype=np.float32)
        for row, radius in zip(rot, radii):
            total += ((row[0] * d[0] + row[1] * d[1] + row[2] * d[2]) / radius) ** 2
        return np.sqrt(total)

    return field


def _tube(points: np.ndarray, radii: np.ndarray) -> Field:
    """Field distance-to-polyline over the local radius: 1 on the tube wall.

    Args:
        points: ``[P, 3]`` polyline vertices.
        radii: ``[P]`` radius at each vertex, interpolated linearly along each segment.
    """

    def field(u: np.ndarray) -> np.ndarray:
        best = np.full(u.shape[1:], np.inf, dtype=np.float32)
        for a, b, ra, rb in zip(points[:-1], points[1:], radii[:-1], radii[1:]):
            ab = (b - a).astype(np.float32)
            d = [u[i] - a[i] for i in range(3)]
            t = (ab[0] * d[0] + ab[1] * d[1] + ab[2] * d[2]) / float(ab @ ab)
            np.clip(t, 0.0, 1.0, out=t)
            dist = np.sqrt(sum((d[i] - t * ab[i]) ** 2 for i in range(3)))
            np.minimum(best, dist / (ra + t * (rb - ra)), out=best)
        return best

    return field


def _organs(
    rng: np.random.Generator, scale: np.ndarray
) -> list[tuple[str, Field, np.ndarray, np.ndarray, float, float]]:
    """Per-case organ geometry in claiming order (thin structures first).

    Returns:
        ``(name, field, box_lo, box_hi, shape_noise_amplitude, size_factor)`` per organ.
    """

    def jitter(p: tuple[float, float, float], sd: float = 0.03) -> np.ndarray:
        return (np.asarray(p, dtype=np.float32) + rng.normal(0.0, sd, 3)) * scale

    sizes = {name: float(rng.lognormal(0.0, 0.1)) for name in PHANTOM_CLASSES[1:]}
    out = []

    def tube(name: str, pts: list, radii: list, noise: float) -> None:
        shift = rng.normal(0.0, 0.03, 3)
        p = np.stack([jitter(tuple(np.add(q, shift)), 0.012) for q in pts])
        r = np.asarray(radii, dtype=np.float32) * sizes[name] ** 0.5
        m = r.max() * 1.6 + _DEFORM
        out.append((name, _tube(p, r), p.min(0) - m, p.max(0) + m, noise, sizes[name]))

    def blob(name: str, lobes: list, angles: tuple, noise: float, sd: float = 0.03) -> None:
        rot = _rotation(rng, angles)
        size = sizes[name] ** (1 / 3)
        parts = [(jitter(c, sd), np.asarray(r, np.float32) * size) for c, r in lobes]
        fields = [_ellipsoid(c, r, rot) for c, r in parts]
        lo = np.min([c - r.max() * 1.6 for c, r in parts], axis=0) - _DEFORM
        hi = np.max([c + r.max() * 1.6 for c, r in parts], axis=0) + _DEFORM

        def field(u: np.ndarray) -> np.ndarray:
            return np.minimum.reduce([f(u) for f in fields]) if len(fields) > 1 else fields[0](u)

        out.append((name, field, lo, hi, noise, sizes[name]))

    z_top, z_bot = 1.15, -1.15
    tube(
        "aorta",
        [(-0.07, -0.30, z_top), (-0.07, -0.29, 0.4), (-0.04, -0.31, z_bot)],
        [0.07] * 3,
        0.05,
    )
    tube(
        "inferior_vena_cava",
        [(0.12, -0.18, z_top), (0.15, -0.24, 0.5), (0.15, -0.28, -0.3), (0.12, -0.32, z_bot)],
        [0.066] * 4,
        0.08,
    )
    tube(
        "esophagus",
        [(-0.03, -0.28, z_top), (-0.06, -0.24, 0.85), (-0.2, -0.12, 0.66)],
        [0.05] * 3,
        0.05,
    )
    veins = [(-0.47, -0.24, 0.24), (-0.22, -0.15, 0.13), (0.03, -0.1, 0.05), (0.16, -0.06, 0.2)]
    tube("portal_splenic_veins", [*veins, (0.26, -0.03, 0.32)], [0.05] * 5, 0.05)
    # The kidneys move first so that each adrenal sits on top of its (moved) kidney.
    kidney_r = tuple(np.add((0.38, -0.40, -0.22), rng.normal(0.0, 0.03, 3)))
    kidney_l = tuple(np.add((-0.38, -0.38, -0.12), rng.normal(0.0, 0.03, 3)))
    adrenal = [0.09, 0.022, 0.12]
    right_adrenal = (kidney_r[0] - 0.1, kidney_r[1] + 0.06, kidney_r[2] + 0.42)
    left_adrenal = (kidney_l[0] + 0.1, kidney_l[1] + 0.06, kidney_l[2] + 0.42)
    blob("right_adrenal_gland", [(right_adrenal, adrenal)], (40, 0, 0), 0.1, sd=0.015)
    blob("left_adrenal_gland", [(left_adrenal, adrenal)], (-40, 0, 0), 0.1, sd=0.015)
    blob("gallbladder", [((0.32, 0.30, 0.08), [0.1, 0.1, 0.2])], (0, 0, 30), 0.1)
    blob("right_kidney", [(kidney_r, [0.17, 0.2, 0.34])], (20, 10, 0), 0.08, sd=0.0)
    blob("left_kidney", [(kidney_l, [0.17, 0.2, 0.34])], (-20, -10, 0), 0.08, sd=0.0)
    pancreas = [(0.17, -0.03, -0.06), (0.0, 0.02, 0.05), (-0.25, -0.07, 0.13), (-0.45, -0.17, 0.22)]
    tube("pancreas", pancreas, [0.12, 0.09, 0.08, 0.07], 0.15)
    blob("spleen", [((-0.56, -0.28, 0.42), [0.17, 0.28, 0.38])], (35, 0, 0), 0.1)
    stomach = [(-0.32, -0.08, 0.72), (-0.36, 0.12, 0.38), (-0.12, 0.30, 0.08), (0.12, 0.22, 0.04)]
    tube("stomach", stomach, [0.22, 0.22, 0.15, 0.1], 0.1)
    liver = [((0.38, 0.0, 0.45), [0.42, 0.5, 0.5]), ((-0.12, 0.25, 0.52), [0.35, 0.22, 0.3])]
    blob("liver", liver, (0, 0, 0), 0.08)
    return out


def _box(lo: np.ndarray, hi: np.ndarray, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """Voxel slices covering the normalised box ``[lo, hi]`` (clipped to the volume)."""
    out = []
    for a, b, n in zip(lo, hi, shape):
        i0 = int(np.floor((a + 1) / 2 * n - 0.5))
        i1 = int(np.ceil((b + 1) / 2 * n - 0.5)) + 1
        out.append(slice(min(max(i0, 0), n), min(max(i1, 0), n)))
    return tuple(out)


def _claim(
    anatomy: Anatomy,
    cavity: np.ndarray,
    box: tuple[slice, ...],
    field: np.ndarray,
    k: int,
    value: int,
) -> int:
    """Label the ``k`` free cavity voxels of ``box`` with the lowest ``field``; return the count."""
    lab = anatomy.label[box]
    free = (lab == 0) & cavity[box]
    n_free = int(free.sum())
    k = min(k, n_free)
    if k == 0:
        return 0
    vals = np.where(free, field, np.inf).ravel()
    idx = np.argpartition(vals, k - 1)[:k]
    level = max(float(vals[idx].max()), 1e-6)
    sel = np.zeros(vals.size, dtype=bool)
    sel[idx] = True
    sel = sel.reshape(lab.shape)
    lab[sel] = value
    anatomy.depth[box][sel] = field[sel] / level
    return k


def _body(
    u: np.ndarray, rng: np.random.Generator, axes: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Body outline, fat and muscle layers, ribs, spine and back muscles.

    Returns:
        ``(tissue uint8 [D, H, W], cavity bool [D, H, W])``; the cavity is where organs may lie.
    """
    x, y, z = u
    ax, ay = axes
    y0 = -0.05
    rb = np.sqrt((x / ax) ** 2 + ((y - y0) / ay) ** 2)
    fat, wall = rng.uniform(0.04, 0.14), rng.uniform(0.035, 0.06)
    tissue = np.where(rb < 1.0, SUBCUT_FAT, AIR).astype(np.uint8)
    inner = 1.0 - fat - wall
    tissue[rb < 1.0 - fat] = MUSCLE
    cavity = rb < inner
    tissue[cavity] = VISCERAL_FAT
    rib_phase = rng.uniform(0, 2 * np.pi)
    ribs = (rb > inner - 0.03) & (rb < 1.0 - fat) & (z > 0.2) & (np.sin(z * 26 + rib_phase) > 0.55)
    tissue[ribs] = CORTICAL_BONE
    ys = -0.5 * ay / 0.7
    rv = 0.12 * ay / 0.7
    r_spine = np.sqrt(x**2 + (y - ys) ** 2)
    vertebra = r_spine < rv
    tissue[vertebra] = CORTICAL_BONE
    tissue[r_spine < rv - 0.025] = CANCELLOUS_BONE
    disc = vertebra & (np.mod(z + rng.uniform(0, 0.3), 0.3) < 0.055)
    tissue[disc] = DISC
    arch = (np.abs(x) < 0.05) & (y < ys - rv) & (y > ys - rv - 0.16)
    tissue[arch] = CORTICAL_BONE
    canal = np.sqrt(x**2 + (y - ys + rv + 0.055) ** 2) < 0.04
    tissue[canal] = CSF
    back = ((np.abs(x) - 0.2) / 0.12) ** 2 + ((y - ys + 0.15) / 0.08) ** 2 < 1.0
    rp = 0.035 + 0.035 * (1.0 - z) / 2
    psoas = ((np.abs(x) - 0.17) ** 2 + (y - ys + 0.04) ** 2) < rp**2
    tissue[(back | psoas) & ~arch & ~canal] = MUSCLE
    cavity &= ~(vertebra | arch | canal | back | psoas | ribs)
    return tissue, cavity


def build_anatomy(rng: np.random.Generator, shape: tuple[int, int, int]) -> Anatomy:
    """Draw one case: deformed coordinates, body, organs, bowel and lung bases."""
    axes = [((np.arange(n, dtype=np.float32) + 0.5) / n) * 2 - 1 for n in shape]
    coords = _DEFORM * smooth_noise(rng, shape, 4, 3)
    coords[0] += axes[0][:, None, None]
    coords[1] += axes[1][None, :, None]
    coords[2] += axes[2][None, None, :]
    body_axes = (float(rng.uniform(0.85, 0.95)), float(rng.uniform(0.62, 0.75)))
    tissue, cavity = _body(coords, rng, body_axes)
    anatomy = Anatomy(
        label=np.zeros(shape, dtype=np.uint8),
        tissue=tissue,
        depth=np.zeros(shape, dtype=np.float32),
        coords=coords,
    )
    shape_noise = smooth_noise(rng, shape, 6)[0]
    scale = np.array([body_axes[0] / 0.9, body_axes[1] / 0.7, 1.0], dtype=np.float32)
    n_voxels = float(np.prod(shape))
    overall = float(rng.lognormal(0.0, 0.08))
    for name, field_fn, lo, hi, noise, size in _organs(rng, scale):
        share = PHANTOM_TARGET_SHARES[name]
        k = max(1, round(share * LABELLED_FRACTION * n_voxels * size * overall))
        box = _box(lo, hi, shape)
        for attempt in (box, (slice(None),) * 3):
            field = field_fn(coords[(slice(None), *attempt)])
            field *= np.exp(noise * shape_noise[attempt])
            free = int(((anatomy.label[attempt] == 0) & cavity[attempt]).sum())
            if free >= k or attempt[0] == slice(None):
                _claim(anatomy, cavity, attempt, field, k, _CLASS_INDEX[name])
                break
    background = (anatomy.label == 0) & cavity
    bowel = background & (smooth_noise(rng, shape, 9)[0] > rng.uniform(-0.2, 0.4))
    tissue[bowel] = BOWEL
    tissue[bowel & (smooth_noise(rng, shape, 16)[0] > rng.uniform(1.4, 1.9))] = BOWEL_GAS
    x, y, z = coords
    lung = background & (z - 0.25 * y > rng.uniform(0.8, 0.95)) & (np.abs(x) > 0.12)
    tissue[lung] = LUNG
    return anatomy
