"""The city server's default body limit: big enough for a till's batch, small enough for a bomb.

The attack this closes (issue 14): a 60 KiB gzip body inflating to 60 MiB of ``[],``
was under the old 64 MiB default, so the server decoded it: 1.25 GB for one upload,
eight at once (``max_concurrent_uploads``) more than the machine.
"""

from __future__ import annotations

import resource
import uuid
import zlib
from pathlib import Path

import pytest

from config.schema import CentralSection, SyncSection
from ledger.entry import GENESIS_HASH, Draft, Entry, seal
from sync.wire import UploadBatch, encode
from tests.sync.central_harness import TERMINAL, CentralHarness

pytestmark = pytest.mark.usefixtures("central_engine")  # on SQLite and PostgreSQL

DEFAULT_LIMIT = CentralSection().max_body_bytes


def _large_sale(seq: int, prev_hash: str) -> Entry:
    """A sale as big as a till writes in normal use: a dozen benefits, an override, a reason."""
    ids = tuple(f"P-0001-BEN-{i:03d}" for i in range(12))
    draft = Draft(
        ts="2026-11-18T11:00:00.000Z",
        local_date="2026-11-18",
        kind="sale",
        card="01-000018",
        amount_gr=99_999_99,
        points_earned=1_000_000,
        points_redeemed=5000,
        discount_gr=50_00,
        benefits=ids,
        rules_version="2026.11-12",
        cashier="P-0001-K01",
        sale_id=str(uuid.UUID(int=seq)),
        benefit_quantities=dict.fromkeys(ids, 1000),
        benefit_points=dict.fromkeys(ids, 100_000),
        points_override=100_000,
        override_reason="Reklamacja: klient nie otrzymał punktów za wizytę z 12.11 " * 3,
        balance_after=123_456_789,
    )
    return seal(
        draft, seq=seq, entry_id=str(uuid.UUID(int=seq)), terminal=TERMINAL, prev_hash=prev_hash
    )


def test_a_default_batch_of_large_sales_fits_the_default_body_limit() -> None:
    # Catches a default lowered below what one default batch of real sales needs.
    entries: list[Entry] = []
    prev = GENESIS_HASH
    for seq in range(1, SyncSection().batch_size + 1):
        e = _large_sale(seq, prev)
        entries.append(e)
        prev = e.hash
    body = encode(UploadBatch(entries=entries, signature="A" * 88, public_key="A" * 44))
    assert len(encode(entries[0])) < 4096
    assert len(body) <= DEFAULT_LIMIT, (len(body), DEFAULT_LIMIT)


def _gzip_bomb(inflated: int) -> bytes:
    """A gzip body of ``inflated`` bytes of one entry holding [[],[],...], built in chunks."""
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [z.compress(b'{"entries":[{"x":[[]')]
    chunk = b",[]" * 100_000
    for _ in range(inflated // len(chunk)):
        out.append(z.compress(chunk))
    out.append(z.compress(b']}],"signature":"","public_key":""}'))
    out.append(z.flush())
    return b"".join(out)


async def test_a_gzip_bomb_under_the_old_default_is_413_and_costs_little_memory(
    tmp_path: Path,
) -> None:
    # The old 64 MiB default decoded this body: 422 after ~1.25 GB of Python objects.
    bomb = _gzip_bomb(60 << 20)
    assert len(bomb) < 100 << 10
    async with CentralHarness.start(tmp_path, max_body_bytes=DEFAULT_LIMIT) as h:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        async with (
            h.session() as http,
            http.post(f"/v1/terminals/{TERMINAL}/entries", data=bomb, headers=headers) as r,
        ):
            assert r.status == 413, await r.text()
            assert (await r.json())["error"] == "too_large"
        async with h.session() as http, http.get("/v1/health") as r:
            assert r.status == 200
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 64, f"one upload grew the server by {grown_mb:.0f} MB"
