"""GET /v1/cards (NDJSON full and delta) and GET /v1/partners/{pid}/rules (ETag)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import msgspec
import pytest

from ledger.domain import CardRecord, CardRemoved, CardStatus, Holder, Rules
from sync.wire import NDJSON, CardsEnd, CardsHeader, decode_card_line, decode_cards_header
from tests.sync.central_harness import TODAY_TS, CentralHarness, central, make_entries

pytestmark = pytest.mark.usefixtures("central_engine")  # on SQLite and PostgreSQL

__all__ = ["central"]

Line = CardRecord | CardRemoved


async def feed(
    http: aiohttp.ClientSession, since: int | str | None = None
) -> tuple[CardsHeader, list[Line], CardsEnd]:
    params = {} if since is None else {"since": str(since)}
    async with http.get("/v1/cards", params=params) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith(NDJSON)
        raw = await r.read()
    lines = raw.split(b"\n")
    assert lines[-1] == b""  # every line ends with a newline, the last one too
    header = decode_cards_header(lines[0])
    body = [decode_card_line(x) for x in lines[1:-1]]
    end = body.pop()
    assert isinstance(end, CardsEnd)
    cards: list[Line] = []
    for x in body:
        assert isinstance(x, CardRecord | CardRemoved)
        cards.append(x)
    return header, cards, end


async def test_full_feed_has_header_every_card_and_a_matching_end_count(
    central: CentralHarness,
) -> None:
    async with central.session() as http:
        header, cards, end = await feed(http)
    assert header.full is True
    assert header.version == await central.db.cards_version()
    assert end.count == len(cards) >= 55
    assert all(isinstance(c, CardRecord) for c in cards)
    numbers = [c.number for c in cards]
    assert len(set(numbers)) == len(numbers)


@pytest.mark.parametrize("since", [None, 0, -5, 10**9])
async def test_absent_zero_or_unknown_version_gives_the_full_list(
    central: CentralHarness, since: int | str | None
) -> None:
    async with central.session() as http:
        header, cards, _ = await feed(http, since)
    assert header.full is True
    assert len(cards) >= 55


@pytest.mark.parametrize(
    "query", ["since=abc", "since=1.5", "since=", "since=1&since=2", "since=1&full=1"]
)
async def test_bad_query_is_400(central: CentralHarness, query: str) -> None:
    async with central.session() as http, http.get(f"/v1/cards?{query}") as r:
        assert r.status == 400
        assert (await r.json())["error"] == "bad_request"


async def test_delta_carries_only_changes_including_blocks_and_removals(
    central: CentralHarness,
) -> None:
    async with central.session() as http:
        header, _, _ = await feed(http)
        v0 = header.version
        h, cards, end = await feed(http, v0)
        assert (h.full, h.version, cards, end.count) == (False, v0, [], 0)

        assert await central.db.set_card_status("01-000034", CardStatus.BLOCKED)
        await central.db.upsert_cards([CardRemoved(number="01-000083", removed=True)])
        new = CardRecord(
            number="02-1234567",
            status=CardStatus.ACTIVE,
            holder=Holder(display_name="Ścibor Ń."),
        )
        await central.db.upsert_cards([new])
        h, cards, end = await feed(http, v0)
        assert h.full is False
        assert h.version > v0
        assert end.count == len(cards) == 3
        by_number = {c.number: c for c in cards}
        blocked = by_number["01-000034"]
        assert isinstance(blocked, CardRecord)
        assert blocked.status is CardStatus.BLOCKED
        assert by_number["01-000083"] == CardRemoved(number="01-000083", removed=True)
        added = by_number["02-1234567"]
        assert isinstance(added, CardRecord)
        assert added.holder.display_name == "Ścibor Ń."

        # A delta from the newest version is empty; the full list lacks the removed card.
        h2, cards2, _ = await feed(http, h.version)
        assert cards2 == []
        assert h2.version == h.version
        _, full, _ = await feed(http)
        assert "01-000083" not in {c.number for c in full}


async def test_after_compaction_older_terminals_get_the_full_list(
    central: CentralHarness,
) -> None:
    async with central.session() as http:
        v0 = (await feed(http))[0].version
        await central.db.upsert_cards([CardRemoved(number="01-000083", removed=True)])
        v1 = (await feed(http))[0].version
        assert (await feed(http, v0))[0].full is False
        assert await central.db.compact_cards() == v1
        old, cards, _ = await feed(http, v0)  # cannot learn the removal from a delta
        assert old.full is True
        assert "01-000083" not in {c.number for c in cards}
        current, cards, _ = await feed(http, v1)
        assert (current.full, cards) == (False, [])


async def test_reloading_unchanged_cards_does_not_grow_the_delta(central: CentralHarness) -> None:
    card = await central.db.card("01-000018")
    assert card is not None
    v = await central.db.cards_version()
    await central.db.upsert_cards([card])  # same data, balance not given
    async with central.session() as http:
        _, cards, _ = await feed(http, v)
    assert cards == []


async def test_balances_in_the_feed_follow_received_entries(central: CentralHarness) -> None:
    async with central.session() as http:
        header, cards, _ = await feed(http)
        before = {c.number: c for c in cards}["01-000042"]
        assert isinstance(before, CardRecord)
        sales = make_entries(2, card="01-000042")
        body = central.batch_body(sales)
        async with http.post("/v1/terminals/T-0001/entries", data=body) as r:
            assert r.status == 200
        _, delta, _ = await feed(http, header.version)
    after = {c.number: c for c in delta}["01-000042"]
    assert isinstance(after, CardRecord)
    earned = sum(e.points_earned for e in sales)
    assert earned > 0
    assert after.points == before.points + earned
    assert after.points_as_of is not None
    assert before.points_as_of is not None
    assert after.points_as_of >= before.points_as_of


async def test_feed_can_be_gzip_compressed(central: CentralHarness) -> None:
    async with (
        central.session() as http,
        http.get("/v1/cards", headers={"Accept-Encoding": "gzip"}, auto_decompress=False) as r,
    ):
        assert r.headers.get("Content-Encoding") == "gzip"
        import gzip

        text = gzip.decompress(await r.read())
    assert text.endswith(b'{"end":true,"count":60}\n')


async def test_feed_and_rules_need_a_token(central: CentralHarness) -> None:
    async with aiohttp.ClientSession(base_url=central.url) as http:
        for path in ("/v1/cards", "/v1/partners/P-0001/rules"):
            async with http.get(path) as r:
                assert r.status == 401


async def test_rules_etag_and_304(central: CentralHarness) -> None:
    async with central.session() as http:
        async with http.get("/v1/partners/P-0001/rules") as r:
            assert r.status == 200
            etag = r.headers["ETag"]
            rules = msgspec.json.decode(await r.read(), type=Rules)
        assert rules.partner.name == "Kawiarnia Pod Żółwiem"
        async with http.get("/v1/partners/P-0001/rules", headers={"If-None-Match": etag}) as r:
            assert r.status == 304
            assert r.headers["ETag"] == etag
            assert await r.read() == b""
        async with http.get(
            "/v1/partners/P-0001/rules", headers={"If-None-Match": '"stale", ' + etag}
        ) as r:
            assert r.status == 304
        async with http.get("/v1/partners/P-0001/rules", headers={"If-None-Match": '"x"'}) as r:
            assert r.status == 200

        # A resident using a capped benefit changes the document: new ETag.
        sale = make_entries(1, card="01-000026", benefits=("B-105",), ts=TODAY_TS)
        body = central.batch_body(sale)
        async with http.post("/v1/terminals/T-0001/entries", data=body) as r:
            assert r.status == 200
        async with http.get("/v1/partners/P-0001/rules", headers={"If-None-Match": etag}) as r:
            assert r.status == 200
            assert r.headers["ETag"] != etag
            fresh = msgspec.json.decode(await r.read(), type=Rules)
    old_used = {b.id: b.persons_used for b in rules.benefits}
    new_used = {b.id: b.persons_used for b in fresh.benefits}
    assert new_used["B-105"] == old_used["B-105"] + 1


async def test_rules_of_another_partner_403_and_unknown_partner_404(
    central: CentralHarness,
) -> None:
    lonely = await central.enrol("T-0099", partner="P-0999")
    async with central.session() as http, http.get("/v1/partners/P-0002/rules") as r:
        assert (r.status, (await r.json())["error"]) == (403, "forbidden")
    async with central.session(lonely) as http, http.get("/v1/partners/P-0999/rules") as r:
        assert (r.status, (await r.json())["error"]) == (404, "not_found")


async def test_unknown_routes_and_methods_answer_json(central: CentralHarness) -> None:
    async with central.session() as http:
        async with http.get("/v1/nothing-here") as r:
            assert (r.status, (await r.json())["error"]) == (404, "not_found")
        async with http.delete("/v1/cards") as r:
            assert (r.status, (await r.json())["error"]) == (405, "method_not_allowed")


async def test_a_server_restarted_on_its_database_keeps_everything(tmp_path: Path) -> None:
    chain = make_entries(5)
    async with CentralHarness.start(tmp_path) as h, h.session() as http:
        async with http.post("/v1/terminals/T-0001/entries", data=h.batch_body(chain)) as r:
            assert r.status == 200
        version = await h.db.cards_version()
        token, key, database = h.token, h.key, h.db.database
    # Same database file, a new server process-equivalent: the head and cards survive.
    from config.schema import CentralConfig, CentralSection
    from sync.central import CentralServer

    cfg = CentralConfig(central=CentralSection(database=database))
    async with CentralServer(cfg, port=0) as server:
        h2 = CentralHarness(server=server, token=token, key=key)
        async with h2.session() as http:
            async with http.get("/v1/terminals/T-0001/head") as r:
                assert (await r.json())["seq"] == 5
            header, _, _ = await feed(http)
            assert header.version == version
