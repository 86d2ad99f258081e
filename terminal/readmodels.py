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
import time
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

import structlog

from ledger.clock import Clock
from ledger.domain import Rules
from ledger.entry import Entry
from ledger.periods import local_day
from ledger.rules import lifetime_benefits
from ledger.store import LedgerStore
from ledger.usage import UsageBook

log = structlog.get_logger("kartapos.usage")

CHECKPOINT = "usage_book"
_BATCH = 5000


@dataclass(frozen=True)
class UsageLoad:
    """How the book was loaded at start."""

    book: UsageBook
    checkpoint_seq: int | None  # None: rebuilt from the whole ledger
    replayed: int  # entries read after the checkpoint (all of them on a rebuild)
    seconds: float


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
    saved = await store.load_derived(CHECKPOINT)
    if saved is not None:
        try:
            book = UsageBook.restore(saved[1])
        except ValueError as e:
            log.warning("usage_checkpoint_unusable", reason=str(e))
        else:
            if book.tz.key != tz.key or book.last_seq != saved[0]:
                log.warning("usage_checkpoint_unusable", reason="another time zone or seq")
                book = None
    checkpoint_seq = None if book is None else book.last_seq
    if book is None:
        book = UsageBook(tz=tz, today=today, tracked=tracked, points_floor=points_floor or 0)
    else:
        book.prune(today=today, points_floor=points_floor)
        await _learn(store, book, book.needs_history(tracked))
    replayed = 0
    async for entry in store.iter_after(book.last_seq, batch=_BATCH):
        book.apply(entry)
        replayed += 1
    if checkpoint_seq is None or replayed:
        book.prune(today=today, points_floor=points_floor)
    seconds = time.perf_counter() - t0
    if checkpoint_seq is None:
        log.info("usage_rebuilt", entries=replayed, seconds=round(seconds, 3), **book.sizes())
        await store.save_derived(CHECKPOINT, book.last_seq, book.snapshot())
    else:
        log.info("usage_loaded", checkpoint_seq=checkpoint_seq, replayed=replayed)
    return UsageLoad(book, checkpoint_seq, replayed, seconds)


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
        await self._store.save_derived(CHECKPOINT, seq, self.book.snapshot())
        self._saved_seq = seq
