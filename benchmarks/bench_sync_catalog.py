"""Catalogue of 1,000,000 cards: full load, lookup p99, a 10,000-card delta.

Budgets: docs/architecture.md §6.

Run: .venv/bin/python -m benchmarks.bench_sync_catalog [--cards N]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

from ledger.clock import SystemClock
from ledger.domain import CardRecord, CardStatus, Holder, Program
from sync.catalog import Catalog, card_line
from sync.wire import CardsEnd, CardsHeader, encode_line

BUDGET_FULL_S = 30.0
BUDGET_LOOKUP_P99_MS = 0.2
BUDGET_DELTA_S = 1.0


def make_card(i: int, status: CardStatus = CardStatus.ACTIVE) -> CardRecord:
    return CardRecord(
        number=f"01-{i:07d}",
        status=status,
        holder=Holder(display_name=f"Małgorzata Ż. {i}", birth_date=date(1960, 1 + i % 12, 1)),
        uids=(f"04{i:012x}",),
        programs=(
            Program(code="mieszkaniec", valid_to=date(2027, 12, 31)),
            Program(code="senior", valid_to=date(2026, 12, 31)),
        ),
        points=i % 977,
        points_as_of=datetime(2026, 11, 21, 23, 0, tzinfo=UTC),
    )


async def feed(
    version: int, numbers: range, *, full: bool, status: CardStatus
) -> AsyncIterator[bytes]:
    yield encode_line(CardsHeader(version=version, full=full))
    for i in numbers:
        yield card_line(make_card(i, status))
    yield encode_line(CardsEnd(end=True, count=len(numbers)))


async def main(n_cards: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cat = await Catalog.open(Path(tmp) / "catalog.sqlite", SystemClock())
        try:
            t0 = time.perf_counter()
            res = await cat.apply_feed(
                feed(1, range(1, n_cards + 1), full=True, status=CardStatus.ACTIVE)
            )
            full_s = time.perf_counter() - t0
            assert res.accepted, res.reason
            rng = random.Random(7)
            times = []
            for _ in range(20_000):
                num = f"01-{rng.randint(1, n_cards):07d}"
                t = time.perf_counter()
                rec = await cat.lookup(num)
                times.append(time.perf_counter() - t)
                assert rec is not None
            times.sort()
            p50 = times[len(times) // 2] * 1000
            p99 = times[int(len(times) * 0.99)] * 1000
            start = rng.randint(1, max(1, n_cards - 10_000))
            t0 = time.perf_counter()
            res = await cat.apply_feed(
                feed(2, range(start, start + 10_000), full=False, status=CardStatus.BLOCKED)
            )
            delta_s = time.perf_counter() - t0
            assert res.accepted, res.reason
            blocked = await cat.lookup(f"01-{start:07d}")
            assert blocked is not None
            assert blocked.status == CardStatus.BLOCKED
        finally:
            await cat.close()
    print(f"catalogue of {n_cards:,} cards")
    print(f"  full load:          {full_s:7.2f} s     budget <= {BUDGET_FULL_S} s")
    print(f"  lookup p50:         {p50:7.3f} ms")
    print(f"  lookup p99:         {p99:7.3f} ms    budget <= {BUDGET_LOOKUP_P99_MS} ms")
    print(f"  10,000-card delta:  {delta_s:7.2f} s     budget <= {BUDGET_DELTA_S} s")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cards", type=int, default=1_000_000)
    asyncio.run(main(ap.parse_args().cards))
