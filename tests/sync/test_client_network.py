"""The till against hostile usage feeds and lease answers (docs/architecture.md §5.8).

A usage feed or lease answer that is cut, malformed, for another benefit, or claims
more than max_persons is rejected whole: the previous state stays, one log line, and
health says so; a lease answer that lowers a grant below what was admitted is ignored
and reported. The real reference server on loopback, its answers replaced by a
middleware where the test needs a bad one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog

from ledger.clock import FakeClock
from ledger.store import LedgerStore
from sync.catalog import Catalog
from tests.sync.test_client_env import (
    TID,
    Env,
    answer,
    catalog,
    running_env,
    store,
)

__all__ = ["catalog", "store"]  # fixtures used here

USAGE = "/v1/partners/P-0001/usage"
LEASES = f"/v1/terminals/{TID}/leases"
NDJSON = {"Content-Type": "application/x-ndjson"}
TASTING = "B-105"  # the demo's persons-limited benefit: 50 persons, 48 used elsewhere


@pytest.fixture
async def env(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Env]:
    async with running_env(tmp_path, clock, seed=True) as e:
        yield e


HEADER = b'{"version":7,"full":true,"terminal_seq":0}\n'
LINE = b'{"holder":"H-0001","benefit":"B-104","date":"2026-11-18","qty":1}\n'
BAD_FEEDS = {
    "cut": HEADER + LINE,  # no end line
    "miscounted": HEADER + LINE + b'{"end":true,"count":2}\n',
    "float_qty": HEADER
    + b'{"holder":"H-0001","benefit":"B-104","date":"2026-11-18","qty":1.0}\n'
    + b'{"end":true,"count":1}\n',
    "not_json": HEADER + b"{holder\n" + b'{"end":true,"count":1}\n',
    "no_header": LINE + b'{"end":true,"count":1}\n',
    "bad_date": HEADER
    + b'{"holder":"H-0001","benefit":"B-104","date":"2026-13-40","qty":1}\n'
    + b'{"end":true,"count":1}\n',
}


@pytest.mark.parametrize("kind", sorted(BAD_FEEDS))
async def test_a_bad_usage_feed_is_refused_whole_and_the_previous_one_stays(
    env: Env, store: LedgerStore, catalog: Catalog, kind: str
) -> None:
    client = env.client(store, catalog)
    try:
        first = await client.refresh()
        assert first.ok, first
        assert first.usage is not None
        assert first.usage.accepted
        version, seen = catalog.usage_version, catalog.usage_terminal_seq
        lines_before = await catalog.usage_lines()
        env.faults.add(
            USAGE, answer(200, BAD_FEEDS[kind], {"Content-Type": "application/x-ndjson"})
        )
        with structlog.testing.capture_logs() as logs:
            again = await client.refresh()
        assert not again.ok
        assert again.error == "bad_feed"
        assert client.usage_error is not None
        assert (catalog.usage_version, catalog.usage_terminal_seq) == (version, seen)
        assert await catalog.usage_lines() == lines_before
        assert [e["event"] for e in logs].count("usage_feed_rejected") == 1
        # the next good feed is applied again and the error clears
        ok = await client.refresh()
        assert ok.ok, ok
        assert client.usage_error is None
    finally:
        await client.close()


async def test_a_city_without_a_usage_feed_leaves_the_till_on_its_own_entries(
    env: Env, store: LedgerStore, catalog: Catalog
) -> None:
    env.faults.add(USAGE, answer(404, b'{"error":"not_found","message":"no such route"}'))
    client = env.client(store, catalog)
    try:
        res = await client.refresh()
        assert res.ok, res
        assert res.usage is None
        assert catalog.usage_terminal_seq is None
    finally:
        await client.close()


def grant(benefit: str, granted: int, persons_used: int = 48) -> bytes:
    return f'{{"benefit":"{benefit}","granted":{granted},"persons_used":{persons_used}}}'.encode()


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (grant("B-104", 2), "asked for"),  # another benefit
        (grant(TASTING, 51), "beyond max_persons"),  # more than max_persons (50)
        (b'{"benefit":"B-105","granted":2.0,"persons_used":48}', "lease for"),  # a float
        (b'{"benefit":"B-105","granted":2', "lease for"),  # cut
        (b"[]", "lease for"),  # not an object
    ],
)
async def test_a_bad_lease_answer_is_refused_and_the_grant_stays(
    env: Env, store: LedgerStore, catalog: Catalog, body: bytes, why: str
) -> None:
    client = env.client(store, catalog)
    try:
        await client.refresh()
        held = await client.top_up_leases()
        assert held == {TASTING: 2}  # 50 - 48 elsewhere: the two left
        assert catalog.leases() == {TASTING: 2}
        env.faults.add(LEASES, answer(200, body, {"Content-Type": "application/json"}))
        with structlog.testing.capture_logs() as logs:
            assert await client.top_up_leases() == {TASTING: 2}
        assert catalog.leases() == {TASTING: 2}
        assert client.lease_error is not None
        assert why in client.lease_error
        assert [e["event"] for e in logs].count("lease_refused") == 1
    finally:
        await client.close()


async def test_a_grant_below_what_was_admitted_is_ignored_and_reported(
    env: Env, store: LedgerStore, catalog: Catalog
) -> None:
    client = env.client(store, catalog)
    client.admitted = lambda _benefit: 2  # this till admitted its two persons
    try:
        await client.refresh()
        assert await client.top_up_leases() == {TASTING: 2}
        env.faults.add(LEASES, answer(200, grant(TASTING, 1), {"Content-Type": "application/json"}))
        assert await client.top_up_leases() == {TASTING: 2}
        assert catalog.leases() == {TASTING: 2}
        assert client.lease_error is not None
        assert "already admitted" in client.lease_error
    finally:
        await client.close()
