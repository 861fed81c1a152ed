"""Learned terms (``lossnet:<hash>``): found on the search path, evaluated by their network in
term order beside expression terms, and refused with the file named when missing or corrupt."""

from __future__ import annotations

import pytest
import torch

from losslab.losses import CompiledLoss, compile_terms, get_loss, resolve_loss
from losslab.losses import learned_term as lt
from losslab.losses.learned import LossNetwork, save_network
from losslab.losses.learned_term import LearnedTerm, add_search_folder, search_path
from losslab.losses.spec import reduce


@pytest.fixture(autouse=True)
def clean_search_path(tmp_path, monkeypatch):
    """No folder added by another test, no $LOSSLAB_LOSSNETS, and ./lossnets inside tmp_path."""
    monkeypatch.setattr(lt, "_ADDED", [])
    monkeypatch.delenv(lt.ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)


def _strong_net(features=("p", "y", "logp")) -> LossNetwork:
    """A network far from its near-zero start, so that the learned part is not negligible."""
    torch.manual_seed(1)
    return LossNetwork(features=features, hidden=(8,), base="dice", init_std=0.5, init_bias=0.0)


def test_the_search_path_is_added_folders_then_the_variable_then_cwd(tmp_path, monkeypatch):
    monkeypatch.setenv(lt.ENV_VAR, f"{tmp_path / 'a'}{lt.os.pathsep}{tmp_path / 'b'}")
    add_search_folder(tmp_path / "mine")
    add_search_folder(tmp_path / "mine")
    names = [p.name for p in search_path()]
    assert names == ["mine", "a", "b", "lossnets"]


def test_learned_and_expression_terms_are_evaluated_in_term_order(tmp_path, batch):
    net = _strong_net(("p", "y", "logp", "w", "progress"))
    digest, _ = save_network(net, tmp_path / "nets")
    add_search_folder(tmp_path / "nets")
    logits, labels = batch
    weights = torch.tensor([0.5, 1.0, 2.0, 1.0])
    term = resolve_loss(f"lossnet:{digest}")
    assert isinstance(term, LearnedTerm) and term.hash == digest
    compiled = compile_terms((*get_loss("dice_ce").terms, term))
    values = compiled(logits, labels, weights, progress=0.7)
    assert len(values) == 3 and all(v.dtype == torch.float32 for v in values)
    expected = net.loss(logits, labels, weights, 0.7)
    assert values[2].shape == (4,) and torch.allclose(values[2], expected, atol=1e-6)
    plain = get_loss("dice_ce").compile()(logits, labels, weights)
    assert torch.equal(values[0], plain[0]) and torch.equal(values[1], plain[1])
    assert not torch.allclose(values[2], net.loss(logits, labels, weights, 0.0))  # progress read
    reduced = CompiledLoss.reduce_terms(values, weights)
    assert torch.allclose(reduced[2], reduce(expected, weights))
    single = term.compile()(logits, labels, weights, progress=0.7)  # a single learned term
    assert torch.allclose(single, expected, atol=1e-6)


def test_the_loaded_network_is_frozen_and_gives_a_gradient_to_the_logits(tmp_path, batch):
    digest, _ = save_network(_strong_net(), tmp_path)
    add_search_folder(tmp_path)
    compiled = LearnedTerm(digest).compile()
    logits = batch[0].clone().requires_grad_()
    compiled(logits, batch[1]).mean().backward()
    assert logits.grad is not None and bool(logits.grad.abs().sum() > 0)
    assert all(not p.requires_grad for p in compiled.networks[0].parameters())


def test_a_missing_network_names_its_file_hash_and_folders(tmp_path):
    add_search_folder(tmp_path / "empty")
    digest = "cd" * 32
    with pytest.raises(FileNotFoundError) as caught:
        compile_terms([LearnedTerm(digest)])
    message = str(caught.value)
    assert f"lossnet:{digest}" in message and f"{digest}.lossnet" in message
    assert str(tmp_path / "empty") in message and "--lossnets" in message


def test_a_corrupt_network_file_names_the_file(tmp_path):
    digest, path = save_network(_strong_net(), tmp_path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # one flipped byte of the weights
    path.write_bytes(bytes(data))
    add_search_folder(tmp_path)
    with pytest.raises(ValueError, match="does not match") as caught:
        compile_terms([LearnedTerm(digest)])
    assert str(path) in str(caught.value) and digest in str(caught.value)


def test_a_network_in_cwd_lossnets_is_found(tmp_path, batch):
    digest, _ = save_network(_strong_net(), tmp_path / "lossnets")  # tmp_path is the cwd
    assert LearnedTerm(digest).path().parent.name == "lossnets"
    assert LearnedTerm(digest).compile()(*batch).shape == (4,)
