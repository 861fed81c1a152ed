"""Parsing, canonical printing and the errors of the loss language."""

from __future__ import annotations

import pytest

from losslab.losses import Kind, LossSpec, LossSyntaxError, parse_loss
from losslab.losses.nodes import BinOp, Call, Neg, Num, Var, num, to_source


@pytest.mark.parametrize(
    "text",
    [
        "vmean(-p ** 2)",
        "vmean((-p) ** 2)",
        "vmean(p ** (-y))",
        "vmean(p ** y ** 2)",
        "vmean((p ** y) ** 2)",
        "vmean(p - (y - p))",
        "vmean(p - y - p)",
        "vmean(p / (y * p))",
        "vmean(p * (y * p))",
        "vmean(-(p + y))",
        "cmean(vsum(p)) - -cmin(w)",
        "vmean(where(p > 0.5, 1, y))",
        "csum(w * topk_mean(clamp(p, 0.1, 0.9), 0.25))",
    ],
)
def test_canonical_text_round_trips_exactly(text):
    spec = parse_loss(text)
    assert str(spec) == text
    assert parse_loss(str(spec)) == spec


def test_non_canonical_text_is_normalised():
    spec = parse_loss("  vmean( ((p)) *y )+0.50 ")
    assert str(spec) == "vmean(p * y) + 0.5"


def test_printer_keeps_structure_that_precedence_would_lose():
    tree = BinOp("-", Var("nc"), BinOp("-", Var("nc"), num(-2.5)))
    assert to_source(tree) == "nc - (nc - -2.5)"
    assert num(-2.5) == Neg(Num(2.5))
    spec = LossSpec.from_tree(Call("cmean", (BinOp("**", Neg(Var("w")), Num(2)),)))
    assert str(spec) == "cmean((-w) ** 2)"
    assert parse_loss(str(spec)) == spec


def test_parameters_print_with_their_values_and_override():
    spec = parse_loss("vmean(-(1 - p) ** gamma * y * logp)")
    assert str(spec) == "vmean(-(1 - p) ** gamma * y * logp); gamma=2"
    assert parse_loss(str(spec), gamma=0.5).parameters == {"gamma": 0.5}
    assert parse_loss("vmean(p ** gamma); gamma=3").with_params(gamma=1).parameters == {"gamma": 1}


def test_kinds():
    assert parse_loss("vsum(p * y)").kind is Kind.CLASS
    assert parse_loss("csum(w * vsum(p))").kind is Kind.SCALAR
    assert parse_loss("nc * cmean(w)").kind is Kind.SCALAR


def error(text: str, **kwargs) -> LossSyntaxError:
    with pytest.raises(LossSyntaxError) as info:
        parse_loss(text, **kwargs)
    return info.value


def test_voxel_result_is_refused_with_its_place():
    exc = error("p * y")
    assert "voxel tensor" in exc.reason
    assert str(exc).splitlines()[1:] == ["  p * y", "  ^^^^^"]


def test_voxel_divided_by_class_vector_points_at_the_division():
    exc = error("vmean(p / vsum(y))")
    assert "cannot combine a voxel tensor with a class vector" in exc.reason
    assert str(exc).splitlines()[1:] == ["  vmean(p / vsum(y))", "        ^^^^^^^^^^^"]


@pytest.mark.parametrize(
    ("text", "reason", "marked"),
    [
        ("vmean(q * y)", "unknown name 'q'", "q"),
        ("vmean(softplus(p))", "unknown function 'softplus'", "softplus"),
        ("vmean(p); foo=2", "unknown parameter 'foo'", "foo"),
        ("vmean(p); gamma='a'", "must be bound to a number", "'a'"),
        ("csum(p)", "csum expects a class vector", "csum(p)"),
        ("vsum(vsum(p))", "vsum expects a voxel tensor", "vsum(vsum(p))"),
        ("vmean(log(p, 2))", "log takes 1 argument", "log(p, 2)"),
        ("topk_mean(p, y)", "argument 2 of topk_mean must be a number", "topk_mean(p, y)"),
        ("vmean(where(p, 1, 0))", "must be a comparison", "where(p, 1, 0)"),
        ("vmean(p > y)", "comparison is only allowed", "vmean(p > y)"),
        ("vmean(p).sum()", "'Attribute' is not part", "vmean(p).sum"),
        ("vmean(p[0])", "'Subscript' is not part", "p[0]"),
        ("__import__('os')", "unknown function '__import__'", "__import__"),
        ("vmean(p) if 1 else 0", "'IfExp' is not part", "vmean(p) if 1 else 0"),
        ("vmean(p", "not a valid expression", None),
    ],
)
def test_bad_input_names_the_part_at_fault(text, reason, marked):
    exc = error(text)
    assert reason in exc.reason
    assert exc.expression == text
    if marked is not None:
        _, start, end = exc.span
        assert text[start:end] == marked


def test_size_limit_is_configurable():
    text = "vmean(" + " + ".join(["p"] * 20) + ")"
    assert "more than the limit of 30" in error(text, max_nodes=30).reason
    assert parse_loss(text, max_nodes=64).kind is Kind.CLASS


def test_parameter_out_of_range_and_unused_are_errors():
    assert "out of its range" in error("topk_mean(p, k); k=2").reason
    assert "not used" in error("vmean(p)", gamma=1).reason


def test_trees_built_in_code_are_checked():
    with pytest.raises(LossSyntaxError, match="cannot combine"):
        LossSpec.from_tree(Call("vmean", (BinOp("/", Var("p"), Call("vsum", (Var("y"),))),)))
    with pytest.raises(LossSyntaxError, match="unknown name 'foo'"):
        LossSpec.from_tree(Call("vmean", (Var("foo"),)))
    with pytest.raises(LossSyntaxError, match="voxel tensor"):
        LossSpec.from_tree(Var("p"))
