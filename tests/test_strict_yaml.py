"""The strict YAML reader: duplicate keys, alias bombs, recursive aliases, binary and non-UTF-8
files are refused naming the file and line; ``1e30`` is a number; merge keys still work."""

from __future__ import annotations

import time

import pytest

from losslab.errors import ConfigError
from losslab.strict_yaml import (
    MAX_FILE_BYTES,
    YamlError,
    load_yaml,
    read_text_file,
    read_yaml_mapping,
    short_repr,
    yaml_value,
)

BOMB = (
    "seed: [&a [1, 1, 1, 1, 1, 1, 1, 1, 1], &b [*a, *a, *a, *a, *a, *a, *a, *a, *a],"
    " &c [*b, *b, *b, *b, *b, *b, *b, *b, *b], &d [*c, *c, *c, *c, *c, *c, *c, *c, *c],"
    " &e [*d, *d, *d, *d, *d, *d, *d, *d, *d], &f [*e, *e, *e, *e, *e, *e, *e, *e, *e],"
    " &g [*f, *f, *f, *f, *f, *f, *f, *f, *f], &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]]\n"
)


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("seed: 0\nseed: 1\n", 2, "'seed'"),
        ("train: {lr: 0.1, lr: 0.2}\n", 1, "'lr'"),
        ("a: 1\nb:\n  c: 1\n  d: 2\n  c: 3\n", 5, "'c'"),
        ("1: x\n1: y\n", 2, "1"),
    ],
)
def test_a_key_given_twice_is_refused_with_both_lines(text, line, key):
    with pytest.raises(YamlError, match=rf"f.yaml: line {line}: the key {key} is given twice"):
        load_yaml(text, "f.yaml")


def test_merge_keys_may_override_what_they_bring():
    text = "base: &b {epochs: 2, lr: 0.1}\nrun: {<<: *b, lr: 0.2}\n"
    assert load_yaml(text)["run"] == {"epochs": 2, "lr": 0.2}


def test_an_alias_bomb_is_refused_quickly_with_a_short_message():
    start = time.process_time()
    with pytest.raises(YamlError, match="f.yaml: line 1: aliases expand to more than") as info:
        load_yaml(BOMB, "f.yaml")
    assert time.process_time() - start < 2.0  # 9**8 values are never built
    assert len(str(info.value)) < 200


def test_small_aliases_are_read():
    assert load_yaml("a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}


def test_a_recursive_alias_is_refused():
    with pytest.raises(YamlError, match="line 1: a recursive alias"):
        load_yaml("a: &a [1, *a]\n", "f.yaml")


@pytest.mark.parametrize(
    ("text", "value"),
    [("1e30", 1e30), ("-5E-4", -5e-4), ("+2e3", 2000.0), ("1.5e3", 1500.0), ("1_000", 1000)],
)
def test_exponent_numbers_are_numbers(text, value):
    read = yaml_value(text)
    assert read == value and not isinstance(read, str)


@pytest.mark.parametrize("text", ["'1e30'", "1e", "e5", "1e3x"])
def test_text_that_only_looks_like_an_exponent_stays_text(text):
    assert isinstance(yaml_value(text), str)


def test_malformed_yaml_names_line_and_column_in_one_line():
    with pytest.raises(YamlError, match=r"f.yaml: line 1, column 9: malformed YAML") as info:
        load_yaml("a: [1, 2", "f.yaml")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe\x00\x01binary", r"a binary file \(a NUL byte at offset 2\)"),
        ("a: caf\xe9\n".encode("latin-1"), r"not UTF-8 text \(byte 0xe9 at offset 6\)"),
    ],
)
def test_a_binary_or_non_utf8_file_is_named(tmp_path, content, message):
    path = tmp_path / "study.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=rf"{path}: {message}"):
        read_yaml_mapping(path)


def test_a_folder_a_missing_file_and_a_huge_file_are_named(tmp_path):
    with pytest.raises(YamlError, match=f"{tmp_path}: a folder"):
        read_text_file(tmp_path)
    with pytest.raises(YamlError, match="nope.yaml: cannot read: No such file"):
        read_text_file(tmp_path / "nope.yaml")
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(YamlError, match=r"huge.yaml: 4,194,305 bytes; a file is at most"):
        read_text_file(huge)


def test_a_file_that_holds_no_mapping_is_refused(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        read_yaml_mapping(path)


def test_short_repr_cuts_large_values():
    assert short_repr(list(range(10_000))) == "[0, 1, 2, 3, 4, 5, 6, 7, …] (10,000 items)"
    assert len(short_repr("x" * 1000)) == 80
    assert short_repr(3) == "3"
