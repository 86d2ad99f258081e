"""Who read the register: every card-list download is recorded, and full lists (every
resident's name, birth date and balance) are limited per terminal (docs/architecture.md §5.9)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from config.schema import CentralSection
from ledger.clock import FakeClock
from tests.sync.central_harness import CentralHarness

pytestmark = pytest.mark.usefixtures("central_engine")  # on SQLite and PostgreSQL


def test_the_shipped_limit_is_a_few_full_lists_an_hour() -> None:
    assert 1 <= CentralSection().full_feeds_per_hour <= 12


async def test_downloads_are_recorded_and_a_full_list_beyond_the_limit_is_429(
    tmp_path: Path,
) -> None:
    clock = FakeClock(datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
    async with CentralHarness.start(tmp_path, clock=clock, full_feeds_per_hour=2) as h:
        async with h.session() as http:
            for _ in range(2):
                clock.advance(1)
                async with http.get("/v1/cards") as r:
                    assert r.status == 200
                    body = await r.read()
            version = body.splitlines()[0].decode()
            async with http.get("/v1/cards") as r:
                assert r.status == 429
                assert (await r.json())["error"] == "too_many_full_feeds"
                assert 1 <= int(r.headers["Retry-After"]) <= 3600
            # A delta is never limited.
            since = version.split('"version":')[1].split(",")[0]
            clock.advance(1)
            async with http.get(f"/v1/cards?since={since}") as r:
                assert r.status == 200
                assert (await r.read()).endswith(b'{"end":true,"count":0}\n')
            clock.advance(3601)
            async with http.get("/v1/cards") as r:
                assert r.status == 200
                assert (await r.read()).endswith(b'{"end":true,"count":60}\n')
        reads = await h.db.feed_reads("T-0001")
        assert [(x.full, x.lines, x.complete) for x in reads] == [
            (True, 60, True),
            (False, 0, True),
            (True, 60, True),
            (True, 60, True),
        ]
        clock.advance(1)
        other = await h.enrol("T-0002")
        async with h.session(other) as http, http.get("/v1/cards") as r:
            assert r.status == 200  # the limit is per terminal
            await r.read()
        newest = await h.db.feed_reads(limit=1)
        assert [x.terminal for x in newest] == ["T-0002"]
