"""Hypothesis strategies over the grammar of the loss language, for fuzzing the parser and compiler.

``expressions()`` draws loss texts together with whether they are well typed: a well-typed text
is built from the kind rules of the language (voxel tensors, class vectors, scalars); an
ill-typed one has exactly one deliberate kind error planted somewhere in an otherwise
well-typed tree (a voxel tensor mixed with a class vector, a reduction of the wrong kind, a
comparison outside ``where``, a terminal where a constant is required, a wrong arity, a voxel
tensor as the result). ``garbage()`` draws arbitrary text, mostly near the language.
"""

from __future__ import annotations

from hypothesis import strategies as st

VOXEL_TERMINALS = ["p", "logp", "z", "y", "fg", "dist"]
PARAMETERS = ["alpha", "beta", "gamma", "eps", "k", "lam", "margin", "delta"]
CONSTANTS = ["0", "1", "2", "3", "0.5", "1e-3", "1e-12", "100", "1e6", "1e12", "2.5", "7"]
UNARY = ["log", "sqrt", "exp", "abs"]
BINARY = ["+", "-", "*", "/", "**"]
COMPARE = ["<", "<=", ">", ">="]
REDUCE_VOXEL = ["vsum", "vmean"]
REDUCE_CLASS = ["csum", "cmean", "cmax", "cmin"]

MAX_DEPTH = 4


@st.composite
def scalar(draw, depth: int = 0) -> str:
    if depth >= MAX_DEPTH or draw(st.integers(0, 2)) == 0:
        return draw(st.sampled_from(CONSTANTS + PARAMETERS + ["nc"]))
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return f"{draw(st.sampled_from(REDUCE_CLASS))}({draw(klass(depth + 1))})"
    if choice == 1:
        return f"{draw(st.sampled_from(UNARY))}({draw(scalar(depth + 1))})"
    if choice == 2:
        return f"-({draw(scalar(depth + 1))})"
    op = draw(st.sampled_from(BINARY))
    return f"({draw(scalar(depth + 1))}) {op} ({draw(scalar(depth + 1))})"


def _elementwise(draw, same, depth: int) -> str:
    """One elementwise construct over values of one kind (mixed with scalars)."""
    other = lambda: draw(st.one_of(same(depth + 1), scalar(depth + 1)))  # noqa: E731
    choice = draw(st.integers(0, 7))
    if choice == 0:
        op = draw(st.sampled_from(BINARY))
        left, right = draw(st.permutations([draw(same(depth + 1)), other()]))
        return f"({left}) {op} ({right})"
    if choice == 1:
        return f"{draw(st.sampled_from(UNARY))}({draw(same(depth + 1))})"
    if choice == 2:
        return f"-({draw(same(depth + 1))})"
    if choice == 3:
        fn = draw(st.sampled_from(["min", "max", "pow"]))
        return f"{fn}({draw(same(depth + 1))}, {other()})"
    if choice == 4:
        low, high = draw(st.sampled_from(CONSTANTS + PARAMETERS)), draw(st.sampled_from(CONSTANTS))
        return f"clamp({draw(same(depth + 1))}, {low}, {high})"
    if choice == 5:
        cmp = draw(st.sampled_from(COMPARE))
        return f"where({draw(same(depth + 1))} {cmp} {other()}, {draw(same(depth + 1))}, {other()})"
    if choice == 6:
        return f"where({draw(scalar(depth + 1))} > {draw(scalar(depth + 1))}, {draw(same(depth + 1))}, {other()})"
    return f"({draw(same(depth + 1))}) * ({other()})"


@st.composite
def voxel(draw, depth: int = 0) -> str:
    if depth >= MAX_DEPTH or draw(st.integers(0, 2)) == 0:
        return draw(st.sampled_from(VOXEL_TERMINALS))
    if draw(st.integers(0, 5)) == 0:
        return f"{draw(st.sampled_from(['softmax', 'log_softmax']))}({draw(voxel(depth + 1))})"
    return _elementwise(draw, voxel, depth)


