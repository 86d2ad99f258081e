"""The usage book beside a real ledger: a restart reads the checkpoint and what came after.

Also: a checkpoint made from another ledger is never used, a rules change that limits a
benefit's lifetime reads the history once, and the whole-file check runs after READY
without blocking a sale (docs/architecture.md §5.7).
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ledger.clock import WARSAW, FakeClock, format_ts
from ledger.domain import Benefit, Rules
from ledger.entry import Draft, Entry, EntryKind
from ledger.periods import window_dates
from ledger.store import LedgerStore, ledger_path
from ledger.usage import UsageBook
from sync.central.demo_data import demo_rules
from terminal.readmodels import CHECKPOINT, UsageKeeper, load_usage
from tests.sync.central_harness import PARTNER, TERMINAL
from tests.terminal.daemon_harness import running_daemon

NOW = datetime(2026, 11, 18, 11, tzinfo=UTC)
TODAY = date(2026, 11, 18)


def draft(i: int, *, benefits: tuple[str, ...] = ("b-kawa",), day: str = "2026-11-18") -> Draft:
    return Draft(
        ts=format_ts(NOW),
        local_date=day,
        kind=EntryKind.SALE,
        card=f"01-{i % 7:06d}",
        amount_gr=1000 + i,
        points_earned=i % 9,
        benefits=benefits if i % 3 == 0 else (),
        rules_version="r1",
        cashier="K-1",
        sale_id=str(uuid.UUID(int=i)),
    )


async def fill(store: LedgerStore, start: int, n: int, **kw: Any) -> None:
    await asyncio.gather(*(store.append(draft(i, **kw)) for i in range(start, start + n)))


def canon(book: UsageBook, entries: list[Entry]) -> Any:
    """Every answer the rules engine can get from the book today, for the ledger's holders."""
    holders = sorted({e.holder_key for e in entries if e.holder_key is not None})
    benefits = sorted({b for e in entries for b in e.benefits})
    out: list[Any] = []
    for h in holders:
        for b in benefits:
            for p in ("day", "week", "month", "year"):
                out.append(book.uses_between(h, b, *window_dates(p, TODAY)))
            if book.tracked is None or b in book.tracked:
                out += [book.uses_between(h, b, None, None), book.has_used(h, b)]
        out.append(book.points_delta_above(h, book.points_floor))
    out += [sorted(book.pending_persons(b)) for b in benefits]
    out.append(book.day(TODAY.isoformat()).summary())
    return out


async def everything(store: LedgerStore) -> list[Entry]:
    return [e async for e in store.iter_after(0)]


async def rebuilt(store: LedgerStore, book: UsageBook) -> UsageBook:
    entries = [e async for e in store.iter_after(0)]
    fresh = UsageBook.from_entries(
        entries, tz=WARSAW, today=TODAY, tracked=book.tracked, points_floor=book.points_floor
    )
    fresh.set_acknowledged(book.acknowledged_seq)
    return fresh


RULES = Rules(
    version="r1", benefits=(Benefit(id="b-kawa", name="Kawa", max_persons=10, limited=True),)
)


async def test_a_restart_reads_only_the_entries_after_the_checkpoint(tmp_path: Path) -> None:
    path = ledger_path(tmp_path)
    async with await LedgerStore.open(path, terminal="T-0001") as store:
        await fill(store, 1, 600)
        first = await load_usage(store, tz=WARSAW, today=TODAY, rules=RULES, points_floor=None)
        assert first.checkpoint_seq is None
        assert first.replayed == 600
        keeper = UsageKeeper(store, first.book, FakeClock(NOW))
        for e in [x async for x in store.iter_after(600)]:
            first.book.apply(e)
        await fill(store, 601, 40)
        for e in [x async for x in store.iter_after(600)]:
            first.book.apply(e)
        await keeper.maintain(points_floor=None)  # checkpoint at 640
        await fill(store, 641, 25)  # a crash before the next one
    async with await LedgerStore.open(path, terminal="T-0001") as store:
        again = await load_usage(store, tz=WARSAW, today=TODAY, rules=RULES, points_floor=None)
        assert (again.checkpoint_seq, again.replayed) == (640, 25)
        assert again.book.last_seq == 665
        assert canon(again.book, await everything(store)) == canon(
            await rebuilt(store, again.book), await everything(store)
        )


