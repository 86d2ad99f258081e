"""Integers stay integers at the city (docs/architecture.md §5.5): bounds, CHECK, feed.

The attack this closes: a terminal uploaded points_earned = 2**63 - 1 and then + 1;
SQLite silently made the card's balance a REAL, the card feed carried
``"points": 9.223372036854776e+18`` and every till rejected the whole feed, so a card
blocked afterwards stayed AKTYWNA everywhere.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ledger.rules import MAX_AMOUNT_GR, MAX_ENTRY_POINTS
from sync.central.db import CentralDB, CentralError, _card_line
from sync.central.verify import MAX_DEPTH, MAX_WIRE_INT
from tests.sync.central_harness import TERMINAL, CentralHarness, central, make_entries

pytestmark = pytest.mark.usefixtures("central_engine")  # on SQLite and PostgreSQL

__all__ = ["central"]

ENTRIES = f"/v1/terminals/{TERMINAL}/entries"
JSON = {"Content-Type": "application/json"}


async def _post(h: CentralHarness, body: bytes) -> tuple[int, dict[str, Any]]:
    async with h.session() as http, http.post(ENTRIES, data=body, headers=JSON) as r:
        return r.status, await r.json()


async def _feed_points(h: CentralHarness, number: str) -> object:
    async with h.session() as http, http.get("/v1/cards") as r:
        assert r.status == 200
        for line in (await r.read()).splitlines():
            d = json.loads(line)
            if d.get("number") == number:
                return d["points"]
    raise AssertionError(f"{number} is not in the feed")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("points_earned", 2**63 - 1),
        ("points_earned", MAX_WIRE_INT + 1),
        ("points_earned", MAX_ENTRY_POINTS + 1),
        ("points_redeemed", MAX_ENTRY_POINTS + 1),
        ("amount_gr", MAX_AMOUNT_GR + 1),
        ("amount_gr", -(MAX_AMOUNT_GR + 1)),
    ],
)
async def test_an_integer_beyond_the_bounds_is_422_out_of_range(
    central: CentralHarness, field: str, value: int
) -> None:
    before = await _feed_points(central, "01-000018")
    [e] = make_entries(1)
    # The hash no longer matches, which does not matter: bounds are checked before the chain.
    e = msgspec.structs.replace(e, **{field: value})
    status, reply = await _post(central, central.batch_body([e]))
    assert (status, reply["error"], reply.get("seq")) == (422, "out_of_range", 1)
    assert await _feed_points(central, "01-000018") == before


async def test_the_overflow_attack_leaves_every_balance_an_integer(central: CentralHarness) -> None:
    first = make_entries(1, points_earned=2**63 - 1)
    status, _ = await _post(central, central.batch_body(first))
    assert status == 422
    fine = make_entries(2, points_earned=MAX_ENTRY_POINTS)
    status, _ = await _post(central, central.batch_body(fine))
    assert status == 200
    points = await _feed_points(central, "01-000018")
    assert isinstance(points, int)


@pytest.mark.sqlite_only  # typeof() CHECKs; on PostgreSQL: test_central_postgresql.py
async def test_the_database_refuses_a_balance_that_is_not_an_integer(tmp_path: Path) -> None:
    async with CentralHarness.start(tmp_path) as h:
        path = h.db.path
    db = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            db.execute("UPDATE cards SET points = 0.5")
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            db.execute("UPDATE cards SET points = points + 9223372036854775807")  # overflow
    finally:
        db.close()


@pytest.mark.sqlite_only  # typeof() CHECKs; on PostgreSQL: test_central_postgresql.py
async def test_a_schema_1_database_is_migrated_and_a_float_balance_repaired(
    tmp_path: Path,
) -> None:
    async with CentralHarness.start(tmp_path) as h:
        path = h.db.path
    # Make it what schema 1 was (no CHECK), holding what the attack left behind.
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE old AS SELECT * FROM cards;
        DROP TABLE cards;
        CREATE TABLE cards (number TEXT PRIMARY KEY, body BLOB NOT NULL,
            points INTEGER NOT NULL DEFAULT 0, points_as_of TEXT,
            version INTEGER NOT NULL, removed INTEGER NOT NULL DEFAULT 0);
        INSERT INTO cards SELECT * FROM old;
        DROP TABLE old;
        UPDATE cards SET points = 9.223372036854776e18 WHERE number = '01-000018';
        UPDATE meta SET value = 1 WHERE key = 'schema';
        """
    )
    assert db.execute("SELECT typeof(points) FROM cards WHERE number = '01-000018'").fetchone()[
        0
    ] == ("real")
    db.close()
    from ledger.clock import SystemClock

    cdb = await CentralDB.open(path, SystemClock())
    await cdb.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == 2
        kinds = {k for (k,) in db.execute("SELECT DISTINCT typeof(points) FROM cards")}
        assert kinds == {"integer"}
        with pytest.raises(sqlite3.IntegrityError):
            db.execute("UPDATE cards SET points = 0.5")
    finally:
        db.close()


def test_the_feed_encoder_refuses_a_float() -> None:
    assert _card_line(b'{"number":"01-000018"}', 5, None).endswith(
        b',"points":5,"points_as_of":null}\n'
    )
    with pytest.raises(CentralError, match="not an integer"):
        _card_line(b'{"number":"01-000018"}', 9.2e18, None)  # type: ignore[arg-type]


async def test_deep_nesting_is_a_400_not_a_500(central: CentralHarness) -> None:
    [e] = make_entries(1)
    raw = msgspec.to_builtins(e)
    deep: object = 1
    for _ in range(500):
        deep = [deep]
    raw["x_extension"] = deep
    body = json.dumps({"entries": [raw], "signature": "AA==", "public_key": "AA=="}).encode()
    status, reply = await _post(central, body)
    assert status == 400, reply
    assert reply["error"] == "bad_request"
    assert str(MAX_DEPTH) in reply.get("message", "")


@pytest.mark.parametrize("depth", [999, 1000, 100_000])
async def test_nesting_past_the_decoders_limit_is_a_400_not_a_500(
    central: CentralHarness, depth: int
) -> None:
    # msgspec itself raises RecursionError here (before any check of ours ran): it was a 500.
    deep = "[" * depth + "1" + "]" * depth
    tail = '}], "signature": "AA==", "public_key": "AA=="}'
    status, reply = await _post(central, ('{"entries": [{"seq": 1, "x": ' + deep + tail).encode())
    assert (status, reply["error"]) == (400, "bad_request"), reply
    async with central.session() as http, http.get("/v1/health") as r:
        assert r.status == 200
