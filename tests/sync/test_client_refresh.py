"""Catalogue refresh against the real reference server (seeded demo data) on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import msgspec
import pytest
import structlog

from ledger.clock import FakeClock
from ledger.domain import CardRecord, CardStatus, Holder, Program
from ledger.store import LedgerStore
from sync.catalog import Catalog
from sync.wire import CardsEnd, CardsHeader, encode_line
from tests.sync.test_client_env import (
    CuttingProxy,
    Env,
    answer,
    catalog,
    running_env,
    store,
)

__all__ = ["catalog", "store"]  # fixtures used here

CARD = "01-000018"  # the demo data's first card, active


@pytest.fixture
async def env(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Env]:
    async with running_env(tmp_path, clock, seed=True) as e:
        yield e


async def test_full_then_delta_then_rules_not_modified(
    env: Env, store: LedgerStore, catalog: Catalog
) -> None:
    client = env.client(store, catalog)
    try:
        first = await client.refresh()
        assert first.ok, first
        assert first.cards is not None
        assert first.cards.full
        assert first.rules_changed
        assert catalog.rules is not None
        assert catalog.rules_etag
        total = await catalog.card_count()
        assert total == len([c async for c in _server_cards(env)])
        held = await catalog.lookup(CARD)
        assert held is not None
        # The city's line, plus up to which of our entries its balance counts (none yet).
        assert held.points_seq == 0 == catalog.terminal_seq
        assert msgspec.structs.replace(held, points_seq=None) == await env.server.db.card(CARD)

        # The city blocks a card: the next (small, frequent) refresh brings it as a delta.
        assert await env.server.db.set_card_status(CARD, CardStatus.BLOCKED)
        env.clock.advance(300)
        second = await client.refresh()
        assert second.ok, second
        assert second.cards is not None
        assert not second.cards.full
        assert second.cards.cards == 1
        assert not second.rules_changed
        blocked = await catalog.lookup(CARD)
        assert blocked is not None
        assert blocked.status == CardStatus.BLOCKED
        assert await catalog.card_count() == total
        assert catalog.cards_age_s() == 0.0
        assert env.faults.count("GET", "rules", 304) == 1
    finally:
        await client.close()


async def _server_cards(env: Env) -> AsyncIterator[bytes]:
    async for chunk in env.server.db.card_feed(None):
        for line in chunk.splitlines():
            if b'"number"' in line:
                yield line


async def _fill(env: Env, store: LedgerStore, catalog: Catalog) -> dict[str, object]:
    client = env.client(store, catalog)
    assert (await client.refresh()).ok
    await client.close()
    rows = await catalog._r.execute_fetchall("SELECT number, data FROM cards")
    return {"cards": sorted(rows), "version": catalog.cards_version, "rules": catalog.rules}


def _card(i: int) -> CardRecord:
    return CardRecord(
        number=f"02-{i:06d}",
        status=CardStatus.ACTIVE,
        holder=Holder(display_name=f"Łukasz Ś. {i}"),
        uids=(f"04{i:012x}",),
        programs=(Program(code="mieszkaniec", valid_to=date(2027, 6, 30)),),
    )


def _crafted(*lines: bytes) -> bytes:
    return b"".join(lines)


GOOD_LINE = (
    b'{"number":"01-999990","status":"active","holder":{"display_name":"Jan K."},'
    b'"uids":[],"programs":[],"points":0}\n'
)


@pytest.mark.parametrize(
    "name",
    ["truncated", "wrong count", "malformed line", "no end line", "oversize", "cut connection"],
)
async def test_bad_feed_from_server_keeps_old_catalogue(
    name: str, env: Env, store: LedgerStore, catalog: Catalog
) -> None:
    before = await _fill(env, store, catalog)
    await env.server.db.set_card_status(CARD, CardStatus.BLOCKED)  # a real change is pending
    header = encode_line(CardsHeader(version=99, full=False))
    end = encode_line(CardsEnd(end=True, count=1))
    bodies = {
        "truncated": _crafted(header, GOOD_LINE[:40]),
        "wrong count": _crafted(header, GOOD_LINE, GOOD_LINE, end),
        "malformed line": _crafted(header, b'{"number": "01-9\n', end),
        "no end line": _crafted(header, GOOD_LINE),
    }
    url = None
    proxy: CuttingProxy | None = None
    kwargs: dict[str, int] = {}
    if name in bodies:
        env.faults.add("cards", answer(200, bodies[name], {"Content-Type": "application/x-ndjson"}))
    elif name == "oversize":
        kwargs["max_feed_bytes"] = 100
    else:
        # A big delta (2,000 new cards) whose transfer is cut after 3,000 bytes.
        await env.server.db.upsert_cards([_card(i) for i in range(2000)])
        proxy = CuttingProxy(int(env.server.url.rsplit(":", 1)[1]))
        await proxy.start()
        proxy.cut_response_after = 3000
        url = f"http://127.0.0.1:{proxy.port}"
    client = env.client(store, catalog, url=url)
    client._max_feed_bytes = kwargs.get("max_feed_bytes", client._max_feed_bytes)
    try:
        with structlog.testing.capture_logs() as logs:
            res = await client.refresh()
    finally:
        await client.close()
        if proxy is not None:
            await proxy.stop()
    assert not res.ok
    assert res.error in ("bad_feed", "unreachable")
    rows = await catalog._r.execute_fetchall("SELECT number, data FROM cards")
    after = {"cards": sorted(rows), "version": catalog.cards_version, "rules": catalog.rules}
    assert after == before
    assert any(e["event"] == "card_feed_rejected" for e in logs) or res.error == "unreachable"
    if proxy is not None:
        assert proxy.cuts == 1
    still = await catalog.lookup(CARD)
    assert still is not None
    assert still.status == CardStatus.ACTIVE


async def test_malformed_rules_keep_the_old_rules(
    env: Env, store: LedgerStore, catalog: Catalog
) -> None:
    before = await _fill(env, store, catalog)
    env.faults.add("rules", answer(200, b'{"version": 2, "earn": {"gr_per_point": 1.5}}'))
    client = env.client(store, catalog)
    res = await client.refresh()
    await client.close()
    assert not res.ok
    assert res.error == "bad_rules"
    assert catalog.rules == before["rules"]
