"""The local API (docs/architecture.md §5.3) against the real daemon, printer and city server."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from config.version import package_version
from ledger.clock import FakeClock
from ledger.domain import CardStatus
from ledger.entry import verify_chain
from sync.wire import CardsEnd, CardsHeader, encode_line
from terminal.cmd_demo import luhn_complete
from tests.printer.escpos_decode import decode
from tests.terminal.daemon_harness import DaemonHarness, running_daemon, swipe_bytes

ACTIVE = "01-000018"  # Anna K., mieszkaniec, 340 points in the demo data
BLOCKED = "01-000042"
EXPIRED_PACKAGE = "01-000059"
KDR = "01-000034"


def sale(card: str = ACTIVE, amount_gr: int = 12345, **kw: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "card": card, "amount_gr": amount_gr, **kw}


@pytest.fixture
async def h(tmp_path: Path) -> Any:
    async with running_daemon(tmp_path) as harness:
        yield harness


async def test_health_reports_every_part(h: DaemonHarness) -> None:
    status, body = await h.call("GET", "/health")
    assert status == 200
    assert body["readers"] == [{"name": "msr", "kind": "serial", "state": "connected"}]
    assert body["printer"]["state"] == "online"
    ledger = body["ledger"]
    assert (ledger["head_seq"], ledger["head_hash"]) == (0, "0" * 64)
    assert ledger["integrity"] in ("pending", "running", "ok")
    assert body["sync"]["cards_version"] is not None
    assert body["sync"]["pending_entries"] == 0
    assert body["sync"]["offline"] is False  # the card list was just loaded
    assert body["status"] == "ok"
    assert body["version"] == package_version() != "0+unknown"


async def test_resolve_gives_the_card_view(h: DaemonHarness) -> None:
    status, view = await h.call("POST", "/cards/resolve", {"input": "01000018"})
    assert status == 200
    assert view["number"] == ACTIVE
    assert view["active"] is True
    assert view["status"] == "active"
    assert view["holder"]["display_name"] == "Anna K."
    assert isinstance(view["holder"]["age"], int)
    assert {p["code"] for p in view["programs"]} == {"mieszkaniec"}
    assert view["balance"]["points"] == 340
    assert [o["points"] for o in view["redeem_options"]] == [100, 250]
    avail = [b["available"] for b in view["benefits"]]
    assert avail == sorted(avail, reverse=True), "available benefits come first"
    senior = next(b for b in view["benefits"] if b["id"] == "B-102")
    assert senior["reason"] == "program_missing"
    assert senior["available"] is False


@pytest.mark.parametrize(
    ("text", "status", "code"),
    [("01-999998", 404, "card_unknown"), ("hello", 422, "not_a_card_number")],
)
async def test_resolve_refusals(h: DaemonHarness, text: str, status: int, code: str) -> None:
    s, body = await h.call("POST", "/cards/resolve", {"input": text})
    assert (s, body["error"]["code"]) == (status, code)
    assert body["error"]["message"]


async def test_sale_is_durable_printed_and_idempotent(h: DaemonHarness) -> None:
    req = sale(benefit_ids=["B-101"], redeem_points=100)
    status, body = await h.call("POST", "/sales", req)
    assert status == 201, body
    entry = body["entry"]
    assert entry["seq"] == 1
    assert entry["sale_id"] == req["id"]
    assert entry["discount_gr"] == 1000
    assert entry["points_redeemed"] == 100
    # 1 point per 1 zł on what was paid (113,45 zł -> 113) + 5 for the benefit
    assert entry["points_earned"] == 113 + 5
    assert entry["balance_after"] == 340 - 100 + 118
    assert body["receipt"]["status"] == "printed"
    jobs = await h.printer.wait_jobs(1)
    lines = decode(jobs[0]).text
    assert "Karta Mieszkańca" in lines
    assert "WYDRUK NIEFISKALNY" in lines
    assert "01-****18" in lines
    assert ACTIVE not in lines

    again, body2 = await h.call("POST", "/sales", req)
    assert again == 200
    assert body2["entry"] == entry
    other, err = await h.call("POST", "/sales", {**req, "amount_gr": 999})
    assert other == 409
    assert err["error"]["code"] == "sale_conflict"
    _, ledger = await h.call("GET", "/ledger?after=0&limit=10")
    assert [e["seq"] for e in ledger["entries"]] == [1]
    assert verify_chain(ledger["entries"]) is None
    assert len(h.printer.jobs) == 1, "a replayed sale never prints a second original"


@pytest.mark.parametrize(
    ("req", "status", "code"),
    [
        (sale(BLOCKED), 422, "card_blocked"),
        (sale(EXPIRED_PACKAGE), 422, "card_inactive"),
        (sale("01-999998"), 404, "card_unknown"),
        (sale(benefit_ids=["B-NOPE"]), 422, "benefit_unavailable"),
        (sale(redeem_points=500), 422, "insufficient_points"),
        (sale(amount_gr=-5), 422, "invalid_amount"),
        (
            sale(KDR, benefit_ids=["B-103"], points_override=50, override_reason="x"),
            422,
            "points_locked",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
async def test_sale_refusals_change_nothing(
    h: DaemonHarness, req: dict[str, Any], status: int, code: str
) -> None:
    s, body = await h.call("POST", "/sales", req)
    assert (s, body["error"]["code"]) == (status, code), body
    assert h.daemon.store.head.seq == 0
    assert h.printer.jobs == []


async def test_malformed_sales_are_refused(h: DaemonHarness) -> None:
    for bad in ({"card": ACTIVE}, {**sale(), "amount_gr": "12"}, {**sale(), "id": "nope"}):
        s, body = await h.call("POST", "/sales", bad)
        assert s == 400
        assert body["error"]["code"] == "invalid_request"
    async with h.http.post(h.api + "/sales", data=b"{not json", headers=h.auth()) as r:
        assert r.status == 400
    async with h.http.post(h.api + "/sales", data=b"x" * (70 * 1024), headers=h.auth()) as r:
        assert r.status == 413
        assert (await r.json())["error"]["code"] == "too_large"
    assert h.daemon.store.head.seq == 0


async def test_quote_writes_nothing(h: DaemonHarness) -> None:
    s, q = await h.call("POST", "/sales/quote", sale(redeem_points=250))
    assert s == 200
    assert q["discount_gr"] == 2500
    assert q["points_redeemed"] == 250
    assert q["balance_after"] == 340 - 250 + q["points_earned"]
    assert q["explanation"]
    assert h.daemon.store.head.seq == 0


async def test_void_reprint_and_day_close(h: DaemonHarness) -> None:
    req = sale(benefit_ids=["B-101"])
    _, sold = await h.call("POST", "/sales", req)
    s, voided = await h.call("POST", f"/sales/{req['id']}/void", {"reason": "pomyłka"})
    assert s == 201
    v = voided["entry"]
    assert v["kind"] == "void"
    assert v["ref"] == sold["entry"]["seq"]
    assert v["points_earned"] == -sold["entry"]["points_earned"]
    assert v["amount_gr"] == -sold["entry"]["amount_gr"]
    s2, again = await h.call("POST", f"/sales/{req['id']}/void", {"reason": "pomyłka"})
    assert s2 == 200
    assert again["entry"] == v, "a retried void is the same void"
    s3, _err = await h.call("POST", f"/sales/{uuid.uuid4()}/void", {"reason": "x"})
    assert s3 == 404
    _, view = await h.call("POST", "/cards/resolve", {"input": ACTIVE})
    assert view["balance"]["points"] == 340, "sale + void leaves the balance where it was"

    s4, _rep = await h.call("POST", f"/receipts/{sold['entry']['seq']}/reprint")
    assert s4 == 200
    jobs = await h.printer.wait_jobs(3)
    texts = [decode(j).text for j in jobs]
    assert "ANULOWANIE" in texts[1]
    assert texts[2].count("KOPIA") >= 2
    assert "KOPIA" not in texts[0]

    s5, closed = await h.call("POST", "/day/close")
    assert s5 == 201
    assert closed["entry"]["kind"] == "day_close"
    assert closed["summary"]["sales"] == 1
    assert closed["summary"]["voids"] == 1
    assert closed["summary"]["points_earned"] == 0
    z = decode((await h.printer.wait_jobs(4))[3]).text
    assert "RAPORT" in z.upper()

    _, preview = await h.call("GET", f"/receipts/{closed['entry']['seq']}")
    assert preview["text"]
    assert preview["png_url"].endswith("/png")
    async with h.http.get(h.url + preview["png_url"], headers=h.auth()) as r:
        assert r.status == 200
        assert (await r.read()).startswith(b"\x89PNG")


async def test_auth_and_origin(h: DaemonHarness) -> None:
    async with h.http.get(h.api + "/health") as r:
        assert r.status == 401
        assert (await r.json())["error"]["code"] == "unauthorized"
    async with h.http.get(h.api + "/health", headers={"Authorization": "Bearer nope"}) as r:
        assert r.status == 401
    async with h.http.get(
        h.api + "/health", headers={**h.auth(), "Origin": "http://evil.example"}
    ) as r:
        assert r.status == 403
        assert (await r.json())["error"]["code"] == "origin_refused"
    async with h.http.get(h.url + "/", headers={"Origin": "http://evil.example"}) as r:
        assert r.status == 403
    async with h.http.get(h.api + "/health", headers={**h.auth(), "Origin": h.url}) as r:
        assert r.status == 200


async def test_pin_login_session_cookie(h: DaemonHarness) -> None:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as browser:
        kasia = {"cashier": "P-0001-K01"}  # the cashier is chosen first, then the PIN
        async with browser.post(h.api + "/session", json={**kasia, "pin": "0000"}) as r:
            assert r.status == 401
            assert (await r.json())["error"]["code"] == "bad_pin"
        async with browser.post(h.api + "/session", json={**kasia, "pin": "1234"}) as r:
            assert r.status == 200
            assert (await r.json())["cashier"] == {
                "id": "P-0001-K01",
                "name": "Kasia",
                "role": "cashier",
            }
            assert "HttpOnly" in r.headers["Set-Cookie"]
        async with browser.post(h.api + "/sales", json=sale()) as r:
            assert r.status == 201
            assert (await r.json())["entry"]["cashier"] is not None
        async with browser.delete(h.api + "/session") as r:
            assert r.status == 204
        async with browser.get(h.api + "/health") as r:
            assert r.status == 401


async def test_swipes_reach_the_screen_over_the_websocket(h: DaemonHarness) -> None:
    async with h.http.ws_connect(h.api + "/events", headers=h.auth()) as ws:
        hello = json.loads((await ws.receive(timeout=5)).data)
        assert hello["type"] == "hello"
        h.swipe(swipe_bytes(ACTIVE))
        card = await _next_of(ws, "card")
        assert card["card"]["number"] == ACTIVE
        assert card["read"]["source"] == "msr"
        h.swipe(swipe_bytes(BLOCKED))
        blocked = await _next_of(ws, "card")
        assert blocked["card"]["active"] is False
        assert blocked["card"]["reason"] == "card_blocked"
        pan = luhn_complete("4" + "0" * 14)
        h.swipe(f"%B{pan}^KOWALSKI/JAN^2912?\r".encode())
        err = await _next_of(ws, "card_error")
        assert err["reason"] == "payment_card"
        assert pan not in json.dumps(err)
        last = err["eid"]
    # A reconnecting screen replays what it missed.
    h.swipe(swipe_bytes(KDR))
    await asyncio.sleep(0)
    async with h.http.ws_connect(h.api + f"/events?since={last}", headers=h.auth()) as ws:
        assert json.loads((await ws.receive(timeout=5)).data)["type"] == "hello"
        replayed = await _next_of(ws, "card")
        assert replayed["card"]["number"] == KDR


async def _next_of(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    async with asyncio.timeout(5):
        while True:
            msg = json.loads((await ws.receive()).data)
            if msg["type"] == kind:
                return msg  # type: ignore[no-any-return]


async def test_sync_now_uploads_everything(h: DaemonHarness) -> None:
    for _ in range(3):
        await h.call("POST", "/sales", sale())
    s, out = await h.call("POST", "/sync")
    assert s == 200, out
    row = await h.central.db.terminal(h.central.terminal)
    assert row is not None
    assert (row.head.seq, row.head.hash) == (h.daemon.store.head.seq, h.daemon.store.head.hash)
    assert len(await h.central.db.entries(h.central.terminal)) == 3
    _, health = await h.call("GET", "/health")
    assert health["sync"]["pending_entries"] == 0


async def test_stale_card_list_refuses_redemption_but_earns(tmp_path: Path) -> None:
    clock = FakeClock(datetime.now(UTC))
    async with running_daemon(tmp_path, clock=clock) as h:
        clock.advance(timedelta(hours=73).total_seconds())
        s, body = await h.call("POST", "/sales", sale(redeem_points=100))
        assert (s, body["error"]["code"]) == (422, "offline_limit")
        s2, ok = await h.call("POST", "/sales", sale())
        assert s2 == 201
        assert ok["entry"]["points_earned"] > 0
        _, health = await h.call("GET", "/health")
        assert health["status"] == "degraded"


async def test_a_card_blocked_in_a_delta_refuses_the_next_sale(h: DaemonHarness) -> None:
    s, _ = await h.call("POST", "/sales", sale())
    assert s == 201
    _, before = await h.call("GET", "/health")
    assert await h.central.db.set_card_status(ACTIVE, CardStatus.BLOCKED)
    s, out = await h.call("POST", "/sync")
    assert s == 200, out
    _, after = await h.call("GET", "/health")
    assert after["sync"]["cards_version"] > before["sync"]["cards_version"]
    s2, body = await h.call("POST", "/sales", sale())
    assert (s2, body["error"]["code"]) == (422, "card_blocked")
    assert body["error"]["message"] == "Karta zastrzeżona — nie można jej użyć."
    _, view = await h.call("POST", "/cards/resolve", {"input": ACTIVE})
    assert view["active"] is False
    assert view["reason"] == "card_blocked"


@pytest.mark.parametrize("seq", ["99999999999999999999", str(2**63), str(2**62 + 1), "0", "-1"])
async def test_a_receipt_number_no_ledger_can_hold_is_not_found(h: DaemonHarness, seq: str) -> None:
    # 2^63 and beyond used to reach SQLite and come back as a 500.
    for method, path in (("GET", f"/receipts/{seq}"), ("POST", f"/receipts/{seq}/reprint")):
        status, body = await h.call(method, path)
        assert (status, body["error"]["code"]) == (404, "not_found"), (method, path, body)


async def test_the_z_report_counts_the_partners_cost_at_the_rules_price_per_point(
    h: DaemonHarness,
) -> None:
    import msgspec

    rules = await h.central.db.rules("P-0001")
    assert rules is not None
    dearer = msgspec.structs.replace(rules, version="2026.12-25", point_cost_gr=25)
    await h.central.db.load_rules("P-0001", dearer)
    await h.daemon.sync_cycle()
    _, sold = await h.call("POST", "/sales", sale())
    earned = sold["entry"]["points_earned"]
    assert earned > 0
    s, closed = await h.call("POST", "/day/close")
    assert s == 201
    assert closed["summary"]["point_cost_gr"] == 25
    assert closed["summary"]["partner_cost_gr"] == earned * 25
    z = decode((await h.printer.wait_jobs(2))[1]).text
    assert "Koszt partnera (0,25 zł/pkt):" in z


async def test_a_second_day_close_with_nothing_new_is_refused_and_the_copy_offered(
    h: DaemonHarness,
) -> None:
    await h.call("POST", "/sales", sale())
    s1, first = await h.call("POST", "/day/close")
    assert s1 == 201
    z_seq = first["entry"]["seq"]
    # F10 twice: a second Z report would count the same transactions again.
    s2, refused = await h.call("POST", "/day/close")
    assert s2 == 409
    assert refused["error"]["code"] == "nothing_to_close"
    assert refused["error"]["details"] == {"last_close_seq": z_seq}
    assert "nie było nowych transakcji" in refused["error"]["message"]
    _, page = await h.call("GET", f"/ledger?after={z_seq}")
    assert page["entries"] == [], "nothing was written"
    # What the page offers instead: the copy of the last Z report.
    s3, _ = await h.call("POST", f"/receipts/{z_seq}/reprint")
    assert s3 == 200
    copy = decode((await h.printer.wait_jobs(3))[2]).text
    assert "KOPIA" in copy
    assert "RAPORT" in copy.upper()
    # A sale after the close: the day can be closed again.
    await h.call("POST", "/sales", sale())
    s4, second = await h.call("POST", "/day/close")
    assert s4 == 201
    assert second["summary"]["sales"] == 2


async def test_two_day_closes_at_once_write_one(h: DaemonHarness) -> None:
    await h.call("POST", "/sales", sale())
    results = await asyncio.gather(*(h.call("POST", "/day/close") for _ in range(3)))
    assert sorted(s for s, _ in results) == [201, 409, 409]


async def test_a_card_whose_feed_line_was_unreadable_is_refused_as_card_data_invalid(
    h: DaemonHarness,
) -> None:
    cat = h.daemon.catalog
    version = (cat.cards_version or 0) + 1
    lines = [
        encode_line(CardsHeader(version=version, full=False)),
        b'{"number": "' + ACTIVE.encode() + b'", "status": 5}\n',
        encode_line(CardsEnd(end=True, count=1)),
    ]

    async def feed() -> AsyncIterator[bytes]:
        for line in lines:
            yield line

    assert (await cat.apply_feed(feed())).accepted
    status, body = await h.call("POST", "/cards/resolve", {"input": ACTIVE})
    assert (status, body["error"]["code"]) == (422, "card_data_invalid")
    assert "nieczytelne" in body["error"]["message"]
    status, body = await h.call("POST", "/sales", sale())
    assert (status, body["error"]["code"]) == (422, "card_data_invalid")


async def test_a_refused_benefit_says_benefit_unavailable_with_reason_and_benefit(
    h: DaemonHarness,
) -> None:
    """docs/architecture.md §5.6: the contract's clients look for code benefit_unavailable.

    Bug caught: the second use of a once-a-day benefit was refused with code
    ``period_limit_reached`` (and, with ``limited`` absent, not refused at all).
    """
    s, _ = await h.call("POST", "/sales", sale(benefit_ids=["B-104"]))  # raz dziennie
    assert s == 201
    s, body = await h.call("POST", "/sales", sale(benefit_ids=["B-104"]))
    assert s == 422, body
    err = body["error"]
    assert (err["code"], err["reason"], err["benefit"]) == (
        "benefit_unavailable",
        "period_limit_reached",
        "B-104",
    )
    assert err["message"].startswith("Wykorzystano limit tego benefitu w bieżącym okresie.")
    _, view = await h.call("POST", "/cards/resolve", {"input": ACTIVE})
    item = next(b for b in view["benefits"] if b["id"] == "B-104")
    assert (item["available"], item["reason"]) == (False, "period_limit_reached")
    assert h.daemon.store.head.seq == 1
