"""Logins, sessions and roles through the real daemon (docs/architecture.md §5.10).

Sessions end on the server (logout, a cashier left out of new rules), ``X-Cashier``
counts only beside the API token, points overrides and the day close need a manager.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from ledger.clock import FakeClock
from ledger.domain import Cashier, Rules
from ledger.pins import hash_pin
from tests.sync.central_harness import PARTNER, CentralHarness
from tests.terminal.daemon_harness import DaemonHarness, running_daemon, swipe_bytes

KASIA, TOMEK = "P-0001-K01", "P-0001-K02"
MANAGER, MANAGER_PIN = "P-0001-M01", "246810"
ACTIVE = "01-000018"  # Anna K.: B-101 grants 5 points, which a cashier may change


def sale(card: str = ACTIVE, **kw: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "card": card, "amount_gr": 2500, **kw}


def override_sale(**kw: Any) -> dict[str, Any]:
    return sale(benefit_ids=["B-101"], points_override=8, override_reason="stały klient", **kw)


async def publish_rules(h: DaemonHarness, cashiers: tuple[Cashier, ...]) -> None:
    """The city serves new rules with these cashiers; the till fetches them now."""
    rules = h.daemon.catalog.rules
    assert rules is not None
    new = msgspec.structs.replace(rules, version=f"{rules.version_str}-{uuid.uuid4().hex[:6]}")
    await h.central.db.load_rules(PARTNER, msgspec.structs.replace(new, cashiers=cashiers))
    await h.daemon.sync_cycle()
    assert h.daemon.catalog.rules is not None
    assert h.daemon.catalog.rules.cashiers == cashiers


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[DaemonHarness]:
    async with running_daemon(tmp_path) as harness:
        rules = harness.daemon.catalog.rules
        assert isinstance(rules, Rules)
        manager = Cashier(
            id=MANAGER, name="Marta", pin_hash=hash_pin(MANAGER_PIN, role="manager"), role="manager"
        )
        await publish_rules(harness, (*rules.cashiers, manager))
        yield harness


class Screen:
    """One browser: its cookie jar, as the page keeps it."""

    def __init__(self, h: DaemonHarness, http: aiohttp.ClientSession) -> None:
        self.h = h
        self.http = http

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.request(method, self.h.api + path, json=body) as r:
            data = await r.json() if r.content_type == "application/json" else None
            return r.status, data

    def cookie(self) -> str:
        return next(c.value for c in self.http.cookie_jar if c.key == "kp_session")


@pytest.fixture
async def screen(h: DaemonHarness) -> AsyncIterator[Screen]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        yield Screen(h, http)


async def login(s: Screen, cashier: str, pin: str) -> tuple[int, Any]:
    return await s.call("POST", "/session", {"cashier": cashier, "pin": pin})


async def test_the_login_screen_lists_names_and_roles_never_hashes(screen: Screen) -> None:
    status, body = await screen.call("GET", "/cashiers")
    assert status == 200
    assert body["cashiers"] == [
        {"id": KASIA, "name": "Kasia", "role": "cashier"},
        {"id": TOMEK, "name": "Tomek", "role": "cashier"},
        {"id": MANAGER, "name": "Marta", "role": "manager"},
    ]
    assert "pin_hash" not in json.dumps(body)


async def test_a_pin_without_a_chosen_cashier_is_refused(screen: Screen) -> None:
    status, body = await screen.call("POST", "/session", {"pin": "1234"})
    assert (status, body["error"]["code"]) == (422, "cashier_required")
    assert body["error"]["message"].startswith("Wybierz")
    status, body = await login(screen, "P-0001-K99", "1234")
    assert (status, body["error"]["code"]) == (422, "unknown_cashier")


async def test_a_cashier_locked_out_by_wrong_pins_waits_and_others_do_not(
    h: DaemonHarness, screen: Screen
) -> None:
    for _ in range(3):
        status, body = await login(screen, KASIA, "0000")
        assert (status, body["error"]["code"]) == (401, "bad_pin")
    async with screen.http.post(h.api + "/session", json={"cashier": KASIA, "pin": "1234"}) as r:
        assert r.status == 429
        body = await r.json()
        assert body["error"]["code"] == "pin_locked"
        assert int(r.headers["Retry-After"]) == body["error"]["details"]["retry_after_s"] >= 1
        assert "Spróbuj ponownie za" in body["error"]["message"]
    status, body = await login(screen, TOMEK, "5678")
    assert (status, body["cashier"]["name"]) == (200, "Tomek")
    assert "1234" not in (Path(h.daemon.cfg.terminal.state_dir) / "pin-throttle.json").read_text()


async def test_a_manager_logs_in_only_with_six_digits_or_more(screen: Screen) -> None:
    status, body = await login(screen, MANAGER, "24681")
    assert (status, body["error"]["code"]) == (422, "manager_pin_too_short")
    assert "6 cyfr" in body["error"]["message"]
    status, body = await login(screen, MANAGER, MANAGER_PIN)
    assert (status, body["cashier"]["role"]) == (200, "manager")


async def test_logout_ends_the_session_on_the_server(h: DaemonHarness, screen: Screen) -> None:
    assert (await login(screen, KASIA, "1234"))[0] == 200
    cookie = screen.cookie()
    assert (await screen.call("GET", "/health"))[0] == 200
    assert (await screen.call("DELETE", "/session"))[0] == 204
    # The cookie kept by someone (not deleted by the browser) opens nothing any more.
    headers = {"Cookie": f"kp_session={cookie}"}
    async with aiohttp.ClientSession() as other:
        async with other.get(h.api + "/health", headers=headers) as r:
            assert r.status == 401
        async with other.get(h.api + "/session", headers=headers) as r:
            assert r.status == 401


async def test_logout_closes_that_sessions_event_stream(h: DaemonHarness, screen: Screen) -> None:
    assert (await login(screen, KASIA, "1234"))[0] == 200
    async with screen.http.ws_connect(h.api + "/events") as ws:
        assert json.loads((await ws.receive(timeout=5)).data)["type"] == "hello"
        async with aiohttp.ClientSession() as other:
            headers = {"Cookie": f"kp_session={screen.cookie()}"}
            async with other.delete(h.api + "/session", headers=headers) as r:
                assert r.status == 204
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_a_cashier_left_out_of_new_rules_is_logged_out_at_once(
    h: DaemonHarness, screen: Screen
) -> None:
    assert (await login(screen, TOMEK, "5678"))[0] == 200
    async with screen.http.ws_connect(h.api + "/events") as ws:
        assert json.loads((await ws.receive(timeout=5)).data)["type"] == "hello"
        rules = h.daemon.catalog.rules
        assert rules is not None
        await publish_rules(h, tuple(c for c in rules.cashiers if c.id != TOMEK))
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert (await screen.call("GET", "/health"))[0] == 401
    assert h.daemon.sessions.live() == 0
    status, body = await login(screen, TOMEK, "5678")
    assert (status, body["error"]["code"]) == (422, "unknown_cashier")


async def test_x_cashier_counts_only_beside_the_token_and_for_known_ids(
    h: DaemonHarness, screen: Screen
) -> None:
    status, body = await h.call("POST", "/sales", sale(), headers={"X-Cashier": "K-NOBODY"})
    assert (status, body["error"]["code"]) == (403, "unknown_cashier")
    status, body = await h.call("POST", "/sales", sale(), headers={"X-Cashier": TOMEK})
    assert (status, body["entry"]["cashier"]) == (201, TOMEK)
    # Without the token the header names nobody: the session's cashier stands.
    assert (await login(screen, KASIA, "1234"))[0] == 200
    async with screen.http.post(h.api + "/sales", json=sale(), headers={"X-Cashier": MANAGER}) as r:
        assert (r.status, (await r.json())["entry"]["cashier"]) == (201, KASIA)
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(h.api + "/health", headers={"X-Cashier": KASIA}) as r,
    ):
        assert r.status == 401
    # A cashier named by the header is held to the cashier's role.
    status, body = await h.call("POST", "/sales", override_sale(), headers={"X-Cashier": KASIA})
    assert (status, body["error"]["code"]) == (403, "manager_required")


async def test_a_cashiers_points_override_needs_a_managers_pin(
    h: DaemonHarness, screen: Screen
) -> None:
    assert (await login(screen, KASIA, "1234"))[0] == 200
    status, body = await screen.call("POST", "/sales/quote", override_sale())
    assert status == 200  # a quote writes nothing: no approval needed to see it
    asked = override_sale()
    status, body = await screen.call("POST", "/sales", asked)
    assert (status, body["error"]["code"]) == (403, "manager_required")
    assert body["error"]["details"] == {"for": "points_override"}
    assert "kierownika" in body["error"]["message"]
    wrong = {**asked, "approval": {"cashier": MANAGER, "pin": "111111"}}
    status, body = await screen.call("POST", "/sales", wrong)
    assert (status, body["error"]["code"]) == (403, "approval_refused")
    not_a_manager = {**asked, "approval": {"cashier": TOMEK, "pin": "5678"}}
    status, body = await screen.call("POST", "/sales", not_a_manager)
    assert (status, body["error"]["code"]) == (403, "approval_refused")
    right = {**asked, "approval": {"cashier": MANAGER, "pin": MANAGER_PIN}}
    status, body = await screen.call("POST", "/sales", right)
    assert status == 201
    assert (body["entry"]["cashier"], body["entry"]["points_override"]) == (KASIA, 8)
    # The page retries with the same id after a lost answer: the written sale, no new ask.
    status, again = await screen.call("POST", "/sales", asked)
    assert (status, again["entry"]["seq"]) == (200, body["entry"]["seq"])


async def test_a_managers_wrong_approvals_are_throttled_like_logins(screen: Screen) -> None:
    assert (await login(screen, KASIA, "1234"))[0] == 200
    codes = []
    for _ in range(4):
        body = {"approval": {"cashier": MANAGER, "pin": "999999"}}
        codes.append((await screen.call("POST", "/day/close", body))[1]["error"]["code"])
    assert codes == ["approval_refused"] * 3 + ["pin_locked"]


async def test_the_day_close_needs_a_manager(h: DaemonHarness, screen: Screen) -> None:
    assert (await h.call("POST", "/sales", sale()))[0] == 201
    assert (await login(screen, KASIA, "1234"))[0] == 200
    status, body = await screen.call("POST", "/day/close")
    assert (status, body["error"]["code"]) == (403, "manager_required")
    assert body["error"]["details"] == {"for": "day_close"}
    approval = {"approval": {"cashier": MANAGER, "pin": MANAGER_PIN}}
    status, body = await screen.call("POST", "/day/close", approval)
    assert (status, body["entry"]["kind"], body["entry"]["cashier"]) == (201, "day_close", KASIA)
    # A manager's own session closes without asking anyone.
    assert (await h.call("POST", "/sales", sale()))[0] == 201
    assert (await login(screen, MANAGER, MANAGER_PIN))[0] == 200
    status, body = await screen.call("POST", "/day/close")
    assert (status, body["entry"]["cashier"]) == (201, MANAGER)


async def test_card_events_stop_reaching_a_closed_session(h: DaemonHarness, screen: Screen) -> None:
    """After logout the stream is gone before the next customer's card is read."""
    assert (await login(screen, KASIA, "1234"))[0] == 200
    async with screen.http.ws_connect(h.api + "/events") as ws:
        assert json.loads((await ws.receive(timeout=5)).data)["type"] == "hello"
        assert (await screen.call("DELETE", "/session"))[0] == 204
        h.swipe(swipe_bytes(ACTIVE))
        seen: list[str] = []
        while True:
            msg = await ws.receive(timeout=5)
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            seen.append(json.loads(msg.data)["type"])
        assert "card" not in seen


