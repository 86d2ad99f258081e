"""GET /v1/partners/{pid}/usage: usage per holder and date across the tills.

The contract: docs/architecture.md §5.8.

Against the real reference server on loopback: two tills of one partner upload signed
batches of sales and voids with benefits, and the feed sums them per holder (the card's
holder id, or its number) and local date.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import aiohttp
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.clock import FakeClock
from ledger.domain import Benefit, CardRecord, CardStatus, Holder, Program, Rules
from ledger.entry import GENESIS_HASH, Draft, Entry, seal
from sync.central import CentralDB
from sync.wire import (
    NDJSON,
    CardsEnd,
    UsageEnd,
    UsageHeader,
    UsageLine,
    WireError,
    decode_usage_header,
    decode_usage_line,
    public_key_b64,
    usage_path,
)
from tests.pgserver import execute_raw
from tests.sync.central_harness import PARTNER, TERMINAL, CentralHarness

pytestmark = pytest.mark.usefixtures("central_engine")  # on SQLite and PostgreSQL

T2 = "T-0002"
OTHER = "T-0099"  # a till of another partner (P-0002)
ANNA, JERZY = "01-000018", "01-000026"  # holders H-0001, H-0002
OLD_CARD, NEW_CARD = "01-000067", "01-000075"  # the replaced card and its duplicate: H-0006
TODAY = "2026-11-18"  # a Wednesday; the week's window opens on Monday 16 November

Key = tuple[str, str, str]  # holder, benefit, date


class Till:
    """One till's chain: sales and voids sealed as the terminal would, uploaded signed."""

    def __init__(self, h: CentralHarness, terminal: str, key: Ed25519PrivateKey) -> None:
        self.h, self.terminal, self.key = h, terminal, key
        self.entries: list[Entry] = []

    def _add(self, draft: Draft) -> Entry:
        seq = len(self.entries) + 1
        prev = self.entries[-1].hash if self.entries else GENESIS_HASH
        e = seal(draft, seq=seq, entry_id=f"0190-{self.terminal}-{seq}", terminal=self.terminal,
                 prev_hash=prev)  # fmt: skip
        self.entries.append(e)
        return e

    def sale(
        self,
        card: str | None,
        *benefits: str,
        day: str = TODAY,
        qty: dict[str, int] | None = None,
    ) -> Entry:
        return self._add(
            Draft(
                ts=f"{day}T10:00:00.000Z",
                local_date=day,
                kind="sale",
                card=card,
                amount_gr=1500,
                points_earned=0,  # usage_rules grant none
                benefits=benefits,
                benefit_quantities=qty or {},
                benefit_points=dict.fromkeys(benefits, 0),
                rules_version="2026.11-1",
                cashier="P-0001-K01",
                sale_id=f"{self.terminal}-sale-{len(self.entries) + 1}",
            )
        )

    def void(self, sale: Entry, *, day: str = TODAY) -> Entry:
        return self._add(
            Draft(
                ts=f"{day}T12:00:00.000Z",
                local_date=day,
                kind="void",
                card=sale.card,
                amount_gr=-sale.amount_gr,
                points_earned=-sale.points_earned,
                benefits=sale.benefits,
                benefit_quantities=dict(sale.benefit_quantities),
                benefit_points={k: -v for k, v in sale.benefit_points.items()},
                rules_version=sale.rules_version,
                cashier="P-0001-K01",
                ref=sale.seq,
                reason="pomyłka",
            )
        )

    def body(self, entries: list[Entry]) -> bytes:
        return self.h.batch_body(entries, key=self.key, terminal=self.terminal)

    async def upload(self, entries: list[Entry] | None = None) -> None:
        """Upload ``entries`` (default: everything after the server's head)."""
        if entries is None:
            head = await self.h.db.terminal(self.terminal)
            assert head is not None
            entries = self.entries[head.head.seq :]
        async with (
            self.h.session(self.h.tokens[self.terminal]) as http,
            http.post(f"/v1/terminals/{self.terminal}/entries", data=self.body(entries)) as r,
        ):
            assert r.status == 200, await r.text()


