"""Registry API: names, sizes, validation messages, and the ModelSpec round trip."""

from __future__ import annotations

import json

import pytest
import torch

from losslab.models import (
    Lambda3DConfig,
    ModelSpec,
    UNet3DConfig,
    count_parameters,
    get_model,
    list_models,
    list_sizes,
)


def _architecture(model: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, tuple(p.shape)) for name, p in model.state_dict().items()]


def test_lists_the_three_networks_and_their_sizes() -> None:
    assert list_models() == ["lambda3d", "unet3d", "unetr"]
    assert all(list_sizes(name) == ["base", "tiny"] for name in list_models())


def test_paper_spelling_is_an_alias() -> None:
    spec = ModelSpec.create("3DUNet", num_classes=2, patch_size=(16, 16, 16))
    assert spec.name == "unet3d"
    assert isinstance(spec.config, UNet3DConfig)


def test_unknown_name_is_named_with_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"'vnet'.*lambda3d, unet3d, unetr"):
        get_model("vnet", num_classes=2, patch_size=(16, 16, 16))


def test_unknown_size_is_named_with_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"'huge'.*'unetr'.*base, tiny"):
        get_model("unetr", num_classes=2, patch_size=(16, 16, 16), size="huge")


def test_unknown_override_is_named_with_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"'depth'.*valid parameters:.*num_res_units"):
        get_model("unet3d", num_classes=2, patch_size=(16, 16, 16), depth=3)


@pytest.mark.parametrize(
    ("name", "size", "patch_size", "message"),
    [
        ("unet3d", "tiny", (18, 16, 16), r"\(18, 16, 16\).*'unet3d'.*multiple of 4"),
        ("unet3d", "base", (16, 16, 16), r"\(16, 16, 16\).*multiple of 16.*more than one cell"),
        ("unetr", "tiny", (24, 32, 32), r"\(24, 32, 32\).*'unetr'.*multiple of 16"),
        ("unetr", "base", (8, 8, 8), r"\(8, 8, 8\).*multiple of 16"),
        ("lambda3d", "tiny", (16, 16, 18), r"\(16, 16, 18\).*'lambda3d'.*multiple of 4"),
        ("lambda3d", "base", (16, 16, 16), r"\(16, 16, 16\).*multiple of 16.*more than one cell"),
        ("unetr", "tiny", (16, 16), r"patch_size.*3 entries.*\(16, 16\)"),
        ("unet3d", "tiny", (16, -16, 16), r"patch_size.*\(16, -16, 16\)"),
    ],
)
def test_patch_size_the_network_cannot_take(
    name: str, size: str, patch_size: tuple[int, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        get_model(name, num_classes=2, patch_size=patch_size, size=size)


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("unetr", {"num_heads": 5}, r"hidden_size 48.*num_heads 5"),
        ("lambda3d", {"embed_patch": 6}, r"embed_patch.*power of two.*6"),
        ("lambda3d", {"embed_patch": 16, "num_layers": 3}, r"num_layers 3.*4"),
        ("lambda3d", {"receptive_field": 4}, r"receptive_field.*odd.*4"),
        ("unet3d", {"strides": (2, 2, 2)}, r"strides=\(2, 2, 2\)"),
        ("unet3d", {"num_classes": 0}, r"num_classes.*0"),
    ],
)
def test_bad_values_are_named(name: str, overrides: dict, message: str) -> None:
    kwargs = {"num_classes": 3, "patch_size": (32, 32, 32), **overrides}
    with pytest.raises(ValueError, match=message):
        ModelSpec.create(name, **kwargs)


@pytest.mark.parametrize("name", list_models())
def test_spec_survives_json_and_rebuilds_the_same_architecture(name: str) -> None:
    overrides = {"feature_size": 4} if name != "unet3d" else {"channels": (4, 8, 16)}
    spec = ModelSpec.create(name, num_classes=3, patch_size=(32, 16, 32), **overrides)
    logged = json.dumps(spec.to_dict())  # what goes to MLflow
    again = ModelSpec.from_dict(json.loads(logged))
    assert again == spec
    assert hash(again) == hash(spec)
    first, second = spec.build(), again.build()
    assert _architecture(first) == _architecture(second)
    assert count_parameters(first) == count_parameters(second)
    # The overrides and the preset are both in the record, so nothing depends on code defaults.
    params = json.loads(logged)["params"]
    assert params["patch_size"] == [32, 16, 32]
    assert set(params) == set(type(spec.config).parameter_names())


def test_spec_params_override_the_size_preset() -> None:
    spec = ModelSpec("lambda3d", "base", {"num_classes": 2, "patch_size": [32, 32, 32]})
    assert spec.params["hidden_size"] == 768 and spec.params["embed_patch"] == 16
    small = ModelSpec("lambda3d", "base", {**spec.params, "hidden_size": 64, "mlp_dim": 64})
    assert small.params["hidden_size"] == 64 and small.params["num_layers"] == 12
    assert isinstance(small.config, Lambda3DConfig)


def test_from_dict_rejects_missing_or_extra_keys() -> None:
    with pytest.raises(ValueError, match="name, size, params"):
        ModelSpec.from_dict({"name": "unetr", "params": {}})
    with pytest.raises(ValueError, match="num_classes, patch_size"):
        ModelSpec.from_dict({"name": "unetr", "size": "tiny", "params": {}})


def test_base_sizes_follow_the_papers() -> None:
    """Paper 000 / Hatamizadeh et al.: ViT-B widths, 16^3 patches, 12 layers."""
    unetr = ModelSpec.create("unetr", num_classes=14, patch_size=(96, 96, 96), size="base")
    assert {k: unetr.params[k] for k in ("hidden_size", "mlp_dim", "num_heads")} == {
        "hidden_size": 768,
        "mlp_dim": 3072,
        "num_heads": 12,
    }
    lam = ModelSpec.create("lambda3d", num_classes=14, patch_size=(96, 96, 96), size="base")
    assert (lam.params["embed_patch"], lam.params["num_layers"]) == (16, 12)
    assert lam.params["hidden_size"] == unetr.params["hidden_size"]
    unet = get_model("unet3d", num_classes=14, patch_size=(96, 96, 96), size="base")
    assert count_parameters(unet) == 12_942_898 + 14 * 33  # 33 = channels[0] + 1 per class
