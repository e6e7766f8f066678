"""Every third-party module the package imports is declared in pyproject.toml.

A module imported at the top of a file (always needed) must be a core dependency; one imported
inside a function (an optional path, e.g. the peer libraries) may be an optional extra. Engines
that pandas or matplotlib load by name at run time (pyarrow for parquet) count as imports of the
module that asks for them. This is the guard for the bug where ``pyarrow`` was used by the run
store but never declared, and CI stayed green only because it was installed by hand.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata as md
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "liecheck"

# pandas / matplotlib calls that load an optional engine by name -> the module they load
ENGINES = {
    r"\.to_parquet\(|read_parquet\(": "pyarrow",
    r"\.to_excel\(|read_excel\(": "openpyxl",
    r"\.to_markdown\(": "tabulate",
    r"\.style\.(format|apply|map|applymap|to_html|hide|background_gradient)\(": "jinja2",
}
# import names whose distribution name differs and is not in this environment's metadata
KNOWN = {"PIL": "pillow", "skimage": "scikit-image", "sklearn": "scikit-learn"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(req: str) -> str:
    return _normalise(re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0])


def declared() -> tuple[set[str], set[str]]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_requirement_name(r) for r in meta["dependencies"]}
    extra = {_requirement_name(r) for reqs in meta.get("optional-dependencies", {}).values()
             for r in reqs}
    return core, extra


def imports(path: Path) -> dict[str, bool]:
    """Top-level module names imported by ``path`` -> whether any import is at module level."""
    tree = ast.parse(path.read_text(), str(path))
    top_level = {id(n) for n in tree.body}
    for n in tree.body:  # imports under a module-level try/if still run at import time
        if isinstance(n, (ast.Try, ast.If)):
            top_level |= {id(c) for c in ast.walk(n)}
    found: dict[str, bool] = {}
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            names = [a.name for a in n.names]
        elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
            names = [n.module]
        else:
            continue
        for name in names:
            mod = name.split(".")[0]
            found[mod] = found.get(mod, False) or id(n) in top_level
    text = path.read_text()
    for pattern, mod in ENGINES.items():
        if re.search(pattern, text):
            found[mod] = True
    return found


@functools.cache
def _packages() -> dict[str, list[str]]:
    return md.packages_distributions()


def distributions(module: str) -> set[str]:
    dists = {_normalise(d) for d in _packages().get(module, [])}
    if module in KNOWN:
        dists.add(KNOWN[module])
    return dists or {_normalise(module)}


def third_party_imports() -> dict[str, tuple[bool, list[str]]]:
    out: dict[str, tuple[bool, list[str]]] = {}
    for f in sorted(SRC.rglob("*.py")):
        for mod, top in imports(f).items():
            if mod == "liecheck" or mod in sys.stdlib_module_names or mod == "__future__":
                continue
            was_top, files = out.get(mod, (False, []))
            out[mod] = (was_top or top, files + [str(f.relative_to(ROOT))])
    return out


def test_every_import_is_declared():
    core, extra = declared()
    missing = []
    for mod, (top, files) in third_party_imports().items():
        allowed = core if top else core | extra
        if not distributions(mod) & allowed:
            where = "dependencies" if top else "dependencies or an optional extra"
            missing.append(f"{mod} (imported in {files[0]}) is not in [project] {where}")
    assert not missing, "undeclared imports:\n" + "\n".join(missing)


def test_run_store_engine_is_declared():
    """The run store writes parquet through pandas: pyarrow must be a core dependency."""
    core, _ = declared()
    assert imports(SRC / "store.py").get("pyarrow") is True
    assert "pyarrow" in core


def test_guard_catches_a_removed_dependency(monkeypatch):
    """The check itself can fail: drop pyarrow from the declared list and it must complain."""
    core, extra = declared()
    monkeypatch.setattr(sys.modules[__name__], "declared",
                        lambda: (core - {"pyarrow"}, extra))
    with pytest.raises(AssertionError, match="pyarrow"):
        test_every_import_is_declared()
