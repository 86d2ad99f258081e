"""The city server's two database engines behind one small connection surface.

SQLite (the embedded default, a file path) runs through aiosqlite; PostgreSQL (a
``postgresql://`` URL) through psycopg 3's synchronous API in one worker thread of its
own, the way aiosqlite runs sqlite3. Either way an operation of ``sync/central/db.py``
is one synchronous function ``work(db: Conn, ...)`` run whole in that thread (one hop),
so both engines run the same body of SQL transactions (docs/architecture.md §11).

The SQL is written in the portable subset with ``?`` placeholders: ``ON CONFLICT``
instead of ``INSERT OR …``, qualified columns in ``DO UPDATE``, ``CASE`` instead of
two-argument ``max``. For PostgreSQL, ``?`` becomes ``%s``, SQLite's ``INDEXED BY``
planner hints are dropped, and the schema text is translated by ``postgresql_ddl``:
INTEGER → BIGINT (an integer can never come back as a float), BLOB → BYTEA, a
``typeof(x) = 'integer'`` CHECK is the column type itself, and the append-only triggers
become PL/pgSQL ones. ``json_extract(body, '$.a.b')`` is a SQL function on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, TypeVar

import aiosqlite

from config.schema import is_postgresql_url
from ledger.store import run_in_connection_thread as _run_in_sqlite_thread

if TYPE_CHECKING:
    import psycopg

_T = TypeVar("_T")

EngineKind = Literal["sqlite", "postgresql"]
# A write transaction PostgreSQL aborted to break a deadlock (or a serialization
# conflict) is run again from the start, this many times at most.
PG_TX_ATTEMPTS: Final = 5


class EngineError(Exception):
    """The database cannot be reached or used; ``str()`` is one line."""


is_postgresql = is_postgresql_url


def describe(database: str) -> str:
    """The database for a log line or an error: a URL without its password."""
    if not is_postgresql(database):
        return database
    return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", database)


class Cursor(Protocol):
    """What the transactions use of a cursor (sqlite3's and psycopg's both have it)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def fetchmany(self, size: int = ...) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Conn(Protocol):
    """The connection a transaction function gets, in the engine's thread."""

    kind: EngineKind
    for_update: str  # " FOR UPDATE" where rows can be locked (PostgreSQL), else ""

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        """Plain INSERTs of new rows (no conflict clause): PostgreSQL uses COPY."""

    def executescript(self, script: str) -> None:
        """Schema text as written for SQLite, translated for the engine."""

    def create_schema(self, script: str) -> None:
        """The schema text (idempotent: IF NOT EXISTS) and what the engine needs for it."""

    def begin_write(self) -> None:
        """Start a read-decide-write transaction (SQLite: BEGIN IMMEDIATE)."""

    def begin_snapshot(self) -> None:
        """Start a read-only transaction that sees one snapshot throughout."""

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """A cursor read in chunks (fetchmany) inside the snapshot transaction."""

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


# --- SQLite ---------------------------------------------------------------------------


class SqliteConn:
    """sqlite3 as it is: the SQL is written for it."""

    kind: EngineKind = "sqlite"
    for_update = ""

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self.raw.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.raw.executemany(sql, rows)

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        marks = ", ".join("?" * len(columns))
        self.raw.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",  # noqa: S608 (fixed names)
            rows,
        )

    def executescript(self, script: str) -> None:
        self.raw.executescript(script)

    def create_schema(self, script: str) -> None:
        self.raw.executescript(script)

    def begin_write(self) -> None:
        self.raw.execute("BEGIN IMMEDIATE")

    def begin_snapshot(self) -> None:
        # Deferred: the snapshot is taken at the first read and held to the end (WAL).
        self.raw.execute("BEGIN")

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self.raw.execute(sql, params)

    def commit(self) -> None:
        self.raw.execute("COMMIT")

    def rollback(self) -> None:
        if self.raw.in_transaction:
            self.raw.execute("ROLLBACK")


# --- PostgreSQL -----------------------------------------------------------------------

_PLACEHOLDER_OR_QUOTED = re.compile(r"'(?:[^']|'')*'|\"[^\"]*\"|\?\d*|%")
_INDEXED_BY = re.compile(r"\s+INDEXED\s+BY\s+\w+", re.IGNORECASE)


