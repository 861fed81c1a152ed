"""Label sums (``losslab.losses.fusion``): ``vsum(y * G)`` and ``vmean(y * G)`` computed at the
labels give the unfused program's values and input gradients, in float64, for every library
loss that has one, for hand-picked forms and for random ``G``; what cannot be fused is not."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from losslab.losses import LOSS_VOCABULARY, get_loss, list_losses, parse_loss, rewrites
from losslab.losses.compiler import Terminals, compile_program
from losslab.losses.fusion import label_sums
from losslab.losses.nodes import Call, Var, bind_parameters, iter_nodes

from .grammar import voxel

# The library losses with a sum taken to the labels (cross-entropy's ``vmean(-y * logp)`` and its
# relatives); the region losses' ``vsum(p * y)`` reads no ``logp`` and stays whole, unless the
# candidate reads ``logp`` elsewhere (dice_ce, dice_focal, tversky_focal).
FUSED = {
    "ce",
    "wce",
    "focal",
    "asymmetric_focal",
    "asymmetric_large_margin",
    "dice_ce",
    "dice_focal",
    "tversky_focal",
}


def _inputs(seed: int = 0, scale: float = 3.0, shape=(2, 4, 5, 4, 3)):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(*shape, generator=generator, dtype=torch.float64) * scale
    labels = torch.randint(0, shape[1] - 1, (shape[0], *shape[2:]), generator=generator)
    labels[0, 0, 0, 0] = 0  # the last class is absent
    return logits, labels


def _programs(terms):
    trees = [bind_parameters(t.tree, t.parameters) for t in terms]
    return compile_program(trees, fuse_labels=True), compile_program(trees)


def _run(program, logits, labels):
    """Values and the gradient of their sum with respect to float64 logits."""
    z = logits.clone().requires_grad_()
    terminals = Terminals(logits=z, labels=labels)
    terminals._cache["z"] = z  # keep float64 (the library casts z to float32)
    terminals.share_log = {"p", "logp"} <= program.terminals
    values = program.run(terminals)
    total = sum(v.sum() for v in values)
    if not total.requires_grad:  # no prediction in the loss
        return [v.detach() for v in values], None
    (grad,) = torch.autograd.grad(total, z, allow_unused=True)
    return [v.detach() for v in values], grad


def assert_fused_equals_unfused(terms, seed: int = 0, scale: float = 3.0) -> None:
    fused, unfused = _programs(terms)
    logits, labels = _inputs(seed, scale)
    values, grad = _run(fused, logits, labels)
    expected_values, expected_grad = _run(unfused, logits, labels)
    for value, expected in zip(values, expected_values, strict=True):
        torch.testing.assert_close(value, expected, rtol=1e-12, atol=1e-12)
    if expected_grad is None:
        assert grad is None or not grad.any()
    else:
        torch.testing.assert_close(grad, expected_grad, rtol=1e-10, atol=1e-12)


def _kinds(program) -> set[str]:
    return {kind for kind, _, _ in program.steps}


@pytest.mark.parametrize("name", list_losses())
def test_every_library_loss_fused_equals_unfused(name):
    terms = get_loss(name).terms
    fused, _ = _programs(terms)
    assert ("labels" in _kinds(fused)) == (name in FUSED), _kinds(fused)
    assert_fused_equals_unfused(terms)


@pytest.mark.parametrize(
    "text",
    [
        "vmean(-y * logp)",
        "-vsum(logp * y)",
        "vsum(y * logp / (p + 1))",  # a division with the target in the numerator
        "vmean(y * where(p > 0.3, -logp, z ** 2) * fg)",
        "vmean(-y * log_softmax(z - 2 * y * fg))",  # a class-mixing sub-tree, gathered whole
        "vsum(y * dist * p) + vmean(-y * logp * cmean(vsum(p)))",  # a scalar inside the sum
        "vmean(y * sqrt(p) * min(z, 1) * exp(-abs(logp)))",
        "nc * vmean(-(1 - p) ** 2.5 * y * logp)",  # a real power: protected, in log space
    ],
)
def test_hand_picked_forms_are_fused_and_equal(text):
    spec = parse_loss(text)
    fused, _ = _programs([spec])
    assert "labels" in _kinds(fused)
    assert_fused_equals_unfused([spec])


@pytest.mark.parametrize(
    "text",
    [
        "vsum(y ** 2 * logp)",  # a protected real power of 0 is not 0
        "vsum((y - p) ** 2)",  # does not vanish off the label
        "vsum(y + logp * y)",
        "vsum(y * fg)",  # no prediction: nothing to gain
        "vsum(p * y) + vsum(y * (1 - p) ** 2)",  # no logp: the full p is cheaper than logp
        "topk_mean(-y * logp, 0.1)",  # not a sum
    ],
)
def test_forms_that_do_not_vanish_off_the_label_are_not_fused(text):
    fused, unfused = _programs([parse_loss(text)])
    assert "labels" not in _kinds(fused)
    assert len(fused.steps) == len(unfused.steps)


@pytest.mark.parametrize(
    "text",
    [
        "vsum(p * y) + vmean(-y * logp)",  # true positives beside a cross-entropy
        "vsum(y) * vmean(-y * logp)",  # class sizes
        "1 - (2 * vsum(p * y) + 1e-5) / (vsum(p) + vsum(y) + 1e-5) + vmean(logp)",
        "vsum(y * fg * (1 - p) ** 2) - cmean(vsum(logp))",  # logp outside any label sum
    ],
)
def test_with_logp_computed_the_other_sums_go_to_the_labels_too(text):
    spec = parse_loss(text)
    fused, unfused = _programs([spec])
    sums = sum(kind == "labels" for kind, _, _ in fused.steps)
    assert sums == sum(
        isinstance(n, Call) and n.fn in ("vsum", "vmean") and _reads_y(n)
        for n in iter_nodes(spec.tree)
    )
    assert "y" not in fused.terminals  # on the CPU the one-hot target is never built
    assert_fused_equals_unfused([spec])


def _reads_y(node) -> bool:
    return any(isinstance(n, Var) and n.name == "y" for n in iter_nodes(node))


def test_dice_ce_takes_its_true_positives_to_the_labels():
    """Dice + CE reads ``logp`` (its CE): Dice's ``vsum(p * y)`` and ``vsum(y)`` are label
    sums, the whole ``p`` only feeds ``vsum(p)``, and no one-hot target is built."""
    fused, _ = _programs(get_loss("dice_ce").terms)
    assert sum(kind == "labels" for kind, _, _ in fused.steps) == 3
    assert "y" not in fused.terminals and {"p", "logp"} <= fused.terminals
    alone, _ = _programs(get_loss("dice").terms)
    assert "labels" not in _kinds(alone) and "logp" not in alone.terminals


def test_focal_never_computes_the_full_probabilities():
    """Focal reads ``p`` and ``logp`` only inside its sum: ``p`` is taken at the labels only."""
    fused, _ = _programs(get_loss("focal").terms)
    assert "p" not in fused.terminals and "y" not in fused.terminals
    whole = [payload for kind, payload, _ in fused.steps if kind == "terminal"]
    gathered = [payload for kind, payload, _ in fused.steps if kind == "gathered"]
    assert whole == ["nc"] and sorted(gathered) == ["logp", "p", "y"]
    assert fused.terminals == {"logp", "nc"}  # the gathered ones come from the whole logp


def test_cuda_and_cpu_label_sums_agree(monkeypatch):
    """The batched product with ``y`` (CUDA's path) against ``scatter_add`` (the CPU's)."""
    logits, labels = _inputs(seed=3)
    terminals = Terminals(logits=logits, labels=labels)
    value = torch.randn(labels.unsqueeze(1).shape, dtype=torch.float64)
    on_cpu = label_sums(terminals, value, mean=True)
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    as_on_cuda = label_sums(terminals, value, mean=True)
    monkeypatch.undo()
    torch.testing.assert_close(as_on_cuda, on_cpu, rtol=1e-12, atol=1e-14)
    expected = torch.stack([value[:, 0][labels == c].sum() for c in range(4)]) / labels.numel()
    torch.testing.assert_close(on_cpu, expected, rtol=1e-12, atol=1e-14)


def test_probabilities_or_a_target_tensor_take_the_unfused_program():
    compiled = get_loss("ce").compile()
    logits, labels = _inputs()
    probs = torch.softmax(logits, 1).float()
    onehot = torch.nn.functional.one_hot(labels, 4).movedim(-1, 1).float()
    from_probs = compiled.evaluate(Terminals(probs=probs, onehot=onehot))[0]
    from_logits = compiled(logits.float(), labels)
    torch.testing.assert_close(from_probs, from_logits, rtol=1e-5, atol=1e-5)
    soft = onehot * 0.9 + 0.1 / 4  # a target given as a tensor is read as it is, not as labels
    logp = torch.log_softmax(logits.float(), 1)
    expected = 4 * (-soft * logp).mean((0, 2, 3, 4))
    given = compiled.evaluate(Terminals(logits=logits.float(), labels=labels, onehot=soft))[0]
    torch.testing.assert_close(given, expected, rtol=1e-5, atol=1e-6)


@st.composite
def fusable(draw) -> str:
    """``vsum`` / ``vmean`` of ``y`` times (or over) a random voxel expression ``G``."""
    g = draw(voxel(1))
    form = draw(
        st.sampled_from(
            ["y * logp * ({g})", "-({g}) * y", "y / (({g}) + 2)", "log_softmax({g}) * y"]
        )
    )
    return f"{draw(st.sampled_from(['vsum', 'vmean']))}({form.format(g=g)})"


@settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=list(HealthCheck),
)
@given(fusable(), st.integers(0, 2**31 - 1), st.sampled_from([0.1, 3.0]))
def test_random_sums_fused_equal_unfused(text, seed, scale):
    spec = parse_loss(text)
    fused, unfused = _programs([spec])
    logits, labels = _inputs(seed, scale)
    expected_values, expected_grad = _run(unfused, logits, labels)
    assume(all(torch.isfinite(v).all() for v in expected_values))
    assume(expected_grad is None or torch.isfinite(expected_grad).all())
    if "labels" not in _kinds(fused):  # G did not read logp, once simplified (the compiler's)
        nodes = list(iter_nodes(rewrites.simplify(spec.tree, LOSS_VOCABULARY)))
        assert Var("logp") not in nodes, text
        assert not any(isinstance(n, Call) and n.fn == "log_softmax" for n in nodes), text
        return
    values, grad = _run(fused, logits, labels)
    for value, expected in zip(values, expected_values, strict=True):
        # a sum of target-only values (``y / (y + 2)``) stays float32, as y is
        tol = 1e-9 if expected.dtype == torch.float64 else 1e-5
        torch.testing.assert_close(value, expected, rtol=tol, atol=tol)
    if expected_grad is not None:
        torch.testing.assert_close(grad, expected_grad, rtol=1e-7, atol=1e-9)
