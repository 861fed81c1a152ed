from __future__ import annotations

import pytest
import torch

from losslab.data import SegmentationDataset
from losslab.data.stats import (
    case_class_counts,
    class_frequencies,
    inverse_frequency_weights,
    median_frequency_weights,
)
from losslab.schedules import InverseFrequencyWeights, get_class_schedule


@pytest.fixture
def tiny() -> SegmentationDataset:
    """Three 2x2x2 cases (8 voxels each), classes 0..3; class 3 is absent.

    case 0: 6 x class 0, 2 x class 1
    case 1: 4 x class 0, 4 x class 2
    case 2: 7 x class 0, 1 x class 1
    """
    flat = [[0] * 6 + [1] * 2, [0] * 4 + [2] * 4, [0] * 7 + [1]]
    labels = [torch.tensor(v).reshape(2, 2, 2) for v in flat]
    images = [lab[None].float() for lab in labels]
    return SegmentationDataset(
        name="tiny",
        class_names=("background", "a", "b", "absent"),
        images=images,
        labels=labels,
        splits={"train": [0, 2], "val": [1], "test": []},
        fingerprint="f" * 64,
        spacing=(1.0, 1.0, 1.0),
    )


def test_counts_and_presence(tiny: SegmentationDataset):
    assert tiny.case_class_counts.tolist() == [[6, 2, 0, 0], [4, 0, 4, 0], [7, 1, 0, 0]]
    assert tiny.class_voxel_counts.tolist() == [17, 3, 4, 0]
    assert tiny.class_presence.tolist() == [
        [True, True, False, False],
        [True, False, True, False],
        [True, True, False, False],
    ]


def test_median_frequency_weights_by_hand(tiny: SegmentationDataset):
    # freq_c = voxels of c / voxels of the images where c is present
    # background 17/24, a = 3/16 (cases 0 and 2), b = 4/8 (case 1); class 3 absent
    freq = [17 / 24, 3 / 16, 4 / 8]
    torch.testing.assert_close(
        tiny.class_frequencies(), torch.tensor([*freq, 0.0], dtype=torch.float64)
    )
    median = 4 / 8  # median of (3/16, 4/8, 17/24)
    expected = torch.tensor([median / freq[0], median / freq[1], 1.0, 0.0])
    torch.testing.assert_close(tiny.median_frequency_weights(), expected)


def test_median_of_an_even_number_of_classes_is_the_mean_of_the_middle_two():
    counts = torch.tensor([[10, 2, 4, 8]])  # freqs 10/24, 2/24, 4/24, 8/24
    median = (4 / 24 + 8 / 24) / 2
    torch.testing.assert_close(
        median_frequency_weights(counts),
        torch.tensor([median * 24 / 10, median * 24 / 2, median * 24 / 4, median * 24 / 8]),
    )


def test_inverse_frequency_weights_by_hand(tiny: SegmentationDataset):
    # Hegde's frequencies (as the class schedule): 17/24, 3/16, 4/8; class 3 absent
    inverse = torch.tensor([24 / 17, 16 / 3, 8 / 4])
    expected = torch.cat([inverse / inverse.mean(), torch.zeros(1)])
    torch.testing.assert_close(tiny.inverse_frequency_weights(), expected)
    assert tiny.inverse_frequency_weights()[:3].mean().item() == pytest.approx(1.0)


def test_inverse_frequency_weights_agree_with_the_class_schedule(tiny: SegmentationDataset):
    # classes a and b are each missing from some case, so the share over all voxels would differ
    schedule = InverseFrequencyWeights(4, frequencies=tiny.class_frequencies().tolist())
    torch.testing.assert_close(tiny.inverse_frequency_weights(), schedule.weights)


def test_statistics_of_a_split(tiny: SegmentationDataset):
    train = tiny.subset("train")
    assert len(train) == 2 and train.splits["train"] == [0, 1] and train.splits["val"] == []
    assert train.class_voxel_counts.tolist() == [13, 3, 0, 0]
    # class b is absent from the train split: frequency and weight 0
    assert class_frequencies(train.case_class_counts)[2] == 0
    assert train.median_frequency_weights()[2] == 0
    assert train.fingerprint != tiny.fingerprint and train.case_ids == ["case_000", "case_002"]


def test_weights_of_a_dataset_without_labels_are_zero():
    counts = torch.zeros(2, 3, dtype=torch.int64)
    assert median_frequency_weights(counts).tolist() == [0.0, 0.0, 0.0]
    assert inverse_frequency_weights(counts).tolist() == [0.0, 0.0, 0.0]


def test_one_definition_of_inverse_frequency():
    """The statistics module, the dataset and the schedule give the same weights."""
    counts = torch.tensor([[100, 10, 0, 5], [50, 0, 20, 5]], dtype=torch.int64)
    freq = class_frequencies(counts).tolist()
    schedule = get_class_schedule("inverse_frequency", num_classes=4, frequencies=freq)
    torch.testing.assert_close(inverse_frequency_weights(counts), schedule.weights)


def test_counts_from_labels_of_different_shapes():
    labels = [torch.zeros(2, 3, 4, dtype=torch.int64), torch.ones(1, 1, 5, dtype=torch.int64)]
    assert case_class_counts(labels, 3).tolist() == [[24, 0, 0], [0, 5, 0]]
