"""Dependency direction: serve_app -> actors -> actors.engine, and the engine is pure."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The engine may use the standard library's pure parts and sortedcontainers, nothing else.
ENGINE_FORBIDDEN_STDLIB = {
    "asyncio", "time", "datetime", "random", "os", "socket", "subprocess", "threading",
    "multiprocessing", "secrets", "uuid", "io", "pathlib", "shutil", "tempfile", "sqlite3",
}  # fmt: skip
ENGINE_ALLOWED_THIRD_PARTY = {"sortedcontainers"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", _files("actors/engine"), ids=lambda p: p.name)
def test_engine_imports_only_pure_modules(path: Path) -> None:
    for name in _imports(path):
        top = name.split(".")[0]
        if name.startswith("actors.engine") or top == "__future__":
            continue
        assert top not in ENGINE_FORBIDDEN_STDLIB, f"{path.name} imports {name}: not pure"
        assert top in sys.stdlib_module_names or top in ENGINE_ALLOWED_THIRD_PARTY, (
            f"{path.name} imports {name}: the engine may not depend on it"
        )


@pytest.mark.parametrize("path", _files("actors"), ids=lambda p: str(p.relative_to(ROOT)))
def test_actors_never_import_serve_app(path: Path) -> None:
    assert not any(n.split(".")[0] == "serve_app" for n in _imports(path)), path
