"""ML3 meta-training: engines agree, the meta-gradient is right, and it learns for a rare class."""

from __future__ import annotations

import math
import sys

import pytest
import torch
from torch import nn

from losslab.losses.learned import LossNetwork
from losslab.losses.resolve import resolve_loss
from losslab.losses.spec import reduce
from losslab.search.ml3 import meta as meta_module
from losslab.search.ml3.engines import WorstK, soft_dice, validation_objective
from losslab.search.ml3.meta import MetaConfig, MetaGradient, meta_gradient, meta_train

C = 3


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread is faster, and immune to a busy machine's spinning threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _conv_net(seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.Tanh(), nn.Conv3d(4, C, 1))
    return net.to(dtype)


def _random_batch(seed: int, size: int = 6, batch: int = 2, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 1, size, size, size, generator=generator, dtype=dtype)
    labels = torch.randint(0, C, (batch, size, size, size), generator=generator)
    return x, labels


def _strong_net() -> LossNetwork:
    """A float64 loss network far from its near-zero start, so the learned part matters."""
    torch.manual_seed(3)
    features = ("p", "y", "logp", "w", "progress")
    return LossNetwork(features=features, base="dice", init_std=0.5, init_bias=0.0).double()


def _flat(grads) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads])


# --- engines -------------------------------------------------------------------------------


@pytest.mark.parametrize("model_name", ["conv", "unet3d"])
def test_engines_give_the_same_meta_gradient(model_name):
    if model_name == "conv":
        model, size, steps = _conv_net(dtype=torch.float64), 6, 3
    else:
        from losslab.models import get_model

        torch.manual_seed(0)
        model = get_model("unet3d", in_channels=1, num_classes=C, patch_size=(8, 8, 8), size="tiny")
        model, size, steps = model.double(), 8, 2
    net = _strong_net()
    inner = [_random_batch(1, size), _random_batch(2, size)]
    val = _random_batch(3, size)
    w = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    results = {}
    for engine in ("torch.func", "higher"):
        config = MetaConfig(inner_steps=steps, inner_lr=0.3, engine=engine)
        results[engine] = meta_gradient(
            net,
            model,
            inner,
            val,
            config,
            class_weights=w,
            progress=[0.1 * k for k in range(steps)],
        )
    a, b = _flat(results["torch.func"].grads), _flat(results["higher"].grads)
    assert a.dtype == torch.float64 and a.abs().max() > 1e-4
    assert (a - b).abs().max() <= 1e-6 * max(1.0, float(a.abs().max()))
    assert abs(float(results["torch.func"].outer_loss - results["higher"].outer_loss)) <= 1e-12
    for name, p in results["torch.func"].params.items():
        assert torch.allclose(p, results["higher"].params[name], atol=1e-10, rtol=0)


@pytest.mark.parametrize("engine", ["torch.func", "higher"])
def test_meta_gradient_is_nonzero_and_first_order_is_zero(engine):
    torch.manual_seed(0)
    net = LossNetwork(base="ce").double()  # the near-zero start: still a gradient everywhere
    model = _conv_net(dtype=torch.float64)
    inner, val = _random_batch(1), _random_batch(2)
    full = meta_gradient(net, model, inner, val, MetaConfig(inner_steps=2, engine=engine))
    assert all(bool((g != 0).any()) for g in full.grads)
    config = MetaConfig(inner_steps=2, engine=engine, first_order=True)
    first = meta_gradient(net, model, inner, val, config)
    assert all(bool((g == 0).all()) for g in first.grads)
    assert float(first.outer_loss) == pytest.approx(float(full.outer_loss), abs=1e-12)


