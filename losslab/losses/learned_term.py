"""``LearnedTerm``: a loss term that is a meta-learned loss network, named by its content hash.

A candidate holds ``lossnet:<hash>`` where an expression term holds its text: ``<hash>`` is the
sha256 of the network's file (``losslab.losses.learned.content_hash``), so the candidate's JSON,
and therefore its key, is a hash of everything that defines the objective, weights included.
The weights are the file ``<hash>.lossnet``, looked up on a search path, in this order:

1. folders added in this process with :func:`add_search_folder` (``losslab train --lossnets
   DIR``; a study of the ``ml3`` backend adds the ``lossnets/`` folder beside its store);
2. the folders of ``$LOSSLAB_LOSSNETS`` (separated by ``os.pathsep``);
3. ``./lossnets``.

The first folder holding the file wins, and its bytes must hash to the name
(:func:`~losslab.losses.learned.load_network` refuses a corrupt or renamed file, naming it).
A learned term is found only when it is compiled (training), never when a candidate is built
or read, so a candidate JSON can be read, compared and keyed on a machine without its weights.

A term is evaluated by ``LossNetwork.loss`` (base plus learned part, ``[C]``, float32): a
per-class term like any other, so class weights, ``absent_classes`` and term schedules apply to
it unchanged. It has no parameters. The networks are loaded once per compiled loss, frozen
(``requires_grad`` off: the trainer's optimiser never sees them) and moved to the device of the
logits on first use.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from losslab.losses.ops import Kind
from losslab.losses.parser import LossSyntaxError

if TYPE_CHECKING:
    from losslab.losses.learned import LossNetwork
    from losslab.losses.spec import CompiledLoss

__all__ = [
    "ENV_VAR",
    "PREFIX",
    "LearnedTerm",
    "add_search_folder",
    "find_network",
    "is_learned",
    "load_learned",
    "search_path",
]

PREFIX = "lossnet:"
ENV_VAR = "LOSSLAB_LOSSNETS"
DEFAULT_FOLDER = "lossnets"
_HASH = re.compile(r"^[0-9a-f]{64}$")
_ADDED: list[Path] = []


@dataclass(frozen=True)
class LearnedTerm:
    """A loss network by content hash, printed ``lossnet:<hash>`` (see the module docstring).

    It has the surface of a :class:`~losslab.losses.spec.LossSpec` that candidates, spaces and
    reports use: no parameters, a per-class kind, always trainable.

    Raises:
        LossSyntaxError: ``hash`` is not 64 lower-case hex digits.
    """

    hash: str

    def __post_init__(self) -> None:
        if not isinstance(self.hash, str) or not _HASH.match(self.hash):
            raise LossSyntaxError(
                "a learned term names its loss network by the 64 lower-case hex digits of its "
                f"content hash, got {self.hash!r}",
                f"{PREFIX}{self.hash}",
            )

    @classmethod
    def parse(cls, text: str) -> LearnedTerm:
        """``lossnet:<hash>`` (surrounding spaces allowed) as a term."""
        body = text.strip()
        if not body.startswith(PREFIX):
            raise LossSyntaxError(f"a learned term is written {PREFIX}<hash>", text)
        return cls(body[len(PREFIX) :].strip())

    @property
    def expression(self) -> str:
        return f"{PREFIX}{self.hash}"

    def __str__(self) -> str:
        return self.expression

    @property
    def params(self) -> tuple[tuple[str, float], ...]:
        return ()

    @property
    def parameters(self) -> dict[str, float]:
        return {}

    @property
    def kind(self) -> Kind:
        return Kind.CLASS

    @property
    def trainable(self) -> bool:
        return True

    @property
    def terms(self) -> tuple[LearnedTerm, ...]:
        return (self,)

    def require_trainable(self) -> LearnedTerm:
        return self

    def with_params(self, **params: float) -> LearnedTerm:
        """This term; a learned term has no parameters to change (``ValueError`` naming them)."""
        if params:
            raise ValueError(
                f"{self}: a learned loss term has no parameters, got {', '.join(sorted(params))}"
            )
        return self

    def path(self) -> Path:
        """The file of the network on the search path (:func:`find_network`)."""
        return find_network(self.hash)

    def load(self) -> LossNetwork:
        """The network, checked against its hash (:func:`load_learned`)."""
        return load_learned(self.hash)

    def compile(self) -> CompiledLoss:
        from losslab.losses.spec import CompiledLoss

        return CompiledLoss((self,), single=True)


def is_learned(term: Any) -> bool:
    """Whether ``term`` is a :class:`LearnedTerm` or a text ``lossnet:...``."""
    if isinstance(term, str):
        return term.strip().startswith(PREFIX)
    return isinstance(term, LearnedTerm)


# -- where the weights are ----------------------------------------------------------------------


def add_search_folder(folder: str | Path) -> Path:
    """Put ``folder`` on the search path of this process (ahead of ``$LOSSLAB_LOSSNETS`` and
    ``./lossnets``; added folders keep their order; adding one twice changes nothing)."""
    path = Path(folder).expanduser()
    if path not in _ADDED:
        _ADDED.append(path)
    return path


def search_path() -> list[Path]:
    """The folders searched for ``<hash>.lossnet``, in order (see the module docstring)."""
    env = [Path(p).expanduser() for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    folders: list[Path] = []
    for folder in (*_ADDED, *env, Path(DEFAULT_FOLDER)):
        if folder not in folders:
            folders.append(folder)
    return folders


def find_network(hash: str) -> Path:
    """The first ``<folder>/<hash>.lossnet`` of the search path.

    Raises:
        FileNotFoundError: in no folder, naming the file, the hash and the folders searched.
    """
    from losslab.losses.learned import SUFFIX

    name = f"{hash}{SUFFIX}"
    folders = search_path()
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(
        f"loss network {PREFIX}{hash}: no file {name} in {', '.join(map(str, folders))}; give "
        f"its folder with --lossnets DIR or ${ENV_VAR}"
    )


def load_learned(hash: str) -> LossNetwork:
    """The network ``hash`` from the search path, checked and frozen.

    Raises:
        FileNotFoundError: no file (:func:`find_network`).
        ValueError: a file whose content does not hash to ``hash``, or that is not a loss
            network (naming the file).
    """
    from losslab.losses.learned import load_network

    net = load_network(find_network(hash), hash)
    return net.requires_grad_(False).eval()


def load_terms(terms: Iterable[Any]) -> dict[int, LossNetwork]:
    """The networks of the learned terms among ``terms``, by term index."""
    return {k: t.load() for k, t in enumerate(terms) if isinstance(t, LearnedTerm)}
