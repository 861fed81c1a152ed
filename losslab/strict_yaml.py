"""YAML as losslab reads it: safe, strict and bounded; every error names the file and the line.

Study, suite and candidate files are small hand-written mappings, so the loader refuses what is
always a mistake in them and never lets a file cost more than its size:

- a key given twice in one mapping (PyYAML keeps the last one without a word);
- aliases that expand to more than ``MAX_EXPANDED_NODES`` values (an alias bomb such as
  ``[&a [1, 1], &b [*a, *a], ...]`` grows exponentially; it is measured on the node graph,
  never built), and recursive aliases;
- files over ``MAX_FILE_BYTES``, binary files and text that is not UTF-8 (the byte and its offset
  are named).

Numbers in exponent form without a dot (``1e30``, ``5E-4``) are read as floats, as YAML 1.2 and
JSON read them (YAML 1.1, PyYAML's default, reads them as strings). Nothing here imports torch.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from losslab.errors import ConfigError

__all__ = [
    "MAX_EXPANDED_NODES",
    "MAX_FILE_BYTES",
    "YamlError",
    "load_yaml",
    "parse_yaml_mapping",
    "read_yaml_mapping",
    "read_text_file",
    "short_repr",
    "yaml_value",
]

MAX_FILE_BYTES = 4 * 2**20  # a study file is a few kilobytes; a candidate file a few more
MAX_EXPANDED_NODES = 100_000  # values after alias expansion (a large study file has ~500)

_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class YamlError(ValueError):
    """A file or text that is not acceptable YAML; the message names the file and line."""


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (``[1, 2, 3, …] (1,000 items)``), so that an
    error message about a large value stays one line and costs nothing to build."""
    if isinstance(value, list | tuple | dict | set):
        head = list(value.items())[:8] if isinstance(value, dict) else list(value)[:8]
        text = repr(dict(head) if isinstance(value, dict) else head)
        if len(value) > 8:
            text = f"{text[:-1]}, …{text[-1]} ({len(value):,} items)"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _DuplicateKey(Exception):
    """A key given twice in one mapping (the message names the lines)."""


class _StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses duplicate keys and reads ``1e30`` as a float."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # ``<<: *defaults``: keys it brings may be overridden, as YAML says
            key = self.construct_object(key_node, deep=True)
            try:
                line = seen.get(key)
            except TypeError:
                continue  # an unhashable key: SafeLoader's own error says so
            if line is not None:
                raise _DuplicateKey(
                    f"line {key_node.start_mark.line + 1}: the key {short_repr(key)} is given "
                    f"twice in one mapping (lines {line + 1} and {key_node.start_mark.line + 1}); "
                    "keep one"
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789")
)


def _expanded_size(root: yaml.Node, where: str) -> int:
    """The number of values ``root`` holds once every alias is expanded, counted on the node
    graph (each node once, its size memoised), so an alias bomb costs its size in the file."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > MAX_EXPANDED_NODES:
                line = node.start_mark.line + 1
                raise YamlError(
                    f"{where}: line {line}: aliases expand to more than "
                    f"{MAX_EXPANDED_NODES:,} values; write the values out instead"
                )
            continue
        if key in open_nodes:
            raise YamlError(
                f"{where}: line {node.start_mark.line + 1}: a recursive alias (a value that "
                "contains itself)"
            )
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def load_yaml(text: str, where: str | Path = "<text>") -> Any:
    """The value of YAML ``text`` (one document), read strictly (see the module docstring).

    Raises:
        YamlError: malformed YAML, a duplicate key, aliases that expand too far or a recursive
            alias; the message starts with ``where`` and names the line.
    """
    where = str(where)
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, where)
        return loader.construct_document(node)
    except _DuplicateKey as exc:
        raise YamlError(f"{where}: {exc}") from None
    except yaml.YAMLError as exc:
        raise YamlError(f"{where}: {_describe(exc)}") from None
    except RecursionError:
        raise YamlError(f"{where}: nested too deeply") from None
    finally:
        loader.dispose()


def _describe(exc: yaml.YAMLError, most: int = 300) -> str:
    """``line 3, column 7: malformed YAML: expected ',' or ']'`` (one line, bounded)."""
    mark = getattr(exc, "problem_mark", None)
    parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]
    text = ", ".join(p for p in parts if p) or str(exc)
    text = " ".join(text.split())
    text = text if len(text) <= most else text[: most - 1] + "…"
    at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{at}malformed YAML: {text}"


def yaml_value(text: str) -> Any:
    """One value as a flag gives it (``cap=1e30`` -> ``1e30`` a float, ``[1, 2]`` a list).

    Raises:
        YamlError: text that is not a YAML value.
    """
    return load_yaml(text, repr(text))


def read_text_file(path: str | Path, what: str = "file") -> str:
    """The UTF-8 text of ``path``, at most ``MAX_FILE_BYTES``.

    Raises:
        YamlError: the file cannot be read, is too large, is binary or is not UTF-8; the message
            names the file (and the offending byte).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise YamlError(f"{path}: a folder, not a {what}")
        if size > MAX_FILE_BYTES:
            raise YamlError(f"{path}: {size:,} bytes; a {what} is at most {MAX_FILE_BYTES:,} bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise YamlError(f"{path}: cannot read: {exc.strerror or exc}") from None
    nul = data.find(b"\x00")
    if nul >= 0:
        raise YamlError(f"{path}: a binary file (a NUL byte at offset {nul}), not a {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            f"is it a {what}?"
        ) from None


def read_yaml_mapping(path: str | Path) -> tuple[str, Any]:
    """The text of a YAML file and the mapping it holds, read strictly.

    Raises:
        ConfigError: at the file: it cannot be read, is binary, too large or malformed, or does
            not hold a mapping.
    """
    try:
        source = read_text_file(path, "YAML file")
    except YamlError as exc:
        raise ConfigError(str(path), str(exc).removeprefix(f"{path}: ")) from None
    return parse_yaml_mapping(source, path)


def parse_yaml_mapping(source: str, path: str | Path) -> tuple[str, Any]:
    """``source`` parsed strictly as YAML holding a mapping; errors name ``path``."""
    try:
        raw = load_yaml(source, path)
    except YamlError as exc:
        raise ConfigError(str(path), str(exc).removeprefix(f"{path}: ")) from None
    if not isinstance(raw, dict):
        raise ConfigError(str(path), "the file must hold a mapping at the top level")
    return source, raw
