"""nnU-Net v2 raw dataset folders: the phantom writer, the reader's parity with the Decathlon
reader, multi-channel cases and the checks of broken folders."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from losslab.data import PHANTOM_CLASSES, write_phantom_decathlon, write_phantom_nnunet

from .helpers import PHANTOM_SHAPE


def test_phantom_writer_writes_the_decathlon_cases_in_nnunet_layout(tmp_path):
    folder = write_phantom_nnunet(tmp_path / "raw", cases=2, shape=PHANTOM_SHAPE, seed=3)
    assert folder == tmp_path / "raw" / "Dataset990_LosslabPhantom"
    manifest = json.loads((folder / "dataset.json").read_text())
    assert manifest["channel_names"] == {"0": "CT"}
    assert manifest["labels"] == {name: i for i, name in enumerate(PHANTOM_CLASSES)}
    assert (manifest["numTraining"], manifest["file_ending"]) == (2, ".nii.gz")
    assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == [
        "case_000_0000.nii.gz",
        "case_001_0000.nii.gz",
    ]
    decathlon = tmp_path / "msd"
    write_phantom_decathlon(decathlon, cases=2, shape=PHANTOM_SHAPE, seed=3)
    for ours, theirs in (
        (folder / "imagesTr" / "case_001_0000.nii.gz", decathlon / "imagesTr" / "case_001.nii.gz"),
        (folder / "labelsTr" / "case_001.nii.gz", decathlon / "labelsTr" / "case_001.nii.gz"),
    ):
        a, b = nib.load(ours), nib.load(theirs)
        np.testing.assert_array_equal(np.asanyarray(a.dataobj), np.asanyarray(b.dataobj))
        np.testing.assert_array_equal(a.affine, b.affine)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"dataset_id": 1000}, "dataset_id must be an integer in 1..999"),
        ({"name": "my data"}, "no spaces"),
        ({"cases": 0}, "cases must be at least 1"),
    ],
)
def test_phantom_writer_refuses_bad_settings(tmp_path, settings, match):
    with pytest.raises(ValueError, match=match):
        write_phantom_nnunet(tmp_path, **{"cases": 1, "shape": (8, 8, 8), **settings})