@functools.lru_cache(maxsize=512)
def postgresql_sql(sql: str) -> str:
    """A statement with ``?`` placeholders in psycopg's form (``%s``; ``%`` doubled)."""
    if re.search(r"\bINSERT\s+OR\b", sql, re.IGNORECASE):
        raise EngineError(f"not portable SQL (use ON CONFLICT): {sql[:80]}")

    def one(m: re.Match[str]) -> str:
        piece = m.group(0)
        if piece == "?":
            return "%s"
        if piece == "%":
            return "%%"
        if piece.startswith("?"):
            raise EngineError(f"numbered placeholders are not portable: {sql[:80]}")
        return piece  # a quoted literal or name, as it is

    return _PLACEHOLDER_OR_QUOTED.sub(one, _INDEXED_BY.sub("", sql))


_TRIGGER = re.compile(
    r"CREATE\s+TRIGGER\s+IF\s+NOT\s+EXISTS\s+(\w+)\s+BEFORE\s+(UPDATE|DELETE)\s+ON\s+(\w+)\s+"
    r"BEGIN\s+SELECT\s+RAISE\s*\(\s*ABORT\s*,\s*'([^']*)'\s*\)\s*;\s*END\s*;",
    re.IGNORECASE,
)
_ANY_TRIGGER = re.compile(r"CREATE\s+TRIGGER", re.IGNORECASE)
_TYPEOF_INTEGER = re.compile(r"typeof\s*\(\s*\w+\s*\)\s*=\s*'integer'", re.IGNORECASE)

# Functions the translated schema and the portable SQL rely on.
_PG_FUNCTIONS: Final = """
-- SQLite's json_extract for the paths the server uses ('$.a.b'), on a JSON body in bytea.
CREATE OR REPLACE FUNCTION json_extract(doc bytea, path text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT convert_from(doc, 'UTF8')::jsonb #>> string_to_array(substr(path, 3), '.') $$;
-- The body of SQLite's "BEFORE UPDATE/DELETE ... RAISE(ABORT, msg)" triggers.
CREATE OR REPLACE FUNCTION kartapos_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'integrity_constraint_violation';
END $$;
"""


def postgresql_ddl(script: str) -> str:
    """Schema text written for SQLite, as PostgreSQL runs it (see the module docstring)."""

    def trigger(m: re.Match[str]) -> str:
        name, event, table, message = m.groups()
        return (
            f"CREATE OR REPLACE TRIGGER {name} BEFORE {event.upper()} ON {table}"
            f" FOR EACH ROW EXECUTE FUNCTION kartapos_refuse('{message}');"
        )

    out = _TRIGGER.sub(trigger, script)
    if _ANY_TRIGGER.search(out):  # one the pattern did not take
        raise EngineError("a trigger of the schema has no PostgreSQL translation")
    out = re.sub(r"\bINSERT\s+OR\s+IGNORE\s+INTO\b", "INSERT INTO", out)  # see below
    if re.search(r"\bINSERT\s+OR\b", out, re.IGNORECASE):
        raise EngineError("INSERT OR REPLACE in the schema has no PostgreSQL translation")
    out = _TYPEOF_INTEGER.sub("TRUE", out)
    out = re.sub(r"\bWITHOUT\s+ROWID\b", "", out, flags=re.IGNORECASE)
    out = re.sub(r"\bINTEGER\b", "BIGINT", out)
    return re.sub(r"\bBLOB\b", "BYTEA", out)


