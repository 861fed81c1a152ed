"""``losslab data ...`` run in process as a user runs it."""

from __future__ import annotations

import json

import pytest

from losslab.cli.main import main


def test_phantom_then_inspect_end_to_end(tmp_path, capsys):
    out = tmp_path / "phantom"
    assert (
        main(["data", "phantom", "--out", str(out), "--cases", "3", "--shape", "20", "--seed", "2"])
        == 0
    )
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["numTraining"] == 3 and len(list((out / "labelsTr").glob("*.nii.gz"))) == 3
    capsys.readouterr()
    assert main(["data", "inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "losslab-phantom" in text and "no problems found" in text
    assert (
        "liver" in text and "case_002" in text and "20x20x20" in text and "1.5 x 1.5 x 1.5" in text
    )


def test_phantom_with_three_sizes(tmp_path):
    out = tmp_path / "p"
    assert (
        main(["data", "phantom", "--out", str(out), "--cases", "1", "--shape", "16", "12", "10"])
        == 0
    )
    assert main(["data", "phantom", "--out", str(out), "--cases", "1", "--shape", "16", "12"]) == 2


def test_inspect_lists_every_problem_and_exits_1(tmp_path, capsys):
    out = tmp_path / "phantom"
    main(["data", "phantom", "--out", str(out), "--cases", "3", "--shape", "16"])
    (out / "labelsTr" / "case_000.nii.gz").unlink()
    (out / "imagesTr" / "case_002.nii.gz").write_text("oops")
    capsys.readouterr()
    assert main(["data", "inspect", str(out)]) == 1
    text = capsys.readouterr().out.replace("\n", "")
    assert "2 problem(s)" in text
    assert "case_000.nii.gz: file is missing" in text
    assert "case_002.nii.gz: cannot be read as NIfTI" in text


def test_inspect_of_a_folder_without_dataset_json(tmp_path, capsys):
    assert main(["data", "inspect", str(tmp_path)]) == 1
    assert "dataset.json: file is missing" in capsys.readouterr().out.replace("\n", "")


def test_data_needs_a_subcommand():
    with pytest.raises(SystemExit):
        main(["data"])


def test_inspect_tables_are_never_cut_in_a_pipe(phantom_folder, capsys):
    """Written to a file or a pipe, every class name and share is printed in full."""
    assert main(["data", "inspect", str(phantom_folder)]) == 0
    out = capsys.readouterr().out
    assert "…" not in out
    assert "right_adrenal_gland" in out or "right_kidney" in out
