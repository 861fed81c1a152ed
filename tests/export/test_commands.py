"""``losslab export``: a candidate file or a study's best, written for MONAI and nnU-Net; the
written module builds the same loss; bad input is a message naming it."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from search.studies import write_study

from losslab.analysis.finished import open_finished, resolve_study
from losslab.candidate import Candidate, ScheduleSpec
from losslab.cli.main import main
from losslab.export import ExportedLoss
from losslab.losses import resolve_loss
from losslab.losses.learned import LossNetwork, save_network


def load_module(path: Path, name: str):
    """Import the Python file ``path`` as module ``name`` (as a user's script would)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _learned_candidate(tmp_path: Path, lossnet_folder: Path) -> tuple[Candidate, Path]:
    torch.manual_seed(0)
    net = LossNetwork(features=("p", "y", "logp"), hidden=(4,), base="ce", init_std=0.5)
    digest, _ = save_network(net, lossnet_folder)
    candidate = Candidate.from_loss(
        [resolve_loss("dice"), resolve_loss(f"lossnet:{digest}")],
        class_schedule=ScheduleSpec.of("tcf", threshold=0.8),
    )
    path = tmp_path / "best_candidate.json"
    path.write_text(candidate.to_json())
    return candidate, path


def test_monai_export_of_a_candidate_file_builds_the_same_loss(
    tmp_path, lossnet_folder, capsys, monkeypatch
):
    candidate, path = _learned_candidate(tmp_path, lossnet_folder)
    out = tmp_path / "export"
    assert main(["export", str(path), "--to", "monai", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "losslab_loss.py" in printed and "build_loss(num_classes=C, epochs=EPOCHS)" in printed
    (network,) = (out / "lossnets").iterdir()
    assert network.name == f"{candidate.terms[1].hash}.lossnet"
    assert Candidate.from_json((out / "candidate.json").read_text()) == candidate
    # The export works without the original folder of networks: it carries its own.
    monkeypatch.setattr("losslab.losses.learned_term._ADDED", [])
    for file in lossnet_folder.iterdir():
        file.unlink()
    module = load_module(out / "losslab_loss.py", "exported_loss")
    loss = module.build_loss(3, epochs=2)
    assert isinstance(loss, ExportedLoss) and loss.candidate == candidate
    logits, labels = torch.randn(2, 3, 6, 5, 4), torch.randint(0, 3, (2, 1, 6, 5, 4))
    reference = ExportedLoss(candidate, 3, epochs=2)
    torch.testing.assert_close(loss(logits, labels), reference(logits, labels))
    with pytest.raises(ValueError, match="give num_classes"):
        module.build_loss()


def test_nnunet_export_writes_a_trainer_class_holding_the_candidate(tmp_path, capsys):
    candidate = Candidate.from_loss("dice_ce", class_schedule=ScheduleSpec.of("cbs"))
    path = tmp_path / "candidate.json"
    path.write_text(candidate.to_json())
    out = tmp_path / "nnunet"
    assert main(["export", str(path), "--to", "nnunet", "--out", str(out)]) == 0
    name = f"nnUNetTrainer_losslab_{candidate.key[:8]}"
    printed = capsys.readouterr().out
    assert f"-tr {name}" in printed and "nnUNetTrainer'" in printed
    source = (out / f"{name}.py").read_text()
    (cls,) = [n for n in ast.parse(source).body if isinstance(n, ast.ClassDef)]
    assert cls.name == name
    assert [b.id for b in cls.bases] == ["LosslabTrainerMixin", "nnUNetTrainer"]
    values = {
        t.targets[0].id: ast.literal_eval(t.value) for t in cls.body if isinstance(t, ast.Assign)
    }
    assert Candidate.from_json(values["losslab_candidate"]) == candidate
    assert values["losslab_lossnets"] is None and values["losslab_frequencies"] is None


@pytest.mark.slow
def test_a_study_exports_its_best_candidate_with_its_class_frequencies(tmp_path, capsys):
    study = write_study(tmp_path, budget={"trials": 1}, baselines=[])
    assert main(["search", str(study), "--no-progress"]) == 0
    finished = open_finished(resolve_study(str(study)))
    best = finished.ranked()[0]
    out = tmp_path / "export"
    capsys.readouterr()
    assert main(["export", str(study), "--to", "monai", "--out", str(out)]) == 0
    assert f"trial {best.number}, the best" in capsys.readouterr().out
    assert Candidate.from_json((out / "candidate.json").read_text()) == best.candidate
    module = load_module(out / "losslab_loss.py", "study_loss")
    assert module.NUM_CLASSES == finished.dataset.num_classes == 14
    assert sum(module.FREQUENCIES) == pytest.approx(1.0)
    assert module.build_loss(epochs=3).num_classes == 14


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["missing.json", "--to", "monai"], "missing.json: cannot read"),
        (["nostudy", "--to", "monai"], "nostudy: neither a study file nor a study"),
        (["frequency.json", "--to", "nnunet"], "reads the class frequencies"),
        (["learned.json", "--to", "monai"], "learned.lossnet"),
    ],
)
def test_bad_input_is_a_message_naming_it(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    frequency = Candidate.from_loss("ce", class_schedule=ScheduleSpec("median_frequency"))
    (tmp_path / "frequency.json").write_text(frequency.to_json())
    learned = {"terms": ["lossnet:" + "ab" * 32], "name": "learned"}
    (tmp_path / "learned.json").write_text(json.dumps(learned))
    storage = f"journal:{tmp_path / 'optuna.log'}"
    (tmp_path / "optuna.log").touch()
    assert main(["export", *argv, "--out", "out", "--storage", storage]) == 2
    error = capsys.readouterr().err
    assert message.replace("learned.lossnet", "ab" * 32) in " ".join(error.split())
    assert not (tmp_path / "out").exists()


def test_export_help_imports_no_torch():
    code = (
        "import sys\nfrom losslab.cli.main import main\ntry:\n    main(['export', '--help'])\n"
        "except SystemExit:\n    pass\nprint('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--to {monai,nnunet}" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "False"
