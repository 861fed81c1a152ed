"""Command-line plumbing: subcommands whose options are added on first use, the config file
of ``--config`` and :class:`OptionError`, the error that names a flag or a config key."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "config_file_keys",
    "LazyParser",
    "OptionError",
    "add_lazy_parser",
    "add_lossnets_option",
    "add_study_store_options",
    "check_output_file",
    "describe_bad_input",
    "is_bad_input",
    "config_section",
    "read_config_file",
    "subcommand",
    "use_lossnets",
]


def config_file_keys() -> frozenset[str]:
    """The top-level keys ``--config`` accepts: a study file's
    (``losslab.search.study_config``), a suite file's (``losslab.config``) and every
    registered backend's section; ``--config`` reads the sections it needs."""
    from losslab.config import SUITE_KEYS
    from losslab.search.registry import backend_names
    from losslab.search.study_config import STUDY_KEYS

    return frozenset({*STUDY_KEYS, *SUITE_KEYS, *backend_names()})


class OptionError(ValueError):
    """A value that cannot be accepted; ``where`` is the flag (``--cases``) or the config key
    (``study.yaml: data.cases``) it came from."""

    def __init__(self, where: str, problem: str):
        self.where, self.problem = where, problem
        super().__init__(f"{where}: {problem}" if where else problem)


# --- lazily populated subcommands --------------------------------------------------------------


class LazyParser(argparse.ArgumentParser):
    """A parser whose options are added on first use, so ``losslab --help`` imports nothing a
    subcommand needs to describe its options (torch, for the config dataclasses)."""

    _populate: Callable[[argparse.ArgumentParser], None] | None = None

    def ensure(self) -> LazyParser:
        """Add the options now (once); return the parser."""
        populate, self._populate = self._populate, None
        if populate is not None:
            populate(self)
        return self

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        self.ensure()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self.ensure()
        return super().format_help()

    def format_usage(self) -> str:
        self.ensure()
        return super().format_usage()


def add_lazy_parser(
    subparsers: argparse._SubParsersAction,
    name: str,
    populate: Callable[[argparse.ArgumentParser], None],
    **kwargs: Any,
) -> argparse.ArgumentParser:
    """Add subcommand ``name`` whose options ``populate`` adds when the subcommand is used."""
    parser = subparsers.add_parser(name, **kwargs)
    if isinstance(parser, LazyParser):
        parser._populate = populate
    else:
        populate(parser)
    return parser


def subcommand(parser: argparse.ArgumentParser, *names: str) -> argparse.ArgumentParser:
    """The (populated) parser of subcommand ``names`` (``subcommand(p, "data", "inspect")``)."""
    for name in names:
        (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
        if isinstance(parser, LazyParser):
            parser.ensure()
    return parser


# --- learned loss networks ---------------------------------------------------------------------


def add_lossnets_option(parser: argparse.ArgumentParser) -> None:
    """``--lossnets DIR`` (repeatable): folders of learned loss networks (``<hash>.lossnet``)."""
    parser.add_argument(
        "--lossnets",
        metavar="DIR",
        action="append",
        default=[],
        help="a folder of learned loss networks (<hash>.lossnet) named by candidates as "
        "lossnet:<hash>, searched before $LOSSLAB_LOSSNETS and ./lossnets (repeatable)",
    )


def use_lossnets(args: argparse.Namespace) -> None:
    """Put the ``--lossnets`` folders on the search path of learned loss networks.

    Raises:
        OptionError: a folder that does not exist.
    """
    from losslab.losses.learned_term import add_search_folder

    for folder in getattr(args, "lossnets", None) or []:
        if not Path(folder).expanduser().is_dir():
            raise OptionError("--lossnets", f"{folder} is not a folder")
        add_search_folder(folder)


# --- config files -------------------------------------------------------------------------------


def read_config_file(path: str) -> Mapping[str, Any]:
    """The top-level mapping of a study or suite YAML file.

    Raises:
        OptionError: the file cannot be read or is malformed, or a key is unknown (named).
    """
    from losslab.config import ConfigError, read_yaml_mapping

    try:
        _, raw = read_yaml_mapping(Path(path))
    except ConfigError as exc:
        raise OptionError(exc.where, exc.problem) from None
    known = config_file_keys()
    unknown = sorted(set(map(str, raw)) - known)
    if unknown:
        raise OptionError(f"{path}: {unknown[0]}", f"unknown key; known: {sorted(known)}")
    return raw


def config_section(raw: Mapping[str, Any], path: str, name: str, cls: type) -> dict[str, Any]:
    """Section ``name`` of a config file, whose keys must be fields of dataclass ``cls``."""
    section = raw.get(name) or {}
    if not isinstance(section, Mapping):
        raise OptionError(f"{path}: {name}", f"must be a mapping, got {section!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(map(str, section)) - known)
    if unknown:
        raise OptionError(f"{path}: {name}.{unknown[0]}", f"unknown key; known: {sorted(known)}")
    return dict(section)


# --- output files -------------------------------------------------------------------------------


def check_output_file(path: str | Path, flag: str) -> Path:
    """``path`` can be written as a file (``--out``), checked before any work is done: not a
    folder, not a read-only file (never replaced), under a folder that exists or can be created
    and can be written.

    Raises:
        OptionError: at ``flag``, naming the path and what is wrong with it.
    """
    target = Path(path).expanduser()
    if target.is_dir():
        raise OptionError(
            flag, f"{target} is a folder; give a file name such as {target / 'report.html'}"
        )
    if target.exists():
        if not os.access(target, os.W_OK) or target.stat().st_mode & 0o222 == 0:
            raise OptionError(
                flag, f"{target} is read-only; it is not replaced (choose another name)"
            )
        return target
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise OptionError(flag, f"{target}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OptionError(flag, f"{target}: the folder {folder} cannot be written")
    return target


# --- bad input found late -----------------------------------------------------------------------


def is_bad_input(exc: BaseException) -> bool:
    """A refused configuration or flag, or a file that cannot be read or written: the user's to
    fix, so the command line says it in one line, without a traceback (``LOSSLAB_TRACEBACK=1``
    shows the traceback anyway)."""
    from losslab.errors import ConfigError
    from losslab.strict_yaml import YamlError

    if os.environ.get("LOSSLAB_TRACEBACK"):
        return False
    return isinstance(exc, ConfigError | OptionError | YamlError | OSError)


def describe_bad_input(exc: BaseException) -> str:
    """``/stores/optuna.log: Permission denied`` (the file an ``OSError`` names), else the
    message."""
    where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"{where}{text}"


def add_study_store_options(parser: argparse.ArgumentParser) -> None:
    """``--storage``, ``--tracking-uri`` and ``--lossnets``: where a study named on the command
    line keeps its ledger, its MLflow runs and its loss networks."""
    parser.add_argument(
        "--storage",
        help="study storage: an Optuna storage URL or journal:PATH (default: the study file's, "
        "else the journal beside the local MLflow store)",
    )
    parser.add_argument("--tracking-uri", help="MLflow URI (default: the study file's)")
    add_lossnets_option(parser)
