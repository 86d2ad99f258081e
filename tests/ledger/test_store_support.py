"""Drafts and raw-database helpers shared by the ledger store tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ledger.entry import Draft


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
    """Drop the append-only triggers and the sale_id index, as a tamperer would."""
    with raw(path) as db:
        db.execute("DROP TRIGGER entries_no_update")
        db.execute("DROP TRIGGER entries_no_delete")
        db.execute("DROP INDEX entries_sale_id")
