"""The protected operators differentiated twice (ML3's meta-gradient): inside
``twice_differentiable()`` their second derivatives are torch's, and the lean autograd Functions
are left out; outside it the lean ones run (and their backward is not differentiated again)."""

from __future__ import annotations

import pytest
import torch

from losslab.losses.grad_mode import lean_backward, twice_differentiable
from losslab.losses.protected import divide, power
from losslab.losses.selection import maximum, minimum, select

EPS, LIMIT, EXP_MAX = 1e-4, 1e6, 30.0

OPERATORS = {
    "div": lambda a, b: divide(a, b, EPS, LIMIT),
    "pow": lambda a, b: power(a, b, EPS, EXP_MAX),
    "min": minimum,
    "max": maximum,
    "where": lambda a, b: select(a > b, a * a, b * a),
}


def _inputs():
    generator = torch.Generator().manual_seed(0)
    a = (torch.rand(3, 4, generator=generator, dtype=torch.float64) + 0.2).requires_grad_()
    b = (torch.rand(3, 4, generator=generator, dtype=torch.float64) * 2 - 1).requires_grad_()
    return a, b


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_second_derivatives_inside_twice_differentiable_pass_gradgradcheck(name):
    fn = OPERATORS[name]
    a, b = _inputs()
    if name == "pow":
        b = (b.detach().abs() + 0.5).requires_grad_()  # away from the floor and the cap
    with twice_differentiable():
        assert torch.autograd.gradgradcheck(fn, (a, b), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_the_two_modes_give_the_same_values_and_first_gradients(name):
    fn = OPERATORS[name]
    a, b = _inputs()
    lean = fn(a, b)
    (lean_a, lean_b) = torch.autograd.grad(lean.sum(), (a, b))
    with twice_differentiable():
        plain = fn(a, b)
        (plain_a, plain_b) = torch.autograd.grad(plain.sum(), (a, b))
    assert torch.equal(lean, plain)
    assert torch.allclose(lean_a, plain_a, rtol=1e-12, atol=0)
    assert torch.allclose(lean_b, plain_b, rtol=1e-12, atol=0)


def test_the_mode_is_scoped_to_its_block():
    a, _ = _inputs()
    assert lean_backward(a)
    with twice_differentiable():
        assert not lean_backward(a)
    assert lean_backward(a)
    with torch.no_grad():
        assert not lean_backward(a)
