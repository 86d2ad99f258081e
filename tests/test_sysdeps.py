"""Every program the tests run comes from a Debian package that `.ci/sysdeps.sh` installs.

A fresh CI machine has only Debian's essential packages, Python and what sysdeps.sh
adds. A test that calls a tool present here only by chance (``udevadm`` lives in Debian's
``udev``, not ``systemd``) passes on a developer's box and fails on a fresh one. This
module reads every tool the code names — ``_tool("…")``, ``shutil.which("…")``, the fixed
argv[0] of a subprocess, an absolute ``/usr/...`` program path in the tests, a PostgreSQL
server program ``pg_tool("…")`` (tests/pgserver.py) — asks dpkg which package ships it,
and checks that package is in sysdeps.sh, is Essential, or is what a listed package
depends on (``postgresql`` brings the server of Debian's current version,
``postgresql-15``).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.pgserver import pg_bindir

SYSDEPS = REPO_ROOT / ".ci" / "sysdeps.sh"
# Tool names come from all code; absolute paths only from tests and benchmarks, where
# they are requirements (the package's own search lists name other distributions' paths).
TOOL_TREES = ("config", "drivers", "ledger", "printer", "sync", "terminal", "tests", "benchmarks")
PATH_TREES = ("tests", "benchmarks")
# Absolute paths the tests name that are not tools they run.
NOT_A_TOOL = {
    "/usr/bin/kartapos": "what the Debian package installs; the package tests check it",
    "/usr/sbin/nologin": "the shell asserted in the sysusers entry, never run",
    "/usr/lib/postgresql": "the folder tests/pgserver.py looks for the server programs in",
}
SUBPROCESS_CALLS = {"run", "Popen", "call", "check_call", "check_output"}
PROGRAM_PATH = re.compile(r"^/(?:usr/)?(?:s?bin|lib)/[\w.+/-]+$")


@dataclass(frozen=True)
class Use:
    """One tool (a name looked up on PATH, or an absolute path) and where the code names it."""

    tool: str
    where: str


def _str(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _callee(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def _is_spawn(func: ast.AST) -> bool:
    """``subprocess.run``/``Popen``/… or ``asyncio.create_subprocess_exec``."""
    if isinstance(func, ast.Attribute):
        owner = func.value.id if isinstance(func.value, ast.Name) else ""
        return (owner == "subprocess" and func.attr in SUBPROCESS_CALLS) or (
            func.attr == "create_subprocess_exec"
        )
    return isinstance(func, ast.Name) and func.id in {"Popen", "create_subprocess_exec"}


def _argv(call: ast.Call) -> ast.AST | None:
    """The argv a call spawns: ``spawn(argv, …)`` or ``to_thread(spawn, argv, …)``."""
    if _is_spawn(call.func) and call.args:
        return call.args[0]
    if _callee(call) == "to_thread" and len(call.args) > 1 and _is_spawn(call.args[0]):
        return call.args[1]
    return None


def _loop_constants(tree: ast.AST) -> dict[str, list[str]]:
    """``for name in ("a", "b")``: the strings each loop variable takes."""
    out: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.For)
            and isinstance(node.target, ast.Name)
            and isinstance(node.iter, ast.Tuple | ast.List)
        ):
            values = [_str(e) for e in node.iter.elts]
            out.setdefault(node.target.id, []).extend(v for v in values if v)
    return out


def tools_in_source(source: str, name: str, *, paths: bool) -> Iterator[Use]:
    """Every tool this module's code names (see the module docstring for the forms)."""
    tree = ast.parse(source, filename=name)
    loops = _loop_constants(tree)
    for node in ast.walk(tree):
        where = f"{name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call) and node.args:
            first = node.args[0]
            if _callee(node) == "pg_tool" and (s := _str(first)) is not None:
                bindir = pg_bindir()
                yield Use(str(bindir / s) if bindir else s, where)
            elif _callee(node) in ("_tool", "which"):
                if (s := _str(first)) is not None:
                    yield Use(s, where)
                elif isinstance(first, ast.Name):
                    yield from (Use(v, where) for v in loops.get(first.id, []))
            elif (argv := _argv(node)) is not None:
                argv0 = (
                    argv.elts[0] if isinstance(argv, ast.List | ast.Tuple) and argv.elts else argv
                )
                if (s := _str(argv0)) is not None:
                    yield Use(s, where)
        elif (
            paths
            and (s := _str(node)) is not None
            and PROGRAM_PATH.match(s)
            and s not in NOT_A_TOOL
        ):
            yield Use(s, where)


def tools_in_repo() -> list[Use]:
    uses: list[Use] = []
    for tree in TOOL_TREES:
        for path in sorted((REPO_ROOT / tree).rglob("*.py")):
            rel = str(path.relative_to(REPO_ROOT))
            uses += tools_in_source(path.read_text(encoding="utf-8"), rel, paths=tree in PATH_TREES)
    return uses


