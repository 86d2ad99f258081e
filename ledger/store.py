"""The append-only, hash-chained ledger on SQLite (aiosqlite).

One row per entry: ``seq``, ``prev_hash``, ``hash`` and ``body`` — the canonical bytes
the hash covers, kept exactly as written, so verification is one sha256 per row plus
link checks and never re-encodes JSON. ``sale_id`` is a generated column read out of
the body (so the hash covers it) with a UNIQUE index: the idempotency key.

Durability: WAL with ``synchronous=FULL``; an append returns only after the
transaction holding it committed. Appends go through one writer task that commits
every draft queued meanwhile in one ``BEGIN IMMEDIATE`` transaction (group commit);
the whole transaction runs in aiosqlite's thread in one hop. Single writer: an
exclusive ``flock`` on ``<db>.lock``; readonly opens take no lock and never write the
database (SQLite itself may create the ``-wal``/``-shm`` files any WAL reader needs).

Limits: the chain proves every entry from genesis to the local head; entries cut off
the END of the file leave a shorter valid chain, which only the city server (holding
the uploaded head) can notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import aiosqlite
import msgspec
import structlog

from ledger.clock import parse_ts, unix_ms
from ledger.entry import (
    GENESIS_HASH,
    ChainCursor,
    ChainError,
    Draft,
    Entry,
    Head,
    body_bytes,
    entry_decoder,
    request_fields,
    seal,
)
from ledger.ids import uuid7

log = structlog.get_logger()

SCHEMA_VERSION: Final = 1
# The ledger's file name inside terminal.state_dir.
LEDGER_FILE: Final = "ledger.sqlite"
_MAX_BATCH: Final = 512
_VERIFY_CHUNK: Final = 50_000
_VERIFY_CHUNK_WRITER: Final = 5_000

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS entries (
    seq       INTEGER PRIMARY KEY,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    body      BLOB NOT NULL,
    sale_id   TEXT GENERATED ALWAYS AS (json_extract(CAST(body AS TEXT), '$.sale_id')) VIRTUAL
);
CREATE UNIQUE INDEX IF NOT EXISTS entries_sale_id ON entries(sale_id);
CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only: DELETE refused'); END;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- Read models derived from the entries (checkpoints), each with the seq and hash of the
-- last entry it covers: never the truth, always rebuildable from the entries.
CREATE TABLE IF NOT EXISTS derived (
    name TEXT PRIMARY KEY,
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL,
    body BLOB NOT NULL
) WITHOUT ROWID;
"""

# The open re-checks this many of the last entries (what a crash or power cut can
# break); the whole file is checked in the background after READY (check_integrity).
TAIL_CHECKED: Final = 64

_INSERT: Final = "INSERT INTO entries (seq, prev_hash, hash, body) VALUES (?, ?, ?, ?)"
_SELECT: Final = "SELECT seq, prev_hash, hash, body FROM entries"


def ledger_path(state_dir: str | Path) -> Path:
    """Where a terminal keeps its ledger: ``<terminal.state_dir>/ledger.sqlite``."""
    return Path(state_dir) / LEDGER_FILE


@dataclass(frozen=True, slots=True)
class LedgerInfo:
    """Whose a ledger file is and how far it goes (``terminal`` None: not recorded)."""

    terminal: str | None
    head: Head


async def ledger_info(path: str | Path) -> LedgerInfo:
    """Read which terminal the ledger at ``path`` belongs to, and its head, read-only.

    Unlike ``LedgerStore.open`` it does not refuse another terminal's file (so a caller
    can name its owner), runs no integrity check and takes no lock.
    """
    path = Path(path)
    if not path.exists():
        raise LedgerError(f"no ledger at {path}")

    def read(db: sqlite3.Connection) -> LedgerInfo:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version != SCHEMA_VERSION:
            raise LedgerCorruptError(f"{path} is not a kartapos ledger (schema {version})")
        row = db.execute("SELECT value FROM meta WHERE key='terminal'").fetchone()
        return LedgerInfo(None if row is None else str(row[0]), _read_head(db))

    try:
        conn = await aiosqlite.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return await run_in_connection_thread(conn, read)
        finally:
            await conn.close()
    except sqlite3.DatabaseError as e:
        raise LedgerCorruptError(f"ledger {path} cannot be read: {e}") from e


class LedgerError(Exception):
    """Base of every ledger store failure."""


class LedgerLockedError(LedgerError):
    """Another process holds the ledger open for writing."""


