"""Lifetimes of the values of a compiled program (``losslab.losses.compiler.Program``).

Two facts about a straight-line program's steps, computed once when it is compiled:

- which ``op`` steps only feed the conditions of ``where`` (through comparisons, which have no
  gradient): they run without autograd;
- after which step each value is read for the last time: it is dropped there, so that the
  allocator can reuse its memory for the next steps (on the CPU a fresh tensor of a voxel's
  size costs more than a pass over one already in use).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["condition_only", "last_reads"]

Step = tuple[str, object, tuple[int | float, ...]]


def condition_only(
    steps: Sequence[Step],
    outputs: tuple[int | float, ...],
    comparisons: set[int],
) -> frozenset[int]:
    """The ``op`` steps whose values reach the outputs only through comparisons."""
    differentiable = {slot for slot in outputs if isinstance(slot, int)}
    for index in range(len(steps) - 1, -1, -1):
        if index in differentiable and index not in comparisons:
            differentiable.update(s for s in steps[index][2] if isinstance(s, int))
    return frozenset(
        index
        for index, (kind, _, _) in enumerate(steps)
        if kind == "op" and index not in differentiable
    )


def last_reads(
    steps: Sequence[Step], outputs: tuple[int | float, ...]
) -> tuple[tuple[int, ...], ...]:
    """For each step, the slots it is the last to read (the outputs are never released)."""
    last: dict[int, int] = {}
    for index, (_, _, slots) in enumerate(steps):
        for slot in slots:
            if isinstance(slot, int):
                last[slot] = index
    kept = {slot for slot in outputs if isinstance(slot, int)}
    released: list[list[int]] = [[] for _ in steps]
    for slot, index in last.items():
        if slot not in kept:
            released[index].append(slot)
    return tuple(tuple(sorted(r)) for r in released)
