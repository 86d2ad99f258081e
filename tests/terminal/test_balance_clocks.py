"""The balance shown is exact with the till's clock hours ahead of or behind the city's.

The card feed says up to which of this till's entries its balances count
(``terminal_seq``, docs/architecture.md §5.4); the older rule compared entry times with
the city's ``points_as_of`` and counted a sale twice with a fast till clock, or not at
all with a slow one. A real daemon, the real reference server, real syncs.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.terminal.daemon_harness import DaemonHarness, running_daemon

CARD = "01-000018"


class ShiftedClock:
    """The machine's clock, hours off: a till whose RTC or NTP went wrong."""

    def __init__(self, hours: float) -> None:
        self.offset = timedelta(hours=hours)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def monotonic(self) -> float:
        return time.monotonic()


async def balance(h: DaemonHarness) -> int:
    status, view = await h.call("POST", "/cards/resolve", {"input": CARD})
    assert status == 200, view
    points: int = view["balance"]["points"]
    return points


async def sell(h: DaemonHarness, amount_gr: int) -> int:
    status, body = await h.call(
        "POST", "/sales", {"id": str(uuid.uuid4()), "card": CARD, "amount_gr": amount_gr}
    )
    assert status == 201, body
    earned: int = body["entry"]["points_earned"]
    assert earned > 0
    return earned


@pytest.mark.parametrize("hours", [6, -6], ids=["till-ahead", "till-behind"])
async def test_the_balance_is_exact_whatever_the_two_clocks_say(
    tmp_path: Path, hours: float
) -> None:
    async with running_daemon(tmp_path, clock=ShiftedClock(hours)) as h:
        start = await balance(h)
        e1 = await sell(h, 4000)
        assert await balance(h) == start + e1
        # The city credits the sale and its card list says so; the till must not add it again.
        result = await h.daemon.sync_cycle()
        assert result["upload"]["ok"], result
        city = await h.central.server.db.card(CARD)
        assert city is not None
        assert city.points == start + e1
        assert h.daemon.catalog.terminal_seq == 1
        assert await balance(h) == start + e1
        # A sale after that sync, not uploaded yet: counted once, whatever its time stamp.
        e2 = await sell(h, 2500)
        assert await balance(h) == start + e1 + e2
        # The card list refreshes (the city changed another card) before the upload.
        await h.daemon.sync.refresh()
        assert await balance(h) == start + e1 + e2
        result = await h.daemon.sync_cycle()
        assert result["upload"]["ok"], result
        assert await balance(h) == start + e1 + e2
        city = await h.central.server.db.card(CARD)
        assert city is not None
        assert city.points == start + e1 + e2
