"""Import layering (docs/architecture.md §2): dependencies flow one way, the core stays pure.

- ``config`` and the pure ``ledger`` modules (all but ``ledger/store.py``) import no
  asyncio, sqlite or network/device library, and nothing of the project outside
  themselves;
- ``drivers``, ``printer`` and ``sync`` import ``config``/``ledger`` only: never
  ``terminal``, nor each other;
- the terminal's ``sync`` modules never import the city server (``sync.central``), and
  ``sync.central`` imports of the project only ``sync.wire``, ``ledger`` and ``config``;
- no import circle anywhere in the project: a module never needs a lazy import to
  dodge one;
- no package module uses a third-party dependency's private names (``from x import _y``,
  ``conn._execute``), except the one pinned and tested use listed in ``PINNED_PRIVATE``;
- importing a package module never changes the process environment (``os.environ``).

Imports are read with ``ast`` (every ``import``, ``from ... import``, relative import and
``importlib.import_module("...")`` / ``__import__("...")`` with a literal name, at any
depth), so a lazy import inside a function counts as well.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import itertools
import re
import sqlite3
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiosqlite
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
SERVICE_MODULES = ("terminal.sale", "terminal.views", "terminal.errors")


def under(name: str, prefixes: tuple[str, ...] | frozenset[str]) -> bool:
    """Whether dotted ``name`` is one of ``prefixes`` or inside one of them."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@dataclass(frozen=True)
class Rule:
    """Modules under ``package`` may not import any of ``forbidden`` (nor what is inside).

    ``exempt`` names modules or packages (with everything inside them) the rule skips.
    """

    package: str
    forbidden: tuple[str, ...]
    why: str
    exempt: frozenset[str] = frozenset()


@dataclass(frozen=True)
class OnlyRule:
    """Of the project, modules under ``package`` import only ``allowed`` (and themselves)."""

    package: str
    allowed: tuple[str, ...]
    why: str


