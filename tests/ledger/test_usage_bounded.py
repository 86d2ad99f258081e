"""The bounded usage book answers exactly what a full recomputation from the ledger does.

The book forgets what has closed (docs/architecture.md §5.7); these histories cross day,
week, month and year boundaries and both DST changes, with voids, acknowledgements,
card feeds that move the points floor, restarts through the checkpoint and rules that
start limiting a benefit's lifetime later. After every step, for every card and benefit,
each query the rules engine can ask *today* is compared with a naive sum over all the
entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

from hypothesis import example, given, settings
from hypothesis import strategies as st

from ledger.clock import WARSAW, format_ts
from ledger.daytotals import day_summary
from ledger.entry import GENESIS_HASH, Draft, Entry, EntryKind, seal
from ledger.ids import uuid7
from ledger.periods import local_day, window_dates
from ledger.usage import ColdHolder, Flush, UsageBook

CARDS = ("01-000001", "01-000002", "01-000003")
BENEFITS = ("b-day", "b-life", "b-persons", "b-free")
PERIODS = ("day", "week", "month", "year")
# Starts just before a DST change, a month end and a year end (with its ISO week).
STARTS = (
    datetime(2026, 3, 27, 9, tzinfo=UTC),
    datetime(2026, 10, 23, 9, tzinfo=UTC),
    datetime(2026, 12, 27, 22, 30, tzinfo=UTC),
    datetime(2027, 2, 26, 12, tzinfo=UTC),
)


class Sell(NamedTuple):
    card: int
    benefits: frozenset[str]
    qty: int
    redeem: int
    earn: int
    later_min: int  # minutes after the previous step


class Void(NamedTuple):
    pick: int  # which earlier sale (modulo)


class Ack(NamedTuple):
    back: int  # acknowledge up to head - back


class Feed(NamedTuple):
    back: int  # the city's card list now includes entries up to head - back


class Restart(NamedTuple):
    pass


class Track(NamedTuple):
    benefit: str  # the rules start limiting this benefit's lifetime / persons


class Checkpoint(NamedTuple):
    fails: bool  # the write of snapshot + cold tables fails (disk full): nothing changes


Step = Sell | Void | Ack | Feed | Restart | Track | Checkpoint


class MemoryCold:
    """The cold store as the SQLite tables of terminal/readmodels.py keep it."""

    def __init__(self) -> None:
        self.windows: dict[str, dict[str, dict[int, tuple[int, int]]]] = {}
        self.lifetime: dict[str, dict[str, int]] = {}

    def holder(self, holder: str) -> ColdHolder:
        return ColdHolder(
            windows={b: dict(v) for b, v in self.windows.get(holder, {}).items()},
            lifetime=dict(self.lifetime.get(holder, {})),
        )

    def apply(self, f: Flush) -> None:
        for h, b, seq, day, qty in f.windows:
            self.windows.setdefault(h, {}).setdefault(b, {})[seq] = (day, qty)
        for h, b, seq in f.voided:
            self.windows.get(h, {}).get(b, {}).pop(seq, None)
        for h, b, q in f.lifetime:
            left = self.lifetime.setdefault(h, {}).get(b, 0) + q
            if left:
                self.lifetime[h][b] = left
            else:
                del self.lifetime[h][b]
        if f.horizon is not None:
            for by_b in self.windows.values():
                for b, by_seq in by_b.items():
                    by_b[b] = {s: u for s, u in by_seq.items() if u[0] >= f.horizon}


steps = st.lists(
    st.one_of(
        st.builds(
            Sell,
            card=st.integers(0, len(CARDS) - 1),
            benefits=st.frozensets(st.sampled_from(BENEFITS), max_size=2),
            qty=st.integers(1, 3),
            redeem=st.sampled_from([0, 0, 50]),
            earn=st.integers(0, 40),
            later_min=st.one_of(
                st.integers(0, 90), st.integers(600, 3 * 24 * 60), st.integers(0, 40 * 24 * 60)
            ),
        ),
        st.builds(Void, pick=st.integers(0, 1000)),
        st.builds(Ack, back=st.integers(0, 5)),
        st.builds(Feed, back=st.integers(0, 5)),
        st.just(Restart()),
        st.builds(Track, benefit=st.sampled_from(BENEFITS)),
        st.builds(Checkpoint, fails=st.booleans()),
    ),
    max_size=40,
)


class Ledger:
    """Entries as the store would hold them, and the clock that made them."""

    def __init__(self, start: datetime) -> None:
        self.entries: list[Entry] = []
        self.now = start

    def append(self, draft: Draft) -> Entry:
        prev = self.entries[-1].hash if self.entries else GENESIS_HASH
        seq = len(self.entries) + 1
        e = seal(draft, seq=seq, entry_id=uuid7(seq), terminal="T-0001", prev_hash=prev)
        self.entries.append(e)
        return e

    def draft(self, **kw: object) -> Draft:
        return Draft(
            ts=format_ts(self.now),
            local_date=local_day(self.now, WARSAW).isoformat(),
            rules_version="r1",
            cashier="K-1",
            **kw,  # type: ignore[arg-type]
        )

    def voided(self) -> set[int]:
        return {e.ref for e in self.entries if e.kind == EntryKind.VOID and e.ref is not None}


def oracle_uses(
    entries: Sequence[Entry], card: str, b: str, lo: date | None, hi: date | None
) -> int:
    voided = {e.ref for e in entries if e.kind == EntryKind.VOID}
    return sum(
        e.benefit_quantities.get(b, 1)
        for e in entries
        if e.kind == EntryKind.SALE
        and e.card == card
        and b in e.benefits
        and e.seq not in voided
        and (lo is None or date.fromisoformat(e.local_date) >= lo)
        and (hi is None or date.fromisoformat(e.local_date) < hi)
    )


def oracle_persons(entries: Sequence[Entry], b: str, acked: int) -> frozenset[str]:
    voided = {e.ref for e in entries if e.kind == EntryKind.VOID}
    return frozenset(
        e.card
        for e in entries
        if e.kind == EntryKind.SALE
        and e.card is not None
        and b in e.benefits
        and e.seq > acked
        and e.seq not in voided
    )


def check(book: UsageBook, led: Ledger, *, tracked: set[str], acked: int, floor: int) -> None:
    entries = led.entries
    today = local_day(led.now, WARSAW)
    voided = led.voided()
    for card in CARDS:
        for b in BENEFITS:
            for p in PERIODS:
                lo, hi = window_dates(p, today)  # type: ignore[arg-type]
                assert book.uses_between(card, b, lo, hi) == oracle_uses(entries, card, b, lo, hi)
            if b in tracked:
                assert book.uses_between(card, b, None, None) == oracle_uses(
                    entries, card, b, None, None
                )
                assert book.has_used(card, b) == (oracle_uses(entries, card, b, None, None) > 0)
        for seq_seen in (floor, floor + 2):
            assert book.points_delta_above(card, seq_seen) == sum(
                e.points_earned - e.points_redeemed
                for e in entries
                if e.card == card and e.seq > seq_seen
            )
        assert book.redemptions_on(card, today) == sum(
            1
            for e in entries
            if e.kind == EntryKind.SALE
            and e.card == card
            and e.points_redeemed > 0
            and e.seq not in voided
            and e.local_date == today.isoformat()
        )
    for b in BENEFITS:
        assert book.pending_persons(b) == oracle_persons(entries, b, acked)
    # the Z report's totals: today's always; yesterday's while the book still holds it
    assert book.day(today.isoformat()).summary() == day_summary(entries, today.isoformat())
    yesterday = (today - timedelta(days=1)).isoformat()
    if book.day(yesterday).last_seq:
        assert book.day(yesterday).summary() == day_summary(entries, yesterday)


_KAWA = Sell(card=0, benefits=frozenset({"b-day", "b-life"}), qty=2, redeem=0, earn=3, later_min=5)


@settings(max_examples=150, deadline=None)
@given(start=st.sampled_from(STARTS), script=steps, with_cold=st.booleans())
# The cold store's paths, always: a void of a use already written, a restart from the
# checkpoint, a failed write whose layer goes back into memory, a void during a flush.
@example(start=STARTS[1], script=[_KAWA, Checkpoint(fails=False), Void(pick=0)], with_cold=True)
@example(
    start=STARTS[2],
    script=[_KAWA, Checkpoint(fails=False), _KAWA, Restart(), Void(pick=1)],
    with_cold=True,
)
@example(
    start=STARTS[0],
    script=[_KAWA, Checkpoint(fails=True), Restart(), _KAWA, Checkpoint(fails=False), Restart()],
    with_cold=True,
)
def test_the_bounded_book_answers_what_the_whole_ledger_says(
    start: datetime, script: list[Step], with_cold: bool
) -> None:
    """With ``with_cold`` the book writes its uses to a cold store at checkpoints and a
    restart is the daemon's: the last checkpoint, the cold store, the entries after."""
    led = Ledger(start)
    tracked = {"b-persons"}
    acked = floor = 0
    cold = MemoryCold() if with_cold else None
    book = UsageBook(tz=WARSAW, today=local_day(start, WARSAW), tracked=tracked, cold=cold)
    saved: bytes | None = None
    for step in script:
        if isinstance(step, Sell):
            led.now += timedelta(minutes=step.later_min)
            book.prune(today=local_day(led.now, WARSAW))
            e = led.append(
                led.draft(
                    kind=EntryKind.SALE,
                    card=CARDS[step.card],
                    amount_gr=1000,
                    points_earned=step.earn,
                    points_redeemed=step.redeem,
                    benefits=tuple(sorted(step.benefits)),
                    benefit_quantities=dict.fromkeys(sorted(step.benefits), step.qty),
                )
            )
            book.apply(e)
        elif isinstance(step, Void):
            sales = [
                e for e in led.entries if e.kind == EntryKind.SALE and e.seq not in led.voided()
            ]
            if not sales:
                continue
            s = sales[step.pick % len(sales)]
            e = led.append(
                led.draft(
                    kind=EntryKind.VOID,
                    card=s.card,
                    amount_gr=-s.amount_gr,
                    points_earned=-s.points_earned,
                    points_redeemed=-s.points_redeemed,
                    benefits=s.benefits,
                    benefit_quantities=dict(s.benefit_quantities),
                    ref=s.seq,
                    reason="zwrot",
                )
            )
            book.apply(e)
        elif isinstance(step, Ack):
            acked = max(acked, len(led.entries) - step.back)
            book.set_acknowledged(acked)
        elif isinstance(step, Feed):
            floor = max(floor, len(led.entries) - step.back)
            book.prune(points_floor=floor)
        elif isinstance(step, Checkpoint):
            if cold is not None:
                flush, blob = book.begin_flush()
                if step.fails:
                    book.abort_flush()
                else:
                    cold.apply(flush)
                    book.end_flush()
                    saved = blob
        elif isinstance(step, Restart):
            if cold is None:
                book = UsageBook.restore(book.snapshot())
            else:
                today = local_day(led.now, WARSAW)
                if saved is None:
                    book = UsageBook(tz=WARSAW, today=today, tracked={"b-persons"}, cold=cold)
                else:
                    book = UsageBook.restore(saved, cold=cold)
                book.prune(today=today, points_floor=floor)
                need = book.needs_history(tracked)
                book.start_tracking(need)
                book.learn_history(need, [e for e in led.entries if e.seq <= book.last_seq])
                for e in led.entries[book.last_seq :]:
                    book.apply(e)
                book.set_acknowledged(acked)
        else:
            if step.benefit not in tracked:
                tracked.add(step.benefit)
                book.start_tracking([step.benefit])
                book.learn_history([step.benefit], led.entries)
        check(book, led, tracked=tracked, acked=acked, floor=floor)
    # A rebuild from every entry, with the same inputs, is the same book.
    rebuilt = UsageBook.from_entries(
        led.entries, tz=WARSAW, today=local_day(led.now, WARSAW), tracked=tracked
    )
    rebuilt.set_acknowledged(acked)
    rebuilt.prune(points_floor=floor)
    check(rebuilt, led, tracked=tracked, acked=acked, floor=floor)
    if cold is None:
        assert rebuilt.sizes() == book.sizes()


