"""Bad study files are refused with one message naming the file and key, before any store or
MLflow run exists; the cheap checks run before torch, MONAI, MLflow or Optuna is imported."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from losslab.cli.main import main
from losslab.errors import ConfigError
from losslab.search.study_precheck import precheck_study

from .studies import BASE, write_study

GREEDY = {"backend": "greedy", "space": {"loss": {"tversky": {}}}, "baselines": []}
ML3 = {"backend": "ml3", "space": {"target": "loss"}, "baselines": []}
RULE = {"name": "rule", "expression": "log(s - 2)"}

CASES = [
    ({"workers": {"batch": 10**9}}, r"workers\.batch: 1000000000 is more than 10,000"),
    ({**GREEDY, "greedy": {"lookahead": 10**9}}, r"greedy\.lookahead: .* more than 1,000"),
    ({**GREEDY, "greedy": {"every": 10**5}}, r"greedy\.every: 100000 steps .* a run is 4 steps"),
    ({**ML3, "ml3": {"inner_steps": 10**9}}, r"ml3\.inner_steps: .* more than 100 "),
    ({"budget": {"trials": 10**9}}, r"budget\.trials: .* more than 1,000,000"),
    ({"fidelity": {"epochs": 2, "steps": 2}}, r"fidelity\.steps: unknown key; did you mean"),
    ({"fidelty": {"epochs": 2}}, r"fidelty: unknown key; did you mean 'fidelity'\?"),
    ({"backend": "optuan"}, r"backend: 'optuan' is not one of .*did you mean 'optuna'\?"),
    (
        {"backend": "gp", "space": {"target": "loss", "seeds": ["vsum(y)"]}, "baselines": []},
        r"space\.seeds\[0\]: 'vsum\(y\)': the loss has no gradient path",
    ),
    ({"space": {"loss": {"dise": {}}}}, r"space\.loss.*unknown loss 'dise'; did you mean 'dice'"),
    (
        {"baselines": [{"loss": "dice", "class_schedule": RULE}]},
        r"baselines\[0\]\.class_schedule.*log\(s - 2\) gives every foreground class weight 0",
    ),
    ({"train": {**BASE["train"], "sw_overlap": -1e30}}, r"train\.sw_overlap: -1e\+30 is more"),
]


def _created(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "study.yaml")


@pytest.mark.parametrize(("changes", "message"), CASES)
def test_a_bad_study_is_refused_before_anything_is_created(tmp_path, capsys, changes, message):
    path = write_study(tmp_path, **changes)
    assert main(["search", str(path), "--no-progress"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert re.search(message, err), err
    assert err.count("error:") == 1 and "Traceback" not in err
    assert _created(tmp_path) == []


TEXT_CASES = [
    (lambda text: text.replace("seed: 0\n", "seed: 0\nseed: 1\n", 1), r"line \d+: the key 'seed'"),
    (
        lambda text: text.replace(
            "seed: 0\n",
            "seed: [&a [1, 1, 1, 1], &b [*a, *a, *a, *a], &c [*b, *b, *b, *b], "
            "&d [*c, *c, *c, *c], &e [*d, *d, *d, *d], &f [*e, *e, *e, *e], "
            "&g [*f, *f, *f, *f], &h [*g, *g, *g, *g], &i [*h, *h, *h, *h]]\n",
            1,
        ),
        r"aliases expand to more than 100,000 values",
    ),
    (lambda text: text.replace("lr: 0.003", "lr: 1e30"), r"train\.lr: 1e\+30 is more than 100 "),
    (lambda text: "\x00" + text, r"a binary file \(a NUL byte at offset 0\)"),
]


@pytest.mark.parametrize(("edit", "message"), TEXT_CASES)
def test_a_malformed_study_file_is_refused_naming_it(tmp_path, capsys, edit, message):
    path = write_study(tmp_path)
    path.write_text(edit(path.read_text()))
    assert main(["search", str(path), "--no-progress"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert re.search(rf"{re.escape(str(path))}: .*{message}", err), err
    assert _created(tmp_path) == []


def test_a_budget_flag_beyond_its_ceiling_names_the_flag(tmp_path, capsys):
    path = write_study(tmp_path)
    assert main(["search", str(path), "--trials", str(10**9), "--no-progress"]) == 2
    assert "--trials: trials=1000000000 is more than 1,000,000" in capsys.readouterr().err
    assert _created(tmp_path) == []


def test_precheck_accepts_a_good_study_and_every_shipped_one(tmp_path):
    assert precheck_study(write_study(tmp_path))["study"] == "tiny"
    for path in sorted((Path(__file__).resolve().parents[2] / "search_spaces").glob("*.yaml")):
        if "candidates" not in path.read_text():  # a suite file (losslab baselines)
            precheck_study(path)


def test_precheck_refuses_a_named_final_fidelity_key(tmp_path):
    path = write_study(tmp_path, final={"long": {"epochs": 4, "stepz": 2}})
    with pytest.raises(ConfigError, match=r"final\.long\.stepz: unknown key"):
        if "candidates" not in path.read_text():  # a suite file (losslab baselines)
            precheck_study(path)


_RUN = """
import json, sys
from losslab.cli.main import main
code = main({argv!r})
heavy = [m for m in ("torch", "monai", "mlflow", "optuna") if m in sys.modules]
print(json.dumps({{"code": code, "heavy": heavy}}))
"""


@pytest.mark.parametrize(
    "changes",
    [{"fidelty": {}}, {"train": {"epoch": 3}}, {"workers": {"batch": 10**9}}],
)
def test_a_mistake_in_a_study_file_is_reported_before_torch_is_imported(tmp_path, changes):
    path = write_study(tmp_path, **changes)
    done = subprocess.run(
        [sys.executable, "-c", _RUN.format(argv=["search", str(path)])],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"code": 2, "heavy": []}
