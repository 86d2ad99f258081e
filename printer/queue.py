"""The durable print queue: one SQLite file, a worker task, at most one original per entry.

Rules it keeps (docs/architecture.md §7):
- a job is queued only for a committed entry, and one ORIGINAL job exists per
  (entry seq, kind); enqueueing it again returns the same job;
- a job found in state ``printing`` at start-up was interrupted (crash, power cut): it
  may have printed, so it prints again only as a KOPIA; so does a job whose sending
  broke off half-way;
- while the printer is offline, out of paper or open, jobs wait and are retried with
  backoff; the caller waits at most as long as it asks in ``wait``;
- a cash-drawer kick lives in memory for 10 seconds: it is never stored, so neither a
  restart nor a printer coming back hours later pops the drawer for an old sale.

Durability: WAL, so a killed process loses no commit. Only the ``printing`` mark is
committed with ``synchronous=FULL`` (an fsync before the first byte goes out, which also
makes every earlier commit durable). The others use NORMAL: a power cut may forget a
job just queued (the daemon re-queues entries after ``last_original_seq()`` at start)
or a job's ``printed`` mark (it then prints again as KOPIA), never cause a second
original.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, Self

import aiosqlite
import msgspec
import structlog

from config.faults import die, fault_due
from config.schema import PrinterSection
from ledger.clock import Clock, format_ts
from printer.layout import LayoutError, drawer_kick, render
from printer.model import ReceiptData, receipt_decoder, receipt_encoder
from printer.transport import (
    PrinterOffline,
    PrinterStatus,
    PrinterWriteError,
    Transport,
)

log = structlog.get_logger()

JobState = Literal["queued", "printing", "printed", "failed"]
DONE: Final = ("printed", "failed")
FINISHED_KEPT: Final = 256
DRAWER_TTL_S: Final = 10.0

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS jobs (
    id          INTEGER PRIMARY KEY,
    seq         INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    copy        INTEGER NOT NULL,   -- print marked KOPIA
    reprint     INTEGER NOT NULL,   -- asked for as a reprint (not the entry's original)
    state       TEXT NOT NULL CHECK (state IN ('queued', 'printing', 'printed', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    data        BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    printed_at  TEXT,
    last_error  TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_original ON jobs(seq, kind) WHERE reprint = 0;
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class PrintQueueError(Exception):
    """The print queue's database cannot be used."""


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    seq: int
    kind: str
    copy: bool
    reprint: bool
    state: JobState
    attempts: int
    created_at: str
    printed_at: str | None
    last_error: str | None


QUEUE_FILE = "print.sqlite"


def queue_path(state_dir: str | Path) -> Path:
    """Where a terminal keeps its durable print jobs: ``<state_dir>/print.sqlite``."""
    return Path(state_dir) / QUEUE_FILE


