"""The usage book's life beside the ledger: loaded from its checkpoint, kept bounded.

At start the book comes from its last checkpoint (the ``derived`` table of the ledger
file) plus the entries after it, so a restart reads what is still open, not years of
history; without a usable checkpoint (first start after an upgrade, another ledger, a
different format) it is rebuilt from every entry once and checkpointed at once.
While the daemon runs, :meth:`UsageKeeper.maintain` drops what has closed and writes a
new checkpoint when anything changed (docs/architecture.md §5.7).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

import structlog

from ledger.clock import Clock
from ledger.domain import Rules
from ledger.entry import Entry
from ledger.periods import local_day
from ledger.rules import lifetime_benefits
from ledger.store import LedgerStore
from ledger.usage import ColdHolder, Flush, UsageBook

log = structlog.get_logger("kartapos.usage")

CHECKPOINT = "usage_book"
_BATCH = 5000

# The cold store: the book's window uses and lifetime counts, in the ledger file beside
# the checkpoint and written in the same transaction as it (docs/architecture.md §5.7).
_COLD_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS usage_windows (holder TEXT NOT NULL, benefit TEXT NOT NULL,"
    " seq INTEGER NOT NULL, day INTEGER NOT NULL, qty INTEGER NOT NULL,"
    " PRIMARY KEY (holder, benefit, seq)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS usage_lifetime (holder TEXT NOT NULL, benefit TEXT NOT NULL,"
    " qty INTEGER NOT NULL, PRIMARY KEY (holder, benefit)) WITHOUT ROWID",
)


class SqliteCold:
    """Reads one holder's cold uses; a read-only connection used on the event loop only
    (two indexed point reads: tens of microseconds, cheaper than a thread hop)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        self._db.execute("PRAGMA cache_size=-512")  # point reads: a small cache is enough

    def close(self) -> None:
        self._db.close()

    def holder(self, holder: str) -> ColdHolder:
        windows: dict[str, dict[int, tuple[int, int]]] = {}
        lifetime: dict[str, int] = {}
        try:
            for benefit, seq, day, qty in self._db.execute(
                "SELECT benefit, seq, day, qty FROM usage_windows WHERE holder = ?", (holder,)
            ):
                windows.setdefault(benefit, {})[seq] = (day, qty)
            for benefit, qty in self._db.execute(
                "SELECT benefit, qty FROM usage_lifetime WHERE holder = ?", (holder,)
            ):
                lifetime[benefit] = qty
        except sqlite3.OperationalError as e:
            if "no such table" not in str(e):
                raise
        return ColdHolder(windows=windows, lifetime=lifetime)


def _writer(flush: Flush, *, replace: bool) -> Callable[[sqlite3.Connection], None]:
    def write(db: sqlite3.Connection) -> None:
        for stmt in _COLD_SCHEMA:
            db.execute(stmt)
        if replace:  # a rebuild: whatever an earlier ledger left goes
            db.execute("DELETE FROM usage_windows")
            db.execute("DELETE FROM usage_lifetime")
        db.executemany(
            "INSERT OR REPLACE INTO usage_windows (holder, benefit, seq, day, qty)"
            " VALUES (?, ?, ?, ?, ?)",
            flush.windows,
        )
        db.executemany(
            "DELETE FROM usage_windows WHERE holder = ? AND benefit = ? AND seq = ?",
            flush.voided,
        )
        db.executemany(
            "INSERT INTO usage_lifetime (holder, benefit, qty) VALUES (?, ?, ?)"
            " ON CONFLICT (holder, benefit) DO UPDATE SET qty = qty + excluded.qty",
            flush.lifetime,
        )
        if flush.lifetime:
            db.execute("DELETE FROM usage_lifetime WHERE qty = 0")
        if flush.horizon is not None:  # windows that closed
            db.execute("DELETE FROM usage_windows WHERE day < ?", (flush.horizon,))

    return write


async def save_book(store: LedgerStore, book: UsageBook, *, replace: bool = False) -> None:
    """Checkpoint the book: its snapshot and its cold tables in one transaction."""
    seq = book.last_seq
    flush, body = book.begin_flush()
    try:
        await store.save_derived(CHECKPOINT, seq, body, _writer(flush, replace=replace))
    except BaseException:
        book.abort_flush()
        raise
    book.end_flush()


