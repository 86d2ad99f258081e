"""Partner statistics (`GET /v1/partners/{pid}/stats`, `kartapos central stats`): the real
server's sums against the entries the till's own engine made, summed here directly."""

from __future__ import annotations

import csv
import io
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ledger.domain import CardRecord
from ledger.entry import Entry, EntryKind
from ledger.money import format_pln
from tests.ledger.test_rules_support import Till
from tests.sync.central_harness import CentralHarness, central
from tests.sync.test_central_business import (
    ANNA,
    CARDS,
    JERZY,
    NOON,
    RULES,
    SELLABLE,
    TODAY,
    random_sale,
    reseal,
    sell,
)
from tests.sync.test_central_cli import cfg, database, kartapos

pytestmark = pytest.mark.usefixtures("central_engine")  # on SQLite and PostgreSQL

__all__ = ["central", "cfg", "database"]  # fixtures used here

YESTERDAY_NOON = NOON - timedelta(days=1)
CASHIERS = ("P-0001-K01", "P-0001-K02", None)  # None: sold with the box owner's API token


async def upload(
    central: CentralHarness, terminal: str, till: Till, batch: int = 1000
) -> dict[str, Any]:
    """Upload the till's entries in batches of ``batch`` (a void in a later batch than its
    sale takes back what was stored); returns the held entries of every answer."""
    token = central.tokens[terminal]
    path = f"/v1/terminals/{terminal}/entries"
    held: list[dict[str, Any]] = []
    async with central.session(token) as http:
        for i in range(0, len(till.entries), batch):
            body = central.batch_body(till.entries[i : i + batch], terminal=terminal)
            async with http.post(path, data=body) as r:
                assert r.status == 200, await r.text()
                held += (await r.json()).get("quarantined", [])
    return {"quarantined": held}


async def stats(
    central: CentralHarness, date_from: str, date_to: str, token: str | None = None
) -> dict[str, Any]:
    query = f"/v1/partners/P-0001/stats?from={date_from}&to={date_to}"
    async with central.session(token) as http, http.get(query) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Cache-Control"] == "no-store"
        out: dict[str, Any] = await r.json()
        return out


def _holder(card: str) -> str:
    rec: CardRecord = CARDS[card]
    return rec.holder.id or card


def expected(credited: list[Entry], date_from: str, date_to: str) -> dict[str, Any]:
    """The report computed straight from the credited entries (the oracle)."""

    def sums(es: list[Entry]) -> dict[str, int]:
        sales = [e for e in es if e.kind == EntryKind.SALE]
        voids = [e for e in es if e.kind == EntryKind.VOID]
        return {
            "sales": len(sales),
            "voids": len(voids),
            "amount_gr": sum(e.amount_gr for e in es),
            "sales_amount_gr": sum(e.amount_gr for e in sales),
            "voids_amount_gr": sum(e.amount_gr for e in voids),
            "discount_gr": sum(e.discount_gr for e in es),
            "points_earned": sum(e.points_earned for e in es),
            "points_redeemed": sum(e.points_redeemed for e in es),
        }

    inside = [e for e in credited if date_from <= e.local_date <= date_to]
    by_terminal = {
        t: sums([e for e in inside if e.terminal == t]) for t in {e.terminal for e in inside}
    }
    by_cashier = {
        c: sums([e for e in inside if e.cashier == c]) for c in {e.cashier for e in inside}
    }
    benefits: dict[str, dict[str, int]] = {}
    for e in inside:
        sign = 1 if e.kind == EntryKind.SALE else -1
        for bid in set(e.benefits):
            b = benefits.setdefault(bid, {"uses": 0, "quantity": 0, "points": 0, "persons": 0})
            b["uses"] += sign
            b["quantity"] += sign * e.benefit_quantities.get(bid, 1)
            b["points"] += e.benefit_points.get(bid, 0)
    # Persons: net uses per holder on the sale's own date (a void takes back its sale's).
    sales = {(e.terminal, e.seq): e for e in credited if e.kind == EntryKind.SALE}
    net: dict[tuple[str, str, str], int] = {}
    for e in credited:
        sale = e if e.kind == EntryKind.SALE else sales[(e.terminal, e.ref or 0)]
        sign = 1 if e.kind == EntryKind.SALE else -1
        for bid in set(e.benefits):
            key = (bid, _holder(sale.card or ""), sale.local_date)
            net[key] = net.get(key, 0) + sign * sale.benefit_quantities.get(bid, 1)
    for bid, b in benefits.items():
        b["persons"] = len(
            {
                h
                for (b2, h, day), q in net.items()
                if b2 == bid and q > 0 and date_from <= day <= date_to
            }
        )
    return {
        "totals": sums(inside),
        "terminals": by_terminal,
        "cashiers": by_cashier,
        "benefits": benefits,
    }


