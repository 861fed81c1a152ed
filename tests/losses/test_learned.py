"""The learned loss network: shape, near-zero start, precision, canonical storage by content hash."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from losslab.losses.learned import (
    LossNetwork,
    content_hash,
    load_network,
    network_from_bytes,
    save_network,
    state_bytes,
)
from losslab.losses.resolve import resolve_loss
from losslab.losses.spec import reduce


def _batch(classes: int, spatial: tuple[int, ...], seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, classes, *spatial, generator=generator) * 2
    labels = torch.randint(0, classes, (2, *spatial), generator=generator)
    return logits, labels


def _filled(net: LossNetwork) -> LossNetwork:
    """Deterministic weights, exact in binary, independent of the random generator."""
    with torch.no_grad():
        for i, p in enumerate(net.parameters()):
            p.copy_(((torch.arange(p.numel()) % 7 - 3) * (i + 1) / 8).reshape(p.shape))
    return net


@pytest.mark.parametrize("classes", [2, 3, 6])
@pytest.mark.parametrize("spatial", [(8, 8, 8), (6, 7, 5), (12, 12, 12)])
def test_output_is_per_class_whatever_the_patch_and_class_count(classes, spatial):
    net = LossNetwork(features=("p", "y", "logp", "w", "progress"))
    logits, labels = _batch(classes, spatial)
    out = net(logits, labels, torch.rand(classes) + 0.5, progress=0.3)
    assert out.shape == (classes,) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert (net.voxel_values(logits, labels) >= 0).all()
    assert net.loss(logits, labels).shape == (classes,)


def test_parameter_count_does_not_depend_on_classes():
    net = LossNetwork(features=("p", "y", "logp", "w"), hidden=(32, 32))
    expected = (4 * 32 + 32) + (32 * 32 + 32) + (32 + 1)
    assert sum(p.numel() for p in net.parameters()) == expected
    for classes in (2, 9):  # one network serves any class count
        assert net(*_batch(classes, (4, 4, 4))).shape == (classes,)


def test_starts_near_zero_with_a_gradient_for_every_parameter():
    torch.manual_seed(0)
    net = LossNetwork(base="dice")
    logits, labels = _batch(3, (8, 8, 8))
    learned = net(logits, labels)
    assert (learned > 0).all() and (learned < 0.01).all()
    base = resolve_loss("dice").compile()(logits, labels)
    assert torch.allclose(net.loss(logits, labels), base, atol=0.01)
    grads = torch.autograd.grad(learned.sum(), list(net.parameters()))
    assert all(bool((g != 0).any()) for g in grads)


@pytest.mark.parametrize("base", ["dice", "ce"])
def test_base_is_the_library_loss(base):
    net = LossNetwork(base=base)
    logits, labels = _batch(4, (6, 5, 4))
    w = torch.tensor([0.5, 1.0, 2.0, 1.5])
    expected = resolve_loss(base).compile()(logits, labels, w) + net(logits, labels, w)
    assert torch.equal(net.loss(logits, labels, w), expected)
    bare = LossNetwork(base="none")
    assert torch.equal(bare.loss(logits, labels), bare(logits, labels))


def test_class_weights_apply_to_the_learned_vector():
    net = LossNetwork(base="ce")
    logits, labels = _batch(3, (4, 4, 4))
    w = torch.tensor([0.2, 1.0, 3.0])
    per_class = net.loss(logits, labels, w)
    assert torch.allclose(reduce(per_class, w), (w * per_class).mean())


def test_optional_features_are_read():
    torch.manual_seed(0)
    net = _filled(LossNetwork(features=("p", "y", "logp", "w", "progress"), base="none"))
    logits, labels = _batch(3, (4, 4, 4))
    a = net(logits, labels, torch.ones(3), progress=0.0)
    assert not torch.allclose(a, net(logits, labels, torch.ones(3), progress=1.0))
    assert not torch.allclose(a, net(logits, labels, torch.tensor([1.0, 1.0, 4.0]), progress=0.0))
    plain = _filled(LossNetwork(base="none"))
    assert torch.equal(plain(logits, labels, progress=0.0), plain(logits, labels, progress=1.0))


def test_autocast_computes_in_float32():
    torch.manual_seed(0)
    net = _filled(LossNetwork(base="ce"))
    logits, labels = _batch(3, (4, 4, 4))
    expected = net.loss(logits, labels)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net.loss(logits.bfloat16(), labels)
    assert out.dtype == torch.float32
    assert torch.allclose(out, net.loss(logits.bfloat16().float(), labels), atol=1e-6)
    assert torch.allclose(out, expected, atol=0.05)


def test_float64_network_stays_float64():
    net = LossNetwork(base="dice").double()
    logits, labels = _batch(3, (4, 4, 4))
    assert net.loss(logits.double(), labels).dtype == torch.float64


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"features": ("p", "logp")}, "lossnet.features"),
        ({"features": ("p", "y", "logp", "z")}, "lossnet.features"),
        ({"hidden": (32, 0)}, "lossnet.hidden"),
        ({"activation": "relu"}, "lossnet.activation"),
        ({"base": "focal"}, "lossnet.base"),
    ],
)
def test_bad_arguments_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        LossNetwork(**kwargs)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="labels"):
        LossNetwork()(torch.zeros(1, 3, 4, 4, 4), torch.zeros(1, 4, 4, 5, dtype=torch.long))


def test_serialisation_is_canonical_and_pinned():
    net = _filled(LossNetwork(features=("p", "y", "logp", "progress"), hidden=(4, 3), base="ce"))
    data = state_bytes(net)
    assert data == state_bytes(net)
    twin = _filled(LossNetwork(features=("p", "y", "logp", "progress"), hidden=(4, 3), base="ce"))
    assert state_bytes(twin) == data
    assert content_hash(net) == hashlib.sha256(data).hexdigest()
    # The byte layout is a storage format: changing it orphans every stored network.
    assert content_hash(net) == "7bc4ca71079dcf2ed2e5b4573c87c65307eea3b17437c1c4172d7d1f27cd2314"


def test_header_holds_the_architecture():
    net = LossNetwork(features=("p", "y", "logp", "w"), hidden=(5,), activation="silu", base="ce")
    data = state_bytes(net)
    start = data.index(b"\n") + 1
    size = int.from_bytes(data[start : start + 8], "little")
    header = json.loads(data[start + 8 : start + 8 + size])
    assert header["architecture"] == {
        "features": ["p", "y", "logp", "w"],
        "hidden": [5],
        "activation": "silu",
        "base": "ce",
    }
    assert [t["name"] for t in header["tensors"]] == list(net.state_dict())


def test_hash_changes_with_any_weight_or_architecture():
    net = _filled(LossNetwork())
    before = content_hash(net)
    with torch.no_grad():
        net.layers[1].weight[0, 0] += 1e-6
    assert content_hash(net) != before
    assert content_hash(_filled(LossNetwork(base="ce"))) != content_hash(_filled(LossNetwork()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_save_and_load_round_trip(tmp_path, dtype):
    torch.manual_seed(1)
    net = LossNetwork(features=("p", "y", "logp", "progress"), hidden=(8, 8), activation="softplus")
    net = net.to(dtype)
    digest, path = save_network(net, tmp_path)
    assert path.name == f"{digest}.lossnet" and digest == content_hash(net) and len(digest) == 64
    for source in (tmp_path, path):
        loaded = load_network(source, digest)
        assert loaded.architecture() == net.architecture() and loaded.dtype == dtype
        assert content_hash(loaded) == digest
        logits, labels = _batch(3, (4, 4, 4))
        logits = logits.to(dtype)
        assert torch.equal(
            loaded.loss(logits, labels, progress=0.5), net.loss(logits, labels, progress=0.5)
        )


def test_missing_file_names_file_and_hash(tmp_path):
    digest = "0" * 64
    with pytest.raises(FileNotFoundError, match=f"{digest}.lossnet.*expected hash {digest}"):
        load_network(tmp_path, digest)


def test_corrupt_file_names_file_and_hash(tmp_path):
    digest, path = save_network(LossNetwork(), tmp_path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"{path.name}.*does not match the expected hash {digest}"):
        load_network(tmp_path, digest)


def test_other_network_under_the_hash_is_refused(tmp_path):
    digest, path = save_network(LossNetwork(), tmp_path)
    other = tmp_path / "other.lossnet"
    save_network(LossNetwork(base="ce"), tmp_path)[1].rename(other)
    with pytest.raises(ValueError, match="does not match"):
        load_network(other, digest)


def test_bad_hash_and_garbage_bytes(tmp_path):
    with pytest.raises(ValueError, match="lossnet.hash"):
        load_network(tmp_path, "abc")
    with pytest.raises(ValueError, match="garbage.bin: cannot read"):
        network_from_bytes(b"not a network", "garbage.bin")


def test_network_pickles_for_worker_processes():
    import pickle

    net = _filled(LossNetwork(base="ce"))
    logits, labels = _batch(3, (4, 4, 4))
    twin = pickle.loads(pickle.dumps(net))
    assert torch.equal(twin.loss(logits, labels), net.loss(logits, labels))
