"""The help of ``losslab train`` and ``losslab search`` shows the defaults and the names a user
may give (from the registries), and never a ``None`` default."""

from __future__ import annotations

import pytest

from losslab.cli.main import TRAIN_DEFAULTS, main
from losslab.losses import list_losses
from losslab.schedules import list_class_schedules


def _help(capsys, *command: str) -> str:
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_train_help_lists_the_losses_schedules_and_defaults(capsys):
    out = _help(capsys, "train")
    for name in list_losses():
        assert f"{name}," in out or f"{name})" in out, name
    for name in list_class_schedules():
        assert f"{name}," in out or f"{name})" in out, name
    assert f"(default: {TRAIN_DEFAULTS['epochs']})" in out  # --epochs
    assert "(default: dice_ce)" in out and "(default: uniform)" in out
    assert "(default: keep)" in out and "(default: losslab-train)" in out
    assert "cbs: delta=2 epsilon=0.005 frozen_weight=0.1 zeta=0.1 cap=2.0" in out
    assert "default: none" not in out.lower()  # a None default is not shown


def test_search_help_says_what_each_option_defaults_to(capsys):
    out = _help(capsys, "search")
    for flag in ("--trials", "--minutes", "--storage", "--tracking-uri", "--no-progress"):
        text = out.split(flag, 2)[2]  # the option's entry, after the usage line
        assert "default:" in text.split(" --", 1)[0], flag
    assert "default: none" not in out.lower()


def test_baselines_help_shows_its_default_suite(capsys):
    assert "(default: search_spaces/baselines.yaml)" in _help(capsys, "baselines")