class Feed(msgspec.Struct, frozen=True):
    header: UsageHeader
    lines: list[UsageLine]

    @property
    def qty(self) -> dict[Key, int]:
        return {(u.holder, u.benefit, u.date.isoformat()): u.qty for u in self.lines}


async def usage(
    h: CentralHarness,
    since: int | None = None,
    *,
    terminal: str = TERMINAL,
    partner: str = PARTNER,
) -> Feed:
    async with h.session(h.tokens[terminal]) as http, http.get(usage_path(partner, since)) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Content-Type"].startswith(NDJSON)
        raw = await r.read()
    lines = raw.split(b"\n")
    assert lines[-1] == b""  # every line ends with a newline, the last one too
    header = decode_usage_header(lines[0])
    body = [decode_usage_line(x) for x in lines[1:-1]]
    end = body.pop()
    assert isinstance(end, CardsEnd)
    out: list[UsageLine] = []
    for x in body:
        assert isinstance(x, UsageLine)
        out.append(x)
    assert end.count == len(out)
    keys = [(u.holder, u.benefit, u.date) for u in out]
    assert len(set(keys)) == len(keys)  # one line per holder, benefit and date
    return Feed(header, out)


@pytest.fixture
async def h(tmp_path: Path, clock: FakeClock) -> AsyncIterator[CentralHarness]:
    """The server on the conftest clock: Wednesday 18 November 2026, noon in Warsaw."""
    async with CentralHarness.start(tmp_path, clock=clock) as harness:
        await harness.db.load_rules(PARTNER, await usage_rules(harness))
        yield harness


async def usage_rules(h: CentralHarness) -> Rules:
    """The demo partner's benefits and limits without their conditions and points, so
    every sale below is one the city credits (docs/architecture.md §5.9): these tests
    are about counting uses, not about who may use what."""
    rules = await h.db.rules(PARTNER)
    assert rules is not None
    free = tuple(
        msgspec.structs.replace(
            b,
            programs=(),
            age_min=None,
            age_max=None,
            valid_from=None,
            valid_to=None,
            min_points=None,
            points=0,
            points_locked=False,
        )
        for b in rules.benefits
    )
    return msgspec.structs.replace(
        rules, benefits=free, earn=msgspec.structs.replace(rules.earn, gr_per_point=10**9)
    )


@pytest.fixture
async def tills(h: CentralHarness) -> tuple[Till, Till]:
    key2 = Ed25519PrivateKey.generate()
    await h.enrol(T2, PARTNER, public_key_b64(key2))
    await h.enrol(OTHER, "P-0002", public_key_b64(Ed25519PrivateKey.generate()))
    return Till(h, TERMINAL, h.key), Till(h, T2, key2)


async def test_the_full_feed_sums_both_tills_per_holder_and_date(
    h: CentralHarness, tills: tuple[Till, Till]
) -> None:
    one, two = tills
    one.sale(ANNA, "B-103")
    one.sale(ANNA, "B-101")  # no limit: never in the feed
    two.sale(ANNA, "B-103")
    two.sale(JERZY, "B-106", qty={"B-106": 3})  # hours
    two.sale(JERZY, "B-106", "B-104", qty={"B-106": 1})  # B-104 defaults to 1
    await one.upload()
    await two.upload()
    for terminal in (TERMINAL, T2):  # every till of the partner sees the same lines
        feed = await usage(h, terminal=terminal)
        assert feed.header.full is True
        assert feed.header.version == await h.db.usage_version()
        assert feed.qty == {
            ("H-0001", "B-103", TODAY): 2,
            ("H-0002", "B-106", TODAY): 4,
            ("H-0002", "B-104", TODAY): 1,
        }