class LedgerCorruptError(LedgerError):
    """The database file fails SQLite's own consistency check or is not a ledger."""


class IdempotencyConflict(LedgerError):
    """A request id was reused for a different request."""

    def __init__(self, existing: Entry) -> None:
        super().__init__(
            f"request id {existing.sale_id!r} was already used for entry seq {existing.seq} "
            "with a different request"
        )
        self.existing = existing


@dataclass(frozen=True, slots=True)
class Appended:
    """The outcome of an append: the entry, and whether this call wrote it."""

    entry: Entry
    created: bool


class _SeqOnly(msgspec.Struct):
    seq: int


_seq_decoder: Final = msgspec.json.Decoder(_SeqOnly)
_draft_builtins_decoder: Final = msgspec.json.Decoder(Draft)

_Row = tuple[int, str, str, bytes]
_T = TypeVar("_T")


def _entry_from_row(row: _Row) -> Entry:
    _seq, prev_hash, h, body = row
    tail = f',"prev_hash":"{prev_hash}","hash":"{h}"}}'.encode()
    return entry_decoder.decode(bytes(body[:-1]) + tail)


class _Pending:
    __slots__ = ("draft", "future")

    def __init__(self, draft: Draft, future: asyncio.Future[Appended]) -> None:
        self.draft = draft
        self.future = future


_Outcome = Appended | LedgerError