RULES: tuple[Rule, ...] = (
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
    Rule(
        "sync",
        ("sync.central",),
        "the terminal's sync client never pulls in the city server",
        exempt=frozenset({"sync.central"}),
    ),
    # docs/architecture.md §2: the sale service speaks the domain, only api.py speaks HTTP.
    *(
        Rule(
            module,
            ("terminal.api", "aiohttp"),
            "the sale service answers with terminal.views and raises terminal.errors",
        )
        for module in SERVICE_MODULES
    ),
)
# sync.central imports nothing of sync but the wire format today: no exemption needed.
ONLY_RULES = (
    OnlyRule(
        "sync.central",
        ("sync.wire", "ledger", "config"),
        "the city server shares only the wire format, the ledger and config with the till",
    ),
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


def package_modules(root: Path, package: str) -> Iterator[tuple[Path, str]]:
    """(path, dotted module name) of every module under ``package``."""
    pkg_dir = root / package.replace(".", "/")
    if pkg_dir.is_dir():
        for path in sorted(pkg_dir.rglob("*.py")):
            yield path, module_name(root, path)
    elif pkg_dir.with_suffix(".py").is_file():  # a rule about one module
        yield pkg_dir.with_suffix(".py"), package


def violations(
    root: Path, rules: tuple[Rule, ...] = RULES, only: tuple[OnlyRule, ...] = ONLY_RULES
) -> list[str]:
    found: list[str] = []
    for rule in rules:
        for path, module in package_modules(root, rule.package):
            if under(module, rule.exempt):
                continue
            for line, name in imported_names(path, module):
                if under(name, rule.forbidden):
                    rel = path.relative_to(root)
                    found.append(f"{rel}:{line} imports {name} ({rule.why})")
    for o in only:
        allowed = (o.package, *o.allowed)
        for path, module in package_modules(root, o.package):
            for line, name in imported_names(path, module):
                # `from sync import wire` also names the package `sync` it goes through.
                through = any(a.startswith(name + ".") for a in allowed)
                if name.split(".")[0] in PROJECT and not under(name, allowed) and not through:
                    rel = path.relative_to(root)
                    found.append(f"{rel}:{line} imports {name} ({o.why})")
    return found


def test_project_layering_holds() -> None:
    assert violations(REPO_ROOT) == []


def test_every_layered_package_exists() -> None:
    rules: list[Rule | OnlyRule] = [*RULES, *ONLY_RULES]
    for rule in rules:
        package = rule.package.replace(".", "/")
        module = REPO_ROOT / f"{package}.py"
        assert (REPO_ROOT / package / "__init__.py").is_file() or module.is_file(), rule.package


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
        ("sync/bad.py", "from sync.central.db import CentralDB\n", "imports sync.central.db"),
        (
            "sync/bad.py",
            "def f():\n    from . import central\n",
            "sync/bad.py:2 imports sync.central",
        ),
        ("sync/central/bad.py", "from sync.keys import load\n", "imports sync.keys"),
        ("sync/central/bad.py", "from sync import backoff\n", "imports sync.backoff"),
        ("sync/central/bad.py", "from ..client import SyncClient\n", "imports sync.client"),
        ("sync/central/bad.py", "import drivers.msr\n", "imports drivers.msr"),
        ("terminal/sale.py", "from terminal.api import ApiError\n", "imports terminal.api"),
        ("terminal/views.py", "from aiohttp import web\n", "imports aiohttp"),
    ],
)
def test_checker_catches_a_forbidden_import(
    tmp_path: Path, rel: str, source: str, expected: str
) -> None:
    for pkg in (*PROJECT, "drivers/sub", "sync/central"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
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
    (tmp_path / "sync" / "central").mkdir()
    (tmp_path / "sync" / "central" / "__init__.py").write_text("from .db import CentralDB\n")
    (tmp_path / "sync" / "central" / "db.py").write_text(
        "import aiosqlite\nfrom sync import wire\nfrom sync.wire import encode\n"
        "from ledger.entry import Entry\nfrom config.schema import C\nfrom . import verify\n"
    )
    assert violations(tmp_path) == []


def make_tree(root: Path, files: dict[str, str]) -> None:
    """A project tree of the layered packages (empty ``__init__``) plus ``files``."""
    for pkg in PROJECT:
        (root / pkg).mkdir(exist_ok=True)
        (root / pkg / "__init__.py").write_text("")
    for rel, source in files.items():
        path = root / rel
        for parent in reversed(path.relative_to(root).parents[:-1]):
            if not (root / parent).is_dir():
                (root / parent).mkdir()
                (root / parent / "__init__.py").write_text("")
        path.write_text(source)


# --- no import circle -------------------------------------------------------------------


def project_modules(root: Path) -> dict[str, Path]:
    return {m: p for pkg in PROJECT for p, m in package_modules(root, pkg)}


def import_graph(root: Path) -> dict[str, dict[str, int]]:
    """module -> {project module it imports (lazily or not): first line that does}."""
    modules = project_modules(root)
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        by_line: dict[int, set[str]] = {}
        for line, name in imported_names(path, module):
            parts = name.split(".")
            for n in range(len(parts), 0, -1):  # the longest prefix that is a module
                target = ".".join(parts[:n])
                if target in modules:
                    by_line.setdefault(line, set()).add(target)
                    break
        edges = graph.setdefault(module, {})
        for line, targets in sorted(by_line.items()):
            for t in targets:
                # `from sync import central` needs sync.central, not sync's __init__ itself.
                if t == module or any(o.startswith(t + ".") for o in targets):
                    continue
                edges.setdefault(t, line)
    return graph


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's components with more than one module, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def import_cycles(root: Path) -> list[str]:
    """One shortest circle per knot of modules, e.g. ``a -> b (a.py:3) -> a (b.py:9)``."""
    graph = import_graph(root)
    modules = project_modules(root)
    found: list[str] = []
    for component in strongly_connected(graph):
        inside, start = set(component), component[0]
        came_from: dict[str, str] = {}
        frontier = [start]
        while start not in came_from:  # breadth first, back to start
            nxt: list[str] = []
            for v in frontier:
                for w in sorted(graph[v]):
                    if w in inside and w not in came_from:
                        came_from[w] = v
                        nxt.append(w)
            frontier = nxt
        path = [start]
        while True:
            path.append(came_from[path[-1]])
            if path[-1] == start:
                break
        path.reverse()
        steps = [start]
        for a, b in itertools.pairwise(path):
            rel = modules[a].relative_to(root)
            steps.append(f"{b} ({rel}:{graph[a][b]})")
        found.append("import cycle: " + " -> ".join(steps))
    return found


def test_no_import_cycle() -> None:
    assert import_cycles(REPO_ROOT) == []


def test_the_import_graph_sees_lazy_imports() -> None:
    graph = import_graph(REPO_ROOT)
    assert "drivers.pcsc" in graph["drivers.factory"]  # imported inside build_reader
    assert "drivers.base" in graph["drivers.pcsc"]


def test_cycle_checker_reports_the_path(tmp_path: Path) -> None:
    """The circle drivers/ had: base builds readers lazily, the readers import base."""
    make_tree(
        tmp_path,
        {
            "drivers/base.py": "def build():\n    from drivers.setup import make\n",
            "drivers/setup.py": "def make():\n    from drivers import serial\n",
            "drivers/serial.py": "import serial\n\nfrom drivers.base import TaskReader\n",
            "drivers/msr.py": "from drivers.base import TaskReader\n",
        },
    )
    assert import_cycles(tmp_path) == [
        "import cycle: drivers.base -> drivers.setup (drivers/base.py:2)"
        " -> drivers.serial (drivers/setup.py:2) -> drivers.base (drivers/serial.py:3)"
    ]


def test_cycle_checker_allows_a_package_that_reexports(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {
            "sync/central/__init__.py": "from sync.central.db import DB\nfrom . import app\n",
            "sync/central/db.py": "from sync.wire import encode\n",
            "sync/central/app.py": "from sync.central.db import DB\nfrom . import db\n",
            "terminal/cli.py": "from sync import central\nfrom sync.central import app\n",
        },
    )
    assert import_cycles(tmp_path) == []


# --- no private names of dependencies ---------------------------------------------------

# Private attributes of objects a dependency hands out (aiosqlite's Connection, ...): a
# receiver other than self/cls is someone else's object.
DEPENDENCY_PRIVATE_ATTRS = frozenset({"_execute", "_conn", "_connection", "_tx"})
# (module, private name): why the one use is allowed. Each is pinned and tested below.
# aiosqlite's public API runs one statement per awaited call; the ledger's group commit
# must run whole in aiosqlite's thread (see run_in_connection_thread). The version is
# pinned in pyproject.toml and the names are checked by the test below the checker.
PINNED_PRIVATE = {
    ("ledger.store", "_conn"): "aiosqlite.Connection's sqlite3 connection, in its thread",
    ("ledger.store", "_execute"): "aiosqlite.Connection: run a callable in its thread",
}
SCANNED_OUTSIDE_TESTS = (*PROJECT, "benchmarks")


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def is_third_party(name: str) -> bool:
    top = name.split(".")[0]
    ours = (*SCANNED_OUTSIDE_TESTS, "tests")
    return bool(top) and top not in ours and top not in sys.stdlib_module_names


def dependency_names(tree: ast.Module, dep_aliases: set[str]) -> Iterator[tuple[int, str, str]]:
    """(line, name, what the code does) for names taken from dependencies or their objects."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and not node.level and node.module:
            if is_third_party(node.module):
                for part in [*node.module.split("."), *(a.name for a in node.names)]:
                    yield node.lineno, part, f"imports {part} from {node.module}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if is_third_party(a.name):
                    for part in a.name.split("."):
                        yield node.lineno, part, f"imports {a.name}"
        elif isinstance(node, ast.Attribute) and is_private(node.attr):
            receiver = node.value
            if isinstance(receiver, ast.Name) and receiver.id in dep_aliases:
                yield node.lineno, node.attr, f"uses {receiver.id}.{node.attr}"
            elif node.attr in DEPENDENCY_PRIVATE_ATTRS and not (
                isinstance(receiver, ast.Name) and receiver.id in ("self", "cls")
            ):
                yield node.lineno, node.attr, f"uses .{node.attr} of a dependency's object"


def private_uses(root: Path, pinned: dict[tuple[str, str], str] = PINNED_PRIVATE) -> list[str]:
    """Every use of a third-party private name outside tests that is not pinned."""
    found: list[str] = []
    for pkg in SCANNED_OUTSIDE_TESTS:
        for path, module in package_modules(root, pkg):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            rel = path.relative_to(root)
            dep_aliases = {  # local names bound to a third-party module
                (a.asname or a.name.split(".")[0])
                for node in ast.walk(tree)
                if isinstance(node, ast.Import)
                for a in node.names
                if is_third_party(a.name)
            }
            for line, name, what in dependency_names(tree, dep_aliases):
                if is_private(name) and (module, name) not in pinned:
                    found.append(f"{rel}:{line} {what} (a private name)")
    return found


def test_no_private_name_of_a_dependency_is_used() -> None:
    assert private_uses(REPO_ROOT) == []


def test_every_pinned_private_use_is_still_there() -> None:
    """An exemption nobody needs any more goes, and its pin with it."""
    unpinned = private_uses(REPO_ROOT, pinned={})
    for module, name in PINNED_PRIVATE:
        rel = module.replace(".", "/") + ".py"
        assert any(u.startswith(rel) and f".{name}" in u for u in unpinned), (module, name)


@pytest.mark.parametrize(
    ("rel", "source", "expected"),
    [
        (
            "ledger/store.py",
            "from aiosqlite.core import _connection_worker_thread\n",
            "ledger/store.py:1 imports _connection_worker_thread from aiosqlite.core",
        ),
        ("sync/db.py", "import aiosqlite._impl\n", "sync/db.py:1 imports aiosqlite._impl"),
        (
            "sync/db.py",
            "async def f(conn):\n    return await conn._execute(print)\n",
            "sync/db.py:2 uses ._execute of a dependency's object",
        ),
        ("sync/db.py", "def f(db):\n    return db._conn\n", "uses ._conn of a dependency's"),
        ("printer/x.py", "def f(self):\n    self.db._tx.put(1)\n", "uses ._tx of a"),
        ("printer/x.py", "import escpos\n\nescpos._cache = 1\n", "x.py:3 uses escpos._cache"),
        ("benchmarks/b.py", "from msgspec import _core\n", "imports _core from msgspec"),
    ],
)
def test_private_checker_catches(tmp_path: Path, rel: str, source: str, expected: str) -> None:
    make_tree(tmp_path, {rel: source})
    found = private_uses(tmp_path, pinned={})
    assert any(expected in v for v in found), found


def test_private_checker_allows_own_names_and_the_stdlib(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {
            "ledger/store.py": (
                "import os\nimport aiosqlite\nfrom ledger.entry import _private\n"
                "class S:\n    def close(self):\n        self._conn.close()\n"
                "        os._exit(1)\n        return aiosqlite.__version__\n"
            ),
            "tests/test_x.py": "def f(conn):\n    return conn._conn\n",
        },
    )
    assert private_uses(tmp_path, pinned={}) == []


def pinned_version(package: str) -> str | None:
    """The exact version pyproject.toml pins ``package`` to, or None."""
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    for dep in pyproject["project"]["dependencies"]:
        m = re.fullmatch(rf"{re.escape(package)}\s*==\s*([\w.]+)", dep.split(";")[0].strip())
        if m:
            return m.group(1)
    return None


def test_aiosqlite_private_api_the_store_relies_on_is_still_there() -> None:
    """ledger.store runs a transaction in one hop through aiosqlite's private API.

    aiosqlite's public API runs one statement per awaited call; the store's group commit
    (head read, idempotency lookup, inserts, COMMIT) must run as one unit in its thread.
    An upgrade that moves these names must fail here, not in a till.
    """
    pin = pinned_version("aiosqlite")
    assert pin is not None, "pyproject.toml must pin aiosqlite exactly (see PINNED_PRIVATE)"
    assert aiosqlite.__version__ == pin, (
        f"aiosqlite {aiosqlite.__version__} is installed but pyproject.toml pins {pin}: "
        "ledger.store.run_in_connection_thread uses its private Connection._execute and "
        "._conn; check them in the new version, then move the pin"
    )
    execute = inspect.getattr_static(aiosqlite.Connection, "_execute", None)
    assert inspect.iscoroutinefunction(execute), (
        f"aiosqlite {aiosqlite.__version__}: Connection._execute is gone or no longer "
        "async; rewrite ledger.store.run_in_connection_thread"
    )
    assert isinstance(inspect.getattr_static(aiosqlite.Connection, "_conn", None), property), (
        f"aiosqlite {aiosqlite.__version__}: Connection._conn is gone; rewrite "
        "ledger.store.run_in_connection_thread"
    )

    from ledger.store import run_in_connection_thread

    def where(db: sqlite3.Connection) -> tuple[bool, int]:
        return isinstance(db, sqlite3.Connection), threading.get_ident()

    async def run() -> tuple[bool, int]:
        async with aiosqlite.connect(":memory:") as conn:
            return await run_in_connection_thread(conn, where)

    got_raw, thread = asyncio.run(run())
    assert got_raw, "run_in_connection_thread no longer hands over the sqlite3 connection"
    assert thread != threading.get_ident(), "the work ran on the event loop's thread"


# --- no environment change at import time -----------------------------------------------

ENV_METHODS = frozenset({"setdefault", "update", "pop", "popitem", "clear"})
ENV_FUNCTIONS = frozenset({"putenv", "unsetenv"})


def is_environ(node: ast.expr) -> bool:
    """``os.environ`` or a bare ``environ`` (``from os import environ``)."""
    if isinstance(node, ast.Attribute):
        return node.attr == "environ" and isinstance(node.value, ast.Name)
    return isinstance(node, ast.Name) and node.id == "environ"


def changes_env(node: ast.AST) -> bool:
    """Whether this one node writes the process environment."""
    if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
        targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
        return any(isinstance(t, ast.Subscript) and is_environ(t.value) for t in targets)
    if isinstance(node, ast.Call):
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr in ENV_METHODS and is_environ(f.value):
            return True
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        return name in ENV_FUNCTIONS
    return False


def run_at_import(tree: ast.Module) -> Iterator[ast.AST]:
    """Every node executed when the module is imported (not function bodies, not main)."""
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        yield node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            args = node.args
            todo.extend([*args.defaults, *(d for d in args.kw_defaults if d is not None)])
            if not isinstance(node, ast.Lambda):
                todo.extend(node.decorator_list)
            continue
        todo.extend(ast.iter_child_nodes(node))


def import_time_env_changes(root: Path) -> list[str]:
    """Module-level writes to os.environ, direct or through a project function."""
    trees = {
        module: (path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        for pkg in PROJECT
        for path, module in package_modules(root, pkg)
    }
    writers = {  # "module.function" of every top-level function that writes the env
        f"{module}.{node.name}"
        for module, (_, tree) in trees.items()
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and any(changes_env(n) for n in ast.walk(node))
    }
    found: list[str] = []
    for module, (path, tree) in trees.items():
        bound: dict[str, str] = {
            f.rsplit(".", 1)[1]: f for f in writers if f.startswith(module + ".")
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    bound[a.asname or a.name] = f"{node.module}.{a.name}"
            elif isinstance(node, ast.Import):
                for a in node.names:
                    bound[a.asname or a.name] = a.name if a.asname else a.name.split(".")[0]
        rel = path.relative_to(root)
        for node in run_at_import(tree):
            if changes_env(node):
                found.append(f"{rel}:{getattr(node, 'lineno', 0)} changes os.environ at import")
            elif isinstance(node, ast.Call):
                target = ast.unparse(node.func)
                head, _, rest = target.partition(".")
                qualified = bound.get(head, head) + (f".{rest}" if rest else "")
                if qualified in writers:
                    found.append(
                        f"{rel}:{node.lineno} calls {qualified} at import, which changes os.environ"
                    )
    return found


def test_no_module_changes_the_environment_when_imported() -> None:
    assert import_time_env_changes(REPO_ROOT) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import os\nos.environ['X'] = '1'\n", "printer/bad.py:2 changes os.environ"),
        ("import os\nos.environ.setdefault('X', '1')\n", "printer/bad.py:2 changes"),
        ("import os\nif True:\n    os.putenv('X', '1')\n", "printer/bad.py:3 changes"),
        ("from os import environ\nenviron['X'] = '1'\n", "printer/bad.py:2 changes"),
        ("import os\nclass C:\n    os.environ.update(X='1')\n", "printer/bad.py:3 changes"),
        (
            "from printer.env import prepare\n\nprepare()\n\nimport escpos\n",
            "printer/bad.py:3 calls printer.env.prepare at import, which changes os.environ",
        ),
        ("import printer.env as e\ne.prepare()\n", "calls printer.env.prepare at import"),
        ("import os\ndef f(x=os.environ.pop('X')):\n    pass\n", "printer/bad.py:2 changes"),
    ],
)
def test_env_checker_catches(tmp_path: Path, source: str, expected: str) -> None:
    make_tree(
        tmp_path,
        {
            "printer/env.py": "import os\n\ndef prepare():\n    os.environ['X'] = '1'\n",
            "printer/bad.py": source,
        },
    )
    found = import_time_env_changes(tmp_path)
    assert any(expected in v for v in found), found


def test_env_checker_allows_changes_made_when_called(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {
            "printer/env.py": "import os\n\ndef prepare():\n    os.environ['X'] = '1'\n",
            "terminal/app.py": (
                "import os\nfrom printer.env import prepare\n\n"
                "def start():\n    prepare()\n    os.environ['Y'] = '2'\n\n"
                "X = os.environ.get('X')\n\nif __name__ == '__main__':\n    prepare()\n"
            ),
        },
    )
    assert import_time_env_changes(tmp_path) == []


def test_the_wheel_takes_every_package_folder_and_nothing_else() -> None:
    # The fast half of tests/packaging/test_wheel.py: pyproject's discovery, as setuptools
    # reads it, finds exactly the project's package folders (never tests or benchmarks).
    from setuptools import find_packages

    find = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    discovered = set(find_packages(str(REPO_ROOT), include=find["packages"]["find"]["include"]))
    folders = {
        module_name(REPO_ROOT, init).removesuffix(".__init__")
        for top in PROJECT
        for init in (REPO_ROOT / top).rglob("__init__.py")
    }
    assert "sync.central" in folders
    assert discovered == folders
