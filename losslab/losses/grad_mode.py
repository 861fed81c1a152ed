"""Whether a compiled loss may be differentiated twice, and which operator code that chooses.

The protected operators (``losslab.losses.protected``: ``div``, ``pow``;
``losslab.losses.selection``: ``where``, ``min``, ``max``) compute their gradient with autograd
Functions whose backward is fast but not differentiable again. Meta-learning differentiates a
loss twice: ML3's meta-gradient differentiates the inner steps' gradients, which run through
the base loss of the loss network (``torch.autograd.grad(create_graph=True)`` or ``higher``).
Inside :func:`twice_differentiable` the operators use plain, twice differentiable torch code with
the same values instead. :func:`sum_to_input` is the broadcast reduction their backwards share.

Example:
    >>> from losslab.losses.grad_mode import twice_differentiable, lean_backward
    >>> with twice_differentiable():
    ...     inside = lean_backward()
    >>> inside
    False
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

import torch

__all__ = ["lean_backward", "plain_backward", "sum_to_input", "twice_differentiable"]

_TWICE: ContextVar[bool] = ContextVar("losslab_twice_differentiable", default=False)


@contextlib.contextmanager
def twice_differentiable() -> Iterator[None]:
    """Within the block, losses built from the protected operators can be differentiated twice."""
    token = _TWICE.set(True)
    try:
        yield
    finally:
        _TWICE.reset(token)


def plain_backward() -> bool:
    """Whether the plain, twice differentiable operator code is asked for."""
    return _TWICE.get()


def lean_backward(*tensors: torch.Tensor) -> bool:
    """Whether an operator over ``tensors`` uses its once differentiable autograd Function: a
    gradient is recorded, one of them requires it, and no second derivative is asked for."""
    if _TWICE.get():
        return False
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def sum_to_input(grad: torch.Tensor, like: tuple[torch.Size, torch.dtype]) -> torch.Tensor:
    """``grad`` summed over the dimensions an input of ``(shape, dtype)`` was broadcast along,
    in its dtype: the last step of every lean backward."""
    shape, dtype = like
    if grad.shape != shape:
        grad = grad.contiguous().sum_to_size(shape)  # summed in the order torch sums it
    return grad.to(dtype)
