"""Ledger verification throughput on 1,000,000 entries (budget >= 200,000 entries/s).

The file is built fast: entries are sealed in Python and bulk-inserted in one
transaction with a raw sqlite3 connection into a schema made by LedgerStore.open.
Measured: LedgerStore.verify() alone, and what `kartapos ledger verify` does (readonly
open with PRAGMA quick_check, then verify).

Run: .venv/bin/python -m benchmarks.bench_ledger_verify [--n 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import structlog

from ledger.entry import GENESIS_HASH, Draft, body_bytes, seal
from ledger.ids import uuid7
from ledger.store import LedgerStore

BUDGET = 200_000.0


def build(path: Path, n: int) -> float:
    """Create a valid ledger of ``n`` entries; seconds taken."""
    start = time.perf_counter()

    async def schema() -> None:
        store = await LedgerStore.open(path, terminal="T-0001")
        await store.close()

    asyncio.run(schema())
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("BEGIN")
    prev = GENESIS_HASH
    rows: list[tuple[int, str, str, bytes]] = []
    base_ms = 1_795_000_000_000
    for seq in range(1, n + 1):
        d = Draft(
            ts="2026-11-18T11:00:00.000Z",
            local_date="2026-11-18",
            kind="sale",
            card=f"01-{seq % 1_000_000:06d}",
            amount_gr=seq % 50_000,
            points_earned=seq % 40,
            benefits=("b-kawa",) if seq % 3 == 0 else (),
            rules_version="r-17",
            cashier="K-01",
            sale_id=f"00000000-0000-4000-8000-{seq:012d}",
        )
        e = seal(d, seq=seq, entry_id=uuid7(base_ms + seq), terminal="T-0001", prev_hash=prev)
        rows.append((seq, prev, e.hash, body_bytes(e)))
        prev = e.hash
        if len(rows) >= 50_000:
            db.executemany(
                "INSERT INTO entries (seq, prev_hash, hash, body) VALUES (?,?,?,?)", rows
            )
            rows.clear()
    if rows:
        db.executemany("INSERT INTO entries (seq, prev_hash, hash, body) VALUES (?,?,?,?)", rows)
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return time.perf_counter() - start


async def measure_cli(path: Path) -> float:
    """What `kartapos ledger verify` does: quick_check and verify side by side."""
    t0 = time.perf_counter()
    store = await LedgerStore.open(path, terminal="T-0001", readonly=True, integrity_check=False)
    async with store:
        _, err = await asyncio.gather(store.check_integrity(), store.verify())
        assert err is None, err
    return time.perf_counter() - t0


async def measure(path: Path) -> tuple[float, float, float, int]:
    t0 = time.perf_counter()
    async with await LedgerStore.open(path, terminal="T-0001", readonly=True) as store:
        t1 = time.perf_counter()
        c1 = time.process_time()
        err = await store.verify()
        cpu = time.process_time() - c1
        t2 = time.perf_counter()
        assert err is None, err
        n = store.head.seq
    return t1 - t0, t2 - t1, cpu, n


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    args = ap.parse_args()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(40), cache_logger_on_first_use=True
    )
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        path = Path(tmp) / "ledger.sqlite"
        built = build(path, args.n)
        size_mb = path.stat().st_size / 1e6
        open_s, verify_s, verify_cpu, n = asyncio.run(measure(path))
        cli_s = asyncio.run(measure_cli(path))
    rate = n / verify_s
    total_rate = n / cli_s
    ok = rate >= BUDGET and total_rate >= BUDGET
    print(f"built {n} entries ({size_mb:.0f} MB) in {built:.1f} s")
    print(f"open (quick_check)            : {open_s:6.2f} s")
    print(
        f"verify()                      : {verify_s:6.2f} s = {rate:9.0f} entries/s"
        f"  (budget >= {BUDGET:.0f}/s)"
    )
    print(
        f"verify() per CPU-second       : {n / verify_cpu:9.0f} entries/s "
        "(what the chain walk costs; the machine's load does not skew it)"
    )
    print(f"open + verify, sequential     : {open_s + verify_s:6.2f} s (information)")
    print(
        f"CLI: quick_check || verify    : {cli_s:6.2f} s = {total_rate:9.0f} "
        f"entries/s  (budget >= {BUDGET:.0f}/s)"
    )
    print("OK" if ok else "BUDGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
