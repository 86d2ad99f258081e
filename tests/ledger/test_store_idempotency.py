"""Hypothesis: concurrent waves of new requests, retries and conflicting reuses of ids.

Model: appends queue in the order their coroutines start, so the first draft of each
request id (in that order) becomes its entry; a later draft with the same request is
answered with that entry (created=False); a different request under the same id gets
IdempotencyConflict carrying that entry. Seqs stay 1..N without gaps.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.entry import Draft, Entry
from ledger.store import Appended, IdempotencyConflict, LedgerStore
from tests.ledger.test_store_support import sale

# (request id number, variant): the same pair is a retry, another variant a conflict.
ops = st.tuples(st.integers(0, 7), st.integers(0, 1))
waves = st.lists(st.lists(ops, min_size=1, max_size=12), min_size=1, max_size=5)


def _draft(rid: int, variant: int) -> Draft:
    return sale(rid, sale_id=f"req-{rid}", amount_gr=1000 * (rid + 1) + variant)


async def _run(path: Path, plan: list[list[tuple[int, int]]]) -> list[Appended | BaseException]:
    async with await LedgerStore.open(path, terminal="T-0001") as store:
        results: list[Appended | BaseException] = []
        for wave in plan:
            results += await asyncio.gather(
                *(store.append(_draft(r, v)) for r, v in wave), return_exceptions=True
            )
        assert await store.verify() is None
        stored = await store.read_after(0, 1000)
    assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
    return results


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=waves)
def test_every_request_id_is_written_once_and_answered_consistently(
    plan: list[list[tuple[int, int]]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(_run(Path(tmp) / "ledger.sqlite", plan))
    first_variant: dict[int, int] = {}
    entry_of: dict[int, Entry] = {}
    flat = [op for wave in plan for op in wave]
    assert len(results) == len(flat)
    for (rid, variant), res in zip(flat, results, strict=True):
        if rid not in first_variant:
            first_variant[rid] = variant
            assert isinstance(res, Appended), res
            assert res.created
            assert res.entry.amount_gr == _draft(rid, variant).amount_gr
            entry_of[rid] = res.entry
        elif variant == first_variant[rid]:
            assert isinstance(res, Appended), res
            assert not res.created
            assert res.entry == entry_of[rid]
        else:
            assert isinstance(res, IdempotencyConflict), res
            assert res.existing == entry_of[rid]
    created = sorted(r.entry.seq for r in results if isinstance(r, Appended) and r.created)
    assert created == list(range(1, len(first_variant) + 1))
