"""What ``losslab search`` prints at its end works as printed: the Python lines open the study
with Optuna's own API, the optuna-dashboard command serves it, and no command is broken
across lines."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from rich.console import Console

from losslab.cli.search import dashboard_command, optuna_lines, print_outcome
from losslab.search import load_study, run_study

from .fakes import FakeTrainer
from .studies import write_study


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    """A tiny study of two trials (fake trainer) on a journal file, and what its end prints
    on a terminal of 80 columns."""
    folder = tmp_path_factory.mktemp("printed")
    path = write_study(folder, budget={"trials": 2})
    outcome = run_study(load_study(path), progress=False, trainer=FakeTrainer)
    buffer = io.StringIO()
    print_outcome(Console(file=buffer, width=80), outcome, f"losslab search {path}")
    return folder, outcome, buffer.getvalue()


def _code(out: str) -> str:
    lines = out.splitlines()
    start = lines.index("In Python, with Optuna's own API:") + 1
    code = []
    for line in lines[start:]:
        if not line.startswith("    "):
            break
        code.append(line[4:])
    return "\n".join(code)


def test_the_printed_python_lines_load_the_study_with_optunas_api(printed):
    folder, outcome, out = printed
    assert outcome.storage_url == f"journal:{folder / 'optuna.log'}"
    # Why the lines are printed: Optuna takes losslab's name of a journal for a database URL.
    with pytest.raises(sqlalchemy.exc.ArgumentError):
        optuna.load_study(study_name="tiny", storage=outcome.storage_url)
    code = _code(out)
    assert "JournalFileBackend" in code and "load_study(study_name='tiny'" in code
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, "printed", "exec"), namespace)  # noqa: S102
    study = namespace["study"]
    assert [t.number for t in study.trials if t.state.is_finished()] == [0, 1]
    assert study.best_value == pytest.approx(outcome.best(1)[0].value)


def test_a_database_storage_gets_its_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    optuna.create_study(study_name="s", storage=url).optimize(lambda t: 1.0, n_trials=1)
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(optuna_lines(url, "s"), namespace)  # noqa: S102
    assert len(namespace["study"].trials) == 1
    assert dashboard_command(url) == f"optuna-dashboard {url}"


def test_no_printed_command_is_broken_across_lines(printed):
    folder, _, out = printed
    lines = out.splitlines()
    dashboard = next(line for line in lines if line.startswith("Optuna dashboard"))
    assert dashboard.endswith(f"JournalFileStorage {folder / 'optuna.log'}")
    assert dashboard.startswith('Optuna dashboard (pip install "losslab[dashboard]"): ')
    assert any(
        line.endswith("mlflow ui --backend-store-uri " + _tracking(folder)) for line in lines
    )
    assert re.search(r"^\d+ trials in the study .* this time\.$", out, re.M)


def _tracking(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlflow.db'}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_printed_dashboard_command_serves_the_study(printed):
    pytest.importorskip("optuna_dashboard")  # the dashboard extra (in dev)
    folder, outcome, out = printed
    line = next(line for line in out.splitlines() if line.startswith("Optuna dashboard"))
    argv = shlex.split(line.split(": ", 1)[1])
    assert argv[0] == "optuna-dashboard"
    program = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent))
    port = _free_port()
    server = subprocess.Popen(
        [program, *argv[1:], "--port", str(port), "--quiet"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        studies, deadline = None, time.monotonic() + 60
        while studies is None and time.monotonic() < deadline:
            assert server.poll() is None, server.stderr.read().decode()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies") as reply:
                    studies = json.load(reply)["study_summaries"]
            except OSError:
                time.sleep(0.3)
        assert studies is not None, "optuna-dashboard did not answer in 60 s"
        (study,) = studies
        assert study["study_name"] == outcome.config.name
    finally:
        server.terminate()
        server.wait(10)


def test_the_resume_hint_is_one_line(tmp_path, capsys, monkeypatch):
    import losslab.search.study as study_module
    from losslab.cli.main import main

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(study_module, "run_study", stopped)
    folder = tmp_path / ("a_folder_with_a_long_name_" * 3)
    folder.mkdir()
    path = write_study(folder)
    assert main(["search", str(path), "--no-progress"]) == 130
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if "Continue with" in line]
    assert line.endswith(f"Continue with: losslab search {path} --resume")


def test_the_readme_shows_the_lines_losslab_prints():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    lines = optuna_lines("journal:optuna-studies.log", "quickstart").replace("'", '"')
    assert f"```python\n{lines}\n```" in readme
