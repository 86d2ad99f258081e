"""The catalogue: feeds applied whole or not at all; lookups by number and UID."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.clock import FakeClock
from ledger.domain import CardRecord, CardRemoved, CardStatus, Holder, Program, Rules
from sync.catalog import Catalog, card_line
from sync.wire import CardsEnd, CardsHeader, encode_line


def card(i: int, status: CardStatus = CardStatus.ACTIVE, points: int = 0) -> CardRecord:
    return CardRecord(
        number=f"01-{i:06d}",
        status=status,
        holder=Holder(display_name=f"Zofia Ż. {i}", birth_date=date(1950, 2, 28)),
        uids=(f"04A1{i:06X}",),
        programs=(Program(code="senior", valid_to=date(2027, 12, 31)),),
        points=points,
    )


def feed(
    version: int,
    items: Iterable[CardRecord | CardRemoved],
    *,
    full: bool,
    count: int | None = None,
    end: bool = True,
) -> list[bytes]:
    body = [card_line(x) for x in items]
    out = [encode_line(CardsHeader(version=version, full=full)), *body]
    if end:
        out.append(encode_line(CardsEnd(end=True, count=len(body) if count is None else count)))
    return out


async def agen(lines: Iterable[bytes]) -> AsyncIterator[bytes]:
    for line in lines:
        yield line


async def snapshot(cat: Catalog) -> dict[str, bytes]:
    rows = await cat._r.execute_fetchall("SELECT number, data FROM cards ORDER BY number")
    uids = await cat._r.execute_fetchall("SELECT uid, number FROM uids ORDER BY uid")
    out = {str(n): bytes(d) for n, d in rows}
    out.update({f"uid:{u}": str(n).encode() for u, n in uids})
    return out


async def test_full_then_delta_with_blocked_card(state_dir: Path, clock: FakeClock) -> None:
    async with await Catalog.open(state_dir / "catalog.sqlite", clock) as cat:
        assert cat.cards_age_s() is None
        res = await cat.apply_feed(agen(feed(1, [card(i) for i in range(1, 11)], full=True)))
        assert res.accepted
        assert res.full
        assert res.cards == 10
        assert cat.cards_version == 1
        clock.advance(30)
        assert cat.cards_age_s() == 30.0
        rec = await cat.lookup("01-000003")
        assert rec == card(3)
        assert await cat.by_uid("04a1000003") == card(3)  # UIDs match in any case
        delta: list[CardRecord | CardRemoved] = [
            card(3, CardStatus.BLOCKED),
            CardRemoved(number="01-000004", removed=True),
        ]
        res = await cat.apply_feed(agen(feed(2, delta, full=False)))
        assert res.accepted
        assert (res.cards, res.removed) == (1, 1)
        assert cat.cards_age_s() == 0.0
        blocked = await cat.lookup("01-000003")
        assert blocked is not None
        assert blocked.status == CardStatus.BLOCKED
        assert await cat.lookup("01-000004") is None
        assert await cat.by_uid("04A1000004") is None  # a removed card's UID goes with it
        assert await cat.card_count() == 9


async def test_state_survives_reopen(state_dir: Path, clock: FakeClock) -> None:
    path = state_dir / "catalog.sqlite"
    rules = Rules(version="r7")
    async with await Catalog.open(path, clock) as cat:
        await cat.apply_feed(agen(feed(5, [card(1)], full=True)))
        await cat.set_rules(rules, '"etag-7"')
        await cat.set_state({"acked_seq": "42"})
    clock.advance(60)
    async with await Catalog.open(path, clock) as cat:
        assert cat.cards_version == 5
        assert cat.cards_age_s() == 60.0
        assert cat.rules == rules
        assert cat.rules_etag == '"etag-7"'
        assert cat.get_state("acked_seq") == "42"
        assert await cat.lookup("01-000001") == card(1)


BAD_FEEDS = {
    "truncated": feed(9, [card(1), card(99, CardStatus.BLOCKED)], full=False, end=False),
    "wrong count": feed(9, [card(1), card(99)], full=False, count=3),
    "malformed line": [*feed(9, [card(1)], full=False)[:2], b'{"number": "01-0\n', b"x"],
    # A well-framed line that is not a card is quarantined alone (docs/architecture.md
    # §5.5; test_a_poisoned_line_is_refused_alone): only framing rejects a feed whole.
    "broken end line": [*feed(9, [card(1)], full=False)[:2], b'{"end": "yes", "count": 1}\n'],
    "a line that is not an object": [*feed(9, [card(1)], full=False)[:2], b"[1, 2]\n"],
    "no header": feed(9, [card(1)], full=True)[1:],
    "empty": [],
    "data after end": [*feed(9, [card(1)], full=True), card_line(card(2))],
    "oversize line": [
        encode_line(CardsHeader(version=9, full=True)),
        card_line(card(1)).replace(b'"Zofia', b'"' + b"Z" * 70_000),
        encode_line(CardsEnd(end=True, count=1)),
    ],
    "full snapshot truncated": feed(9, [card(i) for i in range(100, 120)], full=True, end=False),
}


@pytest.mark.parametrize("name", sorted(BAD_FEEDS))
async def test_bad_feed_keeps_the_old_catalogue(
    name: str, state_dir: Path, clock: FakeClock
) -> None:
    async with await Catalog.open(state_dir / "catalog.sqlite", clock) as cat:
        await cat.apply_feed(agen(feed(1, [card(i) for i in range(1, 6)], full=True)))
        before = await snapshot(cat)
        clock.advance(100)
        with structlog.testing.capture_logs() as logs:
            res = await cat.apply_feed(agen(BAD_FEEDS[name]))
        assert not res.accepted
        assert res.reason
        assert await snapshot(cat) == before
        assert cat.cards_version == 1
        assert cat.cards_age_s() == 100.0  # a rejected feed is not a refresh
        errors = [e for e in logs if e["event"] == "card_feed_rejected"]
        assert len(errors) == 1
        assert errors[0]["reason"] == res.reason
    # And nothing half-applied sits in the file for the next open.
    async with await Catalog.open(state_dir / "catalog.sqlite", clock) as cat:
        assert await snapshot(cat) == before
        assert cat.cards_version == 1


async def test_lookups_answer_while_a_full_load_streams(state_dir: Path, clock: FakeClock) -> None:
    """A sale must not wait for a snapshot being loaded; it sees the old list until the swap."""
    async with await Catalog.open(state_dir / "catalog.sqlite", clock) as cat:
        await cat.apply_feed(agen(feed(1, [card(1, points=5)], full=True)))
        gate = asyncio.Event()
        halfway = asyncio.Event()

        async def slow_feed() -> AsyncIterator[bytes]:
            lines = feed(2, [card(1, points=9), *(card(i) for i in range(2, 20_000))], full=True)
            for n, line in enumerate(lines):
                if n == 10_000:
                    halfway.set()
                    await gate.wait()
                yield line

        task = asyncio.create_task(cat.apply_feed(slow_feed()))
        try:
            await asyncio.wait_for(halfway.wait(), 30)
            seen = await asyncio.wait_for(cat.lookup("01-000001"), 2)
            assert seen is not None
            assert seen.points == 5
            assert await cat.lookup("01-015000") is None
        finally:
            gate.set()
            res = await asyncio.wait_for(task, 60)
        assert res.accepted
        now = await cat.lookup("01-000001")
        assert now is not None
        assert now.points == 9
        assert await cat.card_count() == 19_999


numbers = st.integers(min_value=1, max_value=30)
delta_item = st.one_of(
    st.builds(lambda i, p: card(i, points=p), numbers, st.integers(0, 1000)),
    st.builds(lambda i: CardRemoved(number=f"01-{i:06d}", removed=True), numbers),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    deltas=st.lists(
        st.tuples(st.lists(delta_item, max_size=12), st.booleans(), st.integers(0, 14)),
        max_size=6,
    )
)
async def test_deltas_match_a_model_and_broken_ones_change_nothing(
    tmp_path_factory: pytest.TempPathFactory,
    deltas: list[tuple[list[CardRecord | CardRemoved], bool, int]],
) -> None:
    clock = FakeClock(datetime(2026, 11, 18, 11, 0, tzinfo=UTC))
    path = tmp_path_factory.mktemp("cat") / "catalog.sqlite"
    model: dict[str, CardRecord] = {}
    async with await Catalog.open(path, clock) as cat:
        for version, (items, broken, cut) in enumerate(deltas, start=1):
            lines = feed(version, items, full=False)
            if broken:
                lines = lines[: min(cut, len(lines) - 1)]  # never the whole feed
                res = await cat.apply_feed(agen(lines))
                assert not res.accepted
                continue
            res = await cat.apply_feed(agen(lines))
            assert res.accepted
            for it in items:
                if isinstance(it, CardRemoved):
                    model.pop(it.number, None)
                else:
                    model[it.number] = it
            assert cat.cards_version == version
        for i in range(1, 31):
            num = f"01-{i:06d}"
            assert await cat.lookup(num) == model.get(num)
            assert await cat.by_uid(f"04a1{i:06x}") == model.get(num)


async def test_cancelled_feed_is_rolled_back_and_the_next_one_applies(
    state_dir: Path, clock: FakeClock
) -> None:
    """Shutdown in the middle of a big snapshot: nothing of it stays, the file stays usable."""
    async with await Catalog.open(state_dir / "catalog.sqlite", clock) as cat:
        await cat.apply_feed(agen(feed(1, [card(1, points=5)], full=True)))
        before = await snapshot(cat)
        stuck = asyncio.Event()

        async def endless() -> AsyncIterator[bytes]:
            for n, line in enumerate(feed(2, (card(i) for i in range(2, 30_000)), full=True)):
                if n == 12_000:  # two batches already handed to the writer
                    stuck.set()
                    await asyncio.Event().wait()
                yield line

        task = asyncio.create_task(cat.apply_feed(endless()))
        await asyncio.wait_for(stuck.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await snapshot(cat) == before
        assert cat.cards_version == 1
        res = await cat.apply_feed(agen(feed(3, [card(7)], full=False)))
        assert res.accepted
        assert await cat.lookup("01-000007") == card(7)


async def test_a_poisoned_line_is_refused_alone_and_the_rest_applies(
    state_dir: Path, clock: FakeClock
) -> None:
    # One terminal once made the city send "points": 9.2e18: every till rejected the
    # whole feed, so a card blocked in the same feed stayed active everywhere.
    poisoned = card_line(card(3)).replace(b'"points":0', b'"points":9.2e18')
    lines = [
        encode_line(CardsHeader(version=1, full=True)),
        card_line(card(1)),
        card_line(card(2, CardStatus.BLOCKED)),
        poisoned,
        b'{"holder": {"display_name": "bez numeru"}}\n',  # not even a number: skipped
        encode_line(CardsEnd(end=True, count=4)),
    ]
    async with await Catalog.open(state_dir / "catalog.sqlite", clock) as cat:
        with structlog.testing.capture_logs() as logs:
            res = await cat.apply_feed(agen(lines))
        assert res.accepted, res.reason
        blocked = await cat.lookup("01-000002")
        assert blocked is not None
        assert blocked.status == CardStatus.BLOCKED
        assert await cat.lookup("01-000001") == card(1)
        assert await cat.lookup("01-000003") is None
        assert await cat.is_invalid("01-000003")
        assert not await cat.is_invalid("01-000001")
        assert sum(e["event"] == "card_line_invalid" for e in logs) == 2
        # A delta that poisons a known card: its old record (active) must not stay usable.
        res = await cat.apply_feed(
            agen(
                [
                    encode_line(CardsHeader(version=2, full=False)),
                    card_line(card(1)).replace(b'"status":"active"', b'"status":5'),
                    encode_line(CardsEnd(end=True, count=1)),
                ]
            )
        )
        assert res.accepted
        assert await cat.lookup("01-000001") is None
        assert await cat.by_uid("04A1000001") is None
        assert await cat.is_invalid("01-000001")
        # The city mends it: the card is back and no longer refused.
        res = await cat.apply_feed(agen(feed(3, [card(1)], full=False)))
        assert res.accepted
        assert await cat.lookup("01-000001") == card(1)
        assert not await cat.is_invalid("01-000001")
        # Framing still rejects a cut feed whole, poisoned line or not.
        cut = await cat.apply_feed(agen(lines[:-1]))
        assert not cut.accepted
        assert await cat.lookup("01-000002") is not None


async def test_a_line_too_deep_to_decode_is_refused_alone(
    state_dir: Path, clock: FakeClock
) -> None:
    # msgspec raised RecursionError on it, which aborted the whole feed (not a WireError):
    # the card blocked in the same feed stayed active.
    deep = b"[" * 5000 + b"]" * 5000
    lines = [
        encode_line(CardsHeader(version=1, full=True)),
        card_line(card(1)),
        card_line(card(2, CardStatus.BLOCKED)),
        card_line(card(3)).replace(b'"status":"active"', b'"status":' + deep),
        encode_line(CardsEnd(end=True, count=3)),
    ]
    async with await Catalog.open(state_dir / "catalog.sqlite", clock) as cat:
        res = await cat.apply_feed(agen(lines))
        assert res.accepted, res.reason
        blocked = await cat.lookup("01-000002")
        assert blocked is not None
        assert blocked.status == CardStatus.BLOCKED
        assert await cat.lookup("01-000003") is None
        assert await cat.is_invalid("01-000003")
        # A deep end line is framing: the feed has no end and is refused whole.
        cut = [encode_line(CardsHeader(version=2, full=True)), *lines[1:-1]]
        cut.append(b'{"end": true, "count": ' + deep + b"}\n")
        res = await cat.apply_feed(agen(cut))
        assert not res.accepted
        assert "end" in (res.reason or ""), res.reason
        cut[-1] = encode_line(CardsEnd(end=True, count=3))
        assert (await cat.apply_feed(agen(cut))).accepted  # the same feed with its end applies
