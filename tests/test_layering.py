"""Import layering (DESIGN section 3): dependencies flow one way, the core stays pure.

- ``config`` and the pure ``ledger`` modules (all but ``ledger/store.py``) import no
  asyncio, sqlite or network/device library, and nothing of the project outside
  themselves;
- ``drivers``, ``printer`` and ``sync`` import ``config``/``ledger`` only: never
  ``terminal``, nor each other.

Imports are read with ``ast`` (every ``import``, ``from ... import``, relative import and
``importlib.import_module("...")`` / ``__import__("...")`` with a literal name, at any
depth), so a lazy import inside a function counts as well.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PROJECT = ("config", "ledger", "drivers", "printer", "sync", "terminal")
IO_LIBRARIES = (
    "asyncio",
    "sqlite3",
    "aiosqlite",
    "aiohttp",
    "socket",
    "serial",
    "serial_asyncio_fast",
    "evdev",
    "smartcard",
    "escpos",
    "pyudev",
    "subprocess",
)
IMPURE_LEDGER_MODULES = frozenset({"ledger.store"})


@dataclass(frozen=True)
class Rule:
    """Modules under ``package`` may not import any of ``forbidden`` (top-level names)."""

    package: str
    forbidden: tuple[str, ...]
    why: str
    exempt: frozenset[str] = frozenset()


RULES = (
    Rule(
        "config",
        IO_LIBRARIES + tuple(p for p in PROJECT if p != "config"),
        "config is pure and imports nothing of the project but itself",
    ),
    Rule(
        "ledger",
        IO_LIBRARIES + tuple(p for p in PROJECT if p != "ledger"),
        "the ledger core (model, chain, rules) is pure: no I/O, no other package",
        exempt=IMPURE_LEDGER_MODULES,
    ),
    Rule("drivers", ("terminal", "printer", "sync"), "drivers import config/ledger only"),
    Rule("printer", ("terminal", "drivers", "sync"), "printer imports config/ledger only"),
    Rule("sync", ("terminal", "drivers", "printer"), "sync imports config/ledger only"),
)


def module_name(root: Path, path: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imported_names(path: Path, module: str) -> Iterator[tuple[int, str]]:
    """(line, absolute dotted name) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                keep = len(base) - node.level + (1 if is_pkg else 0)
                prefix = ".".join(base[:keep])
                name = ".".join(p for p in (prefix, node.module) if p)
            else:
                name = node.module or ""
            if name:
                yield node.lineno, name
            for alias in node.names:  # `from . import x` may name a module
                yield node.lineno, f"{name}.{alias.name}" if name else alias.name
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            yield node.lineno, node.args[0].value


def violations(root: Path, rules: tuple[Rule, ...] = RULES) -> list[str]:
    found: list[str] = []
    for rule in rules:
        pkg_dir = root / rule.package.replace(".", "/")
        for path in sorted(pkg_dir.rglob("*.py")):
            module = module_name(root, path)
            if module in rule.exempt:
                continue
            for line, name in imported_names(path, module):
                top = name.split(".")[0]
                if top in rule.forbidden:
                    rel = path.relative_to(root)
                    found.append(f"{rel}:{line} imports {name} ({rule.why})")
    return found


def test_project_layering_holds() -> None:
    assert violations(REPO_ROOT) == []


def test_every_layered_package_exists() -> None:
    for rule in RULES:
        assert (REPO_ROOT / rule.package / "__init__.py").is_file(), rule.package


def test_store_is_the_only_ledger_module_allowed_io() -> None:
    assert (REPO_ROOT / "ledger" / "store.py").is_file()
    names = {n for _, n in imported_names(REPO_ROOT / "ledger" / "store.py", "ledger.store")}
    assert "aiosqlite" in names  # the exemption is still needed, and only there


@pytest.mark.parametrize(
    ("rel", "source", "expected"),
    [
        ("ledger/bad.py", "import asyncio\n", "ledger/bad.py:1 imports asyncio"),
        ("ledger/bad.py", "def f():\n    import sqlite3\n", "ledger/bad.py:2 imports sqlite3"),
        ("ledger/bad.py", "from .. import terminal\n", "imports terminal"),
        ("ledger/bad.py", "from sync.wire import X\n", "imports sync.wire"),
        ("config/bad.py", "from ledger.money import parse_pln\n", "imports ledger.money"),
        (
            "drivers/sub/bad.py",
            "import importlib\nimportlib.import_module('terminal.app')\n",
            "drivers/sub/bad.py:2 imports terminal.app",
        ),
        ("printer/bad.py", "__import__('terminal')\n", "imports terminal"),
        ("sync/bad.py", "from ..terminal import app\n", "imports terminal"),
        ("sync/bad.py", "from drivers import msr\n", "imports drivers"),
    ],
)
def test_checker_catches_a_forbidden_import(
    tmp_path: Path, rel: str, source: str, expected: str
) -> None:
    for pkg in PROJECT:
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "drivers" / "sub").mkdir()
    (tmp_path / "drivers" / "sub" / "__init__.py").write_text("")
    (tmp_path / rel).write_text(source)
    found = violations(tmp_path)
    assert len(found) >= 1
    assert any(expected in v for v in found), found


def test_checker_allows_what_the_layers_may_use(tmp_path: Path) -> None:
    for pkg in PROJECT:
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "ledger" / "store.py").write_text("import asyncio\nimport aiosqlite\n")
    (tmp_path / "ledger" / "rules.py").write_text("from .money import x\nfrom ledger import y\n")
    (tmp_path / "drivers" / "msr.py").write_text("import asyncio\nfrom ledger.cards import m\n")
    (tmp_path / "sync" / "client.py").write_text("import aiohttp\nfrom config.schema import C\n")
    (tmp_path / "terminal" / "app.py").write_text("from drivers import msr\nimport printer\n")
    assert violations(tmp_path) == []
