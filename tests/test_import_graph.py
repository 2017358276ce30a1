"""Imports run one way: no cycle among pytest_failmodes' modules, and the pytest
plugin never reaches the error-analysis tools.

The graph is read from the source (ast), not from an import: every import that
runs, at module level or inside a function (a deferred import still makes
both modules depend on each other), except those under ``if TYPE_CHECKING:``
unless asked for. Importing ``a.b.c`` also imports the packages ``a.b`` and ``a``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest_failmodes

PACKAGE = Path(pytest_failmodes.__file__).parent
NAME = "pytest_failmodes"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = [NAME, *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module, typing_too: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _type_checking(node) and not typing_too:
            stack.extend(node.orelse)
        else:
            stack.extend(ast.iter_child_nodes(node))


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def import_graph(typing_too: bool = False) -> dict[str, set[str]]:
    """Module -> the package's modules it imports when it runs (or, ``typing_too``, also
    those it imports for type checking only)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path)), typing_too):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                mod = ".".join([*base, node.module] if node.module else base)
                # `from . import x`: x may be a module or a name in the package
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
            for target in targets:
                found.update(m for m in _with_parents(target) if m in modules)
        graph[name] = found - {name, *_with_parents(name)}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path that returns to its start) per strongly connected group of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    out = []
    for group in groups:
        start = min(group)
        path = [start]
        # walk inside the group until a module repeats: that stretch is a cycle
        while True:
            nxt = min(w for w in graph[path[-1]] if w in group)
            if nxt in path:
                out.append([*path[path.index(nxt) :], nxt])
                break
            path.append(nxt)
    return out


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen = {start}
    todo = [start]
    while todo:
        for w in graph[todo.pop()] - seen:
            seen.add(w)
            todo.append(w)
    return seen


def test_the_graph_is_read() -> None:
    graph = import_graph()

    # a module-level, a deferred and a relative-package import, as the source has them
    assert "pytest_failmodes.engine" in graph["pytest_failmodes.collect"]
    assert "pytest_failmodes.session" in graph["pytest_failmodes.plugin"]
    assert "pytest_failmodes.probes.perturb" in graph["pytest_failmodes.probes"]
    # TYPE_CHECKING imports are edges only when asked for
    assert "pytest_failmodes.where" not in graph["pytest_failmodes.probes.run"]
    assert "pytest_failmodes.where" in import_graph(typing_too=True)["pytest_failmodes.probes.run"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}

    assert cycles(graph) == [["a", "b", "c", "a"]]


def test_no_import_cycle() -> None:
    found = cycles(import_graph())

    assert found == [], "import cycles (move the shared piece down into a module both import): " + "; ".join(
        " -> ".join(c) for c in found
    )


def test_no_new_import_cycle_for_type_checking() -> None:
    # a cycle through annotations alone makes modules hard to move apart all the same
    found = cycles(import_graph(typing_too=True))

    assert found == [], "type-only import cycles (type against a Protocol, or move the shared piece down): " + "; ".join(
        " -> ".join(c) for c in found
    )


def test_the_plugin_never_imports_the_analysis_tools() -> None:
    graph = import_graph()

    reached = reachable(graph, "pytest_failmodes.plugin")

    assert "pytest_failmodes.session" in reached  # the walk does go through the plugin's deferred imports
    assert sorted(m for m in reached if m.startswith("pytest_failmodes.analysis")) == []