async def test_a_lock_and_a_logout_outlive_a_daemon_restart(tmp_path: Path) -> None:
    """The same state dir, the daemon stopped and started again: still locked, still out."""
    # A frozen wall clock: the 1 s lock after three failures cannot run out during the restart.
    clock = FakeClock(datetime.now(UTC))
    async with CentralHarness.start(tmp_path, trust_on_first_use=True, enrol_key=False) as city:
        async with running_daemon(tmp_path, central=city, clock=clock) as first:
            for _ in range(3):
                status, body = await first.call(
                    "POST", "/session", {"cashier": KASIA, "pin": "0" * 4}
                )
                assert (status, body["error"]["code"]) == (401, "bad_pin")
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
                s = Screen(first, http)
                assert (await login(s, TOMEK, "5678"))[0] == 200
                tomek_cookie = s.cookie()
                assert (await s.call("DELETE", "/session"))[0] == 204
        async with running_daemon(tmp_path, central=city, clock=clock) as second:
            status, body = await second.call("POST", "/session", {"cashier": KASIA, "pin": "1234"})
            assert (status, body["error"]["code"]) == (429, "pin_locked")
            clock.advance(body["error"]["details"]["retry_after_s"])
            status, body = await second.call("POST", "/session", {"cashier": KASIA, "pin": "1234"})
            assert (status, body["cashier"]["id"]) == (200, KASIA)
            headers = {"Cookie": f"kp_session={tomek_cookie}"}
            async with (
                aiohttp.ClientSession() as other,
                other.get(second.api + "/health", headers=headers) as r,
            ):
                assert r.status == 401
