"""The package's import structure: imports point downward, privates stay private."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "annfactory"


def imported_modules(path: Path) -> set[str]:
    """The modules a source file imports from (at any depth: lazy imports too)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


def test_runs_imports_nothing_from_tasks() -> None:
    # Training checkpoints and export save runs too: saving must not need a task.
    imported = imported_modules(PACKAGE / "runs.py")
    assert "annfactory" in {name.partition(".")[0] for name in imported}
    assert not [name for name in imported if name.startswith("annfactory.tasks")]


def defined_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def test_require_mapping_is_defined_once() -> None:
    defining = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if {"require_mapping", "_require_mapping"} & defined_functions(path)
    )
    assert defining == ["params.py"]
