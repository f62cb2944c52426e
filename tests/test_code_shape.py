"""The shape the project promises of its code (read with ``ast``, nothing imported):

- the product (``train/``, ``export/``, ``edge/``, ``benchmarks/``, ``core/``, ``skinlesion/``)
  never imports ``research/`` (the research line is not installed);
- no command-line script imports another one (a script is a module with a ``main`` run under
  ``if __name__ == "__main__"``; shared code lives in library modules);
- every function is at most ``MAX_FUNCTION_LINES`` lines long;
- ``docs/cli.md``, which says it lists every tool, names every script.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("train", "export", "edge", "benchmarks", "core", "skinlesion")
ALL = PRODUCT + ("research",)
MAX_FUNCTION_LINES = 60


def _modules(packages: tuple[str, ...]) -> dict[str, Path]:
    """``{dotted name: path}`` of every Python file in ``packages``."""
    return {".".join(p.relative_to(ROOT).with_suffix("").parts): p
            for pkg in packages for p in sorted((ROOT / pkg).rglob("*.py"))}


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (``from a import b`` counts as ``a`` and ``a.b``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return found


def _is_script(path: Path) -> bool:
    text = path.read_text()
    return "def main(" in text and '__name__ == "__main__"' in text


def test_the_product_never_imports_research():
    bad = [f"{name} imports {m}" for name, p in _modules(PRODUCT).items()
           for m in _imports(p) if m == "research" or m.startswith("research.")]
    assert not bad, "; ".join(bad)


def test_no_script_imports_another_script():
    mods = _modules(ALL)
    scripts = {name for name, p in mods.items() if _is_script(p)}
    assert {"export.convert", "edge.classify", "train.train"} <= scripts  # the check sees them
    bad = [f"{name} imports {m}" for name in sorted(scripts)
           for m in _imports(mods[name]) if m in scripts - {name}]
    assert not bad, "; ".join(bad)


@pytest.mark.parametrize("package", ALL)
def test_every_function_is_at_most_60_lines(package):
    long = []
    for name, p in _modules((package,)).items():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {n} lines")
    assert not long, "; ".join(long)


def test_docs_cli_names_every_script():
    text = (ROOT / "docs" / "cli.md").read_text()
    scripts = [p.relative_to(ROOT).as_posix() for p in _modules(ALL).values() if _is_script(p)]
    assert len(scripts) > 10
    missing = [s for s in scripts if s not in text]
    assert not missing, f"docs/cli.md does not name: {', '.join(missing)}"