def _without(row: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in keys}


async def test_stats_equal_the_credited_entries_per_benefit_terminal_and_cashier(
    central: CentralHarness,
) -> None:
    # Two tills of P-0001, three cashiers, two days, sales with benefits, tiers and
    # overrides, a tenth of them voided; one tampered sale held, one rejected.
    await central.enrol("T-0002", public_key=central.public_key)
    rng = random.Random(14)
    tills = {"T-0001": Till("T-0001"), "T-0002": Till("T-0002")}
    for _ in range(400):
        tid = rng.choice(sorted(tills))
        at = rng.choice([NOON, YESTERDAY_NOON])
        cashier = rng.choice(CASHIERS)
        e = tills[tid].try_sell(rng.choice(SELLABLE), RULES, random_sale(rng), at, cashier=cashier)
        if e is not None and rng.random() < (0.4 if e.benefits else 0.1):
            tills[tid].void(e.seq, NOON, cashier=rng.choice(CASHIERS))
    held = reseal(tills["T-0001"], sell(tills["T-0001"], ANNA, amount_gr=5000), points_earned=999)
    rejected = reseal(
        tills["T-0001"], sell(tills["T-0001"], JERZY, amount_gr=700), points_earned=77
    )
    answers = {tid: await upload(central, tid, till, batch=25) for tid, till in tills.items()}
    assert answers["T-0001"]["quarantined"] == [
        {"seq": held.seq, "reason": "purchase_points_mismatch"},
        {"seq": rejected.seq, "reason": "purchase_points_mismatch"},
    ]
    assert answers["T-0002"].get("quarantined", []) == []
    await central.db.decide("T-0001", rejected.seq, approve=False, by="Ewa")
    not_credited = {("T-0001", held.seq), ("T-0001", rejected.seq)}
    credited = [
        e for t in tills.values() for e in t.entries if (e.terminal, e.seq) not in not_credited
    ]
    assert len(credited) > 200
    assert sum(e.kind == EntryKind.VOID and bool(e.benefits) for e in credited) >= 5
    today, yesterday = TODAY.isoformat(), (TODAY - timedelta(days=1)).isoformat()
    assert {e.local_date for e in credited} == {today, yesterday}
    for date_from, date_to in [(today, today), (yesterday, today), (yesterday, yesterday)]:
        got = await stats(central, date_from, date_to)
        want = expected(credited, date_from, date_to)
        assert (got["from"], got["to"], got["partner_id"]) == (date_from, date_to, "P-0001")
        assert got["totals"] == want["totals"]
        terminals = {t["terminal"]: _without(t, "terminal") for t in got["terminals"]}
        assert terminals == want["terminals"]
        cashiers = {c["cashier"]: _without(c, "cashier", "name") for c in got["cashiers"]}
        assert cashiers == want["cashiers"]
        names = {c.id: c.name for c in RULES.cashiers}
        named = {c["cashier"]: c["name"] for c in got["cashiers"]}
        assert named == {c: names.get(c or "") for c in want["cashiers"]}
        benefits = {b["benefit_id"]: _without(b, "benefit_id", "name") for b in got["benefits"]}
        assert benefits == want["benefits"]
        assert got["point_cost_gr"] == RULES.point_cost_gr == 10
        assert got["partner_cost_gr"] == want["totals"]["points_earned"] * 10
        # Held and rejected are stored but counted apart, on their own day (today).
        in_range = date_from <= TODAY.isoformat() <= date_to
        assert got["quarantined"]["entries"] == (1 if in_range else 0)
        assert got["rejected"]["entries"] == (1 if in_range else 0)
        if in_range:
            assert got["quarantined"]["points_earned"] == 999
            assert got["rejected"]["amount_gr"] == 700
    assert want["benefits"], "the sample names no benefit: nothing was checked"
    assert any(b["persons"] < b["uses"] for b in want["benefits"].values()), "persons ≠ uses"