async def test_terminal_seq_is_the_requesting_terminals_head(
    h: CentralHarness, tills: tuple[Till, Till]
) -> None:
    one, two = tills
    assert (await usage(h)).header.terminal_seq == 0
    for _ in range(3):
        one.sale(ANNA, "B-103")
    for _ in range(5):
        two.sale(JERZY, "B-101")
    await one.upload()
    await two.upload()
    assert (await usage(h, terminal=TERMINAL)).header.terminal_seq == 3
    assert (await usage(h, terminal=T2)).header.terminal_seq == 5


async def test_a_delta_carries_changes_and_a_void_leaves_a_zero_line(
    h: CentralHarness, tills: tuple[Till, Till]
) -> None:
    one, two = tills
    day = "2026-11-17"
    sale1 = one.sale(ANNA, "B-103", day=day)
    sale2 = two.sale(ANNA, "B-103", day=day)
    two.sale(JERZY, "B-106", qty={"B-106": 2})
    await one.upload()
    await two.upload()
    full = await usage(h)
    v0 = full.header.version
    assert full.qty == {("H-0001", "B-103", day): 2, ("H-0002", "B-106", TODAY): 2}

    nothing = await usage(h, v0)
    assert (nothing.header.full, nothing.header.version, nothing.lines) == (False, v0, [])

    two.void(sale2)  # voided today: subtracted at the sale's date, the 17th
    await two.upload()
    delta = await usage(h, v0)
    assert delta.header.full is False
    assert delta.header.version > v0
    assert delta.qty == {("H-0001", "B-103", day): 1}  # Jerzy's line did not change

    v1 = delta.header.version
    one.void(sale1)
    await one.upload()
    delta = await usage(h, v1)
    assert delta.qty == {("H-0001", "B-103", day): 0}  # the removal
    assert (await usage(h, v0)).qty == {("H-0001", "B-103", day): 0}
    assert (await usage(h)).qty == {("H-0002", "B-106", TODAY): 2}  # full: no zero lines


async def test_a_sale_voided_in_its_own_batch_and_a_second_void_change_nothing(
    h: CentralHarness, tills: tuple[Till, Till]
) -> None:
    one, _ = tills
    kept = one.sale(JERZY, "B-103")
    sale = one.sale(ANNA, "B-103", "B-104")
    one.void(sale)
    await one.upload()
    assert (await usage(h)).qty == {("H-0002", "B-103", TODAY): 1}
    v = await h.db.usage_version()
    one.void(sale)  # the till refuses this; the city must not count it twice either
    one.void(one.entries[-1])  # a void of a void is no sale
    await one.upload()
    assert await h.db.usage_version() == v
    assert (await usage(h)).qty == {("H-0002", "B-103", TODAY): 1}
    one.void(kept)
    await one.upload()
    assert (await usage(h, v)).qty == {("H-0002", "B-103", TODAY): 0}


async def test_cards_of_one_holder_sum_and_a_card_without_holder_id_counts_alone(
    h: CentralHarness, tills: tuple[Till, Till]
) -> None:
    one, two = tills
    anon = CardRecord(
        number="02-7654321",
        status=CardStatus.ACTIVE,
        holder=Holder(display_name="Ń. N."),
        programs=(Program(code="mieszkaniec", valid_to=date(2030, 1, 1)),),
    )
    await h.db.upsert_cards([anon])
    one.sale(OLD_CARD, "B-103")
    two.sale(NEW_CARD, "B-103")
    one.sale(anon.number, "B-103")
    ghost = two.sale("09-0000000", "B-103")  # a card the city does not know
    await one.upload()
    await two.upload()
    assert (await usage(h)).qty == {
        ("H-0006", "B-103", TODAY): 2,
        ("02-7654321", "B-103", TODAY): 1,
    }
    # The unknown card's sale is held (§5.9); approved, it counts for its number.
    [held] = await h.db.quarantined()
    assert (held.terminal, held.seq, held.reason) == (T2, ghost.seq, "card_unknown")
    await h.db.decide(T2, ghost.seq, approve=True, by="operator")
    assert (await usage(h)).qty[("09-0000000", "B-103", TODAY)] == 1


