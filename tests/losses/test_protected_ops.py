"""The lean protected operators (``losslab.losses.selection``, ``losslab.losses.protected``) and
the compiler's shortcuts (identities, condition-only steps without autograd) give the values and
gradients of the plain torch formulas they replace.

The reference formulas are written out here as the language first had them. Each operator is
compared on a grid of edge values (zeros of both signs, the floor ``EPS`` and its neighbours,
negatives, ties, saturation and the cap of the exponent exactly met) in float64 and on random
float32 inputs; then whole programs: random trees of the genetic backend compiled with the
reference operators and with the lean ones, values and input gradients compared.
"""

from __future__ import annotations

import functools
import itertools
import math

import pytest
import torch

from losslab.losses import LOSS_VOCABULARY, LossSpec, compiler, ops, parse_loss, rewrites
from losslab.losses.compiler import Terminals, compile_program
from losslab.losses.fusion import gathered_terminal
from losslab.losses.nodes import Call, Node, bind_parameters, iter_nodes
from losslab.losses.ops import _EXP_MAX, EPS, LIMIT
from losslab.losses.protected import divide, power
from losslab.losses.selection import maximum, minimum, select
from losslab.search.gp.evolution import Breeder, Variation
from losslab.search.gp.language import GpLanguage
from losslab.search.gp.targets import LOSS_TERMINALS, viable_loss

# --- the plain formulas --------------------------------------------------------------------


def ref_select(cond, a, b):
    return torch.where(cond, a, b)


def ref_divide(a, b, eps, limit):
    # (the first code wrote ``torch.where(b < 0, -eps, eps)``: a float32 floor in float64 too)
    floor = torch.where(b < 0, torch.full_like(b, -eps), torch.full_like(b, eps))
    b = torch.where(b.abs() < eps, floor, b)
    return (a / b).clamp(-limit, limit)


def ref_power(a, b, eps, max_exponent):
    exponent = b * torch.log(a.abs().clamp_min(eps))
    return torch.exp(exponent.clamp(max=max_exponent))


REFERENCE = {
    "select": ref_select,
    "minimum": torch.minimum,
    "maximum": torch.maximum,
    "divide": ref_divide,
    "power": ref_power,
}

# --- one operator at a time ----------------------------------------------------------------

BELOW_EPS = math.nextafter(EPS, 0.0)
ABOVE_EPS = math.nextafter(EPS, 1.0)
EDGES = [
    0.0, -0.0, EPS, -EPS, BELOW_EPS, -BELOW_EPS, ABOVE_EPS, 0.5 * EPS, -0.5 * EPS, 1e-30,
    1.0, -1.0, 2.0, -3.5, 0.7, 1e6, -1e6, LIMIT, -LIMIT, 1e20, -1e20,
]  # fmt: skip