def test_meta_gradient_matches_finite_differences():
    net = _strong_net()
    model = _conv_net(dtype=torch.float64)
    inner, val = [_random_batch(1), _random_batch(2)], _random_batch(3)
    config = MetaConfig(inner_steps=2, inner_lr=0.3)
    w = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    grads = _flat(meta_gradient(net, model, inner, val, config, class_weights=w).grads)
    params = list(net.parameters())
    base = [p.detach().clone() for p in params]
    generator = torch.Generator().manual_seed(0)
    directions = [torch.randn(p.shape, generator=generator, dtype=p.dtype) for p in params]

    def outer_at(t: float) -> float:
        with torch.no_grad():
            for p, p0, u in zip(params, base, directions):
                p.copy_(p0 + t * u)
        return float(meta_gradient(net, model, inner, val, config, class_weights=w).outer_loss)

    eps = 1e-5
    numeric = (outer_at(eps) - outer_at(-eps)) / (2 * eps)
    outer_at(0.0)
    analytic = float(grads @ _flat(directions))
    assert abs(analytic) > 1e-3
    assert numeric == pytest.approx(analytic, rel=1e-6, abs=1e-9)


def test_meta_gradient_leaves_the_model_alone_and_engines_agree_with_batch_norm():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv3d(1, 4, 3, padding=1), nn.BatchNorm3d(4), nn.Tanh(), nn.Conv3d(4, C, 1)
    ).double()  # train mode: batch statistics, running buffers that must not move
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads = []
    for engine in ("torch.func", "higher"):
        config = MetaConfig(inner_steps=2, engine=engine)
        mg = meta_gradient(_strong_net(), model, _random_batch(1), _random_batch(2), config)
        grads.append(_flat(mg.grads))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert (grads[0] - grads[1]).abs().max() <= 1e-6 * float(grads[0].abs().max())


# --- the validation objective ---------------------------------------------------------------


def test_worst_k_is_a_soft_minimum_over_the_foreground():
    dice = torch.tensor([0.1, 0.9, 0.2, 0.6])
    v = WorstK(k=1, temperature=0.01)(dice)
    assert v[0] == 0 and int(v.argmax()) == 2 and float(v[2]) > 0.99
    v2 = WorstK(k=2, temperature=0.01)(dice)
    assert torch.allclose(v2, torch.tensor([0.0, 0.0, 0.5, 0.5]), atol=1e-3)
    v_all = WorstK(k=10, temperature=0.01)(dice)
    assert torch.allclose(v_all, torch.tensor([0.0, 1 / 3, 1 / 3, 1 / 3]), atol=1e-3)
    assert float(validation_objective(dice, WorstK(k=1, temperature=0.01))) == pytest.approx(
        0.2, abs=1e-3
    )


def test_fixed_objective_weights():
    dice = torch.tensor([0.1, 0.9, 0.2])
    assert float(validation_objective(dice, torch.tensor([0.0, 1.0, 1.0]))) == pytest.approx(0.55)
    assert torch.equal(MetaConfig().objective_weights(3), torch.tensor([0.0, 1.0, 1.0]))
    assert torch.equal(MetaConfig(objective="all").objective_weights(3), torch.ones(3))
    with pytest.raises(ValueError, match="ml3.objective_weights"):
        validation_objective(dice, torch.ones(4))
    with pytest.raises(ValueError, match="ml3.objective_weights"):
        validation_objective(dice, torch.zeros(3))


def test_soft_dice_is_one_minus_the_library_dice():
    x, labels = _random_batch(1, dtype=torch.float32)
    logits = _conv_net()(x)
    assert torch.equal(
        soft_dice(logits, labels), 1 - resolve_loss("dice").compile()(logits, labels)
    )


# --- the rare class ---------------------------------------------------------------------------

SIZE, BIG, RARE = 8, 4, 2