class PrintQueue:
    """Durable jobs in ``<state_dir>/print.sqlite`` and the worker that prints them."""

    def __init__(
        self,
        db: aiosqlite.Connection,
        *,
        transport: Transport | None,
        printer: PrinterSection,
        clock: Clock,
        retry_initial_s: float,
        retry_max_s: float,
        idle_poll_s: float,
    ) -> None:
        self._db = db
        self._transport = transport
        self._printer = printer
        self._clock = clock
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._idle_poll_s = idle_poll_s
        self._wake = asyncio.Event()
        self._changed = asyncio.Condition()
        # Job states in memory: every unfinished job, and the last finished ones (a waiter
        # may still look); older finished states are read back from the table.
        self._states: dict[int, JobState] = {}
        self._finished: collections.deque[int] = collections.deque()
        self._drawer: dict[int, float] = {}  # job id -> monotonic deadline
        self._status = PrinterStatus("unknown", "not asked yet")
        self._silent = False  # the printer never answers status queries
        self._listeners: list[Callable[[PrinterStatus], None]] = []
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        transport: Transport | None,
        printer: PrinterSection,
        clock: Clock,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 10.0,
        idle_poll_s: float = 10.0,
    ) -> PrintQueue:
        """Open (or create) the queue; jobs interrupted mid-print become KOPIA jobs."""
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
        except Exception as e:
            raise PrintQueueError(f"{path}: {e}") from e
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute("PRAGMA busy_timeout=5000")
            # A handful of rows at a time: a small page cache keeps a till of years lean.
            await db.execute("PRAGMA cache_size=-512")
            await db.executescript(_SCHEMA)
            cur = await db.execute(
                "UPDATE jobs SET state = 'queued', copy = 1, "
                "last_error = 'interrupted while printing' WHERE state = 'printing'"
            )
            if cur.rowcount:
                log.warning("print_queue.interrupted_jobs_reprinted_as_copy", jobs=cur.rowcount)
        except Exception as e:
            await db.close()
            raise PrintQueueError(f"{path}: {e}") from e
        return cls(
            db,
            transport=transport,
            printer=printer,
            clock=clock,
            retry_initial_s=retry_initial_s,
            retry_max_s=retry_max_s,
            idle_poll_s=idle_poll_s,
        )

    async def close(self) -> None:
        await self._db.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- producer side -----------------------------------------------------------------

    async def enqueue(self, data: ReceiptData, *, copy: bool = False, drawer: bool = False) -> int:
        """Queue a receipt for a committed entry; return the job id.

        ``copy=False``: the entry's original (a second call returns the same job and
        changes nothing). ``copy=True``: a reprint, marked KOPIA. ``drawer``: kick the
        cash drawer with it if it prints within 10 seconds.
        """
        blob = receipt_encoder.encode(data)
        now = format_ts(self._clock.now())
        seq, kind = data.entry.seq, data.kind
        async with self._write_lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = await self._db.execute(
                    "INSERT OR IGNORE INTO jobs (seq, kind, copy, reprint, state, data, created_at)"
                    " VALUES (?, ?, ?, ?, 'queued', ?, ?)",
                    (seq, kind, int(copy), int(copy), blob, now),
                )
                created = cur.rowcount == 1
                if created:
                    job_id = cur.lastrowid
                    assert job_id is not None
                    if not copy:
                        await self._db.execute(
                            "INSERT INTO meta (key, value) VALUES ('last_original_seq', ?) "
                            "ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
                            (seq,),
                        )
                else:
                    rows = await self._db.execute_fetchall(
                        "SELECT id FROM jobs WHERE seq = ? AND kind = ? AND reprint = 0",
                        (seq, kind),
                    )
                    job_id = next(iter(rows))[0]
                await self._db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    await self._db.execute("ROLLBACK")
                raise
        if created:
            self._states[job_id] = "queued"
            if drawer and self._printer.cash_drawer:
                self._drawer[job_id] = self._clock.monotonic() + DRAWER_TTL_S
            self._wake.set()
            log.debug("print_queue.enqueued", job=job_id, seq=seq, kind=kind, copy=copy)
        return job_id

    async def wait(self, job_id: int, timeout: float) -> JobState:  # noqa: ASYNC109
        """Wait up to ``timeout`` seconds for the job to finish; return its state then."""
        await self._state_of(job_id)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: self._states.get(job_id) in DONE)
        return await self._state_of(job_id)

    async def _state_of(self, job_id: int) -> JobState:
        state = self._states.get(job_id)
        if state is None:
            rows = list(
                await self._db.execute_fetchall("SELECT state FROM jobs WHERE id = ?", (job_id,))
            )
            if not rows:
                raise KeyError(f"no print job {job_id}")
            state = rows[0][0]
            self._states[job_id] = state
        return state

    async def original_state(self, seq: int, kind: str | None = None) -> JobState | None:
        """The state of an entry's original receipt job (None when it has none)."""
        sql = "SELECT id, state FROM jobs WHERE seq = ? AND reprint = 0"
        args: tuple[object, ...] = (seq,)
        if kind is not None:
            sql += " AND kind = ?"
            args = (seq, kind)
        rows = list(await self._db.execute_fetchall(sql + " ORDER BY id LIMIT 1", args))
        if not rows:
            return None
        job_id, state = rows[0]
        return self._states.get(job_id, state)  # type: ignore[no-any-return]

    async def baseline(self, seq: int) -> int:
        """The highest entry seq that has an original job; a queue that never had one
        starts at ``seq`` (the ledger's head when it is first opened beside it), so a new
        or lost queue file beside years of ledger does not print them all again."""
        async with self._write_lock:
            await self._db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('last_original_seq', ?)", (seq,)
            )
        return await self.last_original_seq()

    async def last_original_seq(self) -> int:
        """The highest entry seq that has an original job (0 when none)."""
        rows = list(
            await self._db.execute_fetchall(
                "SELECT value FROM meta WHERE key = 'last_original_seq'"
            )
        )
        return int(rows[0][0]) if rows else 0

    async def jobs(self, *, state: JobState | None = None, limit: int = 100) -> list[Job]:
        """Jobs, newest first (diagnostics and tests)."""
        sql = (
            "SELECT id, seq, kind, copy, reprint, state, attempts, created_at, printed_at,"
            " last_error FROM jobs"
        )
        args: tuple[object, ...] = ()
        if state is not None:
            sql += " WHERE state = ?"
            args = (state,)
        rows = await self._db.execute_fetchall(sql + " ORDER BY id DESC LIMIT ?", (*args, limit))
        return [
            Job(r[0], r[1], r[2], bool(r[3]), bool(r[4]), r[5], r[6], r[7], r[8], r[9])
            for r in rows
        ]

    async def prune(self, keep_days: int = 90) -> int:
        """Delete finished jobs older than ``keep_days``; return how many."""
        cutoff = format_ts(self._clock.now() - timedelta(days=keep_days))
        async with self._write_lock:
            cur = await self._db.execute(
                "DELETE FROM jobs WHERE state IN ('printed', 'failed') AND created_at < ?",
                (cutoff,),
            )
        return cur.rowcount

    # --- printer status ----------------------------------------------------------------

    def status(self) -> PrinterStatus:
        """The printer's last known state."""
        return self._status

    def subscribe(self, callback: Callable[[PrinterStatus], None]) -> Callable[[], None]:
        """Call ``callback`` on every change of the printer's state; returns unsubscribe."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    def _set_status(self, status: PrinterStatus) -> None:
        old, self._status = self._status, status
        if old.state == status.state:
            return
        if status.state in ("online", "paper_near_end", "unknown"):
            log.info("printer.state", state=status.state, was=old.state, detail=status.detail)
        else:
            log.warning("printer.state", state=status.state, was=old.state, detail=status.detail)
        for callback in list(self._listeners):
            try:
                callback(status)
            except Exception:
                # A broken listener must not stop the printing.
                log.exception("printer.status_listener_failed")

    async def _refresh_status(self) -> PrinterStatus:
        if self._transport is None:
            status = PrinterStatus("offline", "no printer configured")
        else:
            status = await self._transport.status()
            self._silent = status.state == "unknown"
        self._set_status(status)
        return status

    # --- worker --------------------------------------------------------------------------

    async def run(self) -> None:
        """Print queued jobs in order, forever (cancel to stop)."""
        backoff = self._retry_initial_s
        task = asyncio.current_task()
        await self._refresh_status()
        while True:
            if task is not None and task.cancelling():
                # A library swallowed the cancellation that was meant to stop us.
                raise asyncio.CancelledError
            # Cleared before looking, so a job queued after the look still wakes us.
            self._wake.clear()
            job = await self._next_job()
            if job is None:
                if not await self._sleep(self._idle_poll_s):
                    await self._refresh_status()
                continue
            if await self._attempt(*job):
                backoff = self._retry_initial_s
                continue
            await self._sleep(backoff)
            backoff = min(backoff * 2, self._retry_max_s)

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, or less when a job is enqueued; True when woken by a job."""
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            return False
        return True

    async def _next_job(self) -> tuple[int, bool, bytes] | None:
        rows = list(
            await self._db.execute_fetchall(
                "SELECT id, copy, data FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 1"
            )
        )
        if not rows:
            return None
        job_id, copy, data = rows[0]
        return job_id, bool(copy), data

    async def _mark(self, job_id: int, state: JobState, sql: str, *args: object) -> None:
        async with self._write_lock:
            if state == "printing":
                # The one commit that must reach the disk before the printer gets a byte:
                # it is what turns a power cut mid-job into a KOPIA instead of a second
                # original. FULL also flushes every earlier NORMAL commit in the WAL.
                await self._db.execute("PRAGMA synchronous=FULL")
                try:
                    await self._db.execute(sql, (*args, job_id))
                finally:
                    await self._db.execute("PRAGMA synchronous=NORMAL")
            else:
                await self._db.execute(sql, (*args, job_id))
        async with self._changed:
            self._states[job_id] = state
            self._changed.notify_all()
        if state in DONE:
            self._forget_finished(job_id)

    def _forget_finished(self, job_id: int) -> None:
        """Keep the states of the last FINISHED_KEPT finished jobs; a daemon that prints
        for months must not hold one per receipt it ever printed."""
        self._finished.append(job_id)
        while len(self._finished) > FINISHED_KEPT:
            old = self._finished.popleft()
            if self._states.get(old) in DONE:
                del self._states[old]

    async def _attempt(self, job_id: int, copy: bool, blob: bytes) -> bool:
        """Try to print one job; True when it is finished (printed or failed for good)."""
        try:
            data = receipt_decoder.decode(blob)
            payload = await asyncio.to_thread(render, data, self._printer, copy=copy)
        except (msgspec.DecodeError, LayoutError) as e:
            log.error("print_queue.job_unprintable", job=job_id, error=str(e))
            await self._mark(
                job_id,
                "failed",
                "UPDATE jobs SET state = 'failed', last_error = ? WHERE id = ?",
                str(e),
            )
            return True
        if self._transport is None:
            self._set_status(PrinterStatus("offline", "no printer configured"))
            return False
        if not self._silent:
            status = await self._refresh_status()
            if not status.can_print:
                return False
        deadline = self._drawer.get(job_id)
        kick = deadline is not None and self._clock.monotonic() <= deadline
        if deadline is not None and not kick:
            del self._drawer[job_id]
        if kick:
            payload = drawer_kick() + payload
        await self._mark(
            job_id,
            "printing",
            "UPDATE jobs SET state = 'printing', attempts = attempts + 1 WHERE id = ?",
        )
        if fault_due("mid_print"):  # the chaos harness: half a receipt, then power cut
            await self._transport.send(payload[: len(payload) // 2])
            die("mid_print")
        try:
            await self._transport.send(payload)
        except PrinterOffline as e:
            await self._mark(
                job_id,
                "queued",
                "UPDATE jobs SET state = 'queued', last_error = ? WHERE id = ?",
                str(e),
            )
            self._set_status(PrinterStatus("offline", str(e)))
            return False
        except PrinterWriteError as e:
            # Part of it may be on paper: whatever prints next for this job says KOPIA.
            await self._mark(
                job_id,
                "queued",
                "UPDATE jobs SET state = 'queued', copy = 1, last_error = ? WHERE id = ?",
                str(e),
            )
            self._set_status(PrinterStatus("offline", str(e)))
            return False
        self._drawer.pop(job_id, None)
        if self._status.state == "offline":
            # Sent without asking first (the printer never answers DLE EOT): reachable.
            self._set_status(PrinterStatus("unknown", "printer does not report its state"))
        await self._mark(
            job_id,
            "printed",
            "UPDATE jobs SET state = 'printed', printed_at = ?, last_error = NULL WHERE id = ?",
            format_ts(self._clock.now()),
        )
        return True
