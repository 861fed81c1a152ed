"""compare / report / show refuse bad flags and --out targets before any study is opened, in one
line and without a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import losslab.cli.compare as compare_commands
import losslab.cli.support as cli_support
from losslab.cli.main import main
from losslab.cli.support import OptionError, check_output_file


def _err(capsys) -> str:
    return " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compare", "s.yaml", "--seeds", "1000000"], "--seeds: 1000000 is more than 1,000"),
        (["compare", "s.yaml", "--top", "1000000000"], "--top: 1000000000 is more than 1,000"),
        (["report", "s.yaml", "--top", "5000"], "--top: 5000 is more than 1,000"),
    ],
)
def test_counts_beyond_their_ceiling_are_refused_first(
    tmp_path, monkeypatch, capsys, argv, message
):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in _err(capsys)
    assert list(tmp_path.iterdir()) == []


def test_report_out_an_existing_folder_is_refused(tmp_path, capsys):
    assert main(["report", "s.yaml", "--out", str(tmp_path)]) == 2
    assert f"--out: {tmp_path} is a folder; give a file name" in _err(capsys)


def test_report_out_a_read_only_file_is_not_replaced(tmp_path, capsys):
    page = tmp_path / "report.html"
    page.write_text("mine")
    page.chmod(0o444)
    assert main(["report", "s.yaml", "--out", str(page)]) == 2
    assert f"--out: {page} is read-only; it is not replaced" in _err(capsys)
    assert page.read_text() == "mine"


def test_report_out_below_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main(["report", "s.yaml", "--out", str(tmp_path / "file" / "r.html")]) == 2
    assert "file is a file, not a folder" in _err(capsys)


def test_an_unwritable_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(cli_support.os, "access", lambda path, mode: False)
    with pytest.raises(OptionError, match=r"--out: .*the folder .* cannot be written"):
        check_output_file(tmp_path / "new" / "r.html", "--out")


def test_a_file_system_error_late_in_a_command_is_one_line(monkeypatch, capsys):
    def refuse(specs, args):
        raise PermissionError(13, "Permission denied", "/stores/optuna.log")

    monkeypatch.setattr(compare_commands, "_open", refuse)
    assert main(["show", "s.yaml"]) == 2
    err = capsys.readouterr().err
    assert err == "error: /stores/optuna.log: Permission denied\n"
    monkeypatch.setenv("LOSSLAB_TRACEBACK", "1")  # the traceback, when asked for
    with pytest.raises(PermissionError):
        main(["show", "s.yaml"])


_RUN = """
import json, sys
from losslab.cli.main import main
code = main({argv!r})
heavy = [m for m in ("torch", "monai", "mlflow", "optuna") if m in sys.modules]
print(json.dumps({{"code": code, "heavy": heavy}}))
"""


@pytest.mark.parametrize("command", ["compare", "report", "show"])
def test_a_bad_study_file_is_reported_before_torch_is_imported(tmp_path, command):
    path = tmp_path / "study.yaml"
    path.write_text("study: s\nseed: 0\nseed: 1\n")
    done = subprocess.run(
        [sys.executable, "-c", _RUN.format(argv=[command, str(path)])],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"code": 2, "heavy": []}
    assert "the key 'seed' is given twice" in " ".join(done.stderr.split())