async def test_the_holder_is_resolved_when_the_entry_is_received(
    h: CentralHarness, tills: tuple[Till, Till]
) -> None:
    one, _ = tills
    sale = one.sale(ANNA, "B-103")
    await one.upload()
    card = await h.db.card(ANNA)
    assert card is not None
    moved = msgspec.structs.replace(card, holder=msgspec.structs.replace(card.holder, id="H-9999"))
    await h.db.upsert_cards([moved])
    one.sale(ANNA, "B-103")
    await one.upload()
    assert (await usage(h)).qty == {
        ("H-0001", "B-103", TODAY): 1,
        ("H-9999", "B-103", TODAY): 1,
    }
    one.void(sale)  # takes back from the holder the sale counted for
    await one.upload()
    assert (await usage(h)).qty == {("H-9999", "B-103", TODAY): 1}


async def test_only_open_windows_and_every_date_of_a_persons_limit(
    h: CentralHarness, tills: tuple[Till, Till], clock: FakeClock
) -> None:
    one, _ = tills
    one.sale(ANNA, "B-104", day="2026-11-17")  # per day: yesterday's window is closed
    one.sale(ANNA, "B-104")
    one.sale(ANNA, "B-103", day="2026-11-15")  # per week: last Sunday is closed
    one.sale(ANNA, "B-103", day="2026-11-16")  # this Monday is open
    one.sale(ANNA, "B-106", day="2026-10-31", qty={"B-106": 2})  # per month: October closed
    one.sale(ANNA, "B-106", day="2026-11-01", qty={"B-106": 2})
    one.sale(ANNA, "B-105", day="2025-03-01")  # max_persons: every date
    await one.upload()
    open_now = {
        ("H-0001", "B-104", TODAY): 1,
        ("H-0001", "B-103", "2026-11-16"): 1,
        ("H-0001", "B-106", "2026-11-01"): 2,
        ("H-0001", "B-105", "2025-03-01"): 1,
    }
    feed = await usage(h)
    assert feed.qty == open_now
    # A delta does not carry a closed window's line either, even one just changed.
    one.sale(ANNA, "B-104", day="2026-11-10")
    await one.upload()
    assert (await usage(h, feed.header.version)).lines == []

    clock.set_wall(datetime(2026, 11, 23, 11, 0, tzinfo=UTC))  # next Monday
    assert (await usage(h)).qty == {
        ("H-0001", "B-106", "2026-11-01"): 2,
        ("H-0001", "B-105", "2025-03-01"): 1,
    }


async def test_a_replayed_batch_changes_nothing(
    h: CentralHarness, tills: tuple[Till, Till]
) -> None:
    one, _ = tills
    one.sale(ANNA, "B-103")
    one.sale(JERZY, "B-106", qty={"B-106": 2})
    await one.upload()
    before = await usage(h)
    for part in (one.entries, one.entries[1:]):
        await one.upload(part)  # an acknowledgement lost on the way back
    assert await h.db.usage_version() == before.header.version
    after = await usage(h)
    assert after == before
    assert (await usage(h, before.header.version)).lines == []


async def test_a_new_rules_document_sends_the_full_feed(
    h: CentralHarness, tills: tuple[Till, Till]
) -> None:
    one, _ = tills
    one.sale(ANNA, "B-101")  # no limit yet
    await one.upload()
    v0 = (await usage(h)).header.version
    assert (await usage(h)).lines == []
    rules = await h.db.rules(PARTNER)
    assert rules is not None
    limited = tuple(
        msgspec.structs.replace(b, uses_per_period=1, period="day") if b.id == "B-101" else b
        for b in rules.benefits
    )
    await h.db.load_rules(PARTNER, msgspec.structs.replace(rules, benefits=limited))
    feed = await usage(h, v0)  # a delta could not carry the line that existed before
    assert feed.header.full is True
    assert feed.qty == {("H-0001", "B-101", TODAY): 1}
    again = await usage(h, feed.header.version)
    assert (again.header.full, again.lines) == (False, [])


