"""Lean torch code of the operators that choose between values: ``where``, ``min`` and ``max``.

A searched loss runs at every training step over the whole ``[B, C, *spatial]`` tensor, so each
full pass over it counts. The plain torch code of these operators is slow there: on the CPU,
``torch.where`` on a data-dependent (random-looking) mask is a branch per element, several times
the cost of a multiplication, and the backward of ``torch.minimum`` / ``torch.maximum`` takes
an ``==``, a ``where`` and a ``masked_fill`` per input. Here the same values and gradients come
from passes that have no branch per element:

- ``where(cond, a, b)`` is ``lerp(b, a, w)`` with ``w = cond`` as 0 or 1: ``b + 0 * (a - b)``
  is ``b`` and ``a - (a - b) * 0`` is ``a``, exactly. Its gradient is ``grad * w`` for ``a``
  and ``grad * (1 - w)`` for ``b`` (one pass each), where torch's is a ``where`` each.
- ``min(a, b)`` / ``max(a, b)`` run ``torch.minimum`` / ``torch.maximum`` forward and save their
  inputs; the backward gives ``a`` the share ``w = (1 + sign(b - a)) / 2`` of the gradient
  (``max``: ``sign(a - b)``), that is 1 where ``a`` is chosen, 0 where ``b`` is and 1/2 on a
  tie, as torch does, and ``b`` the rest, ``grad - grad * w``: products by 0, 1/2 and 1, exact.

Temporaries are updated in place: on the CPU a fresh tensor of this size (the pages the
allocator gets from the system) costs more than a pass over one already in use.

The results are exact, not rounded approximations, on finite inputs, which is what the language
produces on the inputs of a training run (``losslab.losses.bounds``: every value stays within
``±EXACT_MAX``): ``a - b`` cannot overflow and ``0 * (a - b)`` is 0. A NaN or an infinity in an
input (outside that contract) may spread to the other input's gradient or to the unchosen value.
``tests/losses/test_protected_ops.py`` holds the reference formulas and compares the two.

Autograd Functions are used where a gradient is wanted; without one (``torch.no_grad``, or no
input that requires a gradient) the forward alone runs.
Their backward is not differentiable again (``once_differentiable``); inside
``losslab.losses.grad_mode.twice_differentiable()`` (ML3's meta-gradient) the plain torch code
runs instead, with the same values.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from losslab.losses.grad_mode import lean_backward, plain_backward, sum_to_input

__all__ = ["maximum", "minimum", "select"]


def select(cond: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch.where(cond, a, b)`` for a boolean ``cond`` (or one of zeros and ones, as the
    compiler's comparisons give) and tensors ``a``, ``b`` (any of the three broadcast), in the
    dtype torch's ``where`` would give."""
    dtype = torch.result_type(a, b)
    a, b = a.to(dtype), b.to(dtype)
    if plain_backward():
        return torch.where(cond != 0, a, b)
    weight = cond.to(dtype)
    if lean_backward(a, b):
        return _Select.apply(weight, a, b)
    return torch.lerp(b, a, weight)


def minimum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch.minimum(a, b)``, with the gradient computed without ``where``."""
    if lean_backward(a, b):
        return _Extremum.apply(a, b, False)
    return torch.minimum(a, b)


def maximum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch.maximum(a, b)``, with the gradient computed without ``where``."""
    if lean_backward(a, b):
        return _Extremum.apply(a, b, True)
    return torch.maximum(a, b)


class _Select(torch.autograd.Function):
    """``lerp(b, a, weight)`` for a weight of zeros and ones; saves the weight only."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(weight)
        ctx.inputs = [(t.shape, t.dtype) for t in (a, b)]
        return torch.lerp(b, a, weight)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        (weight,) = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad[1:]
        grad_a = grad_b = None
        if need_a:
            chosen = grad * weight
            grad_a = sum_to_input(chosen, ctx.inputs[0])
            if need_b:
                grad_b = sum_to_input(grad - chosen, ctx.inputs[1])
        elif need_b:  # grad where the weight is 0, else 0: one pass
            grad_b = sum_to_input(torch.lerp(grad, grad.new_zeros(()), weight), ctx.inputs[1])
        return None, grad_a, grad_b


class _Extremum(torch.autograd.Function):
    """``torch.minimum`` (``largest`` false) or ``torch.maximum``; saves both inputs."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, largest: bool) -> torch.Tensor:
        ctx.save_for_backward(a, b)
        ctx.largest = largest
        return torch.maximum(a, b) if largest else torch.minimum(a, b)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad[:2]
        high, low = (a, b) if ctx.largest else (b, a)  # a is chosen where high > low
        grad_a = grad_b = None
        if need_a:
            chosen = _share(high, low).mul_(grad)
            grad_a = sum_to_input(chosen, (a.shape, a.dtype))
            if need_b:
                grad_b = sum_to_input(grad - chosen, (b.shape, b.dtype))
        elif need_b:
            grad_b = sum_to_input(_share(low, high).mul_(grad), (b.shape, b.dtype))
        return grad_a, grad_b, None


def _share(high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    """1 where ``high > low``, 0 where ``high < low``, 1/2 on a tie: ``(1 + sign) / 2``, computed
    in place in one new tensor (a fresh tensor costs more than a pass over one)."""
    return torch.sub(high, low).sign_().mul_(0.5).add_(0.5)
