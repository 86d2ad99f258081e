"""The till learns which of its entries the city holds in quarantine, keeps it across
restarts, and forgets each one the city decides (docs/architecture.md §5.9)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ledger.clock import FakeClock
from ledger.store import LedgerStore
from sync.catalog import Catalog
from tests.sync.test_client_env import Env, append_sales, catalog, running_env, store

__all__ = ["catalog", "store"]  # fixtures used here


@pytest.fixture
async def env(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Env]:
    async with running_env(tmp_path, clock, seed=True) as e:
        yield e


async def test_held_entries_are_known_kept_and_forgotten_once_decided(
    env: Env, store: LedgerStore, catalog: Catalog
) -> None:
    # These sales name rules version "1", which the city never served: all are held.
    await append_sales(store, env.clock, 3)
    client = env.client(store, catalog, batch_size=2)
    try:
        res = await client.upload()
        assert res.ok, res  # stored and acknowledged: the chain is whole
        assert client.quarantined == {1: "rules_unknown", 2: "rules_unknown", 3: "rules_unknown"}
    finally:
        await client.close()
    reopened = env.client(store, catalog)
    try:
        assert reopened.quarantined == {1: "rules_unknown", 2: "rules_unknown", 3: "rules_unknown"}
        await env.server.db.decide("T-0001", 2, approve=True, by="Ewa")
        await env.server.db.decide("T-0001", 3, approve=False, by="Ewa")
        res = await reopened.upload()  # nothing to send; the head reply says what is held
        assert (res.ok, res.sent) == (True, 0)
        assert reopened.quarantined == {1: "rules_unknown"}
    finally:
        await reopened.close()
    last = env.client(store, catalog)
    assert last.quarantined == {1: "rules_unknown"}
    await last.close()
