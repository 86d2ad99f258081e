"""POST /v1/terminals/{tid}/entries and GET .../head against the real server on loopback."""

from __future__ import annotations

import asyncio
import gzip
import resource
import zlib
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.entry import GENESIS_HASH, Entry, Head, verify_chain
from sync.wire import UploadBatch, decode_error, encode, public_key_b64, sign_batch
from tests.pgserver import INTEGRITY_ERRORS, execute_raw
from tests.sync.central_harness import TERMINAL, TODAY_TS, CentralHarness, central, make_entries

pytestmark = pytest.mark.usefixtures("central_engine")  # on SQLite and PostgreSQL

__all__ = ["central"]  # the fixture, imported for pytest

ENTRIES = f"/v1/terminals/{TERMINAL}/entries"
HEAD = f"/v1/terminals/{TERMINAL}/head"
JSON = {"Content-Type": "application/json"}


async def post(
    http: aiohttp.ClientSession, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    async with http.post(ENTRIES, data=body, headers={**JSON, **(headers or {})}) as r:
        return r.status, await r.json()


async def head(http: aiohttp.ClientSession) -> Head:
    async with http.get(HEAD) as r:
        assert r.status == 200
        return msgspec.json.decode(await r.read(), type=Head)


async def stored(h: CentralHarness) -> list[dict[str, Any]]:
    return await h.db.entries(TERMINAL)


async def test_empty_head_is_zero_and_genesis(central: CentralHarness) -> None:
    async with central.session() as http:
        assert await head(http) == Head(seq=0, hash=GENESIS_HASH)


async def test_batches_append_in_order_and_every_entry_is_stored_as_sent(
    central: CentralHarness,
) -> None:
    chain = make_entries(7)
    async with central.session() as http:
        status, body = await post(http, central.batch_body(chain[:4]))
        assert (status, body) == (200, {"head": {"seq": 4, "hash": chain[3].hash}})
        status, body = await post(http, central.batch_body(chain[4:]))
        assert (status, body) == (200, {"head": {"seq": 7, "hash": chain[6].hash}})
        assert await head(http) == Head(seq=7, hash=chain[6].hash)
    rows = await stored(central)
    assert rows == [msgspec.json.decode(msgspec.json.encode(e)) for e in chain]
    assert verify_chain(rows) is None


async def test_replay_is_200_with_current_head_and_stores_nothing_twice(
    central: CentralHarness,
) -> None:
    chain = make_entries(6)
    async with central.session() as http:
        assert (await post(http, central.batch_body(chain)))[0] == 200
        # The whole batch again (an ack lost on the way back), and a part of it.
        for part in (chain, chain[1:3], chain[5:]):
            status, body = await post(http, central.batch_body(part))
            assert status == 200
            assert body == {"head": {"seq": 6, "hash": chain[5].hash}}
    assert len(await stored(central)) == 6


async def test_batch_overlapping_the_head_appends_only_the_new_part(
    central: CentralHarness,
) -> None:
    chain = make_entries(8)
    async with central.session() as http:
        assert (await post(http, central.batch_body(chain[:5])))[0] == 200
        status, body = await post(http, central.batch_body(chain[2:]))
        assert (status, body["head"]["seq"]) == (200, 8)
    assert [r["seq"] for r in await stored(central)] == list(range(1, 9))


async def test_gap_is_409_with_the_head_and_stores_nothing(central: CentralHarness) -> None:
    chain = make_entries(6)
    async with central.session() as http:
        assert (await post(http, central.batch_body(chain[:2])))[0] == 200
        status, body = await post(http, central.batch_body(chain[3:]))
    assert status == 409
    assert body["error"] == "gap"
    assert body["head"] == {"seq": 2, "hash": chain[1].hash}
    assert len(await stored(central)) == 2


async def test_different_hash_at_a_held_seq_is_a_fork_and_nothing_is_overwritten(
    central: CentralHarness,
) -> None:
    ours = make_entries(5)
    restored_copy = make_entries(6, salt="other-")  # a terminal restored from an old copy
    async with central.session() as http:
        assert (await post(http, central.batch_body(ours)))[0] == 200
        status, body = await post(http, central.batch_body(restored_copy[3:]))
        assert status == 409
        assert body["error"] == "fork"
        assert body["head"] == {"seq": 5, "hash": ours[4].hash}
        assert body["seq"] == 4
        assert await head(http) == Head(seq=5, hash=ours[4].hash)
    assert [r["hash"] for r in await stored(central)] == [e.hash for e in ours]


async def test_next_seq_not_linking_to_the_head_is_a_fork(central: CentralHarness) -> None:
    ours = make_entries(3)
    other = make_entries(4, salt="x-")
    async with central.session() as http:
        assert (await post(http, central.batch_body(ours)))[0] == 200
        status, body = await post(http, central.batch_body(other[3:]))  # seq 4, foreign prev
    assert (status, body["error"], body["head"]["seq"]) == (409, "fork", 3)
    assert len(await stored(central)) == 3


def _raw_body(
    entries: list[dict[str, Any]], key: Ed25519PrivateKey, last: tuple[int, str] | None = None
) -> bytes:
    seq, h = last or (entries[-1]["seq"], entries[-1]["hash"])
    sig, pub = sign_batch(key, TERMINAL, [{"seq": seq, "hash": h}])
    return msgspec.json.encode({"entries": entries, "signature": sig, "public_key": pub})


def _raws(entries: list[Entry]) -> list[dict[str, Any]]:
    return [msgspec.json.decode(msgspec.json.encode(e)) for e in entries]


@pytest.mark.parametrize(
    ("field", "value"),
    [("amount_gr", 1), ("points_earned", 999), ("card", "01-000026"), ("benefits", ["B-101"])],
)
async def test_entry_altered_after_signing_is_422_and_nothing_stored(
    central: CentralHarness, field: str, value: object
) -> None:
    raws = _raws(make_entries(4))
    body_ok = _raw_body(raws, central.key)
    tampered = msgspec.json.decode(body_ok)
    tampered["entries"][1][field] = value  # hash and signature left as they were
    async with central.session() as http:
        status, body = await post(http, msgspec.json.encode(tampered))
        assert (status, body["error"], body["seq"]) == (422, "bad_hash", 2)
        assert body["head"]["seq"] == 0
    assert await stored(central) == []


async def test_altered_entry_with_recomputed_hashes_fails_the_signature(
    central: CentralHarness,
) -> None:
    good = make_entries(3)
    forged = make_entries(3, points_earned=500)  # a consistent chain the terminal never signed
    sig, pub = sign_batch(central.key, TERMINAL, good)
    body = encode(UploadBatch(entries=forged, signature=sig, public_key=pub))
    async with central.session() as http:
        status, reply = await post(http, body)
    assert (status, reply["error"]) == (422, "bad_signature")
    assert await stored(central) == []


async def test_signature_by_another_key_is_refused(central: CentralHarness) -> None:
    chain = make_entries(3)
    thief = Ed25519PrivateKey.generate()
    # Signed by another key, but claiming the enrolled public key.
    sig, _ = sign_batch(thief, TERMINAL, chain)
    claimed = encode(UploadBatch(entries=chain, signature=sig, public_key=central.public_key))
    # Signed by another key and carrying that key (a forged public key).
    forged = central.batch_body(chain, key=thief)
    async with central.session() as http:
        s1, r1 = await post(http, claimed)
        s2, r2 = await post(http, forged)
    assert (s1, r1["error"]) == (422, "bad_signature")
    assert (s2, r2["error"]) == (422, "unknown_key")
    assert await stored(central) == []


async def test_signature_of_another_terminal_id_is_refused(central: CentralHarness) -> None:
    chain = make_entries(2)
    body = central.batch_body(chain, terminal="T-0002")  # message '{T-0002}:2:...'
    async with central.session() as http:
        status, reply = await post(http, body)
    assert (status, reply["error"]) == (422, "bad_signature")


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda e: e.update(terminal="T-0002"), "bad_entry"),
        (lambda e: e.update(amount_gr=10.5), "bad_entry"),
        (lambda e: e.update(extra={"rate": 0.5}), "bad_entry"),
        (lambda e: e.pop("kind"), "bad_entry"),
        (lambda e: e.update(seq="2"), "bad_entry"),
        (lambda e: e.update(hash="ZZ" * 32), "bad_hash"),
    ],
)
async def test_malformed_entries_are_422(central: CentralHarness, mutate: Any, error: str) -> None:
    raws = _raws(make_entries(3))
    mutate(raws[1])
    async with central.session() as http:
        status, body = await post(http, _raw_body(raws, central.key, (3, raws[2]["hash"])))
    assert (status, body["error"]) == (422, error)
    assert await stored(central) == []