async def test_a_small_day_by_hand_and_the_price_per_point_of_the_rules(
    central: CentralHarness,
) -> None:
    # 12,34 zł and 30,00 zł on Anna's card (12 + 30 points), the second voided.
    rules = msgspec.structs.replace(RULES, point_cost_gr=25)
    await central.db.load_rules("P-0001", rules)
    till = Till()
    sell(till, ANNA, amount_gr=1234)
    second = sell(till, ANNA, amount_gr=3000)
    till.void(second.seq, NOON)
    await upload(central, "T-0001", till)
    day = TODAY.isoformat()
    got = await stats(central, day, day)
    assert got["totals"] == {
        "sales": 2,
        "voids": 1,
        "amount_gr": 1234,
        "sales_amount_gr": 4234,
        "voids_amount_gr": -3000,
        "discount_gr": 0,
        "points_earned": 12,
        "points_redeemed": 0,
    }
    assert (got["point_cost_gr"], got["partner_cost_gr"]) == (25, 300)
    assert [c["cashier"] for c in got["cashiers"]] == ["K-1"]
    assert got["cashiers"][0]["name"] is None  # not a cashier of the rules
    assert got["benefits"] == []


async def test_an_approved_entry_moves_from_quarantined_into_the_sums(
    central: CentralHarness,
) -> None:
    till = Till()
    sell(till, ANNA, amount_gr=1000)
    bad = reseal(till, sell(till, ANNA, amount_gr=2000), points_earned=50)
    await upload(central, "T-0001", till)
    day = TODAY.isoformat()
    before = await stats(central, day, day)
    assert (before["totals"]["sales"], before["quarantined"]["entries"]) == (1, 1)
    assert before["quarantined"]["sales"] == 1
    assert before["quarantined"]["points_earned"] == 50
    await central.db.decide("T-0001", bad.seq, approve=True, by="Ewa")
    after = await stats(central, day, day)
    assert after["quarantined"]["entries"] == 0
    assert after["totals"]["sales"] == 2
    assert after["totals"]["points_earned"] == before["totals"]["points_earned"] + 50
    assert after["totals"]["amount_gr"] == 3000


async def test_the_stats_of_another_partner_or_a_bad_range_are_refused(
    central: CentralHarness,
) -> None:
    other = await central.enrol("T-0201", partner="P-0002")
    day = TODAY.isoformat()
    async with central.session(other) as http:
        async with http.get(f"/v1/partners/P-0001/stats?from={day}&to={day}") as r:
            assert (r.status, (await r.json())["error"]) == (403, "forbidden")
        async with http.get(f"/v1/partners/P-0002/stats?from={day}&to={day}") as r:
            assert r.status == 200  # its own partner's
    async with (
        central.session("not-a-token-of-anyone") as http,
        http.get(f"/v1/partners/P-0001/stats?from={day}&to={day}") as r,
    ):
        assert r.status == 401
    bad = [
        "",
        f"from={day}",
        f"from={day}&to={day}&to={day}",
        f"from={day}&to=2026-13-01",
        f"from=1.12.2026&to={day}",
        "from=2026-12-02&to=2026-12-01",
        "from=2000-01-01&to=2026-12-01",
        f"from={day}&to={day}&terminal=T-0001",
    ]
    async with central.session() as http:
        for query in bad:
            async with http.get(f"/v1/partners/P-0001/stats?{query}") as r:
                body = await r.json()
                assert (r.status, body["error"]) == (400, "bad_request"), query
                assert body["message"], query