@pytest.mark.parametrize("since", [None, 0, -3, 10**9])
async def test_absent_zero_or_unknown_version_gives_the_full_feed(
    h: CentralHarness, tills: tuple[Till, Till], since: int | None
) -> None:
    one, _ = tills
    one.sale(ANNA, "B-103")
    await one.upload()
    feed = await usage(h, since)
    assert feed.header.full is True
    assert feed.qty == {("H-0001", "B-103", TODAY): 1}


async def test_another_partners_feed_is_403_and_a_token_is_needed(
    h: CentralHarness, tills: tuple[Till, Till]
) -> None:
    async with h.session(h.tokens[OTHER]) as http, http.get(usage_path(PARTNER)) as r:
        assert (r.status, (await r.json())["error"]) == (403, "forbidden")
    async with h.session() as http, http.get(usage_path("P-0002")) as r:
        assert (r.status, (await r.json())["error"]) == (403, "forbidden")
    async with aiohttp.ClientSession(base_url=h.url) as http, http.get(usage_path(PARTNER)) as r:
        assert (r.status, (await r.json())["error"]) == (401, "unauthorized")
    # The other partner's own feed does not see P-0001's tills.
    one, _ = tills
    one.sale(ANNA, "B-201")
    await one.upload()
    assert (await usage(h, terminal=OTHER, partner="P-0002")).lines == []


async def test_a_partner_without_rules_has_an_empty_feed(h: CentralHarness) -> None:
    await h.enrol("T-0098", "P-0998")
    feed = await usage(h, terminal="T-0098", partner="P-0998")
    assert (feed.header.full, feed.lines) == (True, [])


@pytest.mark.parametrize(
    "query", ["since=abc", "since=1.5", "since=", "since=1&since=2", "since=1&full=1", "x=1"]
)
async def test_a_malformed_query_is_400(h: CentralHarness, query: str) -> None:
    async with h.session() as http, http.get(f"{usage_path(PARTNER)}?{query}") as r:
        assert (r.status, (await r.json())["error"]) == (400, "bad_request")


async def test_the_feed_can_be_gzip_compressed(h: CentralHarness, tills: tuple[Till, Till]) -> None:
    import gzip

    one, _ = tills
    one.sale(ANNA, "B-103")
    await one.upload()
    async with (
        h.session() as http,
        http.get(
            usage_path(PARTNER), headers={"Accept-Encoding": "gzip"}, auto_decompress=False
        ) as r,
    ):
        assert r.headers.get("Content-Encoding") == "gzip"
        text = gzip.decompress(await r.read())
    assert text.endswith(
        b'{"holder":"H-0001","benefit":"B-103","date":"2026-11-18","qty":1}\n'
        b'{"end":true,"count":1}\n'
    )


# --- the wire decoders: a cut or malformed feed is refused -----------------------------


def test_the_decoders_read_what_the_server_writes() -> None:
    line = b'{"holder":"H-1","benefit":"B-1","date":"2026-11-18","qty":-2}'
    assert decode_usage_line(line) == UsageLine(
        holder="H-1", benefit="B-1", date=date(2026, 11, 18), qty=-2
    )
    assert decode_usage_line(b'{"end":true,"count":3}') == UsageEnd(end=True, count=3)
    header = decode_usage_header(b'{"version":4,"full":false,"terminal_seq":9}')
    assert header == UsageHeader(version=4, full=False, terminal_seq=9)


