from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from losslab.data import (
    PHANTOM_CLASSES,
    PHANTOM_TARGET_SHARES,
    make_phantom_case,
    phantom_case_seed,
)

BTCV_ORDER = (
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


@pytest.fixture(scope="module")
def cases_32() -> list[tuple[np.ndarray, np.ndarray]]:
    return [make_phantom_case(seed, (32, 32, 32)) for seed in range(20)]


def _index(name: str) -> int:
    return PHANTOM_CLASSES.index(name)


def _centroid(label: np.ndarray, name: str) -> np.ndarray:
    """Centroid in normalised RAS coordinates ``[-1, 1]`` (x right, y anterior, z superior)."""
    where = np.argwhere(label == _index(name))
    return (where.mean(axis=0) + 0.5) / np.asarray(label.shape) * 2 - 1


def test_classes_follow_btcv_order_and_table_1():
    assert PHANTOM_CLASSES == BTCV_ORDER
    assert set(PHANTOM_TARGET_SHARES) == set(BTCV_ORDER[1:])
    assert PHANTOM_TARGET_SHARES["liver"] == pytest.approx(0.552)
    assert PHANTOM_TARGET_SHARES["left_adrenal_gland"] == pytest.approx(0.001)
    assert sum(PHANTOM_TARGET_SHARES.values()) == pytest.approx(1.0, abs=0.01)


def test_class_shares_over_20_cases_are_within_35_percent_of_table_1(cases_32):
    counts = sum(np.bincount(label.ravel(), minlength=14) for _, label in cases_32)
    shares = counts[1:] / counts[1:].sum()
    for name, share in zip(PHANTOM_CLASSES[1:], shares):
        target = PHANTOM_TARGET_SHARES[name]
        assert abs(share / target - 1) < 0.35, f"{name}: {share:.4f} vs {target:.4f}"


def test_every_organ_is_present_in_every_case(cases_32):
    for _, label in cases_32:
        assert set(np.unique(label)) == set(range(14))


def test_same_seed_same_arrays_and_other_seed_differs():
    image_a, label_a = make_phantom_case(7, (24, 20, 16))
    image_b, label_b = make_phantom_case(7, (24, 20, 16))
    image_c, label_c = make_phantom_case(8, (24, 20, 16))
    np.testing.assert_array_equal(image_a, image_b)
    np.testing.assert_array_equal(label_a, label_b)
    assert not np.array_equal(label_a, label_c)
    assert np.abs(image_a - image_c).mean() > 10.0


def test_types_and_shape_of_a_non_cubic_case():
    image, label = make_phantom_case(0, (40, 32, 24))
    assert image.shape == label.shape == (40, 32, 24)
    assert image.dtype == np.float32 and label.dtype == np.uint8
    assert -1200 < image.min() < -800 and 300 < image.max() < 2000  # air ... bone in HU


def test_bad_shape_is_refused():
    with pytest.raises(ValueError, match="at least 8"):
        make_phantom_case(0, (32, 32, 4))


def test_organs_are_where_they_are_in_the_abdomen(cases_32):
    c = {
        name: np.mean([_centroid(lab, name) for _, lab in cases_32], axis=0)
        for name in BTCV_ORDER[1:]
    }
    assert c["liver"][0] > 0.15 and c["liver"][2] > 0.2  # right, upper
    assert c["spleen"][0] < -0.3 and c["spleen"][1] < -0.1  # left, posterior
    assert c["stomach"][0] < 0 and c["stomach"][2] > 0  # left, upper
    assert c["right_kidney"][0] > 0.2 and c["left_kidney"][0] < -0.2  # either side of the spine
    assert c["right_kidney"][1] < -0.2 and c["left_kidney"][1] < -0.2  # posterior
    assert c["aorta"][0] < 0 < c["inferior_vena_cava"][0]  # aorta left, IVC right
    for side in ("right", "left"):
        adrenal, kidney = c[f"{side}_adrenal_gland"], c[f"{side}_kidney"]
        assert adrenal[2] > kidney[2] + 0.2  # above the kidney
        assert abs(adrenal[0]) < abs(kidney[0])  # medial to it
    assert c["pancreas"][0] - 0.2 < 0 < c["pancreas"][0] + 0.3  # across the middle


def test_tubes_run_along_the_cranio_caudal_axis(cases_32):
    _, label = cases_32[0]
    slices_with_aorta = (label == _index("aorta")).any(axis=(0, 1)).sum()
    assert slices_with_aorta == label.shape[2]
    extent = np.ptp(np.argwhere(label == _index("aorta")), axis=0)
    assert extent[2] > 3 * max(extent[0], extent[1])


def _contrast(image: np.ndarray, label: np.ndarray, name: str) -> float:
    """|mean HU of an organ - median HU of the 2 voxels around it|."""
    organ = label == _index(name)
    ring = ndimage.binary_dilation(organ, iterations=2) & ~organ
    return abs(float(image[organ].mean()) - float(np.median(image[ring])))


def test_difficulty_does_not_follow_size_alone():
    means = {"liver": [], "spleen": [], "stomach_sd": [], "liver_sd": []}
    contrast = {"pancreas": [], "right_kidney": []}
    for seed in range(4):
        image, label = make_phantom_case(seed, (48, 48, 48))
        for name, values in contrast.items():
            values.append(_contrast(image, label, name))
        liver, spleen = image[label == _index("liver")], image[label == _index("spleen")]
        means["liver"].append(liver.mean())
        means["spleen"].append(spleen.mean())
        means["liver_sd"].append(liver.std())
        means["stomach_sd"].append(image[label == _index("stomach")].std())
    # liver and spleen look alike; the (large) stomach is far more heterogeneous than the liver
    assert abs(np.mean(means["liver"]) - np.mean(means["spleen"])) < 30
    assert np.mean(means["stomach_sd"]) > 2 * np.mean(means["liver_sd"])
    # the pancreas barely stands out from its neighbours, unlike a kidney
    assert np.mean(contrast["pancreas"]) < 40
    assert np.mean(contrast["right_kidney"]) > 3 * np.mean(contrast["pancreas"])


def test_case_seeds_are_distinct_and_stable():
    seeds = {phantom_case_seed(0, i) for i in range(100)}
    assert len(seeds) == 100
    assert phantom_case_seed(3, 1) == phantom_case_seed(3, 1) != phantom_case_seed(4, 1)
