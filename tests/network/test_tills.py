"""Several real daemons of one partner against one real reference server.

The contract: docs/architecture.md §5.8.

Every limit of the benefit form is the resident's limit at the partner, not one till's:
a once-a-day benefit used at till A is refused at till B after B's next refresh, hours
per month add up across tills, a void at A frees the use at B, and a persons limit holds
across three tills while the city is unreachable for the whole test.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from sync.central.demo_data import demo_number
from tests.sync.central_harness import PARTNER, CentralHarness
from tests.terminal.daemon_harness import DaemonHarness, running_daemon

pytestmark = pytest.mark.usefixtures("central_engine")  # on SQLite and PostgreSQL

ANNA = demo_number(1)  # 340 points, holder H-0001
JERZY = demo_number(2)  # 1250 points
MALGORZATA = demo_number(3)
WERONIKA = demo_number(8)  # 18 years old: the latte-art workshop (16-26) is hers
GRZEGORZ_OLD, GRZEGORZ = demo_number(6), demo_number(7)  # replaced card and duplicate
BREAKFAST = "B-104"  # once a day, balance above 200
WORKSHOP = "B-106"  # up to 4 hours a month
TASTING = "B-105"  # 50 persons in the whole programme, 48 already counted elsewhere


class City:
    """The reference server, and a switch that makes it unreachable for the tills."""

    def __init__(self) -> None:
        self.down = False

    @web.middleware
    async def gate(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if self.down and request.transport is not None:
            request.transport.abort()  # as if the line to the city were cut
            raise web.HTTPServiceUnavailable()
        return await handler(request)


@contextlib.asynccontextmanager
async def tills(tmp_path: Path, n: int, city: City) -> AsyncIterator[list[DaemonHarness]]:
    """``n`` daemons T-0001 … of partner P-0001, each synced once, sharing one city."""
    async with (
        CentralHarness.start(
            tmp_path / "city", trust_on_first_use=True, enrol_key=False, middlewares=[city.gate]
        ) as central,
        contextlib.AsyncExitStack() as stack,
    ):
        out = []
        for i in range(1, n + 1):
            root = tmp_path / f"till-{i}"
            root.mkdir()
            out.append(
                await stack.enter_async_context(
                    running_daemon(root, central=central, terminal=f"T-000{i}")
                )
            )
        yield out


async def sell(h: DaemonHarness, card: str, benefit: str, qty: int = 1) -> tuple[int, Any]:
    body = {
        "id": str(uuid.uuid4()),
        "card": card,
        "amount_gr": 2000,
        "benefit_ids": [benefit],
        "benefit_quantities": {benefit: qty},
    }
    return await h.call("POST", "/sales", body)


def refused(status: int, body: Any, reason: str) -> bool:
    """A benefit refusal as the contract's clients read it (docs/architecture.md §5.6)."""
    err = body.get("error", {}) if isinstance(body, dict) else {}
    code, why = err.get("code"), err.get("reason")
    return status == 422 and code == "benefit_unavailable" and why == reason


async def test_once_a_day_at_one_till_is_refused_at_the_other(tmp_path: Path) -> None:
    city = City()
    async with tills(tmp_path, 2, city) as (a, b):
        status, body = await sell(a, ANNA, BREAKFAST)
        assert status == 201, body
        await a.daemon.sync_cycle()  # A uploads
        await b.daemon.sync_cycle()  # B's next refresh brings the partner's usage
        status, body = await sell(b, ANNA, BREAKFAST)
        assert refused(status, body, "period_limit_reached"), body
        _, view = await b.call("POST", "/cards/resolve", {"input": ANNA})
        by_id = {x["id"]: x for x in view["benefits"]}
        assert by_id[BREAKFAST]["reason"] == "period_limit_reached"
        # another resident is not affected
        status, body = await sell(b, JERZY, BREAKFAST)
        assert status == 201, body


