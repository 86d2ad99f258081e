"""Partner statistics over a partner with 1,000,000 entries: `CentralDB.partner_stats`
(what `GET /v1/partners/{pid}/stats` and `kartapos central stats` run), budget ≤ 1 s.

The city's tables are filled by the upload's own bookkeeping functions (`_apply_stats`,
`_apply_usage` of sync/central/db.py, in transactions of 10,000 entries) from 1,000,000
generated sales and voids: 365 local days, 20 terminals, 6 cashiers, 50,000 residents,
a third of the sales naming one or two of 8 benefits, 3 % voided. The chain, signature
and business checks an upload also runs are not repeated here (bench_central_ingest
measures them); nor are the entry bodies stored, which a report never reads.

Run: .venv/bin/python -m benchmarks.bench_central_stats [--entries 1000000]
     [--database sqlite|postgresql|both] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import structlog.testing

from ledger.entry import Entry
from sync.central.db import CentralDB, _apply_stats, _apply_usage, _tx
from sync.central.engine import Conn
from tests.pgserver import PostgresServer, running_postgres

BUDGET_S = 1.0
PARTNER = "P-0001"
DAYS = 365
TERMINALS = [f"T-{i:04d}" for i in range(1, 21)]
CASHIERS = [f"{PARTNER}-K{i:02d}" for i in range(1, 6)] + [None]
BENEFITS = [f"B-{i}" for i in range(101, 109)]
RESIDENTS = 50_000
CHUNK = 10_000
FIRST_DAY = date(2025, 12, 1)


def _line(label: str, value: str, budget: str = "") -> None:
    print(f"  {label:<52} {value:>14}  {budget}")


def _entries(n: int, seed: int) -> dict[str, list[Entry]]:
    """``n`` sales and voids spread over the terminals, in seq order per terminal."""
    rng = random.Random(seed)
    out: dict[str, list[Entry]] = {t: [] for t in TERMINALS}
    for i in range(n):
        tid = TERMINALS[i % len(TERMINALS)]
        mine = out[tid]
        day = (FIRST_DAY + timedelta(days=i * DAYS // n)).isoformat()
        cashier = rng.choice(CASHIERS)
        seq = len(mine) + 1
        if mine and rng.random() < 0.03 and mine[-1].kind == "sale":
            sale = mine[-1]
            mine.append(
                Entry(
                    seq=seq, id=f"{tid}-{seq}", ts=f"{day}T11:00:00.000Z", local_date=day,
                    terminal=tid, kind="void", card=sale.card, amount_gr=-sale.amount_gr,
                    points_earned=-sale.points_earned, points_redeemed=-sale.points_redeemed,
                    discount_gr=-sale.discount_gr, benefits=sale.benefits,
                    benefit_quantities=dict(sale.benefit_quantities),
                    benefit_points={k: -v for k, v in sale.benefit_points.items()},
                    rules_version="2026.11-1", cashier=cashier, ref=sale.seq,
                    prev_hash="0" * 64, hash="0" * 64,
                )
            )  # fmt: skip
            continue
        named = tuple(rng.sample(BENEFITS, rng.choice([1, 2]))) if rng.random() < 0.33 else ()
        amount = rng.randint(100, 30_000)
        mine.append(
            Entry(
                seq=seq, id=f"{tid}-{seq}", ts=f"{day}T11:00:00.000Z", local_date=day,
                terminal=tid, kind="sale", card=f"01-{rng.randrange(RESIDENTS):06d}",
                amount_gr=amount, points_earned=amount // 100 + 10 * len(named),
                points_redeemed=0, discount_gr=0, benefits=named,
                benefit_quantities={b: rng.randint(1, 2) for b in named},
                benefit_points={b: 10 for b in named}, rules_version="2026.11-1",
                cashier=cashier, ref=None, prev_hash="0" * 64, hash="0" * 64,
            )
        )  # fmt: skip
    return out


async def _fill(db: CentralDB, entries: dict[str, list[Entry]]) -> float:
    for tid in TERMINALS:
        await db.enrol(tid, PARTNER, f"token-{tid}-benchmark-only", None)
    t0 = time.perf_counter()
    done = 0
    total = sum(len(v) for v in entries.values())
    for tid, mine in entries.items():
        for i in range(0, len(mine), CHUNK):
            chunk = mine[i : i + CHUNK]

            def work(conn: Conn, tid: str = tid, chunk: list[Entry] = chunk) -> None:
                def body() -> None:
                    _apply_stats(conn, PARTNER, chunk)
                    _apply_usage(conn, tid, PARTNER, chunk)

                _tx(conn, body)

            await db.run(work)
            done += len(chunk)
        print(f"    filled {done:,} / {total:,} entries", file=sys.stderr, flush=True)
    return time.perf_counter() - t0


async def _engine(label: str, database: str, n: int, repeat: int) -> bool:
    entries = _entries(n, seed=11)
    async with await CentralDB.open(database) as db:
        fill_s = await _fill(db, entries)
        last = (FIRST_DAY + timedelta(days=DAYS - 1)).isoformat()
        month = (FIRST_DAY + timedelta(days=DAYS - 30)).isoformat()
        print(f"{label}: {n:,} entries, filled in {fill_s:.1f} s (not timed)")
        ok = True
        for what, start in (
            ("a month (30 days)", month),
            ("the whole year", FIRST_DAY.isoformat()),
        ):
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                report = await db.partner_stats(PARTNER, start, last)
                times.append(time.perf_counter() - t0)
            worst = max(times)
            verdict = "OK" if worst <= BUDGET_S else "MISS"
            _line(
                f"stats over {what}, median / worst of {repeat}",
                f"{statistics.median(times) * 1000:.0f} / {worst * 1000:.0f} ms",
                f"budget ≤ {BUDGET_S * 1000:.0f} ms  {verdict}",
            )
            first = report.benefits[0].persons
            _line("  sales counted; benefits, persons of the first", f"{report.totals.sales:,}",
                  f"{len(report.benefits)} benefits, {first:,} persons")  # fmt: skip
            ok = ok and worst <= BUDGET_S
        whole = await db.partner_stats(PARTNER, FIRST_DAY.isoformat(), last)
        counted = whole.totals.sales + whole.totals.voids
        if counted != n:
            print(f"  the report counts {counted:,} of {n:,} entries: WRONG")
            return False
        return ok


async def main(args: argparse.Namespace) -> int:
    engines = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    ok = True
    with contextlib.ExitStack() as stack:
        stack.enter_context(structlog.testing.capture_logs())  # the server's info lines
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kp-stats-")))
        pg: PostgresServer | None = None
        if "postgresql" in engines:
            pg = stack.enter_context(running_postgres())
        for engine in engines:
            database = pg.create_database("stats") if engine == "postgresql" and pg else None
            at = database or str(tmp / "central.sqlite")
            ok = await _engine(engine, at, args.entries, args.repeat) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--entries", type=int, default=1_000_000)
    p.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--repeat", type=int, default=5)
    sys.exit(asyncio.run(main(p.parse_args())))
