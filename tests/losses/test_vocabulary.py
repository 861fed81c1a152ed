"""One language, several vocabularies: the parser, kind checker, bounds and compiler read the
names of the vocabulary they are given, and the loss language is the default."""

from __future__ import annotations

import math
import pickle

import pytest
import torch

from losslab.losses import FUNCTIONS, LOSS_VOCABULARY, Kind, LossSyntaxError, Vocabulary
from losslab.losses.bounds import bounds, needs_saturation
from losslab.losses.compiler import Terminals, compile_program
from losslab.losses.nodes import BinOp, Call, Compare, Num, Var
from losslab.losses.parser import check_tree, kind_of, parse_expression

TOY = Vocabulary(
    "toy",
    terminals={"q": (Kind.CLASS, "a class vector"), "delta": (Kind.CLASS, "unbounded here")},
    functions={n: FUNCTIONS[n] for n in ("log", "where", "cmax")},
    results=frozenset({Kind.CLASS}),
    terminal_bounds={"q": (0.0, 1.0)},
)


def test_the_loss_vocabulary_is_the_default():
    text = "vmean(-(1 - p) ** gamma * y * logp); gamma=2"
    assert parse_expression(text) == parse_expression(text, vocabulary=LOSS_VOCABULARY)
    tree = parse_expression("csum(w * vsum(p))")[0]
    assert check_tree(tree) is check_tree(tree, vocabulary=LOSS_VOCABULARY) is Kind.SCALAR
    assert kind_of(Var("p")) is Kind.VOXEL


def test_a_vocabulary_gives_the_names_and_the_kinds():
    tree, kind, params = parse_expression("where(q > cmax(q), log(q), q)", vocabulary=TOY)
    assert kind is Kind.CLASS and params == {}
    assert check_tree(tree, vocabulary=TOY) is Kind.CLASS
    with pytest.raises(LossSyntaxError, match="unknown name 'q'") as info:
        parse_expression("vsum(q)")  # the loss language has no q
    assert "terminals are p, logp" in info.value.reason
    with pytest.raises(LossSyntaxError) as info:
        parse_expression("log(p)", vocabulary=TOY)
    assert info.value.reason == "unknown name 'p'; terminals are q, delta"  # no parameters
    with pytest.raises(LossSyntaxError) as info:
        parse_expression("exp(q)", vocabulary=TOY)
    assert info.value.reason == "unknown function 'exp'; functions are log, where, cmax"
    with pytest.raises(LossSyntaxError, match="unknown parameter 'gamma'; parameters are"):
        parse_expression("q; gamma=2", vocabulary=TOY)


def test_the_result_kinds_are_the_vocabulary_s():
    with pytest.raises(LossSyntaxError) as info:
        parse_expression("cmax(q)", vocabulary=TOY)
    assert info.value.reason == "the toy is a scalar; it must be a class vector [C]"
    assert "in toy expression" in str(LossSyntaxError("bad", "q", what="toy"))
    with pytest.raises(LossSyntaxError, match="the toy is a scalar"):
        check_tree(Call("cmax", (Var("q"),)), vocabulary=TOY)
    # The loss language keeps its message for a voxel tensor.
    with pytest.raises(LossSyntaxError, match="the loss is a voxel tensor; reduce it with vsum"):
        parse_expression("p * y")
    with pytest.raises(LossSyntaxError, match="the loss is a voxel tensor; reduce it first"):
        check_tree(BinOp("*", Var("p"), Var("y")))


def test_trees_built_in_code_are_checked_against_the_vocabulary():
    with pytest.raises(LossSyntaxError, match="unknown name 'p'"):
        check_tree(Call("log", (Var("p"),)), vocabulary=TOY)
    with pytest.raises(LossSyntaxError, match="unknown function 'vsum'"):
        check_tree(Call("vsum", (Var("q"),)), vocabulary=TOY)
    with pytest.raises(LossSyntaxError, match="only allowed as the condition of where"):
        check_tree(Compare(">", Var("q"), Num(1)), vocabulary=TOY)
    with pytest.raises(LossSyntaxError, match="only allowed as the condition of where"):
        check_tree(Compare(">", Call("vsum", (Var("p"),)), Num(1)))


def test_bounds_read_the_vocabulary():
    # 'delta' is a loss parameter in [0, 1] but an unbounded terminal of TOY.
    assert bounds(Var("delta")) == (0.0, 1.0)
    assert bounds(Var("delta"), TOY) == (-math.inf, math.inf)
    assert bounds(Var("q"), TOY) == (0.0, 1.0)
    assert bounds(Var("q")) == (-math.inf, math.inf)  # unknown to the loss language
    product = BinOp("*", Var("delta"), Var("delta"))
    assert not needs_saturation(product)
    assert needs_saturation(product, TOY)


def test_a_program_of_another_vocabulary_runs_on_a_mapping():
    tree = parse_expression("where(q > 0.5, log(q), delta)", vocabulary=TOY)[0]
    program = compile_program([tree], vocabulary=TOY)
    assert program.terminals == {"q", "delta"}
    q = torch.tensor([0.25, 1.0])
    (out,) = program.run({"q": q, "delta": torch.tensor([7.0, 7.0])})
    assert out.tolist() == [7.0, 0.0]
    constant = parse_expression("log(1) + q * 0 + 2", vocabulary=TOY)[0]
    constant = compile_program([constant], vocabulary=TOY)
    assert constant.run({"q": q})[0].shape == (2,)
    (folded,) = compile_program([Num(2.0)], vocabulary=TOY).run({})
    assert folded.item() == 2.0 and folded.device.type == "cpu"
    with pytest.raises(ValueError, match="unknown name 'q' in a loss expression"):
        compile_program([tree])


def test_a_constant_loss_output_goes_to_the_device_of_the_target():
    probs = torch.full((1, 2, 3), 0.5)
    terminals = Terminals(probs=probs, onehot=torch.ones(1, 2, 3))
    (out,) = compile_program([parse_expression("nc * 0 + 1")[0]]).run(terminals)
    assert out.item() == 1.0 and out.device == terminals.device == probs.device


def test_numbers_are_compared_in_the_dtype_of_the_tensor():
    # A float64 value just above 0.9 is above 0.9 (float32 would round both to the same).
    tree = parse_expression("where(q > 0.9, 1, 0)", vocabulary=TOY)[0]
    q = torch.tensor([0.9, 0.9 + 1e-12, 0.89], dtype=torch.float64)
    (out,) = compile_program([tree], vocabulary=TOY).run({"q": q})
    assert out.tolist() == [0.0, 1.0, 0.0]


def test_syntax_errors_survive_pickling():
    with pytest.raises(LossSyntaxError) as info:
        parse_expression("q +", vocabulary=TOY)
    again = pickle.loads(pickle.dumps(info.value))
    assert (again.reason, again.expression, again.span, again.what) == (
        info.value.reason,
        info.value.expression,
        info.value.span,
        "toy",
    )
    assert str(again) == str(info.value)
