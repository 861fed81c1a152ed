"""The proxy task: imbalance as severe as promised, small organs compact and where they belong."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from losslab.data import (
    PROXY_CLASSES,
    PROXY_TARGET_SHARES,
    DataConfig,
    build_dataset,
    load_dataset,
    make_proxy_case,
)
from losslab.search.study_checks import DataFacts

SMALL = ("gallbladder", "adrenal_gland", "lymph_node")


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("proxy", cases=30)


def test_a_study_names_the_proxy_and_gets_its_classes_and_shape():
    config = DataConfig.from_dict({"source": "proxy"})
    assert config.shape == (24, 24, 24) and config.num_cases == 20
    assert DataConfig().shape == (96, 96, 96)  # the phantom's default is unchanged
    facts = DataFacts.of_config(config, "study.yaml: ")
    assert facts.what == "the proxy task" and facts.class_names == PROXY_CLASSES
    assert facts.shapes == ((24, 24, 24),)


def test_the_rarest_class_is_at_most_half_a_percent_of_the_foreground(dataset):
    shares = dict(zip(PROXY_CLASSES[1:], dataset.foreground_shares()))
    assert shares["lymph_node"] <= 0.005
    assert sum(shares[name] for name in SMALL) < 0.04
    for name, target in PROXY_TARGET_SHARES.items():
        assert shares[name] == pytest.approx(target, rel=0.1), name
    counts = dataset.case_class_counts
    assert bool((counts > 0).all())  # every class in every case
    foreground = counts[:, 1:].sum() / counts.sum()
    assert 0.25 < float(foreground) < 0.35


def test_small_organs_are_one_compact_blob_near_a_fixed_place():
    centres = {name: [] for name in SMALL}
    for seed in range(8):
        _, label = make_proxy_case(seed)
        for name in SMALL:
            mask = label == PROXY_CLASSES.index(name)
            _, parts = ndimage.label(mask)
            assert parts == 1, (name, seed)
            centres[name].append(np.argwhere(mask).mean(axis=0))
    for name, found in centres.items():
        assert np.asarray(found).std(axis=0).max() < 1.5, name  # voxels, over cases


def test_small_organs_stand_out_of_their_surroundings_in_the_ct_window():
    image, label = make_proxy_case(3)
    assert -175 < float(np.median(image[label > 0])) < 250
    fat = image[(label == 0) & (image < -40) & (image > -175)]
    for name in SMALL:
        organ = image[label == PROXY_CLASSES.index(name)]
        assert abs(float(organ.mean()) - float(fat.mean())) > 70, name


def test_the_same_seed_gives_the_same_case_and_the_fingerprint_differs_from_the_phantom():
    a, b = make_proxy_case(5), make_proxy_case(5)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], make_proxy_case(6)[1])
    proxy = build_dataset(DataConfig(source="proxy", cases=3, shape=(16, 16, 16)))
    phantom = build_dataset(DataConfig(source="phantom", cases=3, shape=(16, 16, 16)))
    assert proxy.name == "proxy" and proxy.num_classes == 7
    assert proxy.fingerprint != phantom.fingerprint
    with pytest.raises(ValueError, match="at least 8"):
        make_proxy_case(0, (4, 24, 24))


def test_jitter_moves_the_organs_between_cases_and_is_part_of_the_fingerprint():
    def spread(jitter):
        centres = []
        for seed in range(8):
            _, label = make_proxy_case(seed, jitter=jitter)
            centres.append(np.argwhere(label == PROXY_CLASSES.index("lymph_node")).mean(axis=0))
        return float(np.asarray(centres).std(axis=0).max())

    assert spread(0.2) > 2 * spread(None)  # voxels, over cases
    assert np.array_equal(make_proxy_case(4)[1], make_proxy_case(4, jitter=0.04)[1])
    default = build_dataset(DataConfig(source="proxy", cases=3, shape=(16, 16, 16)))
    same = build_dataset(DataConfig(source="proxy", cases=3, shape=(16, 16, 16), jitter=0.04))
    moved = build_dataset(DataConfig(source="proxy", cases=3, shape=(16, 16, 16), jitter=0.2))
    assert default.fingerprint == same.fingerprint != moved.fingerprint
    # A study that does not set it keeps the settings, so the fingerprint, it had before.
    assert "jitter" not in DataConfig(source="proxy").as_dict()
    assert DataConfig(source="proxy", jitter=0.2).as_dict()["jitter"] == 0.2
    with pytest.raises(ValueError, match=r"jitter must lie in \[0, 1\]"):
        DataConfig(source="proxy", jitter=2.0)
    with pytest.raises(ValueError, match="jitter is a setting of the proxy source"):
        DataConfig(source="phantom", jitter=0.1)
