"""Durable appends/s through LedgerStore vs a bare sqlite3 WAL+FULL insert-commit loop.

Budget (docs/architecture.md §6): the daemon sustains >= 500 durable sales/s and >= 40 % of a
bare WAL+FULL insert-commit loop measured in the same run; the store is the floor
under that figure, so it must clear both with room to spare.

Run: .venv/bin/python -m benchmarks.bench_ledger_append [--n 3000] [--appenders 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import structlog

from ledger.entry import GENESIS_HASH, Draft, body_bytes, seal
from ledger.store import LedgerStore

BUDGET_RATE = 500.0
BUDGET_RATIO = 0.40


def draft(i: int) -> Draft:
    return Draft(
        ts="2026-11-18T11:00:00.000Z",
        local_date="2026-11-18",
        kind="sale",
        card="01-000018",
        amount_gr=1000 + i,
        points_earned=10,
        benefits=("b-kawa",),
        rules_version="r-1",
        cashier="K-01",
        sale_id=f"bench-{i}",
    )


def bare_loop(path: Path, n: int) -> float:
    """Commits/s of one-row INSERT+COMMIT transactions, WAL + synchronous=FULL."""
    e = seal(draft(0), seq=1, entry_id="x", terminal="T-0001", prev_hash=GENESIS_HASH)
    body = body_bytes(e)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, prev TEXT, hash TEXT, body BLOB)")
    start = time.perf_counter()
    for i in range(1, n + 1):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t VALUES (?, ?, ?, ?)", (i, e.prev_hash, e.hash, body))
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return n / elapsed


async def store_run(path: Path, n: int, appenders: int) -> float:
    """Durable appends/s with ``appenders`` coroutines each awaiting its own commit."""
    async with await LedgerStore.open(path, terminal="T-0001") as store:
        per = n // appenders

        async def appender(k: int) -> None:
            for j in range(per):
                await store.append(draft(k * per + j))

        start = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            for k in range(appenders):
                tg.create_task(appender(k))
        elapsed = time.perf_counter() - start
        assert store.head.seq == per * appenders
        assert await store.verify() is None
    return per * appenders / elapsed


def _fmt(xs: list[float]) -> str:
    return ", ".join(f"{x:.0f}" for x in xs)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--appenders", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(40), cache_logger_on_first_use=True
    )
    # Alternate the two, several rounds, and take medians: the disk is shared with
    # whatever else runs, so a single pair can be skewed by a burst elsewhere.
    bares: list[float] = []
    concs: list[float] = []
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        d = Path(tmp)
        for r in range(args.rounds):
            bares.append(bare_loop(d / f"bare{r}.sqlite", args.n))
            concs.append(asyncio.run(store_run(d / f"conc{r}.sqlite", args.n, args.appenders)))
        single = asyncio.run(store_run(d / "single.sqlite", min(args.n, 1000), 1))
    bare = statistics.median(bares)
    conc = statistics.median(concs)
    ratio = conc / bare
    ok = conc >= BUDGET_RATE and ratio >= BUDGET_RATIO
    print(f"bare sqlite3 WAL+FULL insert-commit loop : {bare:9.0f} commits/s (baseline)")
    print(
        f"LedgerStore, {args.appenders} concurrent appenders     : {conc:9.0f} appends/s"
        f"  (budget >= {BUDGET_RATE:.0f}/s)"
    )
    print(
        f"ratio store/bare                          : {ratio:9.2f}"
        f"     (budget >= {BUDGET_RATIO:.2f})"
    )
    print(f"rounds (bare / store)                      : {_fmt(bares)} / {_fmt(concs)}")
    print(f"LedgerStore, 1 sequential appender       : {single:9.0f} appends/s (information)")
    print("OK" if ok else "BUDGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
