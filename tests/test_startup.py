"""Start-up: a command imports only what it needs (checked on ``sys.modules`` in a fresh
interpreter, never on the clock), and the lazy package exports keep their public names."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "monai", "mlflow", "optuna")

_RUN = """
import json, sys
from losslab.cli.main import main
try:
    code = main({argv!r})
except SystemExit as exit:
    code = exit.code
print(json.dumps({{"code": code, "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def _imports(argv: list[str]) -> dict:
    """Run ``main(argv)`` in a fresh interpreter: its exit code and the heavy modules loaded."""
    done = subprocess.run(
        [sys.executable, "-c", _RUN.format(argv=argv, heavy=HEAVY)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["--version"], ["data", "--help"], ["search", "--help"], ["baselines", "--help"]],
)
def test_help_imports_no_torch_monai_mlflow_or_optuna(argv):
    assert _imports(argv) == {"code": 0, "heavy": []}


def test_train_help_imports_no_monai_mlflow_or_optuna():
    result = _imports(["train", "--help"])
    assert result["code"] == 0
    assert not {"monai", "mlflow", "optuna"} & set(result["heavy"])


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    from losslab.data import write_phantom_decathlon

    out = tmp_path_factory.mktemp("tiny")
    write_phantom_decathlon(out, cases=3, shape=(16, 16, 16), seed=0)
    return out


@pytest.mark.parametrize("options", [[], ["--spacing", "2", "--crop-foreground", "--cases", "3"]])
def test_data_inspect_imports_no_mlflow_or_optuna(tiny_folder, options):
    result = _imports(["data", "inspect", str(tiny_folder), *options])
    assert result["code"] == 0
    assert not {"mlflow", "optuna"} & set(result["heavy"])


@pytest.mark.parametrize("package", ["losslab.data", "losslab.training", "losslab.search"])
def test_every_public_name_of_a_lazy_package_resolves(package):
    code = f"""
import {package} as package
missing = [n for n in package.__all__ if getattr(package, n, None) is None]
assert not missing, missing
assert set(package.__all__) <= set(dir(package))
from {package} import *
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_export_named_like_its_submodule_stays_the_export():
    code = """
import losslab.data.augment  # the submodule first: it must not hide the function
from losslab.data import augment
assert callable(augment) and not isinstance(augment, type(losslab)), augment
from losslab.data import cache, checks  # submodules still import by name
assert cache.__name__ == "losslab.data.cache"
"""
    subprocess.run([sys.executable, "-c", "import losslab\n" + code], check=True)
