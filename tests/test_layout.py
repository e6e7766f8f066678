"""The tree shows the architecture (issue 20, items 4 and 7): short functions in the core
(``engine``, ``rules``, ``methods``), and tests laid out like the package they test."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "liecheck"
MAX_LINES = 60


def long_functions(folder: Path, limit: int = MAX_LINES) -> list[str]:
    out = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > limit:
                    out.append(f"{path.relative_to(folder)}:{node.lineno} {node.name} ({n} lines)")
    return out


def test_the_checker_sees_a_long_function(tmp_path):
    (tmp_path / "m.py").write_text("def f():\n" + "    x = 1\n" * 61)
    assert long_functions(tmp_path, 60) and not long_functions(tmp_path, 62)


def test_no_function_longer_than_60_lines_in_the_core():
    found = [f for part in ("engine", "rules", "methods") for f in long_functions(SRC / part)]
    assert not found, "functions over 60 lines: " + "; ".join(found)


def test_each_test_folder_mirrors_a_package():
    folders = [p for p in (ROOT / "tests").iterdir() if p.is_dir() and p.name != "__pycache__"]
    assert len(folders) >= 10
    for folder in folders:
        assert (SRC / folder.name / "__init__.py").exists(), (
            f"tests/{folder.name} has no package src/liecheck/{folder.name}")
        assert list(folder.glob("test_*.py")), folder
