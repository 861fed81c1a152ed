"""ML3 meta-training of several loss networks as one group equals meta-training each alone:
per-step outer losses, meta-gradients and ``phi`` (float64 to ~1e-10, float32 to float
rounding), ``reset_every`` carrying ``theta_K`` on, a member going non-finite skipped and failed
alone, out of memory, the backend's ``ml3.group`` and its errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from losslab.config import ConfigError
from losslab.losses.learned import LossNetwork
from losslab.search.ml3 import group as group_module
from losslab.search.ml3.group import meta_train_group
from losslab.search.ml3.meta import MetaConfig, OuterLoop, meta_train

from .test_ml3_meta import _one_thread  # noqa: F401  (autouse: one torch thread here too)

C, K = 3, 2


def _conv_net(seed: int, dtype: torch.dtype, norm: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Conv3d(1, 4, 3, padding=1), nn.Tanh(), nn.Conv3d(4, C, 1)]
    if norm:  # train mode: batch statistics, running buffers (the engine uses copies)
        layers.insert(1, nn.BatchNorm3d(4))
    return nn.Sequential(*layers).to(dtype)


def _batch(seed: int, dtype: torch.dtype, size: int = 6, batch: int = 2):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 1, size, size, size, generator=generator, dtype=dtype)
    return x, torch.randint(0, C, (batch, size, size, size), generator=generator)


def _loss_net(seed: int, dtype: torch.dtype) -> LossNetwork:
    """Far from its near-zero start (``init_std=0.5``), so the learned part matters."""
    torch.manual_seed(100 + seed)
    features = ("p", "y", "logp", "w", "progress")
    return LossNetwork(features=features, base="dice", init_std=0.5, init_bias=0.0).to(dtype)


class _Data:
    """Network ``i``'s functions (models, inner batches, validation batch), from its seed
    ``seeds[i]``; ``nan[i]`` are the outer steps whose inner inputs are NaN."""

    def __init__(self, dtype, seeds=(0, 1, 2), nan=None, made=None, norm=False):
        self.dtype, self.seeds, self.nan, self.norm = dtype, list(seeds), nan or {}, norm
        self.made = made if made is not None else []

    def model(self, i):
        def make(step):
            self.made.append((i, step))
            return _conv_net(1000 * self.seeds[i] + step, self.dtype, self.norm)

        return make

    def train(self, i):
        def sample(step):
            batches = [_batch(10_000 * self.seeds[i] + 10 * step + k, self.dtype) for k in range(K)]
            if step in self.nan.get(i, ()):
                batches = [(x * float("nan"), y) for x, y in batches]
            return batches

        return sample

    def val(self, i):
        return lambda step: _batch(20_000 * self.seeds[i] + step, self.dtype)


class _Spy:
    """Every meta-step's ``(step, outer, grads)`` per loss network (``OuterLoop.end`` is what
    both loops call), and each network's ``phi`` after every step."""

    def __init__(self, monkeypatch):
        self.steps: dict[int, list] = {}
        real = OuterLoop.end

        def end(loop, step, outer, value, grads, params):
            finite = real(loop, step, outer, value, grads, params)
            phi = [p.detach().clone() for p in loop.loss_net.parameters()]
            grads = [g.detach().clone() for g in grads]
            self.steps.setdefault(id(loop.loss_net), []).append((step, outer, grads, phi))
            return finite

        monkeypatch.setattr(OuterLoop, "end", end)

    def of(self, net):
        return self.steps[id(net)]


def _solo(i, data, config, steps, dtype, calls=None):
    net = _loss_net(i, dtype)

    def on_step(step, outer, value, skipped):
        if calls is not None:
            calls.append((i, step, skipped))

    result = meta_train(
        net, data.model(i), data.train(i), data.val(i), steps, config, on_step=on_step
    )
    return net, result


