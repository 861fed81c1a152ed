from __future__ import annotations

import json

import numpy as np

from losslab.data import inspect_decathlon

from .helpers import tiny_case


def test_a_clean_folder_has_no_problem_and_a_frequency_table(phantom_folder):
    report = inspect_decathlon(phantom_folder)
    assert report.ok and len(report.cases) == 4
    assert report.cases[0].shape == (32, 28, 24) and report.cases[0].spacing == (1.5, 1.5, 1.5)
    rows = {row["name"]: row for row in report.class_table()}
    assert rows["liver"]["share"] > 0.4 and rows["left_adrenal_gland"]["share"] < 0.01
    assert rows["left_adrenal_gland"]["mfb_weight"] > 10 * rows["liver"]["mfb_weight"]
    assert sum(r["voxels"] for r in rows.values()) == 4 * 32 * 28 * 24


def test_all_problems_of_a_folder_are_reported_at_once(make_folder):
    cases = [tiny_case(i) for i in range(5)]
    cases[1][1][0, 0, 0] = 7  # label value not in dataset.json
    cases[2] = (cases[2][0], np.zeros((10, 9, 3)))  # shapes differ
    root = make_folder(cases)
    (root / "labelsTr" / "c0.nii.gz").unlink()  # missing file
    (root / "imagesTr" / "c3.nii.gz").write_text("garbage")  # not NIfTI
    report = inspect_decathlon(root)
    problems = {p.path.relative_to(root).as_posix(): p.problem for p in report.problems}
    assert len(report.problems) == 4
    assert problems["labelsTr/c0.nii.gz"] == "file is missing"
    assert problems["labelsTr/c1.nii.gz"] == "label value(s) [7] not in dataset.json labels (0..1)"
    assert problems["labelsTr/c2.nii.gz"].startswith(
        "label shape (10, 9, 3) differs from image shape"
    )
    assert problems["imagesTr/c3.nii.gz"].startswith("cannot be read as NIfTI")
    assert not report.ok and len(report.cases) == 5 and report.cases[4].counts is not None


def test_manifest_and_file_problems_together(make_folder):
    root = make_folder([tiny_case(i) for i in range(3)])
    manifest = json.loads((root / "dataset.json").read_text())
    del manifest["modality"]
    manifest["training"].append({"image": "./imagesTr/c0.nii.gz"})
    (root / "labelsTr" / "c1.nii.gz").unlink()
    (root / "dataset.json").write_text(json.dumps(manifest))
    messages = [str(p) for p in inspect_decathlon(root).problems]
    assert len(messages) == 3
    assert any("dataset.json: missing required key(s) ['modality']" in m for m in messages)
    assert any("'training'[3] must have string 'image' and 'label' keys" in m for m in messages)
    assert any(m.endswith("labelsTr/c1.nii.gz: file is missing") for m in messages)