async def test_a_checkpoint_of_another_ledger_is_ignored(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "ledger.sqlite", tmp_path / "b" / "ledger.sqlite"
    async with await LedgerStore.open(a, terminal="T-0001") as store:
        await fill(store, 1, 30)
        await load_usage(store, tz=WARSAW, today=TODAY, rules=RULES, points_floor=None)
    async with await LedgerStore.open(b, terminal="T-0001") as store:
        await fill(store, 1000, 30)  # the same seqs, other sales: a restored or swapped file
    src = sqlite3.connect(a)
    row = src.execute("SELECT name, seq, hash, body FROM derived").fetchone()
    src.close()
    dst = sqlite3.connect(b)
    dst.execute("INSERT INTO derived VALUES (?, ?, ?, ?)", row)
    dst.commit()
    dst.close()
    async with await LedgerStore.open(b, terminal="T-0001") as store:
        assert await store.load_derived(CHECKPOINT) is None
        got = await load_usage(store, tz=WARSAW, today=TODAY, rules=RULES, points_floor=None)
        assert got.checkpoint_seq is None
        assert got.replayed == 30
        assert canon(got.book, await everything(store)) == canon(
            await rebuilt(store, got.book), await everything(store)
        )


async def test_rules_that_limit_a_lifetime_read_the_history_once(tmp_path: Path) -> None:
    async with await LedgerStore.open(ledger_path(tmp_path), terminal="T-0001") as store:
        await fill(store, 1, 90, benefits=("b-kino",))
        loaded = await load_usage(store, tz=WARSAW, today=TODAY, rules=RULES, points_floor=None)
        book = loaded.book
        card = "01-000003"  # sale 3 took b-kino
        assert not book.has_used(card, "b-kino")  # nobody limited it: not counted
        limited = Rules(
            version="r2",
            benefits=(Benefit(id="b-kino", name="Kino", uses_per_period=5),),  # lifetime: 5
        )
        keeper = UsageKeeper(store, book, FakeClock(NOW))
        await keeper.ensure_tracked(limited)
        full = await rebuilt(store, book)
        assert book.has_used(card, "b-kino")
        assert book.uses_between(card, "b-kino", None, None) == full.uses_between(
            card, "b-kino", None, None
        )
        assert book.uses_between(card, "b-kino", None, None) > 0
        saved = await store.load_derived(CHECKPOINT)
        assert saved is not None
        assert saved[0] == 90
        assert "b-kino" in (UsageBook.restore(saved[1]).tracked or ())


def damage_a_middle_page(path: Path) -> int:
    """Overwrite the cell area of a leaf page of old entries; returns its page number."""
    db = sqlite3.connect(path)
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    leaves = [
        r[0]
        for r in db.execute(
            "SELECT pageno FROM dbstat WHERE name = 'entries' AND pagetype = 'leaf' ORDER BY pageno"
        )
    ]
    db.close()
    page = leaves[len(leaves) // 3]
    with path.open("r+b") as f:
        f.seek((page - 1) * page_size + 3)
        f.write(b"\xff\xff\x00\x01" * 8)  # cell count and pointers: nonsense
    return int(page)


async def test_the_whole_file_is_checked_after_ready_and_a_sale_still_goes_through(
    tmp_path: Path,
) -> None:
    path = ledger_path(tmp_path / "state")
    async with await LedgerStore.open(path, terminal=TERMINAL) as store:
        await fill(store, 1, 3000)
        # the daemon that wrote these had checkpointed its book, for the same rules
        rules = demo_rules(TODAY)[PARTNER]
        await load_usage(store, tz=WARSAW, today=TODAY, rules=rules, points_floor=None)
        await store.refresh_head()
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    damage_a_middle_page(path)
    async with running_daemon(tmp_path) as h:
        async with asyncio.timeout(20):  # the check of ~4 MB takes well under a second
            while True:
                _, health = await h.call("GET", "/health")
                if health["ledger"]["integrity"] in ("ok", "failed"):
                    break
                await asyncio.sleep(0.05)
        assert health["ledger"]["integrity"] == "failed"
        assert "damaged" in health["ledger"]["integrity_detail"]
        assert health["status"] == "degraded"
        status, body = await h.call(
            "POST",
            "/sales",
            {"id": str(uuid.uuid4()), "card": "01-000018", "amount_gr": 1500},
        )
        assert status == 201, body
        assert body["entry"]["seq"] == 3001
