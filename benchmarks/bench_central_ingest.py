"""City server ingest: entries/s through the upload path, beside the raw write it rests on.

The path is the server's own (sync/central/app.py ``_post_entries`` without HTTP): the
body decoded, every entry's shape, chain and hash checked and the batch's Ed25519
signature verified (sync/central/verify.py, in a worker thread), then
``CentralDB.append`` under the server's write lock: head check, storage, the business
check of every sale against the partner's rules (docs/architecture.md §5.9), balances
and usage. The sales are honest (points as the demo rules grant), so none is held; the
run checks that. Upload bodies are built and signed before the clock starts.

Beside it, in the same run and on the same engine, the raw write of the same rows
(terminal, seq, hash, body, received_at) into a plain table with the same primary key,
one transaction per batch: ``COPY`` on PostgreSQL, a bare sqlite3 ``executemany`` loop
(WAL, synchronous=FULL) on SQLite. Then the same entries from ``--terminals`` tills at
once (asyncio.gather), the way a night's uploads overlap.

Budget (issue 14): >= 30,000 entries/s on PostgreSQL on the 2-core machine; SQLite and
the ratios are information.

Run: .venv/bin/python -m benchmarks.bench_central_ingest [--entries 100000]
     [--batch-size 1000] [--terminals 8] [--database both|sqlite|postgresql]

PostgreSQL is a throwaway cluster of Debian's ``postgresql`` package (tests/pgserver.py;
as root the cluster belongs to ``nobody``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg
import structlog.testing
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.clock import SystemClock, local_date
from ledger.entry import GENESIS_HASH, Draft, Entry, seal
from ledger.rules import best_multiplier, purchase_points
from sync.central import CentralDB
from sync.central.demo_data import demo_cards, demo_number, demo_rules, seed_demo_into
from sync.central.verify import BatchRejected, VerifiedBatch, check_signature, verify_chain_of
from sync.wire import UploadBatch, decode_upload, encode, public_key_b64, sign_batch
from tests.pgserver import running_postgres

BUDGET_PG_PER_S = 30_000
PARTNER = "P-0001"
RECEIVED_AT = "2026-12-02T03:00:00.000Z"


def _line(label: str, value: str, budget: str = "") -> None:
    print(f"  {label:<52} {value:>14}  {budget}")


@dataclass
class Till:
    """One terminal's signed upload bodies and the rows they store."""

    tid: str
    token: str
    public_key: str
    bodies: list[bytes]
    rows: list[list[tuple[str, int, str, bytes, str]]]  # per batch, for the raw write

    @property
    def entries(self) -> int:
        return sum(len(r) for r in self.rows)


def _sales(tid: str, n: int, card: str) -> list[Entry]:
    """``n`` honest sales on ``card`` today (tests/sync/central_harness.py make_entries,
    with the rules looked up once instead of per sale)."""
    today = local_date(SystemClock().now())
    ts = f"{today.isoformat()}T11:00:00.000Z"
    rules = demo_rules(today)[PARTNER]
    record = {c.number: c for c in demo_cards(today)}[card]
    multiplier = best_multiplier(record, rules.earn, date.fromisoformat(ts[:10]))[0]
    out: list[Entry] = []
    prev = GENESIS_HASH
    for seq in range(1, n + 1):
        amount = 1000 + seq % 50_000
        d = Draft(
            ts=ts,
            local_date=ts[:10],
            kind="sale",
            card=card,
            amount_gr=amount,
            points_earned=purchase_points(amount, rules.earn, multiplier),
            points_redeemed=0,
            discount_gr=0,
            benefits=(),
            benefit_points={},
            rules_version=str(rules.version),
            cashier=f"{PARTNER}-K01",
            sale_id=f"sale-{tid}-{seq}",
        )
        e = seal(d, seq=seq, entry_id=f"0190-{tid}-{seq}", terminal=tid, prev_hash=prev)
        out.append(e)
        prev = e.hash
    return out


def make_till(tid: str, n: int, batch_size: int) -> Till:
    key = Ed25519PrivateKey.generate()
    entries = _sales(tid, n, demo_number(1))
    bodies: list[bytes] = []
    rows: list[list[tuple[str, int, str, bytes, str]]] = []
    for i in range(0, n, batch_size):
        chunk = entries[i : i + batch_size]
        sig, pub = sign_batch(key, tid, chunk)
        body = encode(UploadBatch(entries=chunk, signature=sig, public_key=pub))
        bodies.append(body)
        v = verify_chain_of(tid, decode_upload(body).entries)
        rows.append(
            [
                (tid, e.seq, h, b, RECEIVED_AT)
                for e, h, b in zip(v.entries, v.hashes, v.bodies, strict=True)
            ]
        )
    return Till(tid, secrets.token_urlsafe(24), public_key_b64(key), bodies, rows)


def _decode_and_verify(tid: str, body: bytes, enrolled: str) -> VerifiedBatch:
    """What the server does off the event loop, and the key checks after it."""
    batch = decode_upload(body)
    verified = verify_chain_of(tid, batch.entries)
    if batch.public_key != enrolled:
        raise BatchRejected(422, "unknown_key", "the batch's public key is not the one enrolled")
    check_signature(tid, batch, verified)
    return verified


async def _upload_all(db: CentralDB, till: Till, lock: asyncio.Lock) -> None:
    for body in till.bodies:
        verified = await asyncio.to_thread(_decode_and_verify, till.tid, body, till.public_key)
        async with lock:  # the server's WRITE_LOCK_KEY
            outcome = await db.append(till.tid, PARTNER, verified)
        if outcome.kind != "appended" or outcome.quarantined:
            raise SystemExit(f"{till.tid}: {outcome.kind}, held {outcome.quarantined[:3]}")


