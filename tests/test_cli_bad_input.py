"""losslab train: a mistyped loss gets the closest name, a class rule that gives no usable
weight and flag values read as text are refused before anything trains or is recorded."""

from __future__ import annotations

import argparse

import pytest

from losslab.cli.main import class_schedule_from_args, main

QUICK = ["--cases", "3", "--shape", "16", "--patch", "16", "--epochs", "1", "--steps", "1"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--loss", "dise"], "unknown loss 'dise'; did you mean 'dice'?"),
        (["--loss", "diceCE"], "did you mean 'dice_ce'?"),
        (["--class-schedule", "cbss"], "unknown class schedule 'cbss'; did you mean 'cbs'?"),
        (["--class-schedule", "log(s - 2)"], "gives every foreground class weight 0"),
        (["--class-schedule", "cbs", "--class-schedule-params", "zeeta=1"], "did you mean 'zeta'"),
        (["--lr", "1e30"], "--lr: 1e+30 is more than 100"),
    ],
)
def test_train_refuses_before_anything_is_recorded(tmp_path, capsys, flags, message):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["train", *QUICK, "--tracking-uri", uri, *flags]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "mlflow.db").exists()


def test_a_schedule_parameter_in_exponent_form_is_a_number():
    args = argparse.Namespace(class_schedule="cbs", class_schedule_params=["cap=1e3", "zeta=5e-2"])
    params = dict(class_schedule_from_args(args, num_classes=3).params)
    assert params == {"cap": 1000.0, "zeta": 0.05}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--cases", "1000000000"], "--cases: 1000000000 is more than 100,000"),
        (["--shape", "100000"], "--shape: 100000 is more than 512"),
        (["--shape", "16", "16", "4096"], "--shape: 4096 is more than 512"),
    ],
)
def test_data_phantom_refuses_sizes_beyond_their_ceiling(tmp_path, capsys, flags, message):
    assert main(["data", "phantom", "--out", str(tmp_path / "ph"), *flags]) == 2
    assert message in " ".join(capsys.readouterr().out.split())
    assert not (tmp_path / "ph").exists()