def sysdeps_packages() -> set[str]:
    """The Debian packages sysdeps.sh installs, as the script itself lists them."""
    proc = subprocess.run(
        ["bash", str(SYSDEPS), "--list"], capture_output=True, text=True, timeout=30, check=True
    )
    return set(proc.stdout.split())


def _dpkg_owner(path: str) -> str | None:
    """The package that ships ``path`` (trying the merged-/usr twin that dpkg may know)."""
    real = os.path.realpath(path)
    candidates = []
    for p in (path, real):
        candidates += [p, p.removeprefix("/usr") if p.startswith("/usr/") else "/usr" + p]
    for candidate in dict.fromkeys(candidates):
        proc = subprocess.run(
            ["dpkg-query", "-S", candidate], capture_output=True, text=True, check=False
        )
        if proc.returncode == 0:
            # "pkg:arch, other: /path" — the first package is the owner.
            return proc.stdout.split(":", 1)[0].split(",")[0].strip()
    return None


def _essential(package: str) -> bool:
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Essential}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() == "yes"


def _depended_on(package: str, listed: set[str]) -> bool:
    """Whether a listed package depends on ``package`` directly (a metapackage's pick)."""
    for p in sorted(listed):
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f=${Depends}", p], capture_output=True, text=True, check=False
        )
        names = {d.strip().split(" ")[0].split(":")[0] for d in re.split("[,|]", proc.stdout)}
        if package in names:
            return True
    return False


def _from_python(path: str) -> bool:
    """A tool the venv provides (pip installed it), not Debian."""
    return Path(path).resolve().is_relative_to(Path(sys.prefix).resolve()) or path.startswith(
        sys.prefix
    )


def problems(uses: Iterable[Use], packages: set[str]) -> list[str]:
    """One line per tool that a fresh machine would not have after sysdeps.sh."""
    found: list[str] = []
    for tool in sorted({u.tool for u in uses}):
        where = ", ".join(sorted(u.where for u in uses if u.tool == tool))
        path = tool if tool.startswith("/") else shutil.which(tool)
        if path is None or not os.path.exists(path):
            found.append(f"{tool} ({where}) is not installed: add its Debian package to sysdeps.sh")
            continue
        if _from_python(path):
            continue
        owner = _dpkg_owner(path)
        if owner is None:
            found.append(f"{tool} ({where}) at {path} comes from no Debian package")
        elif owner not in packages and not _essential(owner) and not _depended_on(owner, packages):
            found.append(f"{tool} ({where}) is in Debian package {owner}, not in sysdeps.sh")
    return found


def test_sysdeps_installs_every_tool_the_tests_run() -> None:
    packages = sysdeps_packages()
    assert problems(tools_in_repo(), packages) == []


def test_the_reader_finds_the_tools_we_know_the_tests_run() -> None:
    # If the AST reading silently broke, the check above would pass on nothing.
    tools = {u.tool for u in tools_in_repo()}
    known = {"udevadm", "systemd-analyze", "systemd-sysusers", "strace", "mount"}
    assert known | {"/usr/sbin/pcscd", "/usr/bin/chromium"} <= tools, tools
    postgres = {t.rsplit("/", 1)[-1] for t in tools if "/postgresql/" in t}
    assert {"initdb", "postgres"} <= postgres, tools


def test_a_missing_package_is_named() -> None:
    source = (
        "import shutil, subprocess\n"
        "def _tool(n): ...\n"
        "a = _tool('udevadm')\n"
        "for t in ('systemd-tmpfiles',):\n"
        "    _tool(t)\n"
        "subprocess.run(['strace', '-f'])\n"
        "h.call('GET', '/health')\n"
        "asyncio.to_thread(subprocess.run, ['systemd-analyze'])\n"
        "X = '/usr/sbin/pcscd'\n"
    )
    uses = list(tools_in_source(source, "t.py", paths=True))
    assert {u.tool for u in uses} == {
        "udevadm",
        "systemd-tmpfiles",
        "strace",
        "systemd-analyze",
        "/usr/sbin/pcscd",
    }
    everything = sysdeps_packages()
    found = problems(uses, everything - {"udev"})
    assert found == ["udevadm (t.py:3) is in Debian package udev, not in sysdeps.sh"]
    assert problems([Use("no-such-tool-kp", "t.py:9")], everything) == [
        "no-such-tool-kp (t.py:9) is not installed: add its Debian package to sysdeps.sh"
    ]


def test_a_postgresql_program_needs_the_postgresql_package() -> None:
    uses = list(tools_in_source("X = pg_tool('initdb')\n", "t.py", paths=False))
    assert [u.tool.rsplit("/", 1)[-1] for u in uses] == ["initdb"]
    everything = sysdeps_packages()
    assert problems(uses, everything) == []
    [problem] = problems(uses, everything - {"postgresql"})
    assert problem.startswith(f"{uses[0].tool} (t.py:1) is in Debian package postgresql-")
