"""Errors and problem reports of dataset loading."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class DatasetError(ValueError):
    """A dataset folder or file cannot be used.

    The message is ``"<path>: <problem>"``; both parts are kept as attributes.

    Attributes:
        path: the file (or folder) at fault.
        problem: what is wrong with it.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)
        self.problem = problem


@dataclass(frozen=True)
class DatasetProblem:
    """One problem of a dataset folder, as collected by ``inspect_decathlon``."""

    path: Path
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"

    @classmethod
    def of(cls, error: DatasetError) -> DatasetProblem:
        """The problem an error reports."""
        return cls(error.path, error.problem)

    def error(self) -> DatasetError:
        """The problem as an exception."""
        return DatasetError(self.path, self.problem)
