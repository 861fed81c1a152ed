"""Console tables: nothing is cut when printed to a file or a pipe, the worst classes marked."""

from __future__ import annotations

import io
import math
import random

import pytest
from rich.console import Console

from losslab.console import class_table, per_class_table, print_table, worst_marks
from losslab.training.result import Result

NAN = math.nan

ELLIPSIS = "…"


def _class_names(n: int) -> list[str]:
    """Background and ``n`` foreground classes; every seventh a long name without spaces."""
    names = ["background"]
    for c in range(1, n + 1):
        long = c % 7 == 0
        names.append(
            f"structure_{c}_of_the_left_posterior_abdominal_wall" if long else f"organ_{c}"
        )
    return names


def _result(n: int, seed: int = 0) -> Result:
    rng = random.Random(seed)
    names = _class_names(n)
    metrics = {key: [rng.random() for _ in names] for key in ("dice", "sensitivity", "precision")}
    metrics["hd95"] = [rng.uniform(0.0, 1500.0) for _ in names]
    metrics["dice"][5] = math.nan  # a class absent from the test split
    return Result(status="ok", class_names=names, test_metrics=metrics)


def _rows(result: Result) -> dict[str, list[str]]:
    """The cells each class row must show, formatted as the table formats them."""
    m = result.test_metrics
    rows = {}
    for c, name in enumerate(result.class_names[1:], start=1):
        cells = [m[k][c] for k in ("dice", "sensitivity", "precision")]
        rows[name] = ["-" if math.isnan(v) else f"{v:.3f}" for v in cells] + [f"{m['hd95'][c]:.1f}"]
    return rows


def _line_of(text: str, name: str) -> str:
    lines = [line for line in text.splitlines() if f" {name} " in line]
    assert len(lines) == 1, (name, lines)
    return lines[0]


def test_a_116_class_table_printed_to_a_file_keeps_every_name_and_number() -> None:
    result = _result(116)
    out = io.StringIO()
    console = Console(file=out, width=80)
    print_table(console, per_class_table(result, title="dice_ce on totalseg"))
    text = out.getvalue()
    assert ELLIPSIS not in text
    for name, cells in _rows(result).items():
        line = _line_of(text, name)  # one row, one line: a log can be grepped by class
        assert all(f" {cell} " in line for cell in cells), (name, cells, line)
    fg = [result.foreground_mean(k) for k in ("dice", "sensitivity", "precision")]
    mean_line = _line_of(text, "mean (foreground)")
    assert all(f" {v:.3f} " in mean_line for v in fg)
    assert console.width == 80  # widened for the table only


def test_a_wide_comparison_table_printed_to_a_pipe_keeps_every_cell() -> None:
    names = _class_names(116)
    rng = random.Random(1)
    candidates = [f"candidate_{i}_with_a_long_name" for i in range(12)]
    columns = {c: [rng.random() for _ in names] for c in candidates}
    shares = [rng.random() / 50 for _ in names[1:]]
    out = io.StringIO()
    print_table(Console(file=out, width=200), class_table("t", names, shares, columns, None))
    text = out.getvalue()
    assert ELLIPSIS not in text
    assert all(c in text for c in candidates)
    for c, name in enumerate(names[1:], start=1):
        line = _line_of(text, name)
        assert f" {100 * shares[c - 1]:.1f}% " in line
        assert all(f"{columns[k][c]:.3f}" in line for k in candidates), name


@pytest.mark.parametrize("force_terminal", [False, True])
def test_a_narrow_console_folds_cells_instead_of_cutting_them(force_terminal: bool) -> None:
    """Printed as is at 80 columns (a terminal, or a caller not using print_table): long
    names fold over lines, numbers stay whole, nothing ends in an ellipsis."""
    result = _result(30)
    out = io.StringIO()
    Console(file=out, width=80, force_terminal=force_terminal, color_system=None).print(
        per_class_table(result)
    )
    text = out.getvalue()
    assert ELLIPSIS not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    first_column = "".join(line.split("│")[1].strip() for line in text.splitlines() if "│" in line)
    for name, cells in _rows(result).items():
        assert name in first_column  # folded over lines, not cut
        assert all(f" {cell} " in text for cell in cells)


def _marked(dice: list[float], worst: int = 3) -> list[str]:
    names = ["background"] + [f"class_{c}" for c in range(1, len(dice))]
    result = Result(status="ok", class_names=names, test_metrics={"dice": dice})
    out = io.StringIO()
    Console(file=out, width=120).print(per_class_table(result, worst=worst))
    return [line.split()[1] for line in out.getvalue().splitlines() if "(worst)" in line]