async def test_hours_a_month_add_up_across_tills(tmp_path: Path) -> None:
    city = City()
    async with tills(tmp_path, 2, city) as (a, b):
        assert (await sell(a, WERONIKA, WORKSHOP, 2))[0] == 201
        await a.daemon.sync_cycle()
        await b.daemon.sync_cycle()
        assert (await sell(b, WERONIKA, WORKSHOP, 2))[0] == 201  # 4 of 4 hours
        status, body = await sell(b, WERONIKA, WORKSHOP, 1)
        assert refused(status, body, "period_limit_reached"), body
        await b.daemon.sync_cycle()
        await a.daemon.sync_cycle()
        status, body = await sell(a, WERONIKA, WORKSHOP, 1)
        assert refused(status, body, "period_limit_reached"), body


async def test_a_void_at_one_till_frees_the_use_at_the_other(tmp_path: Path) -> None:
    city = City()
    async with tills(tmp_path, 2, city) as (a, b):
        status, sale = await sell(a, ANNA, BREAKFAST)
        assert status == 201, sale
        await a.daemon.sync_cycle()
        await b.daemon.sync_cycle()
        assert refused(*(await sell(b, ANNA, BREAKFAST)), "period_limit_reached")
        sale_id = sale["entry"]["sale_id"]
        status, void = await a.call("POST", f"/sales/{sale_id}/void", {"reason": "zwrot"})
        assert status == 201, void
        await a.daemon.sync_cycle()
        await b.daemon.sync_cycle()
        status, body = await sell(b, ANNA, BREAKFAST)
        assert status == 201, body


async def test_a_duplicate_card_shares_its_holders_limits_across_tills(tmp_path: Path) -> None:
    city = City()
    async with tills(tmp_path, 2, city) as (a, b):
        assert (await sell(a, JERZY, BREAKFAST))[0] == 201
        await a.daemon.sync_cycle()
        await b.daemon.sync_cycle()
        # Grzegorz's old card was replaced: refused as blocked at any till
        status, body = await b.call("POST", "/cards/resolve", {"input": GRZEGORZ_OLD})
        assert status == 200
        assert body["reason"] == "card_blocked"


async def test_a_persons_limit_holds_across_three_tills_with_the_city_down(
    tmp_path: Path,
) -> None:
    city = City()
    async with tills(tmp_path, 3, city) as all_tills:
        # Each till topped up its lease at its first sync; then the line to the city goes.
        city.down = True
        admitted: list[tuple[str, str]] = []
        refusals: list[Any] = []
        residents = [ANNA, JERZY, MALGORZATA, WERONIKA, GRZEGORZ]
        for i, card in enumerate(residents):
            for till in (all_tills[i % 3], all_tills[(i + 1) % 3]):
                status, body = await sell(till, card, TASTING)
                if status == 201:
                    admitted.append((till.daemon.cfg.terminal.id, card))
                    break
                assert refused(status, body, "persons_limit_reached"), body
                refusals.append(body["error"])
        # 50 persons in the programme, 48 counted elsewhere: at most 2 new ones in total
        assert len({card for _t, card in admitted}) <= 2
        assert len(admitted) == 2, (admitted, refusals)
        assert refusals, "the tills without a slot said why"
        assert all("Limit" in r["message"] or "limit" in r["message"] for r in refusals)
        city.down = False
        for till in all_tills:
            await till.daemon.sync_cycle()
        # once the city counts them, nobody new can take a third slot either
        newcomer = next(c for c in residents if c not in {card for _t, card in admitted})
        for till in all_tills:
            status, body = await sell(till, newcomer, TASTING)
            assert refused(status, body, "persons_limit_reached"), body


async def test_a_till_gives_back_unused_slots_at_day_close(tmp_path: Path) -> None:
    city = City()
    async with tills(tmp_path, 2, city) as (a, b):
        held = await a.central.db.leases(PARTNER, TASTING)
        assert held["T-0001"][0] == 2  # its first cycle took the two places left
        assert held["T-0002"][0] == 0
        assert (await sell(a, ANNA, TASTING))[0] == 201  # one used
        status, body = await a.call("POST", "/day/close")
        assert status in (200, 201), body
        async with asyncio.timeout(10):  # the release runs beside the Z report
            while True:
                if (await a.central.db.leases(PARTNER, TASTING))["T-0001"][0] == 1:
                    break
                await asyncio.sleep(0.02)
        # the place A gave back is B's at its next cycle
        await b.daemon.sync_cycle()
        assert (await b.central.db.leases(PARTNER, TASTING))["T-0002"][0] == 1
        assert (await sell(b, JERZY, TASTING))[0] == 201