def _grid(dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Every pair of edge values: ``a`` and ``b`` of the same shape, ties included."""
    pairs = list(itertools.product(EDGES, EDGES))
    a = torch.tensor([x for x, _ in pairs], dtype=dtype)
    b = torch.tensor([y for _, y in pairs], dtype=dtype)
    return a, b


def _random(dtype=torch.float32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(2, 3, 4, 5, generator=generator, dtype=dtype) * 3
    b = torch.randn(2, 3, 4, 5, generator=generator, dtype=dtype) * 3
    b[0, 0] = a[0, 0]  # ties
    b[1, 1, :2] = 0.0
    return a, b


def _values_and_grads(fn, inputs, needs, upstream):
    """``fn(*inputs)`` and the gradient of ``(fn * upstream).sum()`` for the inputs in ``needs``."""
    leaves = [x.detach().clone().requires_grad_(need) for x, need in zip(inputs, needs)]
    out = fn(*leaves)
    wanted = [leaf for leaf in leaves if leaf.requires_grad]
    grads = torch.autograd.grad((out * upstream).sum(), wanted) if wanted else ()
    return out.detach(), grads


def _assert_same(lean, reference, inputs, rtol):
    """Equal values (exactly) and gradients (to ``rtol``) for every choice of inputs that
    require a gradient; the forward-only path too."""
    out = reference(*inputs)
    upstream = torch.linspace(-2.0, 3.0, out.numel(), dtype=out.dtype).reshape(out.shape)
    for needs in itertools.product((True, False), repeat=len(inputs)):
        value, grads = _values_and_grads(lean, inputs, needs, upstream)
        expected, expected_grads = _values_and_grads(reference, inputs, needs, upstream)
        torch.testing.assert_close(value, expected, rtol=0, atol=0, equal_nan=False)
        for grad, expected_grad in zip(grads, expected_grads, strict=True):
            assert grad.dtype == expected_grad.dtype and grad.shape == expected_grad.shape
            tiny = torch.finfo(grad.dtype).tiny  # differences among subnormals are rounding
            torch.testing.assert_close(grad, expected_grad, rtol=rtol, atol=tiny)
    with torch.no_grad():
        torch.testing.assert_close(lean(*inputs), out, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["minimum", "maximum"])
@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-10), (torch.float32, 1e-6)])
def test_min_and_max_equal_torch(name, dtype, rtol):
    lean = {"minimum": minimum, "maximum": maximum}[name]
    for a, b in (_grid(dtype), _random(dtype)):
        _assert_same(lean, REFERENCE[name], (a, b), rtol)
    a, b = _random(dtype)
    _assert_same(lean, REFERENCE[name], (a, torch.tensor(0.5, dtype=dtype)), rtol)  # a number
    _assert_same(lean, REFERENCE[name], (a[:, :, :1], b), rtol)  # broadcast


def test_min_gives_a_tie_half_the_gradient():
    a = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = torch.tensor([2.0, 2.0, 2.0], requires_grad=True)
    minimum(a, b).sum().backward()
    assert a.grad.tolist() == [1.0, 0.5, 0.0] and b.grad.tolist() == [0.0, 0.5, 1.0]


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-10), (torch.float32, 1e-6)])
def test_select_equals_where(dtype, rtol):
    for a, b in (_grid(dtype), _random(dtype)):
        for cond in (a < b, a >= 0.5, torch.ones_like(a, dtype=torch.bool)):
            _assert_same(lambda x, y, c=cond: select(c, x, y), _where(cond), (a, b), rtol)
    a, b = _random(dtype)
    number = torch.tensor(0.25, dtype=dtype)
    _assert_same(lambda x, y: select(a > 0, x, y), _where(a > 0), (number, b), rtol)
    _assert_same(lambda x, y: select(a > 0, x, y), _where(a > 0), (b[:1], number), rtol)


def _where(cond):
    return lambda x, y: ref_select(cond, x, y)


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-10), (torch.float32, 2e-6)])
def test_divide_equals_the_masked_formula(dtype, rtol):
    a, b = _grid(dtype)
    exact = float(torch.tensor(3.0, dtype=dtype) / torch.tensor(7.0, dtype=dtype))
    limits = (LIMIT, exact)  # the second is met exactly by 3 / 7: a tie keeps its gradient
    for limit in limits:
        lean = lambda x, y, m=limit: divide(x, y, EPS, m)  # noqa: E731
        reference = lambda x, y, m=limit: ref_divide(x, y, EPS, m)  # noqa: E731
        _assert_same(lean, reference, (a, b), rtol)
    lean = lambda x, y: divide(x, y, EPS, LIMIT)  # noqa: E731
    reference = lambda x, y: ref_divide(x, y, EPS, LIMIT)  # noqa: E731
    _assert_same(lean, reference, _random(dtype), rtol)
    x, y = _random(dtype)
    _assert_same(lean, reference, (torch.tensor(2.0, dtype=dtype), y), rtol)  # number / tensor
    _assert_same(lean, reference, (x, y[:1, :1]), rtol)  # broadcast denominator


def test_divide_floors_negative_zero_as_positive():
    b = torch.tensor([-0.0, 0.0, -0.5 * EPS], dtype=torch.float64)
    quotient = divide(torch.ones(3, dtype=torch.float64), b, EPS, LIMIT)
    assert quotient.tolist() == [1 / EPS, 1 / EPS, -1 / EPS]


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-10), (torch.float32, 2e-6)])
def test_power_equals_the_log_space_formula(dtype, rtol):
    a, b = _grid(dtype)
    b = b.clamp(-40.0, 40.0)  # exponents a searched tree can reach without the cap
    exact = float(torch.tensor(2.5, dtype=dtype) * torch.log(torch.tensor(3.0, dtype=dtype)))
    for cap in (_EXP_MAX, exact):  # the second is met exactly by 3 ** 2.5: a tie
        lean = lambda x, y, m=cap: power(x, y, EPS, m)  # noqa: E731
        reference = lambda x, y, m=cap: ref_power(x, y, EPS, m)  # noqa: E731
        _assert_same(lean, reference, (torch.cat([a, a.new_tensor([3.0])]),
                                       torch.cat([b, b.new_tensor([2.5])])), rtol)  # fmt: skip
    lean = lambda x, y: power(x, y, EPS, _EXP_MAX)  # noqa: E731
    reference = lambda x, y: ref_power(x, y, EPS, _EXP_MAX)  # noqa: E731
    x, y = _random(dtype)
    _assert_same(lean, reference, (x, y), rtol)
    _assert_same(lean, reference, (torch.tensor(0.3, dtype=dtype), y), rtol)  # number ** tensor
    for exponent in (0.5, -1.5, 7.0):  # tensor ** number
        _assert_same(lambda t, e=exponent: power(t, e, EPS, _EXP_MAX),
                     lambda t, e=exponent: ref_power(t, e, EPS, _EXP_MAX), (a,), rtol)  # fmt: skip


def test_a_wrong_gradient_is_caught():
    """The comparison above notices a gradient that is off where a mask decides it."""
    a, b = _grid()

    def wrong(x, y):  # torch.minimum, but a tie gives the whole gradient to x
        return torch.where(x <= y, x, y)

    with pytest.raises(AssertionError):
        _assert_same(wrong, torch.minimum, (a, b), 1e-10)


# --- whole programs ------------------------------------------------------------------------


def _use_reference(patch) -> None:
    """The language as it was: plain formulas, no identities, nothing decided by the bounds or
    rewritten as ``abs``, every step recorded."""
    for name, fn in REFERENCE.items():
        patch.setattr(ops, name, fn)
    patch.setattr(compiler, "_mask", lambda compare, a, b: compare(a, b))  # booleans
    patch.setattr(compiler, "_identity", lambda node, args, vocabulary: None)
    patch.setattr(rewrites, "simplify", lambda node, vocabulary: node)
    patch.setattr(compiler, "condition_only", lambda steps, outputs, comparisons: frozenset())


@functools.cache
def _trees(count: int, seed: int = 1) -> tuple[Node, ...]:
    """``count`` viable random loss trees of the genetic backend's first generation."""
    language = GpLanguage(LOSS_VOCABULARY, LOSS_TERMINALS)
    breeder = Breeder(
        language,
        Variation(init_min_height=3, init_max_height=6),
        canonical=lambda node: str(LossSpec.from_tree(node)),
        viable=viable_loss,
    )
    trees = []
    for tree in breeder.random_trees(2 * count, seed):
        text = breeder.text_of(tree)
        if text is not None and len(trees) < count:
            spec = parse_loss(text)
            trees.append(bind_parameters(spec.tree, spec.parameters))
    return tuple(trees)


def _run(program, logits: torch.Tensor, labels: torch.Tensor):
    """Values and the gradient of their weighted sum with respect to ``logits`` (its dtype kept)."""
    z = logits.clone().requires_grad_()
    terminals = Terminals(logits=z, labels=labels)
    terminals._cache["z"] = z
    for name in ("y", "fg", "w", "gathered:y", "gathered:fg"):  # every terminal in z's dtype
        if name.startswith("gathered:"):
            value = gathered_terminal(terminals, name.split(":")[1])
        else:
            value = terminals.get(name)
        terminals._cache[name] = value.to(z.dtype)
    terminals.share_log = {"p", "logp"} <= program.terminals
    (value,) = program.run(terminals)
    weights = torch.linspace(0.5, 1.5, value.numel(), dtype=value.dtype).reshape(value.shape)
    total = (value * weights).sum()
    grad = torch.autograd.grad(total, z, allow_unused=True)[0] if total.requires_grad else None
    return value.detach(), grad


def _batch(dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    logits = (torch.randn(2, 4, 5, 4, 3, generator=generator) * 3).to(dtype)
    labels = torch.randint(0, 4, (2, 5, 4, 3), generator=generator)
    return logits, labels


def _finite(value, grad) -> bool:
    return bool(value.isfinite().all()) and (grad is None or bool(grad.isfinite().all()))


LEAN_FUNCTIONS = {"where", "min", "max", "pow"}


@pytest.mark.parametrize(
    "dtype,rtol,fuse",
    [(torch.float64, 1e-10, False), (torch.float64, 1e-10, True), (torch.float32, 1e-4, True)],
)
def test_random_trees_equal_the_reference(monkeypatch, dtype, rtol, fuse):
    logits, labels = _batch(dtype)
    compared, lean_nodes = 0, 0
    for tree in _trees(150):
        with monkeypatch.context() as patch:
            _use_reference(patch)
            reference = compile_program([tree], fuse_labels=fuse)
            expected, expected_grad = _run(reference, logits, labels)
        if not _finite(expected, expected_grad):
            continue  # outside the language's contract; nothing to compare
        value, grad = _run(compile_program([tree], fuse_labels=fuse), logits, labels)
        torch.testing.assert_close(value, expected, rtol=rtol, atol=1e-30)
        if expected_grad is None:
            assert grad is None or not grad.any()
        else:
            scale = float(expected_grad.abs().max())
            torch.testing.assert_close(grad, expected_grad, rtol=rtol, atol=rtol * scale + 1e-300)
        compared += 1
        lean_nodes += sum(
            1
            for node in iter_nodes(tree)
            if (isinstance(node, Call) and node.fn in LEAN_FUNCTIONS)
            or getattr(node, "op", None) in ("/", "**")
        )
    assert compared >= 100
    assert lean_nodes >= 300  # the trees exercise the lean operators


def test_condition_only_steps_run_without_autograd():
    program = compile_program([parse_loss("vmean(where(p * 2 > 0.5, logp, y * 3))").tree])
    detached = [program.steps[i][1] for i in program.detached]
    assert len(detached) == 1  # p * 2, read by the comparison only
    shared = compile_program([parse_loss("vmean(where(p * 2 > 0.5, p * 2, y))").tree])
    assert not shared.detached  # p * 2 is also a value
    logits, labels = _batch(torch.float64)
    value, grad = _run(program, logits, labels)
    assert grad is not None and grad.abs().sum() > 0 and value.isfinite().all()


def test_identities_are_not_computed():
    plain = compile_program([parse_loss("vmean(-y * logp)").tree])
    with_identities = compile_program([parse_loss("vmean(-(y * 1) * (logp + 0) - 0)").tree])
    assert len(with_identities.steps) == len(plain.steps)
    kept = compile_program([parse_loss("vmean(0 - logp * y)").tree])  # 0 - x is not x
    assert any(slots[:1] == (0.0,) for _, _, slots in kept.steps)


@pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
def test_comparisons_give_the_boolean_as_zeros_and_ones(op):
    compare = ops.COMPARISONS[op]
    x = torch.tensor([0.1, 0.2, 0.30000001, -0.0, 0.0, 1e-8], dtype=torch.float32)
    others = (0.1, 0.0, torch.tensor(0.2, dtype=torch.float64), x.flip(0), x.double()[:1])
    for other in others:
        mask = compiler._mask(compare, x, other)
        assert mask.dtype == torch.result_type(x, other)
        assert torch.equal(mask, compare(x, other).to(mask.dtype))
