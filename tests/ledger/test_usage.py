"""The usage book is a pure function of the ledger: rebuilt or incremental, it agrees."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain import Benefit
from ledger.rules import SaleRequest, card_balance
from ledger.usage import UsageBook
from tests.ledger.test_rules_support import Till, make_card, make_rules, warsaw

NOON = warsaw(2026, 11, 18)
B1 = Benefit(id="b1", name="Basen", points=3, limited=True, max_persons=1000)
B2 = Benefit(id="b2", name="Kino", points=1)
RULES = make_rules(B1, B2)
CARDS = [make_card(number=f"01-00000{i}", points=1000) for i in range(1, 4)]


class Sell(NamedTuple):
    card: int
    amount: int
    benefits: frozenset[str]
    redeem: int
    minutes: int  # from noon; negative steps the clock back


class Void(NamedTuple):
    seq: int


class Ack(NamedTuple):
    seq: int


Step = Sell | Void | Ack

steps = st.lists(
    st.one_of(
        st.builds(
            Sell,
            card=st.integers(min_value=0, max_value=2),
            amount=st.integers(min_value=0, max_value=20_000),
            benefits=st.frozensets(st.sampled_from(["b1", "b2"])),
            redeem=st.sampled_from([0, 100]),
            minutes=st.integers(min_value=-90, max_value=600),
        ),
        st.builds(Void, seq=st.integers(min_value=0, max_value=30)),
        st.builds(Ack, seq=st.integers(min_value=0, max_value=30)),
    ),
    max_size=25,
)


def queries(book: UsageBook) -> tuple[object, ...]:
    out: list[object] = [book.last_seq]
    for c in CARDS:
        n = c.number
        out += [
            book.points_delta_after(n, None),
            book.points_delta_after(n, NOON),
            book.uses_between(n, "b1", None, None),
            book.uses_between(n, "b2", date(2026, 11, 18), date(2026, 11, 19)),
            book.redemptions_on(n, date(2026, 11, 18)),
            book.has_used(n, "b1"),
        ]
    out += [book.pending_persons("b1"), book.pending_persons("b2")]
    out += [book.day("2026-11-18").summary(), book.day("2026-11-19").summary()]
    return tuple(out)


@given(script=steps)
def test_rebuilt_book_equals_the_incremental_one(script: list[Step]) -> None:
    till = Till()
    acked = 0
    for step in script:
        if isinstance(step, Sell):
            sale = SaleRequest(
                amount_gr=step.amount,
                benefit_ids=tuple(sorted(step.benefits)),
                redeem_points=step.redeem,
            )
            till.try_sell(CARDS[step.card], RULES, sale, NOON + timedelta(minutes=step.minutes))
        elif isinstance(step, Void):
            if 1 <= step.seq <= len(till.entries):
                e = till.entries[step.seq - 1]
                if e.kind == "sale" and till.voided_by(step.seq) is None:
                    till.void(step.seq, NOON + timedelta(hours=11))
        else:
            acked = max(acked, min(step.seq, len(till.entries)))
            till.usage.set_acknowledged(acked)
    till.verify()
    rebuilt = UsageBook.from_entries(till.entries)
    rebuilt.set_acknowledged(acked)
    assert queries(rebuilt) == queries(till.usage)
    # replaying entries already applied changes nothing
    for e in till.entries:
        rebuilt.apply(e)
    assert queries(rebuilt) == queries(till.usage)


def test_balance_counts_only_entries_after_the_feed_instant() -> None:
    till = Till()
    card = make_card(points=0)
    till.sell(card, RULES, SaleRequest(amount_gr=1000), warsaw(2026, 11, 18, 10))  # 10 pts
    till.sell(card, RULES, SaleRequest(amount_gr=2000), warsaw(2026, 11, 18, 11))  # 20 pts
    as_of = warsaw(2026, 11, 18, 10)  # the server's balance already holds the first sale
    synced = make_card(points=10, as_of=as_of)
    assert card_balance(synced, till.usage) == 30
    assert card_balance(make_card(points=0), till.usage) == 30  # no instant: every entry
    # a feed instant without an offset is UTC
    naive = as_of.astimezone(UTC).replace(tzinfo=None)
    assert till.usage.points_delta_after(card.number, naive) == 20
    # the instant is exclusive: an entry at exactly as_of is already in the server's figure
    assert till.usage.points_delta_after(card.number, as_of - timedelta(milliseconds=1)) == 30


def test_clock_stepping_back_keeps_balance_by_timestamp() -> None:
    """After an NTP fix an entry can carry an earlier ts than the one before it."""
    till = Till()
    card = make_card()
    till.sell(card, RULES, SaleRequest(amount_gr=5000), warsaw(2026, 11, 18, 15))  # 50
    till.sell(card, RULES, SaleRequest(amount_gr=700), warsaw(2026, 11, 18, 9))  # 7, clock back
    assert till.usage.points_delta_after(card.number, warsaw(2026, 11, 18, 12)) == 50
    assert till.usage.points_delta_after(card.number, warsaw(2026, 11, 18, 8)) == 57


def test_acknowledgement_moves_persons_to_the_server_count() -> None:
    till = Till()
    for c in CARDS:
        till.sell(c, RULES, SaleRequest(amount_gr=0, benefit_ids=("b1",)), NOON)
    assert till.usage.pending_persons("b1") == frozenset(c.number for c in CARDS)
    till.usage.set_acknowledged(2)
    assert till.usage.pending_persons("b1") == frozenset({CARDS[2].number})
    till.usage.set_acknowledged(1)  # an older ack changes nothing
    assert till.usage.acknowledged_seq == 2
    till.usage.set_acknowledged(3)
    assert till.usage.pending_person_count("b1") == 0
    assert all(till.usage.has_used(c.number, "b1") for c in CARDS)
    # a rebuild that is told the acknowledged seq first counts no pending person either
    book = UsageBook()
    book.set_acknowledged(3)
    for e in till.entries:
        book.apply(e)
    assert book.pending_person_count("b1") == 0


def test_day_close_and_unknown_refs_are_harmless() -> None:
    till = Till()
    till.sell(CARDS[0], RULES, SaleRequest(amount_gr=100), NOON)
    till.close_day("2026-11-18")
    assert till.usage.last_seq == 2
    assert till.usage.points_delta_after(CARDS[0].number, None) == 1


def test_usage_uses_entry_local_dates_not_the_machine_zone() -> None:
    """23:30 UTC on 17 Nov is 00:30 on 18 Nov in Warsaw: the use belongs to the 18th."""
    till = Till()
    till.sell(
        CARDS[0],
        RULES,
        SaleRequest(amount_gr=0, benefit_ids=("b2",)),
        datetime(2026, 11, 17, 23, 30, tzinfo=UTC),
    )
    n = CARDS[0].number
    assert till.usage.uses_between(n, "b2", date(2026, 11, 18), date(2026, 11, 19)) == 1
    assert till.usage.uses_between(n, "b2", date(2026, 11, 17), date(2026, 11, 18)) == 0