@dataclass(frozen=True)
class UsageLoad:
    """How the book was loaded at start."""

    book: UsageBook
    checkpoint_seq: int | None  # None: rebuilt from the whole ledger
    replayed: int  # entries read after the checkpoint (all of them on a rebuild)
    seconds: float
    cold: SqliteCold  # close it after the book (the daemon's exit stack does)


async def load_usage(
    store: LedgerStore,
    *,
    tz: ZoneInfo,
    today: date,
    rules: Rules | None,
    points_floor: int | None,
) -> UsageLoad:
    """The book as of the ledger's head: checkpoint + the entries after it, or a rebuild."""
    t0 = time.perf_counter()
    tracked = lifetime_benefits(rules)
    book: UsageBook | None = None
    cold = SqliteCold(store.path)
    saved = await store.load_derived(CHECKPOINT)
    if saved is not None:
        try:
            book = UsageBook.restore(saved[1], cold=cold)
        except ValueError as e:
            log.warning("usage_checkpoint_unusable", reason=str(e))
        else:
            if book.tz.key != tz.key or book.last_seq != saved[0]:
                log.warning("usage_checkpoint_unusable", reason="another time zone or seq")
                book = None
    checkpoint_seq = None if book is None else book.last_seq
    if book is None:
        book = UsageBook(
            tz=tz, today=today, tracked=tracked, points_floor=points_floor or 0, cold=cold
        )
    else:
        # A benefit the rules newly limit is learnt after READY (UsageKeeper.ensure_tracked,
        # started by the daemon), never by reading the history before the till is up.
        book.prune(today=today, points_floor=points_floor)
    replayed = 0
    async for entry in store.iter_after(book.last_seq, batch=_BATCH):
        book.apply(entry)
        replayed += 1
    if checkpoint_seq is None or replayed:
        book.prune(today=today, points_floor=points_floor)
    seconds = time.perf_counter() - t0
    if checkpoint_seq is None:
        log.info("usage_rebuilt", entries=replayed, seconds=round(seconds, 3), **book.sizes())
        await save_book(store, book, replace=True)
    else:
        log.info("usage_loaded", checkpoint_seq=checkpoint_seq, replayed=replayed)
    return UsageLoad(book, checkpoint_seq, replayed, seconds, cold)


async def _learn(store: LedgerStore, book: UsageBook, benefits: frozenset[str]) -> None:
    """Read the ledger once for the lifetime counts of newly limited benefits."""
    if not benefits:
        return
    t0 = time.perf_counter()
    upto = book.last_seq
    book.start_tracking(benefits)
    batch: list[Entry] = []
    async for entry in store.iter_after(0, batch=_BATCH):
        if entry.seq > upto:
            break
        batch.append(entry)
        if len(batch) >= _BATCH:
            book.learn_history(benefits, batch)
            batch = []
            await asyncio.sleep(0)  # sales go on while the history is read
    book.learn_history(benefits, batch)
    log.info(
        "usage_history_read",
        benefits=sorted(benefits),
        upto_seq=upto,
        seconds=round(time.perf_counter() - t0, 3),
    )


class UsageKeeper:
    """Keeps the daemon's usage book bounded, tracking what the rules need, checkpointed."""

    def __init__(self, store: LedgerStore, book: UsageBook, clock: Clock) -> None:
        self._store = store
        self.book = book
        self._clock = clock
        self._saved_seq = book.last_seq
        self._rules_seen: str | None = None
        self._lock = asyncio.Lock()

    def _today(self) -> date:
        return local_day(self._clock.now(), self.book.tz)

    async def ensure_tracked(self, rules: Rules | None) -> None:
        """Before the rules judge a sale: the lifetime counts they need are complete.

        Free when the rules are the ones already seen; a rules change that puts a
        persons or lifetime limit on a benefit reads the ledger once (seconds on
        years of history), and judging waits for it rather than guess.
        """
        version = None if rules is None else rules.version_str
        if version == self._rules_seen:
            return
        async with self._lock:
            need = self.book.needs_history(lifetime_benefits(rules))
            if need:
                await _learn(self._store, self.book, need)
                await self._save()
            self._rules_seen = version

    async def maintain(self, *, points_floor: int | None) -> None:
        """Drop what closed (windows, redemptions, deltas the city has included) and
        checkpoint when the book changed since the last one."""
        async with self._lock:
            pruned = self.book.prune(today=self._today(), points_floor=points_floor)
            if pruned or self.book.last_seq != self._saved_seq:
                await self._save()

    async def _save(self) -> None:
        seq = self.book.last_seq
        await save_book(self._store, self.book)
        self._saved_seq = seq
