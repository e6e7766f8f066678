"""The package has no import cycles among its module-level imports (issue 11): a module
never imports, directly or through others, a module that imports it back.

Edges are the explicit module-level imports between liecheck's own modules (``import``,
``from . import x``, ``from .a import b``), imports under ``if TYPE_CHECKING`` included
(a cycle that exists only for the type checker is still a layering error).
``from .pkg import name`` points at the submodule ``pkg.name`` when that is a module, else
at the package ``pkg`` itself (its ``__init__``). Function-local imports are not edges:
they run on use, and docs/ARCHITECTURE.md lists where they remain and why.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "liecheck"


def _modules() -> dict[str, Path]:
    mods = {}
    for p in SRC.rglob("*.py"):
        parts = list(p.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    return mods


def _top_level_imports(tree: ast.Module):
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.If, ast.Try)):  # optional imports at module level
            for sub in ast.walk(node):
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    yield sub


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _top_level_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    root = ".".join(base + ([node.module] if node.module else []))
                else:
                    root = node.module or ""
                targets = [f"{root}.{a.name}" if f"{root}.{a.name}" in mods else root
                           for a in node.names]
            graph[name].update(t for t in targets if t in mods and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The modules of one import cycle (sorted), or ``[]`` when there is none."""
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        return [sorted(set(exc.args[1]))]
    return []


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_sees_the_package():
    g = import_graph()
    assert "liecheck.metrics.csc" in g and "liecheck.engine.walk" in g
    assert "liecheck.metrics.csc_hooks" in g["liecheck.metrics.csc"]  # a known edge


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles among liecheck's modules: " + "; ".join(
        " <-> ".join(c) for c in found)


def test_type_checking_imports_are_edges():
    tree = ast.parse("if TYPE_CHECKING:\n    from .graph import Graph\n")
    assert [type(n).__name__ for n in _top_level_imports(tree)] == ["ImportFrom"]


def test_the_engine_and_the_rules_import_nothing_above_them():
    """The engine knows nothing of methods (issue 20): no module of liecheck.engine imports
    liecheck.methods or anything above; the rules import only the engine."""
    g = import_graph()
    above = ("liecheck.methods", "liecheck.attribution", "liecheck.metrics", "liecheck.theory",
             "liecheck.reproduce", "liecheck.report", "liecheck.cli")
    for mod, deps in g.items():
        if mod.startswith("liecheck.engine"):
            assert not [d for d in deps if d.startswith(above + ("liecheck.rules",))], mod
        if mod.startswith("liecheck.rules"):
            assert not [d for d in deps if d.startswith(above)], mod
