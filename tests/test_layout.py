"""Layout rules: tests share helpers through helper modules only; app modules import nothing late."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imported_modules(path: Path) -> list[str]:
    """Every module `path` imports, at any depth (function-level imports included)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _forbidden(module: str) -> bool:
    parts = module.split(".")
    if parts[0] == "bench":
        return True
    return parts[0] == "tests" and any(p.startswith("test_") or p == "conftest" for p in parts[1:])


MODULES = sorted((ROOT / "tests").rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_test_module_imports_a_test_module_a_conftest_or_bench(path: Path) -> None:
    bad = [m for m in _imported_modules(path) if _forbidden(m)]
    assert bad == [], f"{path.relative_to(ROOT)} imports {bad}: move shared helpers to a helper module"


def test_the_check_sees_a_bad_import(tmp_path: Path) -> None:
    sample = tmp_path / "test_sample.py"
    sample.write_text("from tests.test_servers import make_server\nimport bench.stub\n"
                      "def f():\n    from tests.agent.conftest import free_port\n")
    assert [m for m in _imported_modules(sample) if _forbidden(m)] == [
        "tests.test_servers", "bench.stub", "tests.agent.conftest"]


def test_no_view_module_is_imported_at_the_bottom_of_another() -> None:
    """Areas register their view modules from the factory, never by a late import (an import circle)."""
    late = [f"{path.relative_to(ROOT)}:{number}"
            for path in sorted((ROOT / "app").rglob("*.py"))
            for number, line in enumerate(path.read_text().splitlines(), 1) if "noqa: E402" in line]
    assert late == []