def _group(data, config, steps, dtype, n=3, calls=None):
    nets = [_loss_net(i, dtype) for i in range(n)]

    def on_step(i, step, outer, value, skipped):
        if calls is not None:
            calls.append((i, step, skipped))

    results = meta_train_group(
        nets,
        [data.model(i) for i in range(n)],
        [data.train(i) for i in range(n)],
        [data.val(i) for i in range(n)],
        steps,
        config,
        on_step=on_step,
    )
    return nets, results


def _gap(a: torch.Tensor, b: torch.Tensor) -> float:
    """The largest difference relative to the larger magnitude (at least 1)."""
    return float((a - b).abs().max()) / max(1.0, float(a.abs().max()))


def _compare(spy, solo_net, group_net) -> float:
    """The worst relative gap of outer losses, meta-gradients and phi over every step."""
    solo, grouped = spy.of(solo_net), spy.of(group_net)
    assert [s[0] for s in solo] == [s[0] for s in grouped]
    worst = 0.0
    for (_, outer_a, grads_a, phi_a), (_, outer_b, grads_b, phi_b) in zip(solo, grouped):
        if not math.isfinite(outer_a):
            assert not math.isfinite(outer_b)
            continue
        worst = max(worst, abs(outer_a - outer_b) / max(1.0, abs(outer_a)))
        for a, b in zip(grads_a, grads_b):
            assert float(a.abs().max()) > 0
            worst = max(worst, _gap(a, b))
        for a, b in zip(phi_a, phi_b):
            worst = max(worst, _gap(a, b))
    return worst


def _phi(net) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()])


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-10), (torch.float32, 2e-5)])
def test_a_group_equals_each_network_alone(monkeypatch, dtype, tolerance):
    spy = _Spy(monkeypatch)
    config = MetaConfig(inner_steps=K, inner_lr=0.3, outer_lr=0.05)
    data = _Data(dtype)
    solos = [_solo(i, data, config, 3, dtype) for i in range(3)]
    nets, results = _group(data, config, 3, dtype)
    for i, (solo_net, solo_result) in enumerate(solos):
        assert results[i].status == solo_result.status == "ok"
        assert results[i].steps == 3 and results[i].skipped == 0
        assert _compare(spy, solo_net, nets[i]) <= tolerance, i
        assert _gap(_phi(solo_net), _phi(nets[i])) <= tolerance
        assert _gap(_phi(solo_net), _phi(_loss_net(i, dtype))) > 1e-4  # phi moved
    # Each member's data is its own: the members' data permuted, member 0 is not network 0.
    spy.steps.clear()
    rolled, _ = _group(_Data(dtype, seeds=(1, 2, 0)), config, 3, dtype)
    solo_again, _ = _solo(0, data, config, 3, dtype)
    assert _compare(spy, solo_again, rolled[0]) > 1e-3


@pytest.mark.parametrize("norm", [False, True], ids=["plain", "batch_norm"])
def test_reset_every_carries_each_members_theta_on(monkeypatch, norm):
    spy = _Spy(monkeypatch)
    config = MetaConfig(inner_steps=K, inner_lr=0.3, outer_lr=0.05, reset_every=2)
    dtype = torch.float64
    solo_made, group_made = [], []
    solos = [_solo(i, _Data(dtype, made=solo_made, norm=norm), config, 4, dtype) for i in range(3)]
    nets, results = _group(_Data(dtype, made=group_made, norm=norm), config, 4, dtype)
    assert sorted(group_made) == sorted(solo_made) == [(i, s) for i in range(3) for s in (0, 2)]
    for i, (solo_net, _) in enumerate(solos):
        assert results[i].status == "ok" and results[i].steps == 4
        assert _compare(spy, solo_net, nets[i]) <= 1e-10
    # theta_K was carried on: the same group with a fresh model every step differs
    fresh = MetaConfig(inner_steps=K, inner_lr=0.3, outer_lr=0.05, reset_every=1)
    _, every = _group(_Data(dtype, norm=norm), fresh, 4, dtype)
    assert abs(every[0].curve[1][0] - results[0].curve[1][0]) > 1e-4


