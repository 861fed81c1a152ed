"""``DataConfig`` validation: a bad value is an error that names its key."""

from __future__ import annotations

import pytest

from losslab.data import DataConfig, load_dataset


@pytest.mark.parametrize(
    "window",
    [(250, -175), (100, 100), (0, float("nan")), (float("-inf"), 100), ("a", "b"), (1,), 5],
    ids=["reversed", "empty", "nan", "infinite", "text", "one value", "a number"],
)
def test_a_bad_ct_window_is_an_error_naming_it(window):
    with pytest.raises(ValueError, match=r"^ct_window=.* must be"):
        DataConfig(ct_window=window)


def test_the_default_ct_window_is_the_soft_tissue_window_and_saturates_bone():
    assert DataConfig().ct_window == (-175.0, 250.0)
    default = load_dataset("phantom", cases=3, shape=(16, 16, 16)).images[0]
    wide = load_dataset("phantom", cases=3, shape=(16, 16, 16), ct_window=(-1100, 2000)).images[0]
    assert int((default == 1).sum()) > 0  # bone above 250 HU: one flat value
    assert float(wide.min()) > 0 and float(wide.max()) < 1  # nothing clipped
