"""Redeeming points: exact tiers, the balance, the amount, and the offline policy."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain import DEFAULT_REDEEM_TIERS, RedeemTier
from ledger.money import format_pln
from ledger.refusals import Refusal
from ledger.rules import CatalogState, OfflinePolicy, SaleRequest, redeem_options
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
STALE = CatalogState(age_s=3600.0)  # older than stale_after_s, younger than the maximum
TOO_OLD = CatalogState(age_s=72 * 3600.0 + 1)


@pytest.mark.parametrize(
    ("points", "zl"), [(100, "10,00 zł"), (250, "25,00 zł"), (500, "50,00 zł")]
)
def test_the_programme_tiers(points: int, zl: str) -> None:
    """Częstochowa's offer: 100 pts -> 10 zł, 250 -> 25 zł, 500 -> 50 zł."""
    tier = next(t for t in DEFAULT_REDEEM_TIERS if t.points == points)
    assert format_pln(tier.discount_gr) == zl
    till = Till()
    card = make_card(points=500)
    e = till.sell(card, make_rules(), SaleRequest(amount_gr=10_000, redeem_points=points), NOON)
    assert e.points_redeemed == points
    assert format_pln(e.discount_gr) == zl
    assert e.balance_after == 500 - points + (10_000 - tier.discount_gr) // 100


@pytest.mark.parametrize(
    ("balance", "redeem", "amount", "code"),
    [
        (100, 100, 1000, None),  # exactly the balance, exactly the amount
        (99, 100, 5000, "insufficient_points"),
        (500, 150, 5000, "invalid_redeem_tier"),  # only an exact tier
        (500, -100, 5000, "invalid_redeem_tier"),
        (500, 100, 999, "discount_exceeds_amount"),
        (500, 500, 4999, "discount_exceeds_amount"),
        (500, 500, 5000, None),
    ],
)
def test_redeem_refusals(balance: int, redeem: int, amount: int, code: str | None) -> None:
    till = Till()
    sale = SaleRequest(amount_gr=amount, redeem_points=redeem)
    assert (
        refusal_code(lambda: till.quote(make_card(points=balance), make_rules(), sale, NOON))
        == code
    )


def test_insufficient_points_message_says_how_many() -> None:
    with pytest.raises(Refusal) as exc:
        Till().quote(
            make_card(points=99), make_rules(), SaleRequest(amount_gr=5000, redeem_points=100), NOON
        )
    assert exc.value.message == (
        "Za mało punktów na koncie na ten próg wymiany. Saldo: 99 pkt, potrzeba 100 pkt."
    )


@pytest.mark.parametrize(
    ("catalog", "done_today", "code"),
    [
        (FRESH, 3, None),  # online: no daily cap
        (STALE, 0, None),
        (STALE, 1, "offline_limit"),  # the per-day cap while offline (default 1)
        (TOO_OLD, 0, "offline_limit"),  # the card list is too old for any redemption
        (CatalogState(age_s=None), 0, "offline_limit"),  # never loaded
        (CatalogState(age_s=72 * 3600.0), 0, None),  # exactly the maximum age
    ],
)
def test_offline_policy(catalog: CatalogState, done_today: int, code: str | None) -> None:
    card = make_card(points=5000)
    till = Till()
    for _ in range(done_today):
        till.sell(card, make_rules(), SaleRequest(amount_gr=2000, redeem_points=100), NOON)
    sale = SaleRequest(amount_gr=2000, redeem_points=100)
    assert refusal_code(lambda: till.quote(card, make_rules(), sale, NOON, catalog=catalog)) == code
    # earning always works, whatever the catalogue's age
    e = till.sell(card, make_rules(), SaleRequest(amount_gr=2000), NOON, catalog=catalog)
    assert e.points_earned == 20


def test_offline_cap_is_per_local_day_and_configurable() -> None:
    card = make_card(points=5000)
    till = Till()
    policy = OfflinePolicy(redeem_per_card_per_day=2)
    sale = SaleRequest(amount_gr=2000, redeem_points=100)
    till.sell(card, make_rules(), sale, warsaw(2026, 11, 18, 10), catalog=STALE, policy=policy)
    till.sell(card, make_rules(), sale, warsaw(2026, 11, 18, 11), catalog=STALE, policy=policy)
    with pytest.raises(Refusal, match="offline_limit"):
        till.quote(
            card, make_rules(), sale, warsaw(2026, 11, 18, 23, 59), catalog=STALE, policy=policy
        )
    # a new Warsaw day (23:00 UTC is already midnight in CET)
    next_day = datetime.fromisoformat("2026-11-18T23:00:00+00:00")
    till.quote(card, make_rules(), sale, next_day, catalog=STALE, policy=policy)
    # a void gives the redemption back
    till.void(2, warsaw(2026, 11, 18, 12))
    till.quote(card, make_rules(), sale, warsaw(2026, 11, 18, 13), catalog=STALE, policy=policy)


def test_redeem_options() -> None:
    rules = make_rules(
        tiers=(RedeemTier(points=500, discount_gr=5000), RedeemTier(points=100, discount_gr=1000))
    )
    till = Till()

    def options(points: int, catalog: CatalogState = FRESH) -> list[int]:
        card = make_card(points=points)
        found = redeem_options(card, rules, till.usage, NOON, catalog=catalog, policy=POLICY)
        return [t.points for t in found]

    assert options(99) == []
    assert options(100) == [100]
    assert options(10_000) == [100, 500]  # smallest first
    assert options(10_000, TOO_OLD) == []
    assert (
        redeem_options(
            make_card(points=1000, programs=()),
            rules,
            till.usage,
            NOON,
            catalog=FRESH,
            policy=POLICY,
        )
        == []
    )  # an inactive card redeems nothing


@given(
    balance=st.integers(min_value=0, max_value=2000),
    amount=st.integers(min_value=0, max_value=20_000),
    redeem=st.sampled_from([0, 100, 250, 500]),
)
def test_redemption_never_overdraws_nor_exceeds_the_amount(
    balance: int, amount: int, redeem: int
) -> None:
    till = Till()
    card = make_card(points=balance)
    sale = SaleRequest(amount_gr=amount, redeem_points=redeem)
    code = refusal_code(lambda: till.quote(card, make_rules(), sale, NOON))
    if code is not None:
        assert code == ("insufficient_points" if redeem > balance else "discount_exceeds_amount")
        return
    q = till.quote(card, make_rules(), sale, NOON)
    assert q.points_redeemed <= q.balance_before
    assert q.balance_before - q.points_redeemed >= 0
    assert q.balance_after >= 0
    assert 0 <= q.discount_gr <= q.amount_gr
    assert q.balance_after == q.balance_before - q.points_redeemed + q.points_earned
