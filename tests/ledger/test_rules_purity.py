"""The rules engine is pure: no event loop, database, network, clock or randomness."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

ENGINE = ("rules", "usage", "periods", "refusals", "voids", "explanations", "daytotals")
ALLOWED_STDLIB = {
    "__future__",
    "array",
    "bisect",
    "collections",
    "dataclasses",
    "datetime",
    "enum",
    "fractions",
    "math",
    "sys",
    "typing",
    "zoneinfo",
}
ALLOWED_LEDGER = {
    f"ledger.{m}" for m in (*ENGINE, "domain", "entry", "clock", "money", "canonical")
}
FORBIDDEN_AT_RUNTIME = (
    "asyncio",
    "sqlite3",
    "aiosqlite",
    "aiohttp",
    "socket",
    "subprocess",
    "structlog",
    "threading",
    "random",
    "config",
    "terminal",
    "sync",
    "drivers",
    "printer",
)


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("module", ENGINE)
def test_engine_module_imports_only_pure_things(module: str) -> None:
    for name in imported_modules(REPO_ROOT / "ledger" / f"{module}.py"):
        root = name.split(".")[0]
        assert root in ALLOWED_STDLIB or root == "msgspec" or name in ALLOWED_LEDGER, (
            f"ledger/{module}.py imports {name}"
        )


def test_importing_the_engine_loads_no_io_machinery() -> None:
    probe = (
        "import sys, ledger.rules\n"
        f"print(','.join(m for m in {FORBIDDEN_AT_RUNTIME!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    assert out.stdout.strip() == ""
