"""Candidate files checked whole before anything uses them: each problem names its key."""

from __future__ import annotations

import json

import pytest

from losslab.candidate import Candidate
from losslab.config import ConfigError, read_candidate_file

DICE = "1 - (2 * vsum(p * y) + eps) / (vsum(p) + vsum(y) + eps)"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"loss": "no_such_loss"}, r"'loss': unknown key; did you mean 'terms'\?"),
        ({"terms": [DICE], "clas_schedule": {}}, r"did you mean 'class_schedule'\?"),
        ({"name": "x"}, r"terms: missing"),
        ({"terms": []}, r"terms: a non-empty list"),
        ({"terms": [1, 2]}, r"terms\[0\]: a loss expression as text .*got 1"),
        ({"terms": [DICE], "term_weights": ["a"]}, r"term_weights\[0\]: a number, got 'a'"),
        ({"terms": [DICE], "class_schedule": "cbs"}, r"class_schedule: \{\"name\""),
        ({"terms": [DICE], "class_schedule": {"name": "cbs", "zeta": 1}}, r"class_schedule\.zeta"),
        ({"terms": ["vsum(y)"]}, r"no gradient path"),
        ([DICE], r"a candidate is a JSON object, got list"),
        (
            {"terms": [DICE], "class_schedule": {"name": "cbss", "params": {}}},
            r"class_schedule: unknown class schedule 'cbss'; did you mean 'cbs'\?",
        ),
        (
            {"terms": [DICE], "class_schedule": {"name": "rule", "params": {"expression": "0"}}},
            r"class_schedule: the rule 0 gives every foreground class weight 0",
        ),
        (
            {"terms": [DICE, DICE], "term_schedule": {"name": "rebalance", "params": {"x": 1}}},
            r"term_schedule\.x: unknown parameter",
        ),
    ],
)
def test_a_bad_candidate_file_names_the_file_and_the_key(tmp_path, data, message):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message) as info:
        read_candidate_file(path, "--candidate")
    assert str(info.value).startswith(f"--candidate: {path}")


def test_a_binary_candidate_file_is_named(tmp_path):
    path = tmp_path / "c.json"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(ConfigError, match=rf"{path}: a binary file"):
        read_candidate_file(path, "--candidate")


def test_a_saved_candidate_reads_back_unchanged(tmp_path):
    saved = Candidate.from_loss("dice_ce", name="x")
    path = tmp_path / "c.json"
    path.write_text(saved.to_json())
    assert read_candidate_file(path, "--candidate").key == saved.key


def test_a_study_s_best_trial_file_is_a_candidate_file():
    from losslab.candidate_checks import check_candidate_dict

    # best_trial.json / best_candidate.json carry the trial's train settings beside the candidate.
    data = {"terms": ["dice"], "overrides": {"lr": 0.003}, "train": {"lr": 0.003, "epochs": 4}}
    check_candidate_dict(data)
    with pytest.raises(ValueError, match="overrides: a mapping"):
        check_candidate_dict({"terms": ["dice"], "overrides": [1, 2]})
