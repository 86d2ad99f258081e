"""The hash chain against an independent computation from docs/architecture.md §5.4's formula.

hash = sha256(bytes.fromhex(prev_hash) + canonical(entry minus "hash" and "prev_hash")),
canonical = json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False) as UTF-8.
The expected body is built here field by field from the draft, not with the code under test.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.clock import format_ts
from ledger.entry import (
    GENESIS_HASH,
    Draft,
    Entry,
    body_bytes,
    entry_decoder,
    seal,
    verify_chain,
)

# Any Unicode except lone surrogates (not encodable as UTF-8, so never valid JSON text).
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
INT = st.integers(min_value=-(2**53), max_value=2**53)


def spec_hash(prev_hash: str, body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical.encode("utf-8")).hexdigest()


def spec_body(d: Draft, *, seq: int, entry_id: str, terminal: str) -> dict[str, Any]:
    """Every Entry field except the two chain keys, written out by hand."""
    return {
        "seq": seq,
        "id": entry_id,
        "ts": d.ts,
        "local_date": d.local_date,
        "terminal": terminal,
        "kind": d.kind,
        "card": d.card,
        "amount_gr": d.amount_gr,
        "points_earned": d.points_earned,
        "points_redeemed": d.points_redeemed,
        "discount_gr": d.discount_gr,
        "benefits": list(d.benefits),
        "rules_version": d.rules_version,
        "cashier": d.cashier,
        "ref": d.ref,
        "sale_id": d.sale_id,
        "benefit_quantities": dict(d.benefit_quantities),
        "benefit_points": dict(d.benefit_points),
        "points_override": d.points_override,
        "override_reason": d.override_reason,
        "reason": d.reason,
        "balance_after": d.balance_after,
        "summary": None if d.summary is None else dict(d.summary),
    }


timestamps = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
    max_value=datetime(2099, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
).map(format_ts)

drafts = st.builds(
    Draft,
    ts=timestamps,
    local_date=st.dates().map(lambda d: d.isoformat()),
    kind=st.sampled_from(["sale", "void", "day_close"]) | TEXT,
    card=st.none() | TEXT,
    amount_gr=INT,
    points_earned=INT,
    points_redeemed=INT,
    discount_gr=INT,
    benefits=st.lists(TEXT, max_size=4).map(tuple),
    rules_version=TEXT,
    cashier=st.none() | TEXT,
    ref=st.none() | INT,
    sale_id=st.none() | TEXT,
    benefit_quantities=st.dictionaries(TEXT, INT, max_size=4),
    benefit_points=st.dictionaries(TEXT, INT, max_size=4),
    points_override=st.none() | INT,
    override_reason=st.none() | TEXT,
    reason=st.none() | TEXT,
    balance_after=st.none() | INT,
    summary=st.none() | st.dictionaries(TEXT, INT, max_size=4),
)


@settings(max_examples=300)
@given(chain=st.lists(drafts, min_size=1, max_size=6), terminal=TEXT)
def test_seal_matches_the_spec_formula(chain: list[Draft], terminal: str) -> None:
    prev = GENESIS_HASH
    sealed: list[Entry] = []
    for seq, d in enumerate(chain, start=1):
        entry_id = f"id-{seq}"
        e = seal(d, seq=seq, entry_id=entry_id, terminal=terminal, prev_hash=prev)
        expected_body = spec_body(d, seq=seq, entry_id=entry_id, terminal=terminal)
        assert e.prev_hash == prev
        assert e.hash == spec_hash(prev, expected_body)
        # The bytes the store keeps are exactly the spec's canonical text.
        assert json.loads(body_bytes(e)) == expected_body
        assert body_bytes(e) == json.dumps(
            expected_body, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
        sealed.append(e)
        prev = e.hash
    assert verify_chain(sealed) is None
    # The wire form (JSON of the whole entry) round-trips and still verifies.
    wire = [entry_decoder.decode(msgspec.json.encode(e)) for e in sealed]
    assert wire == sealed
    assert verify_chain([json.loads(msgspec.json.encode(e)) for e in sealed]) is None


def test_first_entry_links_to_64_zeros() -> None:
    d = Draft(ts="2026-11-18T11:00:00.000Z", local_date="2026-11-18", kind="sale", card="01-1")
    e = seal(d, seq=1, entry_id="x", terminal="T-0001", prev_hash=GENESIS_HASH)
    assert e.prev_hash == "0" * 64
    assert e.hash == spec_hash("0" * 64, spec_body(d, seq=1, entry_id="x", terminal="T-0001"))


def test_polish_text_is_hashed_as_utf8_not_escaped() -> None:
    d = Draft(
        ts="2026-11-18T11:00:00.000Z",
        local_date="2026-11-18",
        kind="void",
        card="01-000018",
        reason="Pomyłka kasjera: zła kwota — żółć",
    )
    e = seal(d, seq=1, entry_id="x", terminal="T-0001", prev_hash=GENESIS_HASH)
    assert "Pomyłka kasjera: zła kwota — żółć".encode() in body_bytes(e)
    assert b"\\u" not in body_bytes(e)


@settings(max_examples=100)
@given(
    chain=st.lists(drafts, min_size=2, max_size=5),
    data=st.data(),
)
def test_verify_chain_reports_the_first_changed_entry(
    chain: list[Draft], data: st.DataObject
) -> None:
    prev = GENESIS_HASH
    dicts: list[dict[str, Any]] = []
    for seq, d in enumerate(chain, start=1):
        e = seal(d, seq=seq, entry_id=f"id-{seq}", terminal="T", prev_hash=prev)
        dicts.append(e.to_dict())
        prev = e.hash
    k = data.draw(st.integers(0, len(dicts) - 1))
    field = data.draw(st.sampled_from(["amount_gr", "card", "seq", "prev_hash", "hash"]))
    changed = dict(dicts[k])
    if field == "amount_gr":
        changed[field] = changed[field] + 1
    elif field == "card":
        changed[field] = (changed[field] or "") + "x"
    elif field == "seq":
        changed[field] = changed[field] + 100
    else:
        changed[field] = "f" * 64 if changed[field] != "f" * 64 else "e" * 64
    dicts[k] = changed
    err = verify_chain(dicts)
    assert err is not None
    assert err.seq == k + 1