@pytest.mark.parametrize(
    "line",
    [
        b'{"holder":"H-1","benefit":"B-1","date":"2026-11-18","qty":1',  # cut
        b'{"holder":"H-1","benefit":"B-1","date":"2026-11-18","qty":1.0}',
        b'{"holder":"H-1","benefit":"B-1","date":"2026-11-18","qty":true}',
        b'{"holder":"H-1","benefit":"B-1","date":"2026-11-18","qty":"1"}',
        b'{"holder":"H-1","benefit":"B-1","date":"2026-11-18","qty":9007199254740992}',
        b'{"holder":"H-1","benefit":"B-1","date":"18.11.2026","qty":1}',
        b'{"holder":"","benefit":"B-1","date":"2026-11-18","qty":1}',
        b'{"holder":"H-1","date":"2026-11-18","qty":1}',
        b'{"end":true,"count":1.0}',
        b'{"end":true}',
        b'{"end":false,"count":1}',
        b"[1, 2]",
        b"",
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_a_malformed_feed_line_is_refused(line: bytes) -> None:
    with pytest.raises(WireError):
        decode_usage_line(line)


@pytest.mark.parametrize(
    "header",
    [
        b'{"version":1,"full":true}',  # the usage feed always says terminal_seq
        b'{"version":1.0,"full":true,"terminal_seq":0}',
        b'{"version":1,"full":1,"terminal_seq":0}',
        b'{"version":1,"full":true,"terminal_seq":-1}',
        b'{"version":1,"full":true,"terminal_seq":true}',
        b'{"version":1,"full":true,"terminal_seq":0',
    ],
)
def test_a_malformed_header_is_refused(header: bytes) -> None:
    with pytest.raises(WireError):
        decode_usage_header(header)


# --- a database from before the usage tables --------------------------------------------


async def test_a_database_from_before_usage_gets_it_built_from_its_entries(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with CentralHarness.start(tmp_path, clock=clock) as h:
        await h.db.load_rules(PARTNER, await usage_rules(h))
        key2 = Ed25519PrivateKey.generate()
        await h.enrol(T2, PARTNER, public_key_b64(key2))
        one, two = Till(h, TERMINAL, h.key), Till(h, T2, key2)
        held = two.sale("09-0000000", "B-103")  # held (card_unknown): never counted
        sale = one.sale(ANNA, "B-103")
        two.sale(ANNA, "B-103")
        two.sale(OLD_CARD, "B-106", qty={"B-106": 3})
        one.void(sale)
        await one.upload()
        await two.upload()
        expected = await usage(h)
        path, tokens = h.db.database, dict(h.tokens)
    # Make it what schema 2 was before usage: no usage tables, no usage meta keys.
    execute_raw(
        path,
        """
        DROP TABLE benefit_usage; DROP TABLE usage_sales; DROP TABLE usage_floors;
        DROP TABLE leases;
        DELETE FROM meta WHERE key IN ('usage_schema', 'usage_version');
        """,
    )

    async with await CentralDB.open(path, clock) as cdb:
        assert await cdb.meta("schema") == 2
        assert await cdb.meta("usage_schema") == 1
        assert await cdb.usage_version() > 0
        assert await cdb.leases(PARTNER, "B-105") == {}
    from config.schema import CentralConfig, CentralSection
    from sync.central import CentralServer

    cfg = CentralConfig(central=CentralSection(database=path))
    async with CentralServer(cfg, port=0, clock=clock) as server:
        h2 = CentralHarness(server=server, token=tokens[TERMINAL], key=h.key, tokens=tokens)
        rebuilt = await usage(h2)
        assert (
            rebuilt.qty
            == expected.qty
            == {
                ("H-0001", "B-103", TODAY): 1,
                ("H-0006", "B-106", TODAY): 3,
            }
        )
        assert rebuilt.header.terminal_seq == 2
        assert (held.card, "B-103", TODAY) not in rebuilt.qty
    # Opened again: built once, not again.
    async with await CentralDB.open(path, clock) as cdb:
        assert await cdb.usage_version() == rebuilt.header.version


async def test_unlimited_rules_give_no_lines(h: CentralHarness, tills: tuple[Till, Till]) -> None:
    one, _ = tills
    await h.db.load_rules(
        PARTNER,
        Rules(version="x", benefits=(Benefit(id="B-103", name="bez limitu", period="week"),)),
    )
    one.sale(ANNA, "B-103")
    await one.upload()
    assert (await usage(h)).lines == []