def test_what_closed_is_forgotten() -> None:
    """Years of history leave only the open windows, today and what the city lacks."""
    led = Ledger(datetime(2024, 1, 1, 10, tzinfo=UTC))
    book = UsageBook(tz=WARSAW, today=local_day(led.now, WARSAW), tracked={"b-persons"})
    for day in range(3 * 365):
        led.now = datetime(2024, 1, 1, 10, tzinfo=UTC) + timedelta(days=day)
        book.prune(today=local_day(led.now, WARSAW))
        for card in CARDS:
            book.apply(
                led.append(
                    led.draft(
                        kind=EntryKind.SALE,
                        card=card,
                        amount_gr=500,
                        points_earned=5,
                        points_redeemed=50 if day % 7 == 0 else 0,
                        benefits=("b-day", "b-persons"),
                    )
                )
            )
        if day % 30 == 0:
            book.set_acknowledged(len(led.entries))
            book.prune(points_floor=len(led.entries))
    today = local_day(led.now, WARSAW)
    open_days = (
        today - min(window_dates("year", today)[0], window_dates("week", today)[0])
    ).days + 1
    sizes = book.sizes()
    # both benefits' uses of this year (or week) only: the closed windows are gone
    assert sizes["window_uses"] == open_days * len(CARDS) * 2
    assert sizes["lifetime_pairs"] == len(CARDS)  # b-persons: one per card, not per sale
    assert sizes["points_deltas"] < 30 * len(CARDS)  # since the last card feed only
    assert sizes["pending_uses"] < 2 * 30 * len(CARDS)
    # and what it answers is still exact
    check(book, led, tracked={"b-persons"}, acked=book.acknowledged_seq, floor=book.points_floor)


def test_a_week_across_new_year_keeps_last_years_days() -> None:
    """Sat 2 January 2027 is in the week of Mon 28 December 2026: the horizon is that Monday."""
    led = Ledger(datetime(2026, 12, 30, 11, tzinfo=UTC))
    book = UsageBook(tz=WARSAW, today=date(2026, 12, 30), tracked=set())
    book.apply(
        led.append(led.draft(kind=EntryKind.SALE, card=CARDS[0], amount_gr=100, benefits=("b",)))
    )
    led.now = datetime(2027, 1, 2, 11, tzinfo=UTC)
    book.prune(today=date(2027, 1, 2))
    week = window_dates("week", date(2027, 1, 2))
    assert week[0] == date(2026, 12, 28)
    assert book.uses_between(CARDS[0], "b", *week) == 1
    assert book.uses_between(CARDS[0], "b", *window_dates("year", date(2027, 1, 2))) == 0
    led.now = datetime(2027, 1, 4, 11, tzinfo=UTC)  # Monday: a new week, last year is gone
    book.prune(today=date(2027, 1, 4))
    assert book.sizes()["window_uses"] == 0
