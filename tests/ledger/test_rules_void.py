"""Voids negate their sale exactly and give its usage back; the day summary adds up."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain import Benefit
from ledger.entry import EntryKind
from ledger.refusals import Refusal
from ledger.rules import SaleRequest, benefit_views, card_balance, day_summary, plan_void
from tests.ledger.test_rules_support import (
    FRESH,
    POLICY,
    Till,
    make_card,
    make_rules,
    refusal_code,
    warsaw,
)

NOON = warsaw(2026, 11, 18)
LIMITED = Benefit(
    id="b1",
    name="Basen",
    points=7,
    limited=True,
    uses_per_period=3,
    period="day",
    max_persons=1,
    unit="hours",
)
RULES = make_rules(LIMITED)
NEGATED = ("amount_gr", "points_earned", "points_redeemed", "discount_gr")


def test_void_negates_exactly_and_copies_what_was_used() -> None:
    card = make_card(points=300)
    till = Till()
    sale = SaleRequest(
        amount_gr=12_345, benefit_ids=("b1",), benefit_quantities={"b1": 2}, redeem_points=100
    )
    original = till.sell(card, RULES, sale, NOON)
    void = till.void(original.seq, NOON + timedelta(minutes=3), reason="  zwrot towaru ")
    till.verify()
    assert void.kind == EntryKind.VOID
    assert void.ref == original.seq
    assert void.card == original.card
    for name in NEGATED:
        assert getattr(void, name) == -getattr(original, name)
    assert void.benefits == original.benefits
    assert void.benefit_quantities == original.benefit_quantities == {"b1": 2}
    assert void.benefit_points == {"b1": -14}
    assert void.reason == "zwrot towaru"
    assert void.rules_version == original.rules_version


@pytest.mark.parametrize(
    ("target", "code"),
    [
        (1, "already_voided"),  # the sale was voided by seq 2
        (2, "cannot_void_void"),
        (3, "not_a_sale"),  # a day_close
    ],
)
def test_void_refusals(target: int, code: str) -> None:
    till = Till()
    till.sell(make_card(), RULES, SaleRequest(amount_gr=1000), NOON)
    till.void(1, NOON)
    till.close_day("2026-11-18")
    assert refusal_code(lambda: till.void(target, NOON)) == code


def test_void_needs_a_reason() -> None:
    till = Till()
    till.sell(make_card(), RULES, SaleRequest(amount_gr=1000), NOON)
    with pytest.raises(Refusal) as exc:
        plan_void(till.entries[0], till.usage, reason="  ")
    assert exc.value.code == "void_reason_required"


def test_void_plan_with_the_card_carries_the_balance_after() -> None:
    card = make_card(points=50)
    till = Till()
    till.sell(card, RULES, SaleRequest(amount_gr=10_000), NOON)
    assert card_balance(card, till.usage) == 150
    plan = plan_void(till.entries[0], till.usage, reason="pomyłka", card=card)
    assert plan.balance_after == 50


operations = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=50_000),  # amount
        st.integers(min_value=1, max_value=3),  # quantity of b1 (0 = not used)
        st.booleans(),  # use b1
        st.sampled_from([0, 100, 250]),  # redeem
    ),
    min_size=0,
    max_size=6,
)


@given(
    history=operations,
    amount=st.integers(min_value=0, max_value=50_000),
    qty=st.integers(min_value=1, max_value=3),
    redeem=st.sampled_from([0, 100, 250, 500]),
)
def test_sale_plus_void_leaves_balance_and_usage_where_they_were(
    history: list[tuple[int, int, bool, int]], amount: int, qty: int, redeem: int
) -> None:
    card = make_card(points=400)
    other = make_card(number="01-000099")
    till = Till()
    for i, (amt, q, use, red) in enumerate(history):
        sale = SaleRequest(
            amount_gr=amt,
            benefit_ids=("b1",) if use else (),
            benefit_quantities={"b1": q} if use else {},
            redeem_points=red,
        )
        till.try_sell(card, RULES, sale, NOON + timedelta(minutes=i))

    def snapshot() -> tuple[object, ...]:
        views = benefit_views(
            card, RULES, till.usage, NOON + timedelta(hours=1), catalog=FRESH, policy=POLICY
        )
        other_views = benefit_views(
            other, RULES, till.usage, NOON + timedelta(hours=1), catalog=FRESH, policy=POLICY
        )
        return (
            card_balance(card, till.usage),
            till.usage.uses_between(card.number, "b1", date(2026, 11, 18), date(2026, 11, 19)),
            till.usage.redemptions_on(card.number, date(2026, 11, 18)),
            till.usage.pending_person_count("b1"),
            [(v.available, v.reason, v.remaining) for v in views],
            [(v.available, v.reason) for v in other_views],
        )

    before = snapshot()
    sale = SaleRequest(
        amount_gr=amount, benefit_ids=("b1",), benefit_quantities={"b1": qty}, redeem_points=redeem
    )
    at = NOON + timedelta(minutes=30)
    if till.try_sell(card, RULES, sale, at) is None:
        return
    till.void(till.entries[-1].seq, at + timedelta(seconds=1))
    till.verify()
    assert snapshot() == before


def _entries_for_summary() -> Till:
    till = Till()
    card = make_card(points=1000)
    till.sell(card, RULES, SaleRequest(amount_gr=10_000), warsaw(2026, 11, 17, 23, 59))
    till.sell(
        card, RULES, SaleRequest(amount_gr=5_000, redeem_points=250), warsaw(2026, 11, 18, 0, 1)
    )
    till.sell(
        card, RULES, SaleRequest(amount_gr=2_000, benefit_ids=("b1",)), warsaw(2026, 11, 18, 9)
    )
    till.void(3, warsaw(2026, 11, 18, 10))
    till.sell(card, RULES, SaleRequest(amount_gr=1_234), warsaw(2026, 11, 18, 23, 59, 59))
    till.sell(card, RULES, SaleRequest(amount_gr=999), warsaw(2026, 11, 19, 0, 0))
    return till


def test_day_summary_counts_one_local_day() -> None:
    till = _entries_for_summary()
    s = day_summary(till.entries, "2026-11-18")
    assert s["sales"] == 3
    assert s["voids"] == 1
    assert s["sales_amount_gr"] == 5_000 + 2_000 + 1_234
    assert s["voids_amount_gr"] == -2_000
    assert s["amount_gr"] == 5_000 + 1_234
    assert s["discount_gr"] == 2_500
    assert s["points_redeemed"] == 250
    assert s["points_earned"] == 25 + 12  # the voided sale's 20 + 7 are gone
    assert s["partner_cost_gr"] == 370  # 37 points x 0,10 zł
    assert s["point_cost_gr"] == 10
    assert (s["first_seq"], s["last_seq"]) == (2, 5)
    empty = day_summary(till.entries, "2026-11-20")
    assert empty.pop("point_cost_gr") == 10
    assert set(empty.values()) == {0}


def test_the_partners_cost_is_counted_at_the_price_per_point_of_the_rules() -> None:
    # A rules document with point_cost_gr = 25: the Z report and the city count the same.
    from ledger.daytotals import DayTotals

    totals = DayTotals()
    for e in _entries_for_summary().entries:
        if e.local_date == "2026-11-18":
            totals.add(e)
    s = totals.summary(25)
    assert (s["points_earned"], s["point_cost_gr"], s["partner_cost_gr"]) == (37, 25, 925)
