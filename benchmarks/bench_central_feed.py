"""Card feed of 1,000,000 cards served from PostgreSQL, as a terminal reads it.

The cards are loaded through ``CentralDB.upsert_cards`` (what ``kartapos-central cards
load`` calls) in chunks, not timed. Then the reference server (``CentralServer`` on a
free loopback port) serves ``GET /v1/cards`` to an enrolled terminal's bearer token:
the full feed, and after 10,000 cards change (blocked) the delta ``?since=<version>``.
Each body is read to its end line, streamed, and its card lines counted. The terminal's
HTTP client (aiohttp) accepts gzip and deflate, so the server compresses (deflate); the
full feed is also read uncompressed (``Accept-Encoding: identity``) beside it.

Budgets (issue 14): full feed <= 20 s, a 10,000-card delta <= 1 s.

Run: .venv/bin/python -m benchmarks.bench_central_feed [--cards 1000000] [--chunk 50000]

PostgreSQL is a throwaway cluster of Debian's ``postgresql`` package (tests/pgserver.py;
as root the cluster belongs to ``nobody``).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from dataclasses import dataclass

import aiohttp
import msgspec
import structlog.testing

from benchmarks.bench_sync_catalog import make_card
from config.schema import CentralConfig, CentralSection
from ledger.domain import CardStatus
from sync.central import CentralDB, CentralServer
from tests.pgserver import running_postgres

BUDGET_FULL_S = 20.0
BUDGET_DELTA_S = 1.0
DELTA_CARDS = 10_000
TERMINAL = "T-0001"
PARTNER = "P-0001"


def _line(label: str, value: str, budget: str = "") -> None:
    print(f"  {label:<46} {value:>14}  {budget}")


@dataclass
class Read:
    seconds: float
    cards: int
    wire_bytes: int  # the body as read (after decompression)
    encoding: str
    header: dict[str, object]


async def read_feed(url: str, token: str, query: str = "", *, gzip: bool = True) -> Read:
    """GET /v1/cards as a terminal does; the whole body, streamed, lines counted."""
    headers = {"Authorization": f"Bearer {token}"}
    if not gzip:
        headers["Accept-Encoding"] = "identity"
    async with aiohttp.ClientSession(
        headers=headers, timeout=aiohttp.ClientTimeout(total=300)
    ) as http:
        t0 = time.perf_counter()
        async with http.get(f"{url}/v1/cards{query}") as r:
            r.raise_for_status()
            lines = 0
            head = b""
            last = b""
            async for chunk in r.content.iter_any():
                if b"\n" not in head:
                    head += chunk[:4096]
                lines += chunk.count(b"\n")
                last = (last + chunk)[-200:]
            seconds = time.perf_counter() - t0
            wire = r.content.total_bytes
            encoding = r.headers.get("Content-Encoding", "identity")
    end = msgspec.json.decode(last.rstrip(b"\n").rsplit(b"\n", 1)[-1])
    assert end == {"end": True, "count": lines - 2}, end
    first = head.split(b"\n", 1)[0]
    return Read(seconds, lines - 2, wire, encoding, msgspec.json.decode(first))


def _ok(seconds: float, budget: float) -> str:
    return "OK" if seconds <= budget else "MISS"


async def bench(n_cards: int, chunk: int) -> int:
    with running_postgres() as pg, structlog.testing.capture_logs():
        url = pg.create_database("feed")
        token = secrets.token_urlsafe(24)
        async with await CentralDB.open(url) as db:
            await db.enrol(TERMINAL, PARTNER, token, None)
            t0 = time.perf_counter()
            for lo in range(1, n_cards + 1, chunk):
                hi = min(lo + chunk, n_cards + 1)
                await db.upsert_cards([make_card(i) for i in range(lo, hi)])
                if (hi - 1) % (chunk * 4) == 0 or hi > n_cards:
                    done = time.perf_counter() - t0
                    print(f"  loaded {hi - 1:>9,} cards in {done:6.1f} s", flush=True)
        load_s = time.perf_counter() - t0
        cfg = CentralConfig(
            central=CentralSection(listen="127.0.0.1:8765", database=url, full_feeds_per_hour=0)
        )
        async with CentralServer(cfg, port=0) as server:  # any free port
            full = await read_feed(server.url, token)
            plain = await read_feed(server.url, token, gzip=False)
            version = full.header["version"]
            start = n_cards // 3
            changed = [make_card(i, CardStatus.BLOCKED) for i in range(start, start + DELTA_CARDS)]
            await server.db.upsert_cards(changed)
            delta = await read_feed(server.url, token, f"?since={version}")
    assert full.cards == plain.cards == n_cards, (full.cards, plain.cards)
    assert delta.cards == DELTA_CARDS, delta
    assert delta.header["full"] is False, delta
    print(f"card feed of {n_cards:,} cards from PostgreSQL (loaded in {load_s:.1f} s, not timed)")
    _line(
        f"full feed, {full.encoding} as the terminal asks",
        f"{full.seconds:.2f} s",
        f"budget <= {BUDGET_FULL_S:g} s {_ok(full.seconds, BUDGET_FULL_S)}",
    )
    _line("  body, decompressed", f"{full.wire_bytes / 1e6:,.1f} MB")
    _line("full feed, identity (no compression)", f"{plain.seconds:.2f} s", "information")
    _line(
        f"{DELTA_CARDS:,}-card delta (?since={version}), {delta.encoding}",
        f"{delta.seconds:.3f} s",
        f"budget <= {BUDGET_DELTA_S:g} s {_ok(delta.seconds, BUDGET_DELTA_S)}",
    )
    missed = full.seconds > BUDGET_FULL_S or delta.seconds > BUDGET_DELTA_S
    print("feed budgets MISSED" if missed else "feed budgets OK")
    return 1 if missed else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--cards", type=int, default=1_000_000)
    p.add_argument("--chunk", type=int, default=50_000, help="cards per upsert_cards call")
    args = p.parse_args()
    return asyncio.run(bench(args.cards, args.chunk))


if __name__ == "__main__":
    sys.exit(main())
