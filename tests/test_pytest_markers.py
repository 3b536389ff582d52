"""The suite's ``slow`` marker: registered (``--strict-markers`` makes a typo an error), used, and
``-m "not slow"`` (the quick loop of CONTRIBUTING.md) still selects tests.

CI runs every test; the marker only serves local loops. The check reads the test files with
:mod:`ast` instead of collecting them, so it costs no TensorFlow import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def _is_slow_mark(node: ast.AST) -> bool:
    """``pytest.mark.slow`` (also called, ``pytest.mark.slow(...)``)."""
    node = node.func if isinstance(node, ast.Call) else node
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "slow"
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "mark"
    )


def _module_is_slow(tree: ast.Module) -> bool:
    """A module-level ``pytestmark`` holding ``pytest.mark.slow`` (alone or in a list)."""
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(getattr(t, "id", None) == "pytestmark" for t in targets):
                return any(_is_slow_mark(n) for n in ast.walk(node.value))
    return False


def marked_slow() -> dict[str, bool]:
    """``{"file::test_name": marked slow}`` for every test function of the suite."""
    found = {}
    for path in sorted(TESTS.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        module_slow = _module_is_slow(tree)
        functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            functions += [n for n in cls.body if isinstance(n, ast.FunctionDef)]
        for function in functions:
            if function.name.startswith("test"):
                slow = module_slow or any(_is_slow_mark(d) for d in function.decorator_list)
                found[f"{path.name}::{function.name}"] = slow
    return found


def test_slow_marker_is_registered_and_markers_are_strict(pytestconfig: pytest.Config):
    registered = [line.split(":")[0].strip() for line in pytestconfig.getini("markers")]
    assert "slow" in registered, "register the slow marker in pyproject.toml"
    assert "--strict-markers" in pytestconfig.getini("addopts")


def test_some_tests_are_slow_and_not_slow_still_selects_tests():
    marks = marked_slow()
    slow = [name for name, is_slow in marks.items() if is_slow]
    quick = [name for name, is_slow in marks.items() if not is_slow]
    assert slow, "no test is marked slow: -m 'not slow' would be the whole suite"
    assert quick, "every test is marked slow: -m 'not slow' would select none"