async def test_unknown_extension_fields_are_hashed_as_received(central: CentralHarness) -> None:
    """Another terminal implementation may add fields: the hash covers them as sent."""
    from ledger.canonical import canonical
    from ledger.entry import chain_hash

    raw = _raws(make_entries(1))[0]
    raw["till_drawer"] = {"opened": True, "note": "zażółć gęślą jaźń"}
    body = {k: v for k, v in raw.items() if k not in ("hash", "prev_hash")}
    raw["hash"] = chain_hash(GENESIS_HASH, canonical(body))
    async with central.session() as http:
        status, reply = await post(http, _raw_body([raw], central.key))
    assert (status, reply["head"]["hash"]) == (200, raw["hash"])
    assert (await stored(central))[0]["till_drawer"]["note"] == "zażółć gęślą jaźń"


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"[]", b'{"entries": [], "signature": "", "public_key": ""}', b'{"entries": 5}'],
)
async def test_bodies_that_are_not_a_batch_are_400(central: CentralHarness, body: bytes) -> None:
    async with central.session() as http:
        status, reply = await post(http, body)
    assert (status, reply["error"]) == (400, "bad_request")


async def test_gzip_body_is_accepted(central: CentralHarness) -> None:
    chain = make_entries(50)
    async with central.session() as http:
        status, body = await post(
            http, gzip.compress(central.batch_body(chain)), {"Content-Encoding": "gzip"}
        )
        assert (status, body["head"]["seq"]) == (200, 50)
        status, body = await post(http, b"\x1f\x8b not really gzip", {"Content-Encoding": "gzip"})
        assert status == 400
        status, body = await post(http, central.batch_body(chain), {"Content-Encoding": "br2"})
        assert (status, body["error"]) == (415, "unsupported_encoding")
    assert len(await stored(central)) == 50


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_broken_or_cut_compressed_bodies_are_json_400(
    central: CentralHarness, encoding: str
) -> None:
    chain = make_entries(5)
    packed = _compress(central.batch_body(chain), encoding)
    async with central.session() as http:
        status, reply = await post(http, packed, {"Content-Encoding": encoding})
        assert status == 200, reply
        # post() reads the reply as JSON: a plain-text answer from the HTTP parser fails it.
        for broken in (b"\x00\xff garbage", packed[: len(packed) // 2]):
            status, reply = await post(http, broken, {"Content-Encoding": encoding})
            assert (status, reply["error"]) == (400, "bad_request")
    assert len(await stored(central)) == 5


async def test_a_compression_bomb_is_refused_without_inflating_it(tmp_path: Path) -> None:
    # ~64 KiB that would inflate to 64 MiB; made in pieces so the test holds no 64 MiB.
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    bomb = b"".join(z.compress(zeros) for _ in range(64)) + z.flush()
    assert len(bomb) < 100_000
    async with CentralHarness.start(tmp_path, max_body_bytes=1 << 20, seed=False) as h:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        async with h.session() as http:
            status, reply = await post(http, bomb, {"Content-Encoding": "gzip"})
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert (status, reply["error"]) == (413, "too_large")
    assert grown_mb < 32, f"the server's memory grew {grown_mb:.0f} MB"


def _compress(body: bytes, encoding: str) -> bytes:
    return gzip.compress(body) if encoding == "gzip" else zlib.compress(body)


async def test_oversize_body_is_413_and_nothing_is_stored(tmp_path: Path) -> None:
    async with CentralHarness.start(tmp_path, max_body_bytes=20_000, seed=False) as h:
        big = h.batch_body(make_entries(60))
        assert len(big) > 20_000
        async with h.session() as http:
            status, reply = await post(http, big)
            assert (status, reply["error"]) == (413, "too_large")
            # Small when compressed, too big when inflated: the limit is on what is read.
            packed = gzip.compress(big)
            assert len(packed) < 20_000
            status, reply = await post(http, packed, {"Content-Encoding": "gzip"})
            assert (status, reply["error"]) == (413, "too_large")
            status, _ = await post(http, h.batch_body(make_entries(5)))
            assert status == 200
        assert len(await h.db.entries(TERMINAL)) == 5


async def test_two_identical_uploads_at_once_store_each_entry_once(
    central: CentralHarness,
) -> None:
    chain = make_entries(300)
    body = central.batch_body(chain)
    async with central.session() as http:
        results = await asyncio.gather(*(post(http, body) for _ in range(4)))
    assert [s for s, _ in results] == [200] * 4
    assert {r["head"]["seq"] for _, r in results} == {300}
    assert len(await stored(central)) == 300


async def test_auth_401_without_or_with_unknown_token_403_for_another_terminal(
    central: CentralHarness,
) -> None:
    other = await central.enrol("T-0002")
    body = central.batch_body(make_entries(1))
    async with aiohttp.ClientSession(base_url=central.url) as http:
        for headers in (
            {},
            {"Authorization": "Bearer nope-nope-nope-nope"},
            {"Authorization": "Basic x"},
        ):
            async with http.get(HEAD, headers=headers) as r:
                assert r.status == 401
                assert (await r.json())["error"] == "unauthorized"
                assert "Bearer" in r.headers["WWW-Authenticate"]
            async with http.post(ENTRIES, data=body, headers=headers) as r:
                assert r.status == 401
        forbidden = {"Authorization": f"Bearer {other}"}
        async with http.get(HEAD, headers=forbidden) as r:
            assert (r.status, (await r.json())["error"]) == (403, "forbidden")
        async with http.post(ENTRIES, data=body, headers=forbidden) as r:
            assert r.status == 403
    assert await stored(central) == []


async def test_trust_on_first_use_learns_the_first_key_only_when_allowed(tmp_path: Path) -> None:
    chain = make_entries(4)
    async with CentralHarness.start(tmp_path / "strict", enrol_key=False, seed=False) as h:
        async with h.session() as http:
            status, reply = await post(http, h.batch_body(chain))
        assert (status, reply["error"]) == (422, "unknown_key")
        assert await h.db.entries(TERMINAL) == []
    async with CentralHarness.start(
        tmp_path / "tofu", enrol_key=False, trust_on_first_use=True, seed=False
    ) as h:
        async with h.session() as http:
            assert (await post(http, h.batch_body(chain[:2])))[0] == 200
            # From now on only that key: another one is a forged key.
            status, reply = await post(
                http, h.batch_body(chain[2:], key=Ed25519PrivateKey.generate())
            )
            assert (status, reply["error"]) == (422, "unknown_key")
            assert (await post(http, h.batch_body(chain[2:])))[0] == 200
        row = await h.db.terminal(TERMINAL)
        assert row is not None
        assert row.public_key == public_key_b64(h.key)


async def test_received_points_update_the_card_balance_and_the_feed_version(
    central: CentralHarness,
) -> None:
    before = await central.db.card("01-000026")
    assert before is not None
    version = await central.db.cards_version()
    chain = make_entries(3, card="01-000026")
    chain += make_entries(
        1, start_seq=4, prev_hash=chain[-1].hash, card="01-000026", points_redeemed=100
    )
    async with central.session() as http:
        assert (await post(http, central.batch_body(chain)))[0] == 200
    after = await central.db.card("01-000026")
    assert after is not None
    earned = sum(e.points_earned for e in chain)
    assert earned > 0
    assert after.points == before.points + earned - 100
    assert after.points_as_of is not None
    assert await central.db.cards_version() > version


async def test_benefit_users_are_counted_once_per_resident(central: CentralHarness) -> None:
    rules = await central.db.rules("P-0001")
    assert rules is not None
    base = {b.id: b.persons_used for b in rules.benefits}
    a = make_entries(2, card="01-000018", benefits=("B-105",), ts=TODAY_TS)
    b = make_entries(
        1, start_seq=3, prev_hash=a[-1].hash, card="01-000026", benefits=("B-105",), ts=TODAY_TS
    )
    async with central.session() as http:
        assert (await post(http, central.batch_body(a + b)))[0] == 200
    rules = await central.db.rules("P-0001")
    assert rules is not None
    used = {x.id: x.persons_used for x in rules.benefits}
    assert used["B-105"] == base["B-105"] + 2  # two residents, one of them twice
    assert used["B-101"] == base["B-101"]


async def test_received_entries_cannot_be_changed_in_the_database(
    central: CentralHarness,
) -> None:
    async with central.session() as http:
        assert (await post(http, central.batch_body(make_entries(2))))[0] == 200
    with pytest.raises(INTEGRITY_ERRORS, match="append-only"):
        execute_raw(central.db.database, "UPDATE entries SET hash = 'x' WHERE seq = 1")
    with pytest.raises(INTEGRITY_ERRORS, match="append-only"):
        execute_raw(central.db.database, "DELETE FROM entries")
    assert await central.db.entry_count(central.terminal) == 2


async def test_error_replies_decode_as_wire_errors(central: CentralHarness) -> None:
    async with (
        central.session() as http,
        http.post(ENTRIES, data=central.batch_body(make_entries(2, start_seq=5))) as r,
    ):
        err = decode_error(await r.read())
    assert err.error == "gap"
    assert err.head == Head.genesis()


async def test_logs_never_carry_tokens_and_mask_card_numbers(central: CentralHarness) -> None:
    import io

    import structlog

    from config.logging import configure_logging

    out = io.StringIO()
    configure_logging("debug", "json", stream=out)
    try:
        chain = make_entries(3, card="01-000026")
        async with central.session() as http:
            assert (await post(http, central.batch_body(chain)))[0] == 200
            assert (await post(http, central.batch_body(chain[2:])))[0] == 200  # replay
            assert (await post(http, central.batch_body(make_entries(2, salt="f-"))))[0] == 409
            bad = central.batch_body(chain, key=Ed25519PrivateKey.generate())
            assert (await post(http, bad))[0] == 422
        async with central.session("wrong-token-wrong-token") as http:
            assert (await post(http, central.batch_body(chain)))[0] == 401
    finally:
        structlog.reset_defaults()
    text = out.getvalue()
    events = [msgspec.json.decode(line) for line in text.splitlines()]
    assert {"upload_ok", "upload_replay", "upload_fork", "upload_refused"} <= {
        e["event"] for e in events
    }
    for secret in (central.token, "wrong-token-wrong-token", central.public_key):
        assert secret not in text
    assert "01-000026" not in text
