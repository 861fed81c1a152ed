"""The ``labels`` option: label values of the files -> contiguous classes."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from losslab.cli.main import main
from losslab.data import (
    DataConfig,
    DatasetError,
    check_dataset_folder,
    inspect_decathlon,
    load_dataset,
)

from .helpers import tiny_case

FILE_NAMES = {"0": "background", "2": "liver", "41": "spleen", "1000": "kidney"}


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich wraps at the terminal width; long paths must stay on one line."""
    monkeypatch.setenv("COLUMNS", "500")


def _case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A 10x9x8 case whose label holds the values 0, 2, 41 and 1000 (int16 on disk)."""
    image, _ = tiny_case(seed)
    label = np.zeros(image.shape, np.int16)
    label[0:2] = 2  # 144 voxels
    label[2:4] = 41  # 144 voxels
    label[4, :3] = 1000  # 24 voxels
    return image, label


@pytest.fixture
def sparse_folder(make_folder) -> Path:
    """Three cases with non-contiguous label values, named so in dataset.json."""
    return make_folder([_case(i) for i in range(3)], labels=FILE_NAMES)


def _load(root: Path, labels, **settings):
    return load_dataset("decathlon", data_dir=root, labels=labels, use_cache=False, **settings)


def test_values_are_remapped_to_contiguous_classes_in_the_order_given(sparse_folder):
    dataset = _load(sparse_folder, {0: "background", 41: "spleen", 2: "liver", 1000: "kidney"})
    assert dataset.class_names == ("background", "spleen", "liver", "kidney")
    label = dataset.labels[0].numpy()
    assert (label[0:2] == 2).all() and (label[2:4] == 1).all() and (label[4, :3] == 3).all()
    assert np.bincount(label.reshape(-1)).tolist() == [720 - 312, 144, 144, 24]


def test_the_cheap_folder_check_takes_the_mapping(sparse_folder):
    with pytest.raises(DatasetError, match="keys must be 0..3"):
        check_dataset_folder(sparse_folder)
    manifest = check_dataset_folder(sparse_folder, labels={0: "background", 41: "spleen"})
    assert manifest.class_names == ("background", "spleen")


def test_a_subset_maps_the_other_values_to_background_and_says_so(sparse_folder, caplog, capsys):
    labels = {0: "background", 41: "spleen"}
    expected = (
        f"{sparse_folder / 'dataset.json'}: label value(s) 2 (432 voxels in 3 case(s)), "
        f"1000 (72 voxels in 3 case(s)) are not listed in the data option 'labels' and became "
        f"background"
    )
    with caplog.at_level(logging.WARNING, logger="losslab.data.loading"):
        dataset = _load(sparse_folder, labels)
    assert dataset.class_names == ("background", "spleen")
    assert np.bincount(dataset.labels[1].numpy().reshape(-1)).tolist() == [720 - 144, 144]
    assert [r.getMessage() for r in caplog.records] == [expected]
    report = inspect_decathlon(sparse_folder, labels=labels)
    assert report.ok and [str(w) for w in report.warnings] == [expected]
    assert main(["data", "inspect", str(sparse_folder), "--labels", "0=background,41=spleen"]) == 0
    out = capsys.readouterr().out
    assert expected in out and "spleen" in out and "no problems found" in out


def test_the_cache_also_says_which_values_became_background(sparse_folder, caplog):
    labels = {0: "background", 41: "spleen"}
    load_dataset("decathlon", data_dir=sparse_folder, labels=labels)
    with caplog.at_level(logging.WARNING, logger="losslab.data.loading"):
        load_dataset("decathlon", data_dir=sparse_folder, labels=labels)  # from the cache
    assert any("2 (432 voxels in 3 case(s))" in r.getMessage() for r in caplog.records)


def test_values_mapped_to_indices_are_merged_and_named_from_dataset_json(sparse_folder):
    dataset = _load(sparse_folder, {"0": 0, "2": 1, "41": 1, "1000": 2})
    assert dataset.class_names == ("background", "liver+spleen", "kidney")
    assert np.bincount(dataset.labels[0].numpy().reshape(-1)).tolist() == [720 - 312, 288, 24]


def test_without_the_option_non_contiguous_values_point_to_it(sparse_folder):
    with pytest.raises(DatasetError, match=r"keys must be 0..3, got \[0, 2, 41, 1000\]; map ") as e:
        _load(sparse_folder, None)
    assert "data option 'labels'" in str(e.value)
    assert e.value.path == sparse_folder / "dataset.json"


def test_the_mapping_changes_the_fingerprint_and_the_cache_key(sparse_folder, cache_root):
    def fingerprint(labels) -> str:
        return load_dataset("decathlon", data_dir=sparse_folder, labels=labels).fingerprint

    a = fingerprint({0: "background", 2: "liver", 41: "spleen"})
    b = fingerprint({0: "background", 41: "spleen", 2: "liver"})  # another class order
    c = fingerprint({0: "background", 2: "liver", 41: "spleen", 1000: "kidney"})
    assert len({a, b, c}) == 3
    assert len(list(cache_root.rglob("*.npz"))) == 3
    assert fingerprint({0: "background", 41: "spleen", 2: "liver"}) == b  # a cache hit
    assert len(list(cache_root.rglob("*.npz"))) == 3


def test_no_mapping_keeps_the_fingerprint_and_an_identity_mapping_changes_it(phantom_folder):
    plain = load_dataset("decathlon", data_dir=phantom_folder, use_cache=False)
    names = dict(enumerate(plain.class_names))
    same = load_dataset("decathlon", data_dir=phantom_folder, use_cache=False, labels=names)
    assert same.class_names == plain.class_names and same.fingerprint != plain.fingerprint
    assert all((a == b).all() for a, b in zip(plain.labels, same.labels))


def test_a_class_of_the_mapping_in_no_label_is_a_warning(sparse_folder, caplog):
    labels = {0: "background", 2: "liver", 7: "tumour"}
    report = inspect_decathlon(sparse_folder, labels=labels)
    assert report.ok
    assert any("class(es) 2 'tumour' occur in no label" in str(w) for w in report.warnings)
    with caplog.at_level(logging.WARNING, logger="losslab.data.loading"):
        _load(sparse_folder, labels)
    assert any("class(es) 2 'tumour' occur in no label" in r.getMessage() for r in caplog.records)


def test_the_phantom_takes_a_mapping_too():
    dataset = load_dataset("phantom", cases=3, shape=(16, 16, 16), labels={0: "bg", 6: "liver"})
    assert dataset.class_names == ("bg", "liver") and int(dataset.labels[0].max()) == 1
    plain = load_dataset("phantom", cases=3, shape=(16, 16, 16))
    assert dataset.fingerprint != plain.fingerprint


# --- the option itself -------------------------------------------------------------------------


def test_yaml_json_text_and_pairs_give_one_mapping():
    yaml_like = DataConfig(labels={0: "background", 41: "spleen", 2: "liver"})
    assert DataConfig(labels={"0": "background", "41": "spleen", "2": "liver"}) == yaml_like
    assert DataConfig(labels="0=background, 41=spleen, 2=liver") == yaml_like
    assert DataConfig(labels="{0: background, 41: spleen, 2: liver}") == yaml_like
    written = json.loads(json.dumps(yaml_like.as_dict(), sort_keys=True))
    assert written["labels"] == [[0, "background"], [41, "spleen"], [2, "liver"]]
    assert DataConfig.from_dict(written) == yaml_like  # the order survives sorted JSON
    assert list(DataConfig(labels="0=0,2=1,41=1").labels.items()) == [(0, 0), (2, 1), (41, 1)]


BAD = {
    "no background": ({2: "liver", 41: "spleen"}, "value 0 (background) must be listed"),
    "background only": ({0: "background"}, "at least one class besides background"),
    "name twice": (
        {0: "background", 2: "liver", 41: "liver"},
        "labels={41: 'liver'}: class name 'liver' is already given to value 2",
    ),
    "text key": ({0: "background", "liver": 2}, "labels={'liver': 2}: key 'liver' is not an"),
    "float key": ({0: "background", 2.5: "liver"}, "labels={2.5: 'liver'}: key 2.5 is not an"),
    "key twice": ({0: "background", 2: "liver", "2": "spleen"}, "value 2 is listed twice"),
    "empty name": ({0: "background", 2: " "}, "labels={2: ' '}: the class name of 2 is empty"),
    "bool value": ({0: "background", 2: True}, "labels={2: True}: must map to a class name"),
    "names and indices": ({0: "background", 2: 1}, "every value to a class name or every one"),
    "index gap": ({0: 0, 2: 2}, "class indices must be 0..2; none maps to [1]"),
    "negative index": ({0: 0, 2: -1}, "labels={2: -1}: class index must be 0 or more"),
    "background moved": ({0: 1, 2: 0}, "labels={0: 1}: value 0 is background and maps to"),
    "not a mapping": (["liver"], "must map label values to class names or indices"),
    "bad text": ("0=background,liver", "item 'liver' is not VALUE=NAME"),
    "bad yaml": ("{0: background, 2: [liver}", "is not a YAML mapping"),
}


@pytest.mark.parametrize("labels, message", list(BAD.values()), ids=list(BAD))
def test_a_bad_mapping_is_an_error_naming_the_entry(labels, message):
    with pytest.raises(ValueError, match="^labels=") as info:
        DataConfig(source="decathlon", data_dir="somewhere", labels=labels)
    assert message in str(info.value)


def test_inspect_refuses_a_bad_mapping_with_exit_2(sparse_folder, capsys):
    assert main(["data", "inspect", str(sparse_folder), "--labels", "2=liver"]) == 2
    assert "value 0 (background) must be listed" in capsys.readouterr().out
