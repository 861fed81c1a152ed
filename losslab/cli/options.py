"""Command-line options generated from the fields of a config dataclass.

One definition: a field added to ``DataConfig`` or ``TrainConfig`` gets its flag, its parsing
and its help (from the class docstring's ``Attributes:`` section) without touching the CLI.

- ``int``, ``float``, ``str``: one value; ``Literal[...]``: one of its choices.
- ``bool``: ``--name`` / ``--no-name``.
- ``tuple[T, ...]``, ``list[T]``: several values; a fixed tuple takes exactly its count, and a
  tuple of three listed in ``cube`` also takes one value for all three (``--shape 32``).
- ``Optional[T]`` (``T | None``): also ``none`` (except strings), to undo a config file's value.
- mappings (``dict[K, V]``): ``KEY=VALUE`` pairs (``--labels 1=liver 2=spleen``) or one
  YAML/JSON mapping (``--labels '{1: liver}'``).
- anything else: one YAML value.

A flag's value is parsed when it is read, so a malformed value is an argparse error naming the
flag; a value the dataclass refuses is an :class:`OptionError` naming the flag too.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from losslab.cli.support import OptionError

__all__ = ["OptionSet", "field_docs"]


# --- help from the docstring -------------------------------------------------------------------


def _plain(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("``", "")).strip()


def field_docs(cls: type) -> dict[str, str]:
    """Per-field text of the ``Attributes:`` section of ``cls``'s docstring.

    ``a, b: text`` documents both fields; ``a: text; b: text`` two; ``a: see ``Other``.``
    takes ``a``'s entry from class ``Other`` (looked up in ``cls``'s module).
    """
    lines = (inspect.getdoc(cls) or "").splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Attributes:") + 1
    except StopIteration:
        return {}
    known = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    entries: list[tuple[list[str], str]] = []
    indent = None
    for line in lines[start:]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if depth == 0:
            break  # the next section
        head = re.match(r"\s*([A-Za-z_][\w, ]*?):\s*(.*)$", line)
        if indent is None or depth == indent:
            indent = depth
            if head is None:
                break
            entries.append(([n.strip() for n in head.group(1).split(",")], head.group(2)))
        elif entries:
            entries[-1] = (entries[-1][0], f"{entries[-1][1]} {line.strip()}")
    docs: dict[str, str] = {}
    for names, text in entries:
        # ``lr: learning rate; weight_decay: ...`` documents two fields on one line
        parts = re.split(r";\s+(?=(?:" + "|".join(map(re.escape, known or {"_"})) + r"):\s)", text)
        for i, part in enumerate(parts):
            if i:
                name, _, part = part.partition(":")
                names = [name.strip()]
            for name in names:
                docs[name] = _plain(part)
    module = sys.modules.get(cls.__module__)
    for name, text in docs.items():
        ref = re.fullmatch(r"see (\w+)\.?", text)
        other = getattr(module, ref.group(1), None) if ref else None
        if isinstance(other, type) and other is not cls:
            docs[name] = field_docs(other).get(name, text)
    return docs


# --- parsing one field --------------------------------------------------------------------------


def _hints(cls: type) -> dict[str, Any]:
    """The field types of ``cls``; a field whose annotation cannot be resolved reads YAML."""
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError):
        hints = {}
        for f in dataclasses.fields(cls):
            one = type("_Field", (), {"__annotations__": {f.name: f.type}})
            one.__module__ = cls.__module__
            try:
                hints.update(typing.get_type_hints(one))
            except (NameError, TypeError):
                hints[f.name] = Any
        return hints


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _yaml(text: str) -> Any:
    from losslab.strict_yaml import YamlError, yaml_value

    try:
        return yaml_value(text)
    except YamlError:
        raise ValueError(f"cannot read {text!r} as a YAML value") from None


def _scalar(tp: Any) -> Callable[[str], Any]:
    if tp is bool:

        def to_bool(text: str) -> bool:
            value = _yaml(text)
            if not isinstance(value, bool):
                raise ValueError(f"{text!r} is not true or false")
            return value

        return to_bool
    if tp in (int, float):

        def to_number(text: str) -> Any:
            try:
                return tp(text)
            except ValueError:
                kind = "an integer" if tp is int else "a number"
                raise ValueError(f"{text!r} is not {kind}") from None

        return to_number
    if tp is str:
        return str
    return _yaml


def _is_none(values: Any) -> bool:
    one = values[0] if isinstance(values, list) and len(values) == 1 else values
    return isinstance(one, str) and one.lower() in ("none", "null")


@dataclasses.dataclass
class _Spec:
    """How one field reads from the command line."""

    nargs: Any = None
    metavar: str | None = None
    choices: tuple | None = None
    convert: Callable[[Any], Any] = str
    flag: bool = False
    usage: str = ""


def _mapping_spec(key_tp: Any, value_tp: Any) -> _Spec:
    key, value = _scalar(key_tp), _scalar(value_tp)

    def convert(values: list[str]) -> dict:
        if len(values) == 1 and values[0].lstrip().startswith("{"):
            raw = _yaml(values[0])
            if not isinstance(raw, Mapping):
                raise ValueError(f"{values[0]!r} is not a mapping")
            plain = value is not _yaml  # a typed value: convert what YAML read
            return {
                key(str(k)): value(str(v)) if plain and not isinstance(v, list | dict) else v
                for k, v in raw.items()
            }
        out = {}
        # ``1=liver,2=spleen`` is two pairs; ``channels=[8,16]`` one
        pairs = [p for v in values for p in re.split(r",(?=[^,=\[\]{}]+=)", v) if p]
        for pair in pairs:
            k, sep, v = pair.partition("=")
            if not sep or not k:
                raise ValueError(f"{pair!r} is not KEY=VALUE")
            name = key(k.strip())
            if name in out:
                raise ValueError(f"{k.strip()!r} is given twice")
            out[name] = value(v.strip())
        return out

    return _Spec("+", "KEY=VALUE", convert=convert, usage="KEY=VALUE pairs or a YAML mapping")


def _sequence_spec(tp: Any, cube: bool) -> _Spec:
    args = typing.get_args(tp)
    variadic = typing.get_origin(tp) is list or (len(args) == 2 and args[1] is Ellipsis)
    elements = [args[0]] if variadic else list(args)
    if not elements or len(set(elements)) > 1:
        return _Spec(None, "YAML", convert=_yaml, usage="a YAML list")
    item = _scalar(elements[0])
    count = None if variadic else len(elements)
    broadcast = cube and count == 3
    meta = getattr(elements[0], "__name__", "VALUE").upper()

    def convert(values: list[str]) -> Any:
        if count is not None and len(values) != count and not (broadcast and len(values) == 1):
            takes = f"{count} values" + (" (or 1 for all three)" if broadcast else "")
            raise ValueError(f"takes {takes}, got {len(values)}: {' '.join(values)}")
        items = [item(v) for v in values]
        items = items * 3 if broadcast and len(items) == 1 else items
        return tuple(items) if typing.get_origin(tp) is tuple else items

    nargs = count if count is not None and not broadcast else "+"
    usage = f"{count} values" if count else "values"
    return _Spec(nargs, meta, convert=convert, usage=usage + (", or 1 for all three" * broadcast))


def _spec(tp: Any, cube: bool) -> _Spec:
    tp, optional = _unwrap_optional(tp)
    origin = typing.get_origin(tp)
    if tp is bool:
        spec = _Spec(flag=True)
    elif origin is typing.Literal:
        spec = _Spec(None, None, choices=typing.get_args(tp), convert=lambda v: v)
    elif tp in (int, float, str):
        spec = _Spec(None, tp.__name__.upper(), convert=_scalar(tp))
    elif origin in (tuple, list):
        spec = _sequence_spec(tp, cube)
    elif origin in (dict, Mapping) or (isinstance(origin, type) and issubclass(origin, Mapping)):
        key_tp, value_tp = (typing.get_args(tp) + (Any, Any))[:2]
        spec = _mapping_spec(key_tp, value_tp)
    else:
        spec = _Spec(None, "YAML", convert=_yaml, usage="a YAML value")
    if optional and not spec.flag and tp is not str:
        inner = spec.convert
        spec.convert = lambda values: None if _is_none(values) else inner(values)
        spec.usage = f"{spec.usage}; " if spec.usage else ""
        spec.usage += "none to unset"
        if spec.nargs not in (None, "+"):
            spec.nargs = "+"  # ``none`` is one value
    return spec


class _FieldAction(argparse.Action):
    """Stores the converted value; a malformed one is an argparse error naming the flag."""

    def __init__(self, option_strings, dest, convert=str, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.convert = convert

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            value = self.convert(values)
        except (TypeError, ValueError) as exc:
            raise argparse.ArgumentError(self, str(exc)) from None
        setattr(namespace, self.dest, value)


def _shown_default(value: Any) -> str | None:
    """A default as the help shows it; ``None`` for none to show (``None``, empty)."""
    if value is None or (isinstance(value, tuple | list | Mapping) and not value):
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple | list):
        return " ".join(map(str, value))
    if isinstance(value, Mapping):
        return " ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


# --- a config class's options ------------------------------------------------------------------


@dataclasses.dataclass
class OptionSet:
    """The options of config dataclass ``cls``; their values land in ``args`` as
    ``<section>.<field>``, only when given.

    Attributes:
        cls: the config dataclass.
        section: its section in a config file (``data``, ``train``).
        rename: field -> option strings, where the flag is not ``--field-name``.
        exclude: fields without a flag.
        cube: fields of three sizes that also take one value for all three.
    """

    cls: type
    section: str
    rename: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    exclude: tuple[str, ...] = ()
    cube: tuple[str, ...] = ()

    def fields(self) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(self.cls) if f.init and f.name not in self.exclude]

    def flags(self, name: str) -> tuple[str, ...]:
        return tuple(self.rename.get(name, (f"--{name.replace('_', '-')}",)))

    def flag(self, name: str) -> str:
        """The flag that sets field ``name``."""
        return self.flags(name)[0]

    def dest(self, name: str) -> str:
        return f"{self.section}.{name}"

    def add_to(
        self,
        parser: argparse.ArgumentParser,
        title: str,
        defaults: Mapping[str, Any] | None = None,
        shown: Mapping[str, str] | None = None,
    ) -> None:
        """Add one option per field, in an argument group; ``defaults`` (field -> value) and
        ``shown`` (field -> text) say what the help gives as the default (a ``None`` or empty
        default is not shown)."""
        defaults, shown = dict(defaults or {}), dict(shown or {})
        hints = _hints(self.cls)
        docs = field_docs(self.cls)
        group = parser.add_argument_group(title)
        for f in self.fields():
            spec = _spec(hints.get(f.name, Any), f.name in self.cube)
            if f.name in shown:
                default = shown[f.name]
            elif f.name in defaults:
                default = _shown_default(defaults[f.name])
            elif f.default is not dataclasses.MISSING:
                default = _shown_default(f.default)
            elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                default = _shown_default(f.default_factory())  # type: ignore[misc]
            else:
                default = "required"
            text = docs.get(f.name, f.name.replace("_", " "))
            if spec.usage:
                text = f"{text} [{spec.usage}]"
            if default is not None:
                text = f"{text} (default: {default})"
            text = text.replace("%", "%%")
            kwargs: dict[str, Any] = {"dest": self.dest(f.name), "default": argparse.SUPPRESS}
            if spec.flag:
                group.add_argument(
                    *self.flags(f.name), action=argparse.BooleanOptionalAction, help=text, **kwargs
                )
                continue
            if spec.choices is not None:
                kwargs["choices"] = spec.choices
            else:
                kwargs.update(nargs=spec.nargs, metavar=spec.metavar)
            group.add_argument(
                *self.flags(f.name), action=_FieldAction, convert=spec.convert, help=text, **kwargs
            )

    def given(self, args: argparse.Namespace) -> dict[str, Any]:
        """Field -> value of the flags given on the command line."""
        return {
            f.name: getattr(args, self.dest(f.name))
            for f in self.fields()
            if hasattr(args, self.dest(f.name))
        }

    def build(
        self,
        given: Mapping[str, Any],
        base: Mapping[str, Any] | None = None,
        base_where: str = "",
        file_keys: frozenset[str] | set[str] = frozenset(),
    ) -> Any:
        """``cls(**base, **given)``; a refused value is an :class:`OptionError` naming its flag,
        or ``base_where.field`` when it came from a config file (``file_keys``)."""
        values = {**(base or {}), **given}
        try:
            return self.cls(**values)
        except (TypeError, ValueError) as exc:
            name = self._culprit(str(exc), values)
            if name is None:
                where = self.section
            elif name in file_keys and name not in given:
                where = f"{base_where}.{name}"
            else:
                where = self.flag(name)
            raise OptionError(where, str(exc)) from None

    def _culprit(self, message: str, values: Mapping[str, Any]) -> str | None:
        """The field an error is about: the first one it names, else the first given value
        refused on its own."""
        names = [f.name for f in dataclasses.fields(self.cls)]
        found = [
            (m.start(), name)
            for name in names
            if (m := re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", message))
        ]
        if found:
            return min(found)[1]
        for name, value in values.items():
            try:
                self.cls(**{name: value})
            except (TypeError, ValueError):
                return name
        return None