def _read_head(db: sqlite3.Connection) -> Head:
    row = db.execute("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
    return Head.genesis() if row is None else Head(seq=int(row[0]), hash=str(row[1]))


def _write_batch(db: sqlite3.Connection, terminal: str, drafts: list[Draft]) -> list[_Outcome]:
    """Commit every new draft in one transaction; runs in aiosqlite's thread."""
    db.execute("BEGIN IMMEDIATE")
    try:
        # The head is read inside the transaction, never trusted from memory: a COMMIT
        # whose caller was interrupted may still have committed.
        head = _read_head(db)
        wanted = sorted({d.sale_id for d in drafts if d.sale_id is not None})
        existing: dict[str, Entry] = {}
        if wanted:
            marks = ",".join("?" * len(wanted))
            for row in db.execute(f"{_SELECT} WHERE sale_id IN ({marks})", wanted):
                e = _entry_from_row(row)
                assert e.sale_id is not None
                existing[e.sale_id] = e
        outcomes: list[_Outcome] = []
        rows: list[tuple[int, str, str, bytes]] = []
        seq, prev = head.seq, head.hash
        for d in drafts:
            if d.sale_id is not None and d.sale_id in existing:
                old = existing[d.sale_id]
                if request_fields(old) == request_fields(d):
                    outcomes.append(Appended(old, created=False))
                else:
                    outcomes.append(IdempotencyConflict(old))
                continue
            seq += 1
            entry = seal(
                d,
                seq=seq,
                entry_id=uuid7(unix_ms(parse_ts(d.ts))),
                terminal=terminal,
                prev_hash=prev,
            )
            rows.append((seq, prev, entry.hash, body_bytes(entry)))
            prev = entry.hash
            if d.sale_id is not None:
                existing[d.sale_id] = entry
            outcomes.append(Appended(entry, created=True))
        if rows:
            db.executemany(_INSERT, rows)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return outcomes


@dataclass
class _VerifyState:
    seq: int
    prev: str
    checked: int = 0


def _verify_chunk(db: sqlite3.Connection, st: _VerifyState, limit: int) -> ChainError | bool:
    """Check up to ``limit`` rows after ``st.seq``; True when the end was reached."""
    decode_seq = _seq_decoder.decode
    cursor = ChainCursor(Head(seq=st.seq, hash=st.prev))
    follow = cursor.follow
    n = 0
    cur = db.execute(f"{_SELECT} WHERE seq > ? ORDER BY seq LIMIT ?", (st.seq, limit))
    for seq, prev_hash, h, body in cur:
        n += 1
        expect = cursor.seq + 1
        if seq != expect:
            return ChainError(expect, f"entry seq {expect} is missing (next stored: {seq})")
        try:
            body_seq = decode_seq(body).seq
        except (msgspec.DecodeError, ValueError, TypeError):
            return ChainError(seq, "the stored entry is not readable JSON")
        if body_seq != seq:
            return ChainError(seq, f"the entry's own seq is {body_seq}, stored as {seq}")
        try:
            why = follow(seq, prev_hash, h, body)
        except (ValueError, TypeError):  # a stored prev hash that is not hex
            why = "prev_hash does not link to the previous entry"
        if why is not None:
            return ChainError(seq, why)
    st.seq, st.prev, st.checked = cursor.seq, cursor.hash, st.checked + n
    return n < limit


def _count(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT count(*) FROM entries").fetchone()
    return int(row[0])


class LedgerStore:
    """The terminal's ledger: append-only, gapless, hash-chained, single writer."""

    def __init__(
        self,
        path: Path,
        conn: aiosqlite.Connection,
        *,
        terminal: str,
        readonly: bool,
        lock_fd: int | None,
        head: Head,
    ) -> None:
        self._path = path
        self._conn = conn
        self._terminal = terminal
        self._readonly = readonly
        self._lock_fd = lock_fd
        self._head = head
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._closing = False
        self._closed = False
        self._failing = False
        self._writer: asyncio.Task[None] | None = None
        if not readonly:
            self._writer = asyncio.get_running_loop().create_task(
                self._write_loop(), name=f"ledger-writer:{path.name}"
            )

    # --- opening and closing ----------------------------------------------------------

    @classmethod
    async def open(
        cls, path: Path, *, terminal: str, readonly: bool = False, integrity_check: bool = True
    ) -> LedgerStore:
        """Open (creating it unless readonly) the ledger at ``path``.

        ``integrity_check=False`` skips ``PRAGMA quick_check`` at open: for a caller that
        runs ``check_integrity()`` itself, alongside ``verify()`` on the other core.
        """
        path = Path(path)
        lock_fd = None if readonly else _take_lock(path)
        conn: aiosqlite.Connection | None = None
        try:
            if readonly:
                if not path.exists():
                    raise LedgerError(
                        f"no ledger at {path} (nothing recorded yet, "
                        "or terminal.state_dir points elsewhere)"
                    )
                # Not immutable=1: a writer may be appending; mode=ro never writes.
                target = f"file:{path}?mode=ro"
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                target = f"file:{path}"
            try:
                conn = await aiosqlite.connect(target, uri=True, isolation_level=None)
                head = await run_in_connection_thread(
                    conn, _prepare, path, terminal, readonly, integrity_check
                )
            except sqlite3.DatabaseError as e:
                if isinstance(e, sqlite3.OperationalError) and "unable to open" in str(e):
                    raise LedgerError(f"cannot open ledger {path}: {e}") from e
                if _disk_full(e):
                    # Opening a WAL database writes its index: not damage, no space.
                    raise LedgerError(
                        f"cannot open ledger {path}: no space left on its disk"
                    ) from e
                raise LedgerCorruptError(f"ledger {path} is damaged: {e}") from e
            store = cls(
                path, conn, terminal=terminal, readonly=readonly, lock_fd=lock_fd, head=head
            )
        except BaseException:
            if conn is not None:
                await conn.close()
            if lock_fd is not None:
                os.close(lock_fd)
            raise
        log.info("ledger_opened", path=str(path), readonly=readonly, head_seq=head.seq)
        return store

    async def close(self) -> None:
        """Commit what is queued, stop the writer, close the database, drop the lock."""
        if self._closed:
            return
        self._closing = True
        try:
            w = self._writer
            if w is not None:
                if not w.done():
                    self._queue.put_nowait(None)
                    # wait() rather than await: a writer cancelled by someone else must
                    # not make close() itself raise CancelledError.
                    await asyncio.wait([w])
                if not w.cancelled() and w.exception() is not None:
                    log.error(
                        "ledger_writer_failed", path=str(self._path), error=str(w.exception())
                    )
        finally:
            self._closed = True
            try:
                await self._conn.close()
            finally:
                if self._lock_fd is not None:
                    os.close(self._lock_fd)
                    self._lock_fd = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- properties -------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    @property
    def terminal(self) -> str:
        return self._terminal

    @property
    def readonly(self) -> bool:
        return self._readonly

    @property
    def head(self) -> Head:
        """The last committed entry (for a readonly store: as of open or the last read)."""
        return self._head

    # --- writing ----------------------------------------------------------------------

    async def append(self, draft: Draft) -> Appended:
        """Write ``draft`` as the next entry; a retried request gets its entry back.

        Returns only after the entry's transaction committed. Raises
        ``IdempotencyConflict`` when ``draft.sale_id`` was used for another request, and
        ``LedgerError`` when the entry could not be committed.
        """
        if self._readonly:
            raise LedgerError(f"ledger {self._path} is open read-only")
        if self._closing or self._writer is None or self._writer.done():
            raise LedgerError(f"ledger {self._path} is closed")
        _check_draft(draft)
        future: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(draft, future))
        # The writer commits the draft even if this caller is cancelled meanwhile; a
        # retry under the same sale_id then gets the committed entry back.
        return await future

    async def _write_loop(self) -> None:
        batch: list[_Pending] = []
        try:
            stop = False
            while not stop:
                first = await self._queue.get()
                if first is None:
                    break
                batch = [first]
                while len(batch) < _MAX_BATCH and not self._queue.empty():
                    nxt = self._queue.get_nowait()
                    if nxt is None:
                        stop = True
                        break
                    batch.append(nxt)
                await self._commit(batch)
                batch = []
        finally:
            # Stopped or cancelled (possibly mid-commit: the batch may have committed).
            # Nobody may wait forever; a retry with the same sale_id learns the outcome.
            err = LedgerError(
                f"ledger {self._path} closed before the entry was confirmed; "
                "retry the request to learn whether it was written"
            )
            while not self._queue.empty():
                left = self._queue.get_nowait()
                if left is not None:
                    batch.append(left)
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(err)

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            outcomes = await run_in_connection_thread(
                self._conn, _write_batch, self._terminal, [p.draft for p in batch]
            )
        except Exception as e:  # every failure reaches the caller as a LedgerError
            if len(batch) > 1:
                # Whatever failed, one draft must not take the others down with it.
                for p in batch:
                    await self._commit([p])
                return
            if not self._failing:
                self._failing = True
                log.error("ledger_commit_failed", path=str(self._path), error=str(e))
            with contextlib.suppress(Exception):
                self._head = await run_in_connection_thread(self._conn, _read_head)
            if not batch[0].future.done():
                batch[0].future.set_exception(
                    LedgerError(f"ledger {self._path}: the entry was not written: {e}")
                )
            return
        if self._failing:
            self._failing = False
            log.info("ledger_commit_recovered", path=str(self._path))
        for p, out in zip(batch, outcomes, strict=True):
            if isinstance(out, Appended) and out.created:
                self._head = Head(seq=out.entry.seq, hash=out.entry.hash)
            if p.future.done():
                continue
            if isinstance(out, Appended):
                p.future.set_result(out)
            else:
                p.future.set_exception(out)

    # --- reading ----------------------------------------------------------------------

    async def get(self, seq: int) -> Entry | None:
        """The entry at ``seq``, or None."""
        rows = await self._fetch(f"{_SELECT} WHERE seq = ?", (seq,))
        return self._decode(rows[0]) if rows else None

    async def by_sale_id(self, sale_id: str) -> Entry | None:
        """The entry written for the client request ``sale_id``, or None."""
        rows = await self._fetch(f"{_SELECT} WHERE sale_id = ?", (sale_id,))
        return self._decode(rows[0]) if rows else None

    async def read_after(self, after_seq: int, limit: int) -> list[Entry]:
        """Up to ``limit`` entries with seq > ``after_seq``, in order."""
        rows = await self._fetch(
            f"{_SELECT} WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, max(0, limit))
        )
        return [self._decode(r) for r in rows]

    async def iter_after(self, after_seq: int = 0, batch: int = 1000) -> AsyncIterator[Entry]:
        """Every entry after ``after_seq``, read ``batch`` rows at a time."""
        last = after_seq
        while True:
            entries = await self.read_after(last, batch)
            for e in entries:
                yield e
            if len(entries) < batch:
                return
            last = entries[-1].seq

    async def refresh_head(self) -> Head:
        """Re-read the head from the database (a readonly store follows a writer)."""
        self._head = await self._guard(run_in_connection_thread(self._conn, _read_head))
        return self._head

    async def count(self) -> int:
        """Number of stored entries."""
        return await self._guard(run_in_connection_thread(self._conn, _count))

    async def verify(self, progress: Callable[[int, int], None] | None = None) -> ChainError | None:
        """Check the whole chain; the first bad seq, or None when every entry verifies.

        ``progress(done, total)`` is called between chunks on the event loop.
        """
        total = await self.count()
        st = _VerifyState(0, GENESIS_HASH)
        while True:
            # Small chunks on a writer's connection: appends wait behind each chunk.
            chunk = _VERIFY_CHUNK if self._readonly else _VERIFY_CHUNK_WRITER
            res = await self._guard(run_in_connection_thread(self._conn, _verify_chunk, st, chunk))
            if progress is not None:
                progress(st.checked, max(total, st.checked))
            if isinstance(res, ChainError):
                return res
            if res:
                return None

    async def save_derived(
        self,
        name: str,
        seq: int,
        body: bytes,
        also: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        """Keep read model ``name`` as it stands after entry ``seq`` (replaces the last);
        ``also(db)`` writes its tables in the same transaction (never ``entries``)."""
        if self._readonly:
            raise LedgerError(f"ledger {self._path} is open read-only")
        await self._guard(
            run_in_connection_thread(self._conn, _save_derived, name, seq, body, also)
        )

    async def load_derived(self, name: str) -> tuple[int, bytes] | None:
        """Read model ``name`` and the seq it covers; None when absent, or when the entry
        at that seq is not the one it was made from (another ledger, a restored file)."""
        try:
            return await self._guard(run_in_connection_thread(self._conn, _load_derived, name))
        except LedgerError as e:
            if "no such table" in str(e):  # a read-only open of a ledger from before it
                return None
            raise

    async def check_integrity(self) -> None:
        """Run ``PRAGMA quick_check`` on a second connection; LedgerCorruptError if bad."""
        try:
            conn = await aiosqlite.connect(f"file:{self._path}?mode=ro", uri=True)
            try:
                await run_in_connection_thread(conn, _quick_check, self._path)
            finally:
                await conn.close()
        except sqlite3.DatabaseError as e:
            raise LedgerCorruptError(f"ledger {self._path} is damaged: {e}") from e

    def _decode(self, row: _Row) -> Entry:
        try:
            return _entry_from_row(row)
        except (msgspec.DecodeError, IndexError) as e:
            raise LedgerCorruptError(
                f"ledger {self._path}: entry seq {row[0]} is unreadable: {e}"
            ) from e

    async def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[_Row]:
        rows = await self._guard(self._conn.execute_fetchall(sql, params))
        return [(int(r[0]), str(r[1]), str(r[2]), bytes(r[3])) for r in rows]

    async def _guard(self, aw: Awaitable[_T]) -> _T:
        try:
            return await aw
        except sqlite3.DatabaseError as e:
            raise LedgerError(f"ledger {self._path}: {e}") from e
        except ValueError as e:  # aiosqlite: "Connection closed"
            raise LedgerError(f"ledger {self._path}: {e}") from e


def _disk_full(e: sqlite3.Error) -> bool:
    """SQLITE_FULL, or an I/O error from a full disk."""
    return getattr(e, "sqlite_errorcode", None) == 13 or "disk is full" in str(e)


async def run_in_connection_thread(
    conn: aiosqlite.Connection, fn: Callable[..., _T], *args: Any
) -> _T:
    """Run ``fn(sqlite3_connection, *args)`` in aiosqlite's thread: one hop.

    aiosqlite's public API awaits one statement at a time; a transaction that reads,
    decides and writes would take several hops and let other calls on the connection
    run in the middle of it. This is the project's one use of aiosqlite's private
    ``Connection._execute`` and ``._conn``: the version is pinned in pyproject.toml and
    tests/test_layering.py fails loudly when an upgrade moves either name.
    """

    def bound() -> _T:
        raw = conn._conn  # the sqlite3.Connection owned by aiosqlite's thread
        return fn(raw, *args)

    return await conn._execute(bound)  # type: ignore[no-untyped-call,no-any-return]


def _check_tail(db: sqlite3.Connection, path: Path) -> None:
    """The last TAIL_CHECKED entries are readable and chain: every hash and every link."""
    rows = db.execute(f"{_SELECT} ORDER BY seq DESC LIMIT ?", (TAIL_CHECKED,)).fetchall()
    if not rows:
        return
    rows.reverse()
    cursor = ChainCursor(Head(seq=int(rows[0][0]) - 1, hash=str(rows[0][1])))
    for seq, prev_hash, h, body in rows:
        if seq != cursor.seq + 1:
            missing = cursor.seq + 1
            raise LedgerCorruptError(f"ledger {path} is damaged: entry seq {missing} is missing")
        try:
            why = cursor.follow(seq, prev_hash, h, bytes(body))
        except (ValueError, TypeError):
            why = "prev_hash does not link to the previous entry"
        if why is not None:
            raise LedgerCorruptError(f"ledger {path} is damaged at seq {seq}: {why}")


def _save_derived(
    db: sqlite3.Connection,
    name: str,
    seq: int,
    body: bytes,
    also: Callable[[sqlite3.Connection], None] | None,
) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute("SELECT hash FROM entries WHERE seq = ?", (seq,)).fetchone()
        if row is None and seq != 0:
            raise LedgerError(f"cannot save {name}: no entry {seq}")
        db.execute(
            "INSERT OR REPLACE INTO derived (name, seq, hash, body) VALUES (?, ?, ?, ?)",
            (name, seq, GENESIS_HASH if row is None else str(row[0]), body),
        )
        if also is not None:
            also(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _load_derived(db: sqlite3.Connection, name: str) -> tuple[int, bytes] | None:
    row = db.execute(
        "SELECT d.seq, d.body FROM derived d LEFT JOIN entries e ON e.seq = d.seq"
        " WHERE d.name = ? AND (e.hash = d.hash OR (d.seq = 0 AND d.hash = ?))",
        (name, GENESIS_HASH),
    ).fetchone()
    return None if row is None else (int(row[0]), bytes(row[1]))


def _quick_check(db: sqlite3.Connection, path: Path) -> None:
    """SQLite's own consistency check of every page and index."""
    problems = [str(r[0]) for r in db.execute("PRAGMA quick_check").fetchall()]
    if problems != ["ok"]:
        raise LedgerCorruptError(f"ledger {path} is damaged: {'; '.join(problems[:3])}")


def _prepare(
    db: sqlite3.Connection, path: Path, terminal: str, readonly: bool, integrity_check: bool
) -> Head:
    """Set pragmas, check integrity, create the schema; runs in aiosqlite's thread."""
    if not readonly:
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise LedgerError(f"ledger {path}: cannot switch to WAL (journal_mode={mode})")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    if integrity_check:
        _quick_check(db, path)
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version == SCHEMA_VERSION and not readonly:
        # The writer appends after the head: it must be whole. A read-only open is
        # for looking (verify names the damaged seq instead).
        _check_tail(db, path)
    if readonly:
        if version != SCHEMA_VERSION:
            raise LedgerCorruptError(f"{path} is not a kartapos ledger (schema {version})")
        _check_terminal(db, path, terminal)
        return _read_head(db)
    db.execute("BEGIN IMMEDIATE")
    try:
        if version not in (0, SCHEMA_VERSION):
            raise LedgerCorruptError(f"{path} has unknown ledger schema version {version}")
        # Statement by statement: executescript() would COMMIT our transaction.
        for stmt in _split_schema():
            db.execute(stmt)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        if not _check_terminal(db, path, terminal):
            db.execute("INSERT INTO meta (key, value) VALUES ('terminal', ?)", (terminal,))
        head = _read_head(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return head


def _check_terminal(db: sqlite3.Connection, path: Path, terminal: str) -> bool:
    """Refuse another terminal's ledger; False when none is recorded yet."""
    row = db.execute("SELECT value FROM meta WHERE key='terminal'").fetchone()
    if row is None:
        return False
    if row[0] != terminal:
        raise LedgerError(
            f"ledger {path} belongs to terminal {row[0]!r}, not {terminal!r} "
            "(check terminal.id and terminal.state_dir)"
        )
    return True


def _split_schema() -> list[str]:
    stmts: list[str] = []
    buf: list[str] = []
    for line in _SCHEMA.strip().splitlines():
        buf.append(line)
        joined = "\n".join(buf)
        if sqlite3.complete_statement(joined):
            stmts.append(joined)
            buf = []
    return stmts


def writer_running(path: Path) -> bool:
    """Whether another process (the daemon) holds this ledger open for writing."""
    try:
        fd = _take_lock(path)
    except LedgerLockedError:
        return True
    except LedgerError:
        return False  # no lock can be made here: nothing holds one either
    os.close(fd)
    return False


def _take_lock(path: Path) -> int:
    """Take the exclusive writer lock beside the database, or raise LedgerLockedError."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise LedgerError(f"cannot create the ledger lock {lock_path}: {e.strerror}") from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as e:
        os.close(fd)
        raise LedgerLockedError(
            f"ledger {path} is already open for writing by another process "
            f"(lock {lock_path}); stop the other kartapos first"
        ) from e
    except OSError as e:
        os.close(fd)
        raise LedgerError(f"cannot lock {lock_path}: {e.strerror}") from e
    return fd


def _check_draft(draft: Draft) -> None:
    """Refuse drafts whose fields have the wrong types (floats for grosze, say)."""
    try:
        _draft_builtins_decoder.decode(msgspec.json.encode(draft))
        parse_ts(draft.ts)
    except (msgspec.MsgspecError, ValueError, TypeError, OverflowError) as e:
        raise LedgerError(f"invalid ledger draft: {e}") from e
