"""CT imaging of a phantom anatomy: Hounsfield units, texture, partial volume, bias and noise.

Intensities follow a portal-venous abdominal CT. Difficulty does not follow size alone:
liver and spleen have nearly the same attenuation, the pancreas sits among bowel loops of
similar attenuation with fatty lobulation, the stomach (large) mixes wall, fluid, food and gas,
and the small adrenals are thin soft tissue in fat that partial-volume blur washes out.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from losslab.data import _phantom_anatomy as anat
from losslab.data._smooth import smooth_noise

# Mean HU and texture amplitude (HU) of each background tissue code.
_TISSUE_HU = {
    anat.AIR: (-1000.0, 0.0),
    anat.SUBCUT_FAT: (-105.0, 8.0),
    anat.MUSCLE: (50.0, 8.0),
    anat.CORTICAL_BONE: (750.0, 60.0),
    anat.CANCELLOUS_BONE: (230.0, 40.0),
    anat.DISC: (85.0, 8.0),
    anat.CSF: (12.0, 4.0),
    anat.VISCERAL_FAT: (-95.0, 12.0),
    anat.BOWEL: (60.0, 20.0),
    anat.BOWEL_GAS: (-700.0, 120.0),
    anat.LUNG: (-840.0, 40.0),
}

# Mean HU and texture amplitude (HU) of each organ, by class name.
_ORGAN_HU = {
    "spleen": (112.0, 6.0),
    "right_kidney": (175.0, 10.0),
    "left_kidney": (175.0, 10.0),
    "gallbladder": (14.0, 4.0),
    "esophagus": (48.0, 8.0),
    "liver": (106.0, 6.0),
    "stomach": (70.0, 10.0),
    "aorta": (190.0, 8.0),
    "inferior_vena_cava": (135.0, 22.0),
    "portal_splenic_veins": (165.0, 10.0),
    "pancreas": (88.0, 18.0),
    "right_adrenal_gland": (32.0, 6.0),
    "left_adrenal_gland": (32.0, 6.0),
}


def _table(
    rng: np.random.Generator, entries: dict, size: int, sd: float
) -> tuple[np.ndarray, np.ndarray]:
    """Lookup tables ``[size]`` of per-case mean HU (jittered by ``sd``) and texture amplitude."""
    mean = np.zeros(size, dtype=np.float32)
    amp = np.zeros(size, dtype=np.float32)
    for key, (m, a) in entries.items():
        mean[key] = m + (rng.normal(0.0, sd) if m > -1000 else 0.0)
        amp[key] = a
    return mean, amp


def _stomach(rng: np.random.Generator, hu: np.ndarray, anatomy: anat.Anatomy) -> None:
    """Enhancing wall, dependent fluid or food, and an anterior gas cap above an air-fluid level."""
    stomach = anatomy.label == anat.PHANTOM_CLASSES.index("stomach")
    lumen = stomach & (anatomy.depth < rng.uniform(0.7, 0.85))
    if not lumen.any():
        return
    content = rng.choice([12.0, 25.0, 45.0])  # water, mixed, food
    hu[lumen] = content + rng.uniform(-5.0, 5.0)
    y = anatomy.coords[1][lumen]
    gas_fraction = rng.uniform(0.0, 0.45)
    if gas_fraction > 0.05:
        level = np.quantile(y, 1.0 - gas_fraction)
        gas = np.zeros_like(lumen)
        gas[lumen] = y > level
        hu[gas] = -850.0


def _lumens(rng: np.random.Generator, hu: np.ndarray, anatomy: anat.Anatomy) -> None:
    """Kidney sinus (lower attenuation core) and occasional air in the oesophagus."""
    for name in ("right_kidney", "left_kidney"):
        core = (anatomy.label == anat.PHANTOM_CLASSES.index(name)) & (anatomy.depth < 0.5)
        hu[core] = rng.uniform(50.0, 90.0)
    if rng.random() < 0.5:
        eso = anatomy.label == anat.PHANTOM_CLASSES.index("esophagus")
        hu[eso & (anatomy.depth < 0.35)] = -700.0


def render_ct(rng: np.random.Generator, anatomy: anat.Anatomy) -> np.ndarray:
    """Image an anatomy as CT.

    Args:
        rng: source of randomness.
        anatomy: label, tissue, depth and coordinates of one case.

    Returns:
        float32 ``[D, H, W]`` image in Hounsfield units.
    """
    shape = anatomy.label.shape
    t_mean, t_amp = _table(rng, _TISSUE_HU, 16, 8.0)
    organ_hu = {anat.PHANTOM_CLASSES.index(k): v for k, v in _ORGAN_HU.items()}
    o_mean, o_amp = _table(rng, organ_hu, len(anat.PHANTOM_CLASSES), 10.0)
    is_organ = anatomy.label > 0
    hu = np.where(is_organ, o_mean[anatomy.label], t_mean[anatomy.tissue])
    amp = np.where(is_organ, o_amp[anatomy.label], t_amp[anatomy.tissue])
    hu += amp * smooth_noise(rng, shape, 12)[0]
    _stomach(rng, hu, anatomy)
    _lumens(rng, hu, anatomy)
    hu = ndimage.gaussian_filter(hu, sigma=rng.uniform(0.5, 0.8), truncate=3.0)
    bias = smooth_noise(rng, shape, 2)[0]
    hu += rng.uniform(5.0, 25.0) * bias
    hu += rng.uniform(10.0, 25.0) * rng.standard_normal(shape, dtype=np.float32)
    return hu.astype(np.float32, copy=False)