async def ingest(database: str, tills: Sequence[Till]) -> float:
    """Entries/s of every till's uploads through the server path, tills at once."""
    with structlog.testing.capture_logs():
        async with await CentralDB.open(database) as db:
            await seed_demo_into(db)
            for t in tills:
                await db.enrol(t.tid, PARTNER, t.token, t.public_key)
            lock = asyncio.Lock()
            t0 = time.perf_counter()
            await asyncio.gather(*(_upload_all(db, t, lock) for t in tills))
            wall = time.perf_counter() - t0
            for t in tills:
                assert await db.entry_count(t.tid) == t.entries
    return sum(t.entries for t in tills) / wall


def _rows(tills: Sequence[Till]) -> Iterator[list[tuple[str, int, str, bytes, str]]]:
    for t in tills:
        yield from t.rows


def raw_copy(url: str, tills: Sequence[Till]) -> float:
    """Rows/s of COPY into a plain table, one transaction per batch."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE raw_entries (terminal TEXT NOT NULL, seq BIGINT NOT NULL,"
            " hash TEXT NOT NULL, body BYTEA NOT NULL, received_at TEXT NOT NULL,"
            " PRIMARY KEY (terminal, seq))"
        )
        n = 0
        t0 = time.perf_counter()
        for batch in _rows(tills):
            with (
                conn.transaction(),
                conn.cursor() as cur,
                cur.copy(
                    "COPY raw_entries (terminal, seq, hash, body, received_at) FROM STDIN"
                ) as cp,
            ):
                for row in batch:
                    cp.write_row(row)
            n += len(batch)
        return n / (time.perf_counter() - t0)


def raw_sqlite(path: Path, tills: Sequence[Till]) -> float:
    """Rows/s of a bare sqlite3 insert loop, WAL + synchronous=FULL, a commit per batch."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(
            "CREATE TABLE raw_entries (terminal TEXT NOT NULL, seq INTEGER NOT NULL,"
            " hash TEXT NOT NULL, body BLOB NOT NULL, received_at TEXT NOT NULL,"
            " PRIMARY KEY (terminal, seq))"
        )
        n = 0
        t0 = time.perf_counter()
        for batch in _rows(tills):
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO raw_entries (terminal, seq, hash, body, received_at)"
                " VALUES (?, ?, ?, ?, ?)",
                batch,
            )
            conn.execute("COMMIT")
            n += len(batch)
        return n / (time.perf_counter() - t0)
    finally:
        conn.close()


def _ok(figure: float, budget: float) -> str:
    return "OK" if figure >= budget else "MISS"


async def bench(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    single = [make_till("T-S001", args.entries, args.batch_size)]
    each = max(1, args.entries // args.terminals)
    many = [make_till(f"T-M{i:03d}", each, args.batch_size) for i in range(args.terminals)]
    print(
        f"city ingest: {args.entries:,} honest sales from one till, then {args.terminals} "
        f"tills x {each:,} at once; batches of {args.batch_size:,} "
        f"(bodies signed in {time.perf_counter() - t0:.1f} s, not timed)"
    )
    missed = False
    engines = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    with tempfile.TemporaryDirectory(prefix="kartapos-ingest-") as d:
        if "postgresql" in engines:
            with running_postgres() as pg:
                print("PostgreSQL (CentralDB.open('postgresql://...')):")
                base = raw_copy(pg.create_database("raw"), single)
                one = await ingest(pg.create_database("one"), single)
                par = await ingest(pg.create_database("many"), many)
                budget = f"budget >= {BUDGET_PG_PER_S:,} /s"
                _line("raw COPY, a transaction per batch (baseline)", f"{base:,.0f} /s")
                _line("server path, one till", f"{one:,.0f} /s", f"{budget} {_ok(one, 30e3)}")
                _line(f"server path, {args.terminals} tills at once", f"{par:,.0f} /s",
                      f"{budget} {_ok(par, 30e3)}")  # fmt: skip
                _line("ratio server path (one till) / raw COPY", f"{one / base:.1%}")
                _line(f"ratio server path ({args.terminals} tills) / raw COPY", f"{par / base:.1%}")
                missed |= max(one, par) < BUDGET_PG_PER_S
        if "sqlite" in engines:
            root = Path(d)
            print("SQLite (WAL, synchronous=FULL):")
            base = raw_sqlite(root / "raw.sqlite", single)
            one = await ingest(str(root / "one.sqlite"), single)
            par = await ingest(str(root / "many.sqlite"), many)
            _line("bare sqlite3 executemany, a commit per batch (baseline)", f"{base:,.0f} /s")
            _line("server path, one till", f"{one:,.0f} /s", "information")
            _line(f"server path, {args.terminals} tills at once", f"{par:,.0f} /s", "information")
            _line("ratio server path (one till) / bare loop", f"{one / base:.1%}")
            _line(f"ratio server path ({args.terminals} tills) / bare loop", f"{par / base:.1%}")
    print("every entry stored, none held" + ("; PostgreSQL budget MISSED" if missed else ""))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--entries", type=int, default=100_000)
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--terminals", type=int, default=8)
    p.add_argument("--database", choices=("both", "sqlite", "postgresql"), default="both")
    args = p.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(bench(args))
    return 1


if __name__ == "__main__":
    sys.exit(main())
