"""Property: whatever faults hit an upload, the server ends holding exactly the local chain."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.clock import FakeClock
from ledger.store import LedgerStore
from sync.catalog import Catalog
from sync.keys import load_or_create_key
from tests.sync.test_client_env import (
    TID,
    Env,
    Fault,
    Faults,
    Handler,
    answer,
    append_sales,
    central,
    commit_then_500,
    commit_then_drop,
    local_entries,
)

GENESIS_GAP = b'{"error":"gap","head":{"seq":0,"hash":"' + b"0" * 64 + b'"}}'


async def _pass(request: web.Request, handler: Handler) -> web.StreamResponse:
    return await handler(request)


FAULTS: dict[str, Fault] = {
    "ok": _pass,
    "500 after commit": commit_then_500,
    "drop after commit": commit_then_drop,
    "503 before": answer(503, b'{"error":"internal"}', {"Retry-After": "3"}),
    "gap to genesis": answer(409, GENESIS_GAP),
}


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    plan=st.lists(st.sampled_from(sorted(FAULTS)), max_size=8),
    n=st.integers(1, 25),
    batch=st.integers(1, 7),
    more=st.integers(0, 6),
)
async def test_any_fault_sequence_ends_with_the_exact_chain(
    plan: list[str], n: int, batch: int, more: int
) -> None:
    clock = FakeClock(datetime(2026, 11, 18, 11, 0, tzinfo=UTC))
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "state").mkdir()
        key = load_or_create_key(tmp / "state")
        faults = Faults()
        async with central(tmp, clock, faults, key) as server:
            env = Env(tmp, clock, server, faults, key, [])
            async with (
                await LedgerStore.open(tmp / "state" / "ledger.sqlite", terminal=TID) as store,
                await Catalog.open(tmp / "state" / "catalog.sqlite", clock) as catalog,
            ):
                await append_sales(store, clock, n)
                faults.add("entries", *(FAULTS[p] for p in plan))
                client = env.client(store, catalog, batch_size=batch)
                try:
                    first = await client.upload()
                    if not first.ok:
                        # A run gives up after 5 failed attempts in a row, or 3 stalls (a
                        # run of gaps); it never fails any other way, and later runs finish.
                        assert first.error in ("server_error", "unreachable", "no_progress")
                    await append_sales(store, clock, more, tag="later-")
                    for _ in range(3):  # the plan holds at most 8 faults
                        final = await client.upload()
                        if final.ok:
                            break
                finally:
                    await client.close()
                assert final.ok, final
                mine = [(e.seq, e.hash) for e in await local_entries(store)]
            assert await env.server_hashes() == mine
            faults.release.set()
