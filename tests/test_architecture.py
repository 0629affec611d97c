"""The shape docs/ARCHITECTURE.md promises: imports flow one way (lazy ones included), modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("valueharms", "vim", "benchmarks", "judges", "analysis", "demo")
#: package -> the project packages it may import.
ALLOWED = {
    "valueharms": set(),
    "vim": {"valueharms"},
    "benchmarks": {"valueharms"},
    "judges": {"valueharms", "benchmarks"},
    "analysis": {"valueharms", "vim", "benchmarks", "judges"},
    "demo": {"valueharms", "judges", "analysis"},
}


def _modules():
    for package in PACKAGES:
        yield from sorted((REPO / package).rglob("*.py"))


def _imports(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
    return found & set(PACKAGES)


@pytest.mark.parametrize("path", list(_modules()), ids=lambda p: str(p.relative_to(REPO)))
def test_imports_flow_one_way_and_modules_stay_small(path):
    package = path.relative_to(REPO).parts[0]
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    wrong = _imports(tree) - ALLOWED[package] - {package}
    assert not wrong, f"{package} must not import {sorted(wrong)}"
    assert source.count("\n") <= 400, "a module over 400 lines: split it by concern"
    long = [f"{n.name} ({n.end_lineno - n.lineno + 1} lines)" for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 80]
    assert not long, f"functions over 80 lines: {long}"
