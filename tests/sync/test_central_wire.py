"""Wire types and batch signing (sync/wire.py)."""

from __future__ import annotations

import base64
import contextlib
from datetime import UTC, date, datetime

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain import CardRecord, CardRemoved, CardStatus, Holder, Program
from ledger.entry import GENESIS_HASH, Draft, Entry, Head, seal
from sync import wire

_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)

cards = st.builds(
    CardRecord,
    number=st.from_regex(r"\A\d{2}-\d{6,7}\Z"),
    status=st.sampled_from(list(CardStatus)),
    holder=st.builds(
        Holder,
        display_name=_text,
        birth_date=st.none() | st.dates(date(1900, 1, 1), date(2030, 1, 1)),
    ),
    uids=st.lists(st.binary(min_size=4, max_size=10).map(bytes.hex), max_size=3).map(tuple),
    programs=st.lists(
        st.builds(
            Program, code=st.sampled_from(["mieszkaniec", "senior", "kdr"]), valid_to=st.dates()
        ),
        max_size=3,
    ).map(tuple),
    points=st.integers(0, 10**9),
    points_as_of=st.none()
    | st.datetimes(
        min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
        max_value=datetime(2100, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
)
removals = st.builds(CardRemoved, number=st.from_regex(r"\A\d{2}-\d{6,7}\Z"), removed=st.just(True))
ends = st.builds(wire.CardsEnd, end=st.just(True), count=st.integers(0, 10**7))


@given(st.one_of(cards, removals, ends))
def test_every_feed_line_decodes_back_to_itself(
    line: CardRecord | CardRemoved | wire.CardsEnd,
) -> None:
    data = wire.encode_line(line)
    assert data.endswith(b"\n")
    assert data.count(b"\n") == 1
    assert wire.decode_card_line(data) == line


@given(st.binary(max_size=60))
def test_garbage_feed_lines_raise_wire_error_only(data: bytes) -> None:
    with contextlib.suppress(wire.WireError):
        wire.decode_card_line(data)


@pytest.mark.parametrize(
    "line",
    [
        b'{"end": false, "count": 3}',
        b'{"end": true}',
        b"[1, 2]",
        b'{"number": "01-0',
    ],
)
def test_lines_that_break_the_framing_are_refused(line: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.decode_card_line(line)


@pytest.mark.parametrize(
    "line",
    [
        b'{"number": "01-000018"}',  # neither card, removal nor end
        b'{"number": "01-000018", "removed": false}',
        b'{"number": "01-000018", "status": "lost", "holder": {"display_name": "A"}}',
        b'{"number": "01-000018", "status": "active", "holder": {"display_name": "A"},'
        b' "points": 9.2e18}',
    ],
)
def test_a_well_framed_line_that_is_no_card_is_quarantined_alone(line: bytes) -> None:
    # docs/architecture.md §5.5 (the city's contract 11.6): these used to reject the feed.
    got = wire.decode_card_line(line)
    assert isinstance(got, wire.CardLineInvalid)
    assert got.number == "01-000018"
    assert got.reason


def test_header_line() -> None:
    assert wire.decode_cards_header(b'{"version": 7, "full": true}') == wire.CardsHeader(
        version=7, full=True
    )
    with pytest.raises(wire.WireError):
        wire.decode_cards_header(b'{"end": true, "count": 0}')


def _entries(n: int) -> list[Entry]:
    out: list[Entry] = []
    prev = GENESIS_HASH
    for i in range(1, n + 1):
        d = Draft(
            ts="2026-11-18T11:00:00.000Z",
            local_date="2026-11-18",
            kind="sale",
            card="01-000018",
            amount_gr=100 * i,
        )
        e = seal(d, seq=i, entry_id=f"id-{i}", terminal="T-0001", prev_hash=prev)
        out.append(e)
        prev = e.hash
    return out


def test_signature_covers_terminal_last_seq_and_last_hash() -> None:
    key = Ed25519PrivateKey.generate()
    entries = _entries(3)
    sig, pub = wire.sign_batch(key, "T-0001", entries)
    last = entries[-1]
    assert wire.verify_batch_signature(pub, sig, "T-0001", 3, last.hash)
    # Each part of the message matters.
    assert not wire.verify_batch_signature(pub, sig, "T-0002", 3, last.hash)
    assert not wire.verify_batch_signature(pub, sig, "T-0001", 2, last.hash)
    assert not wire.verify_batch_signature(pub, sig, "T-0001", 3, entries[1].hash)
    # Another key does not verify it.
    other = wire.public_key_b64(Ed25519PrivateKey.generate())
    assert not wire.verify_batch_signature(other, sig, "T-0001", 3, last.hash)
    assert wire.signing_message("T-0001", 3, last.hash) == f"T-0001:3:{last.hash}".encode()
    assert len(base64.b64decode(pub)) == 32


@pytest.mark.parametrize(
    ("pub", "sig"),
    [("not base64!", "AAAA"), ("AAAA", "AAAA"), (None, "%%%"), (None, "")],
)
def test_malformed_keys_and_signatures_do_not_verify(pub: str | None, sig: str) -> None:
    key = Ed25519PrivateKey.generate()
    p = pub if pub is not None else wire.public_key_b64(key)
    assert not wire.verify_batch_signature(p, sig, "T-0001", 1, GENESIS_HASH)
    assert not wire.verify_batch_signature(p, sig, "T-ż", 1, GENESIS_HASH)


def test_upload_batch_encodes_entries_in_full_and_server_reads_them_raw() -> None:
    key = Ed25519PrivateKey.generate()
    entries = _entries(2)
    sig, pub = wire.sign_batch(key, "T-0001", entries)
    body = wire.encode(wire.UploadBatch(entries=entries, signature=sig, public_key=pub))
    raw = wire.decode_upload(body)
    assert [msgspec.convert(d, Entry) for d in raw.entries] == entries
    assert raw.entries[0] == msgspec.json.decode(msgspec.json.encode(entries[0]))


def test_error_reply_omits_empty_members() -> None:
    gap = wire.UploadError(error="gap", head=Head.genesis())
    assert msgspec.json.decode(wire.encode(gap)) == {
        "error": "gap",
        "head": {"seq": 0, "hash": GENESIS_HASH},
    }
    assert wire.decode_error(wire.encode(gap)) == gap