@pytest.mark.parametrize("n_foreground", [1, 2, 3])
def test_three_or_fewer_foreground_classes_are_not_marked_worst(n_foreground: int) -> None:
    assert _marked([0.99] + [0.5 + 0.1 * c for c in range(n_foreground)]) == []


def test_with_more_classes_than_marks_the_lowest_dice_are_marked() -> None:
    assert sorted(_marked([0.99, 0.9, 0.2, 0.8, 0.1])) == ["class_2", "class_3", "class_4"]
    assert sorted(_marked([0.99, 0.9, 0.2, 0.8, 0.1], worst=1)) == ["class_4"]


def test_absent_classes_are_neither_ranked_nor_counted() -> None:
    # Four foreground classes, one absent (NaN): three ranked, so none is marked with k = 3.
    assert _marked([0.99, 0.9, math.nan, 0.8, 0.1]) == []
    assert sorted(_marked([0.99, 0.9, math.nan, 0.8, 0.1], worst=2)) == ["class_3", "class_4"]


def test_the_mean_row_is_over_scored_foreground_classes_and_marks_the_reference() -> None:
    # Background (1.0 / 0.0) and NaN never count: means 0.5 for "ref" and 0.6 for "new".
    columns = {"ref": [1.0, 0.4, math.nan, 0.6], "new": [0.0, 0.5, 0.7, math.nan]}
    names = ["background", "a", "b", "c"]
    out = io.StringIO()
    print_table(
        Console(file=out, width=120), class_table("t", names, [0.2, 0.3, 0.5], columns, "ref")
    )
    mean_line = _line_of(out.getvalue(), "mean")
    assert " 0.500 " in mean_line and " +0.600 " in mean_line
    assert "*" not in out.getvalue()  # no star: a star on every cell under 0.8 said nothing


def test_a_table_with_no_scored_foreground_class_shows_a_dash_for_the_mean() -> None:
    columns = {"only": [0.9, math.nan]}
    out = io.StringIO()
    print_table(Console(file=out, width=80), class_table("t", ["background", "a"], [1.0], columns))
    assert _line_of(out.getvalue(), "mean").split("│")[3].strip() == "-"


def test_classes_that_tie_are_said_to_tie_not_ranked() -> None:
    # Three classes at 0.000 (never learned): none is "the worst"; the table says they tie.
    dice = [0.99, 0.9, 0.0, 0.8, 0.0, 0.0, 0.7]
    assert worst_marks(dice, 3) == {
        2: "(3 tie at 0.000)",
        4: "(3 tie at 0.000)",
        5: "(3 tie at 0.000)",
    }
    assert _marked(dice) == []
    # A tie across the cut takes in the whole tie; a tie below it, then the next class.
    assert set(worst_marks([0.99, 0.0, 0.0, 0.0, 0.0, 0.5, 0.7], 3)) == {1, 2, 3, 4}
    assert worst_marks([0.99, 0.9, 0.0, 0.8, 0.0, 0.5, 0.7], 3) == {
        2: "(2 tie at 0.000)", 4: "(2 tie at 0.000)", 5: "(worst)"
    }  # fmt: skip
    assert worst_marks([0.99, 0.0, 0.0, 0.0, 0.0], 3) == {}  # all tie: marking says nothing
    assert worst_marks([0.99, 0.9004, 0.9001, 0.5, 0.4], 2) == {3: "(worst)", 4: "(worst)"}


def test_hd95_of_a_class_never_predicted_says_why() -> None:
    names = ["background", "liver", "gallbladder", "spleen"]
    metrics = {
        "dice": [NAN, 0.9, 0.0, 0.0],
        "sensitivity": [NAN, 0.9, 0.0, 0.0],
        "precision": [NAN, 0.9, 0.0, 0.0],
        "hd95": [NAN, 2.0, 83.1, 12.5],
    }
    result = Result(status="ok", class_names=names, test_metrics=metrics)
    # gallbladder: predicted nowhere; spleen: predicted in the wrong place (a real distance).
    result.test_cases = {
        "dice": [[NAN, 0.9, 0.0, 0.0]],
        "predicted_voxels": [[900.0, 120.0, 0.0, 7.0]],
    }
    out = io.StringIO()
    print_table(Console(file=out, width=200), per_class_table(result))
    text = out.getvalue()
    (row,) = [line for line in text.splitlines() if line.startswith("│ gallbladder ")]
    assert "n/a: never predicted" in row and "83.1" not in row
    assert " 12.5 " in _line_of(text, "spleen") and " 2.0 " in _line_of(text, "liver")
    assert "gallbladder never predicted on the test split" in text.replace("\n", " ")