def _rare_volume(seed: int):
    """Background 0, a 4^3 block of class 1 and a 2^3 cube of class 2 (1.6 % of the voxels) per
    image; intensity 0, 1, 2 by class plus noise, so a voxel-wise linear model can separate them."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.zeros(2, SIZE, SIZE, SIZE, dtype=torch.long)
    for b in range(2):
        o = torch.randint(0, SIZE - BIG + 1, (3,), generator=generator)
        labels[b, o[0] : o[0] + BIG, o[1] : o[1] + BIG, o[2] : o[2] + BIG] = 1
        r = torch.randint(0, SIZE - RARE + 1, (3,), generator=generator)
        labels[b, r[0] : r[0] + RARE, r[1] : r[1] + RARE, r[2] : r[2] + RARE] = 2
    x = labels.float() + 0.2 * torch.randn(labels.shape, generator=generator)
    return x.unsqueeze(1), labels


def _linear_model(seed: int = 2) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Conv3d(1, C, 1)


def _rare_pull(net: LossNetwork, train, val, config: MetaConfig) -> float:
    """How hard the learned part pulls the rare class up where plain CE missed it: minus its
    gradient w.r.t. the rare logits, summed over the rare voxels of a model trained K steps with
    CE alone."""
    model = _linear_model()
    ce = resolve_loss("ce").compile()
    sgd = torch.optim.SGD(model.parameters(), lr=config.inner_lr)
    for _ in range(config.inner_steps):
        sgd.zero_grad()
        reduce(ce(model(train[0]), train[1])).backward()
        sgd.step()
    logits = model(val[0]).detach().requires_grad_()
    (grad,) = torch.autograd.grad(net(logits, val[1]).sum(), logits)
    return float(-grad[:, 2][val[1] == 2].sum())


def _meta_train_rare(objective: str):
    torch.manual_seed(2)
    net = LossNetwork(base="ce")
    train, val = _rare_volume(5), _rare_volume(6)
    config = MetaConfig(inner_steps=4, inner_lr=4.0, outer_lr=0.005, objective=objective)

    def dice() -> torch.Tensor:
        return meta_gradient(net, _linear_model(), [train], val, config).dice

    before, pull_before = dice(), _rare_pull(net, train, val, config)
    result = meta_train(net, lambda s: _linear_model(), lambda s: train, lambda s: val, 60, config)
    assert result.status == "ok" and result.skipped == 0 and len(result.curve) == 60
    return before, dice(), pull_before, _rare_pull(net, train, val, config)


def test_worst_k_meta_training_learns_for_the_rare_class():
    before, after, pull_before, pull_after = _meta_train_rare("worst_k")
    assert float(before[2]) < 0.1  # plain CE (the near-zero start) misses the rare class
    assert float(after[2]) > float(before[2]) + 0.05
    assert pull_after > 0 and pull_after > 100 * abs(pull_before)


def test_foreground_mean_favours_the_large_class():
    before, after, _, _ = _meta_train_rare("foreground")
    assert float(after[1]) > float(before[1]) + 0.1
    assert float(after[2]) <= float(before[2]) + 0.01


# --- bad input and failures ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"inner_steps": 0}, "ml3.inner_steps: must be an integer >= 1, got 0"),
        ({"inner_steps": 1.5}, "ml3.inner_steps"),
        ({"engine": "jax"}, "ml3.engine: 'jax'"),
        ({"inner_lr": 0.0}, "ml3.inner_lr"),
        ({"outer_lr": float("nan")}, "ml3.outer_lr"),
        ({"objective": "median"}, "ml3.objective"),
        ({"reset_every": 0}, "ml3.reset_every"),
        ({"first_order": 1}, "ml3.first_order"),
    ],
)
def test_bad_config_names_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        MetaConfig(**kwargs)


def test_unknown_key_is_named():
    with pytest.raises(ValueError, match="ml3.inner_step: unknown key"):
        MetaConfig.from_mapping({"inner_step": 2})
    assert MetaConfig.from_mapping({"inner_steps": 3}).inner_steps == 3


def test_higher_missing_is_a_clear_error(monkeypatch):
    config = MetaConfig(engine="higher")
    monkeypatch.setitem(sys.modules, "higher", None)
    with pytest.raises(ValueError, match="ml3.engine: 'higher' cannot be imported"):
        MetaConfig(engine="higher")
    with pytest.raises(ValueError, match="ml3.engine: 'higher' cannot be imported"):
        meta_gradient(
            LossNetwork(),
            _conv_net(),
            _random_batch(1, dtype=torch.float32),
            _random_batch(2, dtype=torch.float32),
            config,
        )
    MetaConfig()  # torch.func needs no higher


def test_bad_arguments_of_the_loops():
    net, model = LossNetwork(), _conv_net()
    batch = _random_batch(1, dtype=torch.float32)
    with pytest.raises(ValueError, match="ml3.inner_batches"):
        meta_gradient(net, model, [], batch, MetaConfig())
    with pytest.raises(ValueError, match="ml3.progress"):
        meta_gradient(net, model, batch, batch, MetaConfig(inner_steps=2), progress=[0.0])
    with pytest.raises(ValueError, match="ml3.outer_steps"):
        meta_train(net, lambda s: model, lambda s: batch, lambda s: batch, 0, MetaConfig())
    with pytest.raises(ValueError, match="ml3.first_order"):
        meta_train(
            net, lambda s: model, lambda s: batch, lambda s: batch, 1, MetaConfig(first_order=True)
        )


def _nan_after(batch, bad_steps):
    x, labels = batch
    return lambda s: (x * float("nan"), labels) if s in bad_steps else (x, labels)


def test_non_finite_steps_are_skipped_and_counted():
    torch.manual_seed(0)
    net, batch = LossNetwork(), _random_batch(1, dtype=torch.float32)
    states, flags = [], []

    def on_step(step, outer, value, skipped):
        states.append([p.detach().clone() for p in net.parameters()])
        flags.append((skipped, math.isfinite(outer)))

    result = meta_train(
        net,
        lambda s: _conv_net(),
        _nan_after(batch, {1, 2}),
        lambda s: batch,
        4,
        MetaConfig(),
        on_step=on_step,
    )
    assert result.status == "ok" and result.reason is None
    assert result.skipped == 2 and result.steps == 4 and len(result.curve) == 4
    assert flags == [(False, True), (True, False), (True, False), (False, True)]
    assert all(torch.equal(a, b) for a, b in zip(states[0], states[2]))  # skipped: no update
    assert not all(torch.equal(a, b) for a, b in zip(states[2], states[3]))


def test_five_non_finite_steps_in_a_row_fail_meta_training():
    net, batch = LossNetwork(), _random_batch(1, dtype=torch.float32)
    result = meta_train(
        net,
        lambda s: _conv_net(),
        _nan_after(batch, set(range(1, 100))),
        lambda s: batch,
        20,
        MetaConfig(),
    )
    assert result.status == "failed" and result.steps == 6 and result.skipped == 5
    assert "5 non-finite meta-steps in a row" in result.reason and "outer step 5" in result.reason


def test_non_finite_meta_gradient_is_skipped(monkeypatch):
    real = meta_module.meta_gradient

    def poisoned(*args, **kwargs) -> MetaGradient:
        mg = real(*args, **kwargs)
        return MetaGradient(
            mg.outer_loss,
            mg.val_objective,
            mg.dice,
            tuple(g * float("inf") for g in mg.grads),
            mg.params,
        )

    monkeypatch.setattr(meta_module, "meta_gradient", poisoned)
    batch = _random_batch(1, dtype=torch.float32)
    result = meta_train(
        LossNetwork(),
        lambda s: _conv_net(),
        lambda s: batch,
        lambda s: batch,
        7,
        MetaConfig(max_consecutive_skips=3),
    )
    assert result.status == "failed" and result.skipped == 3
    assert "non-finite meta-gradient" in result.reason


def test_reset_every_continues_the_model():
    made, batch = [], _rare_volume(5)

    def make_model(step):
        made.append(step)
        return _linear_model()

    progress = []
    real = meta_module.meta_gradient

    def spy(*args, **kwargs):
        progress.append(kwargs["progress"])
        return real(*args, **kwargs)

    config = MetaConfig(inner_steps=2, inner_lr=4.0, reset_every=2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(meta_module, "meta_gradient", spy)
        result = meta_train(
            LossNetwork(base="ce"), make_model, lambda s: batch, lambda s: batch, 5, config
        )
    assert result.status == "ok" and made == [0, 2, 4]
    assert progress[0] == [0.0, 0.25] and progress[1] == [0.5, 0.75] and progress[2] == [0.0, 0.25]
    # the second step goes on from the first step's theta_K (4 SGD steps in all, not 2); the
    # third starts afresh
    fresh = meta_train(
        LossNetwork(base="ce"),
        make_model,
        lambda s: batch,
        lambda s: batch,
        2,
        MetaConfig(inner_steps=2, inner_lr=4.0, reset_every=1),
    )
    assert result.curve[1][0] < fresh.curve[1][0] - 0.05
    assert result.curve[2][0] == pytest.approx(fresh.curve[1][0], abs=0.01)
