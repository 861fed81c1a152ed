"""Lean torch code of the protected division and real power of the loss language.

``losslab.losses.ops`` defines them: ``a / b`` with ``|b|`` floored at ``eps`` (keeping the sign
of ``b``, zero counting as positive) and the quotient saturated at ``±limit``; ``a ** b`` as
``exp(min(b * log(max(|a|, eps)), max_exponent))``. Written as plain torch expressions, they take
a pass over the tensor per operation, forward and backward, and their masks are ``torch.where``
on a data-dependent mask (on the CPU a branch per element, several passes' worth). Here:

- the floored denominator is ``copysign(max(|b + 0|, eps), b + 0)`` (``b + 0`` turns ``-0`` into
  ``+0``), the very value the masks chose, without a mask;
- forward temporaries are overwritten in place (an autograd Function saves what its backward
  reads, nothing more);
- the backward is the chain rule written out: for the division ``grad / b'`` and
  ``-grad * q / b'``, kept where ``|b| >= eps`` (``b' == b``) and where the quotient is not
  saturated; for the power ``g = grad * out`` kept where the exponent is not capped, then
  ``g * log|a|'`` for ``b`` and ``g * b * s / |a|'`` for ``a``, where ``s = trunc(a / |a|')``
  is the sign of ``a`` where ``|a| >= eps`` and 0 where the floor holds.

The values are the same operations on the same numbers, so they are equal; gradients differ
from torch's chain of ``where`` and products by the order of a few roundings at most. (In
float64 the first code floored a denominator at ``eps`` rounded to float32, the dtype
``torch.where(b < 0, -eps, eps)`` gave; it is ``eps`` in the denominator's dtype here.)
``tests/losses/test_protected_ops.py`` holds the plain formulas and compares the two.
Their backward is not differentiable again (``once_differentiable``); inside
``losslab.losses.grad_mode.twice_differentiable()`` (ML3's meta-gradient) the plain torch code
runs instead, with the same values.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from losslab.losses.grad_mode import lean_backward, plain_backward, sum_to_input

__all__ = ["divide", "power"]


def divide(a: torch.Tensor, b: torch.Tensor, eps: float, limit: float) -> torch.Tensor:
    """``a / b'`` saturated at ``±limit``, ``b'`` being ``b`` with ``|b|`` floored at ``eps``
    (the sign of ``b`` kept, zero counting as positive); ``a`` and ``b`` tensors of one dtype."""
    if lean_backward(a, b):
        return _Divide.apply(a, b, eps, limit)
    if plain_backward():  # out of place, twice differentiable
        floored = torch.where(b.abs() < eps, torch.where(b < 0, -eps, eps).to(b.dtype), b)
        return (a / floored).clamp(-limit, limit)
    return (a / _floored(b, eps)).clamp_(-limit, limit)


def power(
    a: torch.Tensor, b: torch.Tensor | float, eps: float, max_exponent: float
) -> torch.Tensor:
    """``exp(min(b * log(max(|a|, eps)), max_exponent))``; ``b`` a tensor or a number."""
    exponent_tensor = isinstance(b, torch.Tensor)
    if lean_backward(a, *((b,) if exponent_tensor else ())):
        return _Power.apply(a, b, eps, max_exponent)
    if plain_backward():
        return torch.exp(torch.mul(torch.log(a.abs().clamp_min(eps)), b).clamp(max=max_exponent))
    exponent = torch.mul(a.abs().clamp_min_(eps).log_(), b)
    return exponent.clamp_max_(max_exponent).exp_()


def _floored(b: torch.Tensor, eps: float) -> torch.Tensor:
    shifted = b + 0.0  # -0 becomes +0: zero counts as positive
    return shifted.abs().clamp_min_(eps).copysign_(shifted)


class _Divide(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, eps: float, limit: float) -> torch.Tensor:
        floored = _floored(b, eps)
        quotient = a / floored
        ctx.save_for_backward(b, floored, quotient)
        ctx.limit = limit
        ctx.inputs = [(t.shape, t.dtype) for t in (a, b)]
        return quotient.clamp(-limit, limit)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        b, floored, quotient = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad[:2]
        # where the quotient is saturated (or NaN) the gradient is 0, as clamp's
        grad = grad * (quotient.abs() <= ctx.limit)
        grad_a = grad_b = None
        if need_b:  # -grad * ((a / b') / b'), as torch's division, where b' is b (|b| >= eps)
            kept = torch.eq(floored, b)
            grad_b = sum_to_input((quotient / floored).mul_(grad).neg_().mul_(kept), ctx.inputs[1])
        if need_a:
            grad_a = sum_to_input(grad.div_(floored), ctx.inputs[0])
        return grad_a, grad_b, None, None


class _Power(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, a: torch.Tensor, b: torch.Tensor | float, eps: float, max_exponent: float
    ) -> torch.Tensor:
        base = a.abs().clamp_min_(eps)
        log_base = base.log()
        exponent = torch.mul(log_base, b)
        uncapped = exponent <= max_exponent  # exp's gradient passes here (a tie too, as clamp's)
        out = exponent.clamp_max_(max_exponent).exp_()
        ctx.exponent_tensor = isinstance(b, torch.Tensor)
        exponent_saved = b if ctx.exponent_tensor else torch.empty(0)
        ctx.save_for_backward(a, exponent_saved, base, log_base, uncapped, out)
        ctx.b = None if ctx.exponent_tensor else b
        ctx.inputs = [(a.shape, a.dtype), (b.shape, b.dtype) if ctx.exponent_tensor else None]
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        a, b, base, log_base, uncapped, out = ctx.saved_tensors
        if not ctx.exponent_tensor:
            b = ctx.b
        need_a, need_b = ctx.needs_input_grad[:2]
        g = (grad * out).mul_(uncapped)
        grad_a = grad_b = None
        if need_b:
            grad_b = sum_to_input(g * log_base, ctx.inputs[1])
        if need_a:
            # sign of a where |a| >= eps (a / |a| is exactly ±1), 0 under the floor (|a / eps| < 1)
            sign = (a / base).trunc_()
            grad_a = sum_to_input(g.mul_(b), (a.shape, a.dtype)).div_(base).mul_(sign)
        return grad_a, grad_b, None, None