@st.composite
def klass(draw, depth: int = 0) -> str:
    if depth >= MAX_DEPTH or draw(st.integers(0, 2)) == 0:
        choice = draw(st.integers(0, 4))
        if choice == 0:
            return "w"
        if choice == 1:
            k = draw(st.sampled_from(["0.1", "0.5", "1", "1e-6", "k"]))
            return f"topk_mean({draw(voxel(depth + 1))}, {k})"
        return f"{draw(st.sampled_from(REDUCE_VOXEL))}({draw(voxel(depth + 1))})"
    return _elementwise(draw, klass, depth)


@st.composite
def well_typed(draw) -> str:
    """A loss text: a class vector or a scalar."""
    return draw(st.one_of(klass(), klass(), scalar()))


@st.composite
def _kind_error(draw) -> str:
    """A sub-expression with exactly one kind error."""
    choice = draw(st.integers(0, 9))
    v, c, s = draw(voxel(2)), draw(klass(2)), draw(scalar(2))
    if choice == 0:
        op = draw(st.sampled_from(BINARY))
        return draw(st.sampled_from([f"({v}) {op} ({c})", f"({c}) {op} ({v})"]))
    if choice == 1:
        return f"{draw(st.sampled_from(REDUCE_VOXEL))}({draw(st.sampled_from([c, s]))})"
    if choice == 2:
        return f"{draw(st.sampled_from(REDUCE_CLASS))}({draw(st.sampled_from([v, s]))})"
    if choice == 3:
        return f"vsum(({v}) {draw(st.sampled_from(COMPARE))} ({v}))"
    if choice == 4:
        return f"vsum(where({v}, {v}, {v}))"
    if choice == 5:
        terminal = draw(st.sampled_from(VOXEL_TERMINALS + ["w"]))
        return f"vsum(clamp({v}, {terminal}, 1))"
    if choice == 6:
        return f"topk_mean({v}, {draw(st.sampled_from(VOXEL_TERMINALS))})"
    if choice == 7:
        fn = draw(st.sampled_from(["log", "vsum", "csum", "min", "clamp", "where", "pow"]))
        arity = {"log": 1, "vsum": 1, "csum": 1, "min": 2, "clamp": 3, "where": 3, "pow": 2}[fn]
        count = draw(st.sampled_from([n for n in range(5) if n != arity]))
        return f"{fn}({', '.join([v] * count)})"
    if choice == 8:
        return f"where(({v} > 0) > 0, {v}, {v})"
    return f"vmean(where({c} > 0.5, {v}, {v}))"


@st.composite
def ill_typed(draw) -> str:
    """A loss text with one kind error, possibly wrapped in well-typed context."""
    error = draw(_kind_error())
    if draw(st.booleans()):
        return draw(st.sampled_from(["p", "y * p", "logp - z", "softmax(z)"]))  # voxel result
    wrap = draw(st.integers(0, 3))
    if wrap == 0:
        return error
    if wrap == 1:
        return f"({draw(klass(2))}) + ({error})"
    if wrap == 2:
        return f"csum({error}) * {draw(scalar(3))}"
    return f"1 - ({error}) / ({draw(klass(3))})"


def expressions() -> st.SearchStrategy[tuple[str, bool]]:
    """``(text, well_typed)``, three well-typed texts for one ill-typed."""
    return st.one_of(
        well_typed().map(lambda t: (t, True)),
        well_typed().map(lambda t: (t, True)),
        well_typed().map(lambda t: (t, True)),
        ill_typed().map(lambda t: (t, False)),
    )


def garbage() -> st.SearchStrategy[str]:
    """Any text, mostly made of the language's own characters and words."""
    alphabet = st.sampled_from(list("pyzwl()+-*/<>=.,;# 0123456789e_\n\t\\'\"[]{}:!@$%^&|~`?"))
    words = st.sampled_from(
        ["vsum(", "vmean(", "csum(", "where(", "topk_mean(", "p", "y", "logp", "gamma=", ")",
         "1e300", "1e39", "nan", "inf", "lambda", "import", "**", "--", "#", ";", "__class__"]
    )  # fmt: skip
    return st.one_of(
        st.text(),
        st.text(alphabet, max_size=60),
        st.lists(st.one_of(words, alphabet), max_size=30).map("".join),
        well_typed().flatmap(lambda t: st.integers(0, len(t)).map(lambda i: t[:i])),
    )