def test_a_member_going_non_finite_is_skipped_and_failed_alone(monkeypatch):
    spy = _Spy(monkeypatch)
    config = MetaConfig(inner_steps=K, inner_lr=0.3, outer_lr=0.05, max_consecutive_skips=2)
    dtype = torch.float64
    data = _Data(dtype, nan={1: set(range(1, 10)), 2: {1}})  # 1 fails at step 2, 2 skips once
    solo_calls, group_calls = [], []
    solos = [_solo(i, data, config, 4, dtype, solo_calls) for i in range(3)]
    nets, results = _group(data, config, 4, dtype, calls=group_calls)
    assert sorted(group_calls) == sorted(solo_calls)
    assert (results[1].status, results[1].steps, results[1].skipped) == ("failed", 3, 2)
    assert (results[2].status, results[2].steps, results[2].skipped) == ("ok", 4, 1)
    assert (results[0].status, results[0].skipped) == ("ok", 0)
    for i, (solo_net, solo) in enumerate(solos):
        got = results[i]
        assert (got.status, got.reason, got.steps, got.skipped) == (
            solo.status,
            solo.reason,
            solo.steps,
            solo.skipped,
        )
        assert [math.isfinite(o) for o, _ in got.curve] == [math.isfinite(o) for o, _ in solo.curve]
        assert _compare(spy, solo_net, nets[i]) <= 1e-10, i
        assert _gap(_phi(solo_net), _phi(nets[i])) <= 1e-10


def test_out_of_memory_fails_the_members_left(monkeypatch):
    real, calls = group_module._group_step, []

    def step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(group_module, "_group_step", step)
    dtype = torch.float32
    _, results = _group(_Data(dtype), MetaConfig(inner_steps=K), 4, dtype, n=2)
    for result in results:
        assert result.status == "failed" and result.steps == 1
        assert result.reason.startswith("out of memory at outer step 1")


def test_bad_arguments_of_a_group_are_named():
    dtype = torch.float32
    data = _Data(dtype)
    with pytest.raises(ValueError, match="ml3.engine: 'higher' meta-trains one network"):
        meta_train_group(
            [_loss_net(0, dtype)],
            [data.model(0)],
            [data.train(0)],
            [data.val(0)],
            1,
            _higher_config(),
        )
    with pytest.raises(ValueError, match="ml3.group: one model"):
        meta_train_group([_loss_net(0, dtype)], [], [], [], 1, MetaConfig())
    with pytest.raises(ValueError, match="ml3.outer_steps"):
        _group(data, MetaConfig(), 0, dtype)


def _higher_config() -> MetaConfig:
    """A config naming ``higher`` without importing it (the group refuses it before use)."""
    config = MetaConfig()
    object.__setattr__(config, "engine", "higher")
    return config


# --- the backend's ml3.group -------------------------------------------------------------------

BACKEND = {
    "networks": 3,
    "checkpoints": 1,
    "outer_steps": 3,
    "inner_steps": 1,
    "hidden": [4],
    "patch_size": [8, 8, 8],
    "batch_size": 1,
}


def _study(folder, **ml3):
    from .studies import write_study

    return write_study(
        folder,
        backend="ml3",
        ml3={**BACKEND, **ml3},
        space={"target": "loss"},
        budget={"trials": 3},
    )


@pytest.fixture
def _isolated(monkeypatch):
    from losslab.losses import learned_term

    from .fakes import FakeTrainer

    FakeTrainer.trained, FakeTrainer.fail_every, FakeTrainer.epoch_seconds = [], 0, 0.0
    monkeypatch.setattr(learned_term, "_ADDED", [])
    monkeypatch.delenv(learned_term.ENV_VAR, raising=False)
    return FakeTrainer


