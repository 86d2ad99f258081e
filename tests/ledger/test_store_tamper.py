"""Hypothesis over the store: random ledgers verify; any flipped byte is found at its seq."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.entry import ChainError, Draft, Entry, verify_chain
from ledger.store import LedgerStore
from tests.ledger.test_chain import drafts, spec_body, spec_hash
from tests.ledger.test_store_support import raw, sale, untamper_guard


async def _append_all(path: Path, batches: list[list[Draft]]) -> list[Entry]:
    async with await LedgerStore.open(path, terminal="T-0001") as store:
        out: list[Entry] = []
        for batch in batches:
            results = await asyncio.gather(*(store.append(d) for d in batch))
            out.extend(r.entry for r in results)
        return out


async def _verify_readonly(path: Path) -> tuple[ChainError | None, list[Entry]]:
    async with await LedgerStore.open(path, terminal="T-0001", readonly=True) as store:
        return await store.verify(), await store.read_after(0, 10_000)


# Distinct request ids so every draft is a new entry.
unique_drafts = st.lists(drafts, min_size=1, max_size=12).map(
    lambda ds: [msgspec.structs.replace(d, sale_id=f"r{i}-{d.sale_id}") for i, d in enumerate(ds)]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ds=unique_drafts, split=st.integers(1, 4))
def test_random_ledgers_verify_and_match_the_spec(ds: list[Draft], split: int) -> None:
    batches = [ds[i : i + split] for i in range(0, len(ds), split)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.sqlite"
        written = asyncio.run(_append_all(path, batches))
        err, stored = asyncio.run(_verify_readonly(path))
    assert err is None
    assert stored == sorted(written, key=lambda e: e.seq)
    assert [e.seq for e in stored] == list(range(1, len(ds) + 1))
    assert verify_chain(stored) is None
    prev = "0" * 64
    for e in stored:
        d = msgspec.convert(
            {f: v for f in Draft.__struct_fields__ if (v := getattr(e, f)) is not msgspec.UNSET},
            Draft,
            from_attributes=True,
        )
        assert e.hash == spec_hash(prev, spec_body(d, seq=e.seq, entry_id=e.id, terminal="T-0001"))
        prev = e.hash


def _flip(path: Path, seq: int, column: str, pos: int, mask: int) -> None:
    with raw(path) as db:
        if column == "seq":
            db.execute("UPDATE entries SET seq = seq + 1000 WHERE seq = ?", (seq,))
            return
        (value,) = db.execute(
            f"SELECT CAST({column} AS BLOB) FROM entries WHERE seq = ?",  # noqa: S608
            (seq,),
        ).fetchone()
        data = bytearray(value)
        data[pos % len(data)] ^= mask
        new: bytes | str = bytes(data)
        if column != "body":
            # Left a BLOB when not UTF-8: a tamperer is not bound to the column's type.
            with contextlib.suppress(UnicodeDecodeError):
                new = bytes(data).decode("utf-8")
        db.execute(f"UPDATE entries SET {column} = ? WHERE seq = ?", (new, seq))  # noqa: S608


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    n=st.integers(1, 10),
    data=st.data(),
    column=st.sampled_from(["body", "hash", "prev_hash", "seq"]),
    pos=st.integers(0, 10_000),
    mask=st.integers(1, 255),
)
def test_any_flipped_byte_is_detected_at_its_seq(
    n: int, data: st.DataObject, column: str, pos: int, mask: int
) -> None:
    k = data.draw(st.integers(1, n), label="tampered seq")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.sqlite"
        asyncio.run(_append_all(path, [[sale(i) for i in range(n)]]))
        untamper_guard(path)
        _flip(path, k, column, pos, mask)

        async def check() -> None:
            async with await LedgerStore.open(path, terminal="T-0001", readonly=True) as store:
                err = await store.verify()
                assert err is not None, "tampering went unnoticed"
                assert err.seq == k, err

        asyncio.run(check())


def test_a_deleted_middle_entry_is_reported_missing() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.sqlite"
        asyncio.run(_append_all(path, [[sale(i) for i in range(5)]]))
        untamper_guard(path)
        with raw(path) as db:
            db.execute("DELETE FROM entries WHERE seq = 3")
        err, _ = asyncio.run(_verify_readonly(path))
        assert err is not None
        assert err.seq == 3
        assert "missing" in err.reason