class PostgresConn:
    """A psycopg connection in autocommit mode: the transactions say BEGIN themselves."""

    kind: EngineKind = "postgresql"
    for_update = " FOR UPDATE"

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw
        self._names = itertools.count(1)

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self.raw.execute(postgresql_sql(sql), params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.raw.cursor() as cur:
            cur.executemany(postgresql_sql(sql), rows)

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        # COPY: one stream instead of a statement per row (five times the rows a second
        # of a pipelined executemany, benchmarks/bench_central_ingest.py). The row
        # triggers and constraints apply to COPY as to INSERT.
        with (
            self.raw.cursor() as cur,
            cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)

    def executescript(self, script: str) -> None:
        self.raw.execute(postgresql_ddl(script))

    def begin_write(self) -> None:
        # READ COMMITTED: every statement sees what committed before it; transactions
        # that must serialize lock the row they decide on (``for_update``).
        self.raw.execute("BEGIN ISOLATION LEVEL READ COMMITTED")

    def begin_snapshot(self) -> None:
        self.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        cur = self.raw.cursor(name=f"feed_{next(self._names)}")  # server-side: fetchmany
        cur.execute(postgresql_sql(sql), params)
        return cur

    def commit(self) -> None:
        self.raw.execute("COMMIT")

    def rollback(self) -> None:
        if self.in_transaction:
            self.raw.execute("ROLLBACK")

    def create_schema(self, script: str) -> None:
        """The schema and its functions, once at a time across servers (an advisory lock)."""
        self.begin_write()
        try:
            self.raw.execute("SELECT pg_advisory_xact_lock(7262001)")  # any fixed key
            self.raw.execute(_PG_FUNCTIONS)
            self.executescript(script)
        except BaseException:
            self.rollback()
            raise
        self.commit()


# --- the async handles ----------------------------------------------------------------


class Engine:
    """One database connection and the thread its work runs in."""

    kind: EngineKind
    database: str

    async def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn(conn, *args)`` whole in the connection's thread."""
        raise NotImplementedError

    async def another(self) -> Engine:
        """A connection of its own to the same database (a feed's snapshot)."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class SqliteEngine(Engine):
    kind: EngineKind = "sqlite"

    def __init__(self, path: Path, conn: aiosqlite.Connection) -> None:
        self.path = path
        self.database = str(path)
        self._conn = conn
        self._wrapped: SqliteConn | None = None

    @classmethod
    async def open(cls, path: Path) -> SqliteEngine:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = await aiosqlite.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise EngineError(f"cannot open database {path}: {e}") from e
        return cls(path, conn)

    async def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        def bound(raw: sqlite3.Connection) -> _T:
            if self._wrapped is None or self._wrapped.raw is not raw:
                self._wrapped = SqliteConn(raw)
            return fn(self._wrapped, *args)

        return await _run_in_sqlite_thread(self._conn, bound)

    async def another(self) -> Engine:
        return await SqliteEngine.open(self.path)

    async def close(self) -> None:
        await self._conn.close()


class PostgresEngine(Engine):
    """A psycopg connection owned by one worker thread; reconnects after it broke."""

    kind: EngineKind = "postgresql"

    def __init__(self, database: str) -> None:
        self.database = database
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="central-pg")
        self._conn: PostgresConn | None = None
        self._lock = threading.Lock()  # only the worker thread touches _conn; belt and braces

    @classmethod
    async def open(cls, database: str) -> PostgresEngine:
        try:
            import psycopg  # noqa: F401  (the optional dependency, named in the error)
        except ImportError:
            raise EngineError(
                "PostgreSQL needs psycopg: pip install 'kartapos[postgresql]'"
            ) from None
        engine = cls(database)
        try:
            await engine.run(lambda _db: None)
        except BaseException:
            await engine.close()
            raise
        return engine

    def _connection(self) -> PostgresConn:
        import psycopg

        if self._conn is not None and not self._conn.raw.closed and not self._conn.raw.broken:
            return self._conn
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.raw.close()
            self._conn = None
        try:
            raw = psycopg.connect(self.database, autocommit=True, connect_timeout=10)
        except psycopg.Error as e:
            raise EngineError(f"cannot connect to {describe(self.database)}: {e}") from e
        self._conn = PostgresConn(raw)
        return self._conn

    def _call(self, fn: Callable[..., _T], args: tuple[Any, ...]) -> _T:
        import psycopg

        with self._lock:
            for attempt in itertools.count(1):
                conn = self._connection()
                try:
                    return fn(conn, *args)
                except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                    with contextlib.suppress(psycopg.Error):
                        conn.rollback()
                    if attempt >= PG_TX_ATTEMPTS:
                        raise
                except BaseException:
                    if not conn.raw.broken:
                        with contextlib.suppress(psycopg.Error):
                            conn.rollback()
                    raise
        raise AssertionError("unreachable")

    async def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn, args)

    async def another(self) -> Engine:
        return await PostgresEngine.open(self.database)

    async def close(self) -> None:
        def shut() -> None:
            if self._conn is not None:
                self._conn.raw.close()
                self._conn = None

        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, shut)
        finally:
            self._executor.shutdown(wait=False)


def database_errors() -> tuple[type[Exception], ...]:
    """The exception types either engine's driver raises (psycopg's when installed)."""
    try:
        import psycopg
    except ImportError:
        return (sqlite3.Error, EngineError)
    return (sqlite3.Error, psycopg.Error, EngineError)


async def open_engine(database: str | Path) -> Engine:
    """The engine ``[central] database`` names: a ``postgresql://`` URL, or a file path."""
    if isinstance(database, str) and is_postgresql(database):
        return await PostgresEngine.open(database)
    return await SqliteEngine.open(Path(database))


async def run_in_connection_thread(conn: Engine, fn: Callable[..., _T], *args: Any) -> _T:
    """Run ``fn(db, *args)`` in the engine's thread in one hop (``Engine.run``)."""
    return await conn.run(fn, *args)
