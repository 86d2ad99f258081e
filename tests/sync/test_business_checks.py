"""Whatever the till's engine sells, the city's business checks find in order
(docs/architecture.md §5.9): the pure check, over generated sales, days and cards."""

from __future__ import annotations

from datetime import date, datetime, time

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.clock import WARSAW
from ledger.rules import SaleRequest
from sync.central.business import check_sale
from sync.central.demo_data import demo_number
from tests.ledger.test_rules_support import Till
from tests.sync.test_central_business import CARDS, RULES


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    serial=st.integers(min_value=1, max_value=60),
    amount=st.integers(min_value=0, max_value=200_000),
    picks=st.lists(st.sampled_from([b.id for b in RULES.benefits]), max_size=3, unique=True),
    qty=st.integers(min_value=1, max_value=4),
    redeem=st.sampled_from([0, 0, 100, 250, 500]),
    override=st.none() | st.integers(min_value=0, max_value=400),
    day=st.dates(min_value=date(2026, 1, 1), max_value=date(2028, 12, 31)),
)
def test_whatever_the_till_sells_the_city_finds_in_order(
    serial: int,
    amount: int,
    picks: list[str],
    qty: int,
    redeem: int,
    override: int | None,
    day: date,
) -> None:
    card = CARDS[demo_number(serial)]
    card = msgspec.structs.replace(card, points=10_000)  # enough for any tier
    sale = SaleRequest(
        amount_gr=amount,
        benefit_ids=tuple(picks),
        benefit_quantities=dict.fromkeys(picks, qty),
        redeem_points=redeem,
        points_override=override,
        override_reason="reklamacja" if override is not None else None,
    )
    at = datetime.combine(day, time(12, 0), tzinfo=WARSAW)
    e = Till().try_sell(card, RULES, sale, at)
    if e is not None:
        assert check_sale(e, RULES, card) is None
