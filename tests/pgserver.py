"""A real PostgreSQL server for the tests, from Debian's ``postgresql`` package.

One server per test session (``tests/conftest.py`` starts it the first time a test asks
for it) in a temporary folder, listening only on a private unix socket there (no TCP
port to clash with anything), and a fresh database per test (``create_database``).
``initdb`` and ``postgres`` refuse to run as root, and CI runs as root: the cluster then
belongs to ``nobody``, and the server runs as that user (``subprocess``'s ``user=``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

# Where Debian's postgresql-NN packages put the server programs (the newest first).
PG_ROOT = Path("/usr/lib/postgresql")
UNPRIVILEGED_USER = "nobody"
START_TIMEOUT_S = 30.0


def pg_bindir() -> Path | None:
    """The newest installed PostgreSQL's program folder, or None."""
    found = sorted(
        (p for p in PG_ROOT.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return found[-1] if found else None


def pg_tool(name: str) -> str:
    """The absolute path of a PostgreSQL server program (initdb, pg_ctl, postgres)."""
    bindir = pg_bindir()
    if bindir is None:
        raise FileNotFoundError(
            f"{name}: PostgreSQL is not installed (Debian package postgresql;"
            " .ci/sysdeps.sh installs it)"
        )
    return str(bindir / name)


def _run_as() -> dict[str, Any]:
    """subprocess keywords that drop root to the unprivileged user (nothing otherwise)."""
    if os.geteuid() != 0:
        return {}
    pw = pwd.getpwnam(UNPRIVILEGED_USER)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster; ``url(db)`` is a libpq URL over its socket."""

    root: Path
    process: subprocess.Popen[bytes] | None = None
    _counter: int = field(default=0)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    @property
    def user(self) -> str:
        return pwd.getpwuid(os.stat(self.data).st_uid).pw_name

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql:///{dbname}?host={self.socket_dir}&user={self.user}"

    @classmethod
    def create(cls) -> PostgresServer:
        """initdb a new cluster in a fresh temporary folder (not started)."""
        root = Path(tempfile.mkdtemp(prefix="kartapos-pg-"))
        (root / "sock").mkdir()
        as_user = _run_as()
        if as_user:
            for p in (root, root / "sock"):
                os.chown(p, as_user["user"], as_user["group"])
        subprocess.run(
            [
                pg_tool("initdb"),
                "--pgdata",
                str(root / "data"),
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",  # a test cluster: durability across power loss is not tested
            ],
            check=True,
            capture_output=True,
            timeout=120,
            cwd=root,
            **as_user,
        )
        return cls(root=root)

    def start(self) -> None:
        """Start the postmaster and wait until it accepts connections."""
        assert self.process is None or self.process.poll() is not None
        log = (self.root / "postgres.log").open("ab")
        self.process = subprocess.Popen(
            [
                pg_tool("postgres"),
                "-D",
                str(self.data),
                "-k",
                str(self.socket_dir),
                "-c",
                "listen_addresses=",  # the unix socket only
                "-c",
                "max_connections=200",
                "-c",
                "fsync=off",
                "-c",
                "shared_buffers=32MB",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            **_run_as(),
        )
        log.close()
        self.wait_ready()

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"postgres exited {self.process.returncode}: {self.log_tail()}")
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError as e:
                last = e
            time.sleep(0.05)  # polling a condition, with the deadline above
        raise TimeoutError(f"postgres not ready in {timeout_s} s: {last}; {self.log_tail()}")

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "postgres.log").read_text(errors="replace")[-2000:]
        return ""

    def kill(self) -> None:
        """SIGKILL the postmaster (its backends notice and exit) and wait for it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        # The backends outlive a killed postmaster for a moment; a new postmaster refuses
        # to start while any of them still holds the shared memory.
        deadline = time.monotonic() + 30
        while self._backends_alive() and time.monotonic() < deadline:
            time.sleep(0.05)

    def _backends_alive(self) -> bool:
        pid_file = self.data / "postmaster.pid"
        if not pid_file.exists():
            return False
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                cmd = (proc / "cmdline").read_bytes()
                if cmd.startswith(b"postgres:") and (proc / "cwd").resolve() == self.data:
                    return True
        return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)  # fast shutdown
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its URL."""
        self._counter += 1
        name = f"{prefix}_{os.getpid()}_{self._counter}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" STRATEGY FILE_COPY')
        return self.url(name)

    def drop_databases(self, urls: list[str]) -> None:
        """Drop the test's databases (a server still connected is disconnected)."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            for url in urls:
                name = url.split("?", 1)[0].rsplit("/", 1)[1]
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A started throwaway server, destroyed (stopped, its folder removed) at the end."""
    server = PostgresServer.create()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


CENTRAL_ENGINES = ("sqlite", "postgresql")


@dataclass
class _CentralEngine:
    kind: str = "sqlite"
    server: PostgresServer | None = None
    created: list[str] = field(default_factory=list)


_current = _CentralEngine()


@contextlib.contextmanager
def central_engine(kind: str, server: PostgresServer | None) -> Iterator[None]:
    """Within: ``central_database`` makes databases of this engine (the ``central_engine``
    fixture of tests/conftest.py sets it for each engine a central test runs on)."""
    before = (_current.kind, _current.server)
    _current.kind, _current.server = kind, server
    try:
        yield
    finally:
        if server is not None and _current.created:
            server.drop_databases(_current.created)
        _current.created.clear()
        _current.kind, _current.server = before


def current_central_engine() -> str:
    return _current.kind


def central_database(folder: Path, name: str = "central.sqlite") -> str:
    """A new, empty city-server database of the current engine: a SQLite file in
    ``folder`` or a fresh database on the session's PostgreSQL server."""
    if _current.kind == "sqlite":
        return str(folder / name)
    assert _current.server is not None
    url = _current.server.create_database()
    _current.created.append(url)
    return url


# What a test that reaches past the server into the database catches, on either engine.
INTEGRITY_ERRORS = (sqlite3.IntegrityError, psycopg.IntegrityError)


def execute_raw(database: str, script: str) -> None:
    """Run SQL on a city-server database directly, as an intruder or an old version
    would: sqlite3 on the file, or psycopg on the URL (one transaction either way)."""
    if database.startswith("postgresql://"):
        with psycopg.connect(database) as pg:
            pg.execute(script)
        return
    lite = sqlite3.connect(database)
    try:
        lite.executescript(script)
    finally:
        lite.close()
