"""Drafts and raw-database helpers shared by the ledger store tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ledger.entry import GENESIS_HASH, Draft, body_bytes, seal
from ledger.ids import uuid7


def sale(
    i: int,
    *,
    sale_id: str | None = None,
    amount_gr: int | None = None,
    card: str = "01-000018",
    ts: str = "2026-11-18T11:00:00.000Z",
) -> Draft:
    """A sale draft numbered ``i`` (its request id is ``req-<i>`` unless given)."""
    return Draft(
        ts=ts,
        local_date="2026-11-18",
        kind="sale",
        card=card,
        amount_gr=1000 + i if amount_gr is None else amount_gr,
        points_earned=i % 7,
        benefits=("b-kawa",) if i % 3 == 0 else (),
        rules_version="r-1",
        cashier="K-01",
        sale_id=f"req-{i}" if sale_id is None else sale_id,
    )


def raw(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection in autocommit mode (the tamperer's tool)."""
    return sqlite3.connect(path, isolation_level=None)


def untamper_guard(path: Path) -> None:
    """Strip the append-only triggers and the derived sale_id column, as a tamperer would.

    SQLite evaluates the generated column on every UPDATE (malformed JSON would be
    refused), so the table is rebuilt as plain columns holding the same rows.
    """
    with raw(path) as db:
        db.execute("BEGIN")
        db.execute(
            "CREATE TABLE plain (seq INTEGER PRIMARY KEY, prev_hash TEXT, hash TEXT, body BLOB)"
        )
        db.execute("INSERT INTO plain SELECT seq, prev_hash, hash, body FROM entries")
        db.execute("DROP TABLE entries")
        db.execute("ALTER TABLE plain RENAME TO entries")
        db.execute("COMMIT")


def bulk_fill(path: Path, n: int, *, terminal: str = "T-0001") -> str:
    """Append ``n`` valid entries to a ledger made by LedgerStore fast (one transaction,
    raw sqlite3, no per-entry commit); returns the head hash. The ledger must be closed.
    """
    with raw(path) as db:
        row = db.execute("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        seq0, prev = (0, GENESIS_HASH) if row is None else (int(row[0]), str(row[1]))
        rows: list[tuple[int, str, str, bytes]] = []
        for seq in range(seq0 + 1, seq0 + n + 1):
            e = seal(
                sale(seq, sale_id=f"bulk-{seq}"),
                seq=seq,
                entry_id=uuid7(1_795_000_000_000 + seq),
                terminal=terminal,
                prev_hash=prev,
            )
            rows.append((seq, prev, e.hash, body_bytes(e)))
            prev = e.hash
        db.execute("BEGIN")
        db.executemany("INSERT INTO entries (seq, prev_hash, hash, body) VALUES (?,?,?,?)", rows)
        db.execute("COMMIT")
    return prev
