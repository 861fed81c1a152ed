"""Mixed precision: every library loss and a learned term on a network run under autocast.

The trainer runs the network under bf16 autocast on a GPU (``TrainConfig.amp``) and the
compiled loss takes its logits in float32 (``CompiledLoss.evaluate`` leaves autocast). Here each
loss is evaluated on the logits of a small network run under bf16 autocast, against the same
network in float32, and trained one step with fp16 autocast and a ``GradScaler``, as a user's
own loop with MONAI's recipe would: the value stays float32 and close to float32's, gradients
stay finite and the scaler never has to skip the step. On the CPU (autocast of both dtypes and
the scaler exist there too) and, where one is present, on CUDA: the GPU check runs the CUDA
half.
"""

from __future__ import annotations

import pytest
import torch

from losslab.losses import compile_terms, get_loss, list_losses, resolve_loss
from losslab.losses import learned_term as lt
from losslab.losses.learned import LossNetwork, save_network

DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
    ),
]
LEARNED = "learned"
LOSSES = [*list_losses(), LEARNED]


@pytest.fixture
def learned_folder(tmp_path, monkeypatch):
    """A loss network saved in a folder on the search path; its ``lossnet:<hash>`` name."""
    monkeypatch.setattr(lt, "_ADDED", [])
    monkeypatch.delenv(lt.ENV_VAR, raising=False)
    torch.manual_seed(1)
    net = LossNetwork(features=("p", "y", "logp"), hidden=(8,), base="dice", init_std=0.5)
    digest, _ = save_network(net, tmp_path / "nets")
    lt.add_search_folder(tmp_path / "nets")
    return f"lossnet:{digest}"


def _compiled(name: str, learned_folder: str):
    if name == LEARNED:  # a learned term beside an expression term, as ML3 candidates are
        return compile_terms((get_loss("dice"), resolve_loss(learned_folder)))
    return compile_terms(get_loss(name).terms)


def _setup(device: str):
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv3d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(8, 4, 1)
    ).to(device)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(2, 1, 12, 12, 12, generator=generator).to(device)
    labels = torch.randint(0, 4, (2, 12, 12, 12), generator=generator).to(device)
    return net, images, labels


def _total(compiled, logits, labels) -> torch.Tensor:
    values = compiled(logits, labels)
    return compiled.reduce_terms(values).sum()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", LOSSES)
def test_bf16_autocast_gives_the_float32_value_and_a_finite_gradient(name, device, learned_folder):
    compiled = _compiled(name, learned_folder)
    net, images, labels = _setup(device)
    reference = _total(compiled, net(images), labels)
    reference.backward()
    expected = torch.cat([p.grad.flatten() for p in net.parameters()])
    net.zero_grad()
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
        logits = net(images)
        assert logits.dtype == torch.bfloat16
        value = _total(compiled, logits, labels)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, reference, rtol=3e-2, atol=3e-2)
    value.backward()
    grad = torch.cat([p.grad.flatten() for p in net.parameters()])
    assert torch.isfinite(grad).all()
    # bf16 keeps 8 bits of mantissa: the gradient points the same way, not to the last digit
    assert torch.nn.functional.cosine_similarity(grad, expected, dim=0) > 0.95


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", LOSSES)
def test_fp16_autocast_with_a_grad_scaler_takes_its_step(name, device, learned_folder):
    compiled = _compiled(name, learned_folder)
    net, images, labels = _setup(device)
    before = [p.detach().clone() for p in net.parameters()]
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler(torch.device(device).type, init_scale=2.0**16)
    with torch.autocast(torch.device(device).type, dtype=torch.float16):
        value = _total(compiled, net(images), labels)
    assert value.dtype == torch.float32 and torch.isfinite(value)
    scaler.scale(value).backward()
    scaler.unscale_(optimizer)
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())
    scaler.step(optimizer)
    scaler.update()
    assert scaler.get_scale() == 2.0**16  # no inf/NaN found: the step was not skipped
    moved = [not torch.equal(p.detach(), b) for p, b in zip(net.parameters(), before)]
    assert any(moved)
