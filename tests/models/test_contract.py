"""Contract tests: every registered network, at its tiny size, honours the same interface."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from torch import nn

from losslab.models import count_parameters, get_model, list_models

PATCHES = [(16, 16, 16), (32, 16, 32)]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _bias_cancelled_by_norm(model: nn.Module) -> set[str]:
    """Names of conv biases followed directly by InstanceNorm (MONAI's UNet keeps them).

    The norm subtracts the per-channel mean, so their gradient is zero in exact arithmetic.
    """
    names = set()
    for name, module in model.named_modules():
        if not isinstance(module, Convolution):
            continue
        norm = getattr(getattr(module, "adn", None), "N", None)
        if isinstance(norm, nn.InstanceNorm3d) and module.conv.bias is not None:
            names.add(f"{name}.conv.bias")
    return names


@pytest.mark.parametrize("patch_size", PATCHES)
@pytest.mark.parametrize("name", list_models())
def test_output_is_logits_of_the_patch_shape(name: str, patch_size: tuple[int, int, int]) -> None:
    model = get_model(name, in_channels=2, num_classes=4, patch_size=patch_size)
    x = torch.randn(2, 2, *patch_size)
    y = model(x)
    assert y.shape == (2, 4, *patch_size)
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all()
    # Logits, not probabilities: nothing forces the class axis to sum to one.
    assert not torch.allclose(y.sum(1), torch.ones_like(y[:, 0]), atol=1e-3)


@pytest.mark.parametrize("name", list_models())
def test_every_trainable_parameter_gets_a_gradient(name: str) -> None:
    # float64 separates a real but small gradient from rounding noise around an exact zero.
    model = get_model(name, num_classes=3, patch_size=(16, 16, 16)).double()
    x = torch.randn(2, 1, 16, 16, 16, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 16, 16, 16))
    F.cross_entropy(model(x), target).backward()

    exempt = _bias_cancelled_by_norm(model)
    assert name != "unet3d" or exempt, "the exemption rule no longer finds MONAI's conv biases"
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert count_parameters(model) == sum(p.numel() for p in trainable.values())
    missing = [n for n, p in trainable.items() if p.grad is None]
    assert not missing, f"no gradient reaches {missing}"
    assert all(torch.isfinite(p.grad).all() for p in trainable.values())
    scale = max(p.grad.abs().max() for p in trainable.values())
    dead = [
        n for n, p in trainable.items() if n not in exempt and p.grad.abs().max() <= 1e-10 * scale
    ]
    assert not dead, f"zero gradient for {dead}"


@pytest.mark.parametrize("name", list_models())
def test_same_seed_builds_the_same_network(name: str) -> None:
    torch.manual_seed(3)
    a = get_model(name, num_classes=3, patch_size=(16, 16, 16))
    torch.manual_seed(3)
    b = get_model(name, num_classes=3, patch_size=(16, 16, 16))
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert na == nb and torch.equal(pa, pb)