async def test_a_database_older_than_the_stats_gets_them_from_its_entries(
    tmp_path: Path, central_engine: str
) -> None:
    from sync.central.db import CentralDB, _tx
    from tests.pgserver import central_database

    db_url = central_database(tmp_path)
    till = Till()
    rng = random.Random(3)
    for _ in range(60):
        e = till.try_sell(rng.choice(SELLABLE), RULES, random_sale(rng), NOON)
        if e is not None and rng.random() < 0.2:
            till.void(e.seq, NOON)
    reseal(till, sell(till, ANNA, amount_gr=100), points_earned=40)  # held: stays out
    day = TODAY.isoformat()
    async with CentralHarness.start(tmp_path, database=db_url) as h:
        await upload(h, "T-0001", till)
        built = await h.db.partner_stats("P-0001", day, day)

        def forget(db: Any) -> None:
            def body() -> None:
                db.execute("DELETE FROM stats_sales")
                db.execute("DELETE FROM stats_benefits")
                db.execute("UPDATE meta SET value = 0 WHERE key = 'stats_schema'")

            _tx(db, body)

        await h.db.run(forget)
        assert (await h.db.partner_stats("P-0001", day, day)).totals.sales == 0
    async with await CentralDB.open(db_url) as db:
        again = await db.partner_stats("P-0001", day, day)
        assert await db.meta("stats_schema") == 1
    assert again == built
    assert again.totals.sales > 20
    assert again.quarantined.entries == 1


def test_the_operator_reads_the_stats_as_text_and_as_csv(
    tmp_path: Path, cfg: Path, database: str
) -> None:
    import asyncio

    till = Till()
    sell(till, ANNA, amount_gr=1234)
    benefit = next(b for b in RULES.benefits if b.points > 0 and not b.points_locked)
    sell(till, JERZY, amount_gr=2000, benefit_ids=(benefit.id,))
    reseal(till, sell(till, ANNA, amount_gr=500), points_earned=90)  # held

    async def serve() -> None:
        db_at = database if "://" in database else str(tmp_path / database)
        async with CentralHarness.start(tmp_path, database=db_at) as h:
            await upload(h, "T-0001", till)

    asyncio.run(serve())
    day = TODAY.isoformat()
    text = kartapos("central", "-c", str(cfg), "stats", "P-0001", "--from", day, "--to", day,
                    cwd=tmp_path)  # fmt: skip
    assert text.returncode == 0, text.stderr
    out = text.stdout
    earned = till.entries[0].points_earned + till.entries[1].points_earned
    assert f"partner P-0001, local days {day} to {day}" in out
    assert "sales 2, voids 0" in out
    assert f"partner's cost {format_pln(earned * 10)} ({earned} points at 0,10 zł)" in out
    assert f"  {benefit.id}\t{benefit.name}\t1\t1\t1\t{benefit.points}" in out
    assert "held in quarantine, not counted above: 1 entries (1 sales, 0 voids)" in out
    assert "points earned 90" in out
    as_csv = kartapos("central", "-c", str(cfg), "stats", "P-0001", "--from", day, "--to", day,
                      "--csv", cwd=tmp_path)  # fmt: skip
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    by = {(r["section"], r["id"]): r for r in rows}
    assert by[("total", "P-0001")]["amount_gr"] == "3234"
    assert by[("total", "P-0001")]["points_earned"] == str(earned)
    assert by[("benefit", benefit.id)]["persons"] == "1"
    assert by[("terminal", "T-0001")]["sales"] == "2"
    assert by[("cashier", "K-1")]["sales"] == "2"
    assert by[("quarantined", "")]["sales"] == "1"
    assert by[("quarantined", "")]["points_earned"] == "90"
    for args, needle in [
        (("P-0009", "--from", day, "--to", day), "partner P-0009 has no rules and no terminals"),
        (("P-0001", "--from", "wczoraj", "--to", day), "from='wczoraj' is not a date"),
        (("P-0001", "--from", day, "--to", "2000-01-01"), "is after to=2000-01-01"),
    ]:
        r = kartapos("central", "-c", str(cfg), "stats", *args, cwd=tmp_path)
        assert r.returncode == 2, r
        assert needle in r.stderr
        assert "Traceback" not in r.stderr
    help_ = kartapos("central", "-c", str(cfg), "stats", "--help", cwd=tmp_path)
    assert "--from DATE" in help_.stdout
    assert "point_cost_gr" in help_.stdout