def _networks(outcome, config, folder):
    """Per network: status, its snapshot's parameters, its outer-loss curve."""
    from losslab.losses.learned import load_network
    from losslab.tracking.tracker import Tracker

    client = Tracker(config.tracking_uri, experiment=config.experiment).client
    tags = client.get_run(outcome.parent_run_id).data.tags
    found = []
    for i in range(BACKEND["networks"]):
        (digest,) = tags[f"ml3.{i}.hashes"].split(",")
        net = load_network(folder / "lossnets", digest)
        curve = client.get_metric_history(outcome.parent_run_id, f"ml3/{i}/outer_loss")
        skipped = client.get_metric_history(outcome.parent_run_id, f"ml3/{i}/skipped")
        found.append(
            (
                tags[f"ml3.{i}.status"],
                [(m.step, m.value) for m in skipped],
                _phi(net),
                sorted((m.step, m.value) for m in curve),
            )
        )
    return found


@pytest.mark.slow  # three small studies: about 8 s
def test_the_backend_meta_trains_a_group_as_one_at_a_time(tmp_path, monkeypatch, _isolated):
    """``ml3.group: 3`` gives each network the record ``ml3.group: 1`` gives it, also when
    the group runs out of memory and is halved down to one network at a time.

    The hashes are content hashes of float32 networks, and the batched (grouped) convolutions
    of the inner UNet sum in another order than one network's, so the saved weights may differ
    in their last bits, and here the hashes do differ: the test compares the records' status and skips,
    the networks' parameters (allclose) and the outer-loss curves instead.
    """
    from losslab.search import load_study, run_study
    from losslab.search.ml3 import runner

    real, groups = runner.meta_train_group, []

    def spy(loss_nets, *args, **kwargs):
        groups.append(len(loss_nets))
        return real(loss_nets, *args, **kwargs)

    monkeypatch.setattr(runner, "meta_train_group", spy)
    real_step = group_module._group_step

    def out_of_memory(loops, *args):  # "oom": any group of more than one runs out of memory
        if len(loops) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_step(loops, *args)

    outcomes = {}
    for size, oom in ((1, False), (3, False), (3, True)):
        folder = tmp_path / f"group{size}{'-oom' if oom else ''}"
        folder.mkdir()
        with monkeypatch.context() as patch:
            if oom:
                patch.setattr(group_module, "_group_step", out_of_memory)
            config = load_study(_study(folder, group=size))
            outcome = run_study(config, progress=False, trainer=_isolated)
        assert [r.status for r in outcome.records] == ["ok"] * 3
        outcomes[size, oom] = _networks(outcome, config, folder)
    # group 1 never groups; group 3 meta-trains all three in one call; out of memory halves
    # it (3 -> 2 + 1 -> 1 + 1 + 1), each network then alone
    assert groups == [3, 3, 2]
    for alone, grouped, halved in zip(outcomes[1, False], outcomes[3, False], outcomes[3, True]):
        assert alone[0] == grouped[0] == "ok" and alone[1] == grouped[1]
        assert torch.allclose(alone[2], grouped[2], rtol=1e-4, atol=1e-5)
        assert [s for s, _ in alone[3]] == [s for s, _ in grouped[3]] == [0, 1, 2]
        assert [v for _, v in alone[3]] == pytest.approx([v for _, v in grouped[3]], abs=1e-5)
        assert torch.equal(alone[2], halved[2]) and alone[:2] == halved[:2]
    # the networks differ from one another (a mixed-up member would show)
    grouped = outcomes[3, False]
    assert not torch.allclose(grouped[0][2], grouped[1][2], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("value", [0, -1, True, 2.5, "all", None, 101])
def test_a_bad_group_is_named(tmp_path, value):
    from losslab.search import load_study

    with pytest.raises(ConfigError, match=r"ml3\.group"):
        load_study(_study(tmp_path, group=value))


def test_group_is_left_out_of_the_digest_and_auto_is_one_on_the_cpu():
    from losslab.search.ml3.settings import check_settings

    auto, three = check_settings({}), check_settings({"group": 3})
    assert auto.group == "auto" and three.group == 3
    assert auto.digest() == three.digest() != check_settings({"networks": 2}).digest()
    assert (auto.group_size("cpu"), auto.group_size("cuda"), three.group_size("cpu")) == (1, 8, 3)
    assert check_settings({"group": 3, "engine": "torch.func"}).group_size("cuda") == 3
