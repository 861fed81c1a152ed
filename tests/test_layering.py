"""The layering rules of docs/architecture.md hold: no module imports a package above it, and no
two modules import each other (directly or through others). Imports under ``TYPE_CHECKING``
do not run and do not count; imports inside functions do.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "losslab"
# Small modules every layer may use; they import nothing of losslab but each other.
HELPERS = {
    "losslab",
    "losslab._lazy",
    "losslab.classwise",
    "losslab.errors",
    "losslab.hints",
    "losslab.interrupts",
    "losslab.limits",
    "losslab.strict_yaml",
    "losslab.tables",
    "losslab.typed",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(path: Path) -> set[str]:
    """The losslab modules ``path`` imports when it runs (module level or in functions)."""
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                for alias in child.names:
                    full = f"{child.module}.{alias.name}"
                    out.add(full if full in MODULES else child.module)
            elif isinstance(child, ast.Import):
                out.update(alias.name for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text()))
    # Importing ``a.b.c`` runs the package ``a.b`` first (unless it holds the importer).
    own = module_name(path)
    for name in list(out):
        parts = name.split(".")
        for cut in range(2, len(parts)):
            parent = ".".join(parts[:cut])
            if not (own == parent or own.startswith(parent + ".")):
                out.add(parent)
    return {m for m in out if m in MODULES}


GRAPH = {name: runtime_imports(path) - {name} for name, path in MODULES.items()}


def _rules() -> dict[str, set[str]]:
    """The table 'package | may import' of docs/architecture.md."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    rules = {}
    for line in text.splitlines():
        match = re.fullmatch(r"\|\s*(losslab[\w.]*)\s*\|([^|]*)\|", line.strip())
        if match:
            rules[match.group(1)] = {p.strip() for p in match.group(2).split(",") if p.strip()}
    return rules


RULES = _rules()


def package_of(module: str) -> str | None:
    """The longest package of the rules that holds ``module``."""
    best = None
    for package in RULES:
        if (module == package or module.startswith(package + ".")) and (
            best is None or len(package) > len(best)
        ):
            best = package
    return best


def test_the_rules_cover_every_module():
    loose = sorted(m for m in MODULES if m not in HELPERS and package_of(m) is None)
    assert not loose, f"modules in no package of docs/architecture.md's table: {loose}"
    assert {"losslab.losses", "losslab.search", "losslab.cli"} <= set(RULES)


def test_no_module_imports_a_package_above_it():
    broken = []
    for module, imported in sorted(GRAPH.items()):
        if module in HELPERS:
            assert not {m for m in imported if m not in HELPERS}, module
            continue
        home = package_of(module)
        for other in sorted(imported):
            there = package_of(other)
            if other in HELPERS or there == home or other.startswith(home + "."):
                continue
            if there not in RULES[home]:
                broken.append(f"{module} -> {other} ({home} may not import {there})")
    assert not broken, "imports against docs/architecture.md:\n" + "\n".join(broken)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_circles():
    assert _cycles(GRAPH) == []


@pytest.mark.parametrize(
    "graph, expected",
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": set()}, []),
    ],
)
def test_the_circle_finder_finds_circles(graph, expected):
    assert _cycles(graph) == expected


def test_no_module_is_longer_than_about_400_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for p in MODULES.values()
        if (n := len(p.read_text().splitlines())) > 420
    }
    assert not long, long
