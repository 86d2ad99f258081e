"""Earning points on a purchase: rounding, minimum, cap, programme multipliers."""

from __future__ import annotations

import math
from datetime import date
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain import EarnRule, Rounding
from ledger.money import partner_cost_gr
from ledger.rules import SaleRequest, best_multiplier, purchase_points, round_div
from tests.ledger.test_rules_support import Till, make_card, make_rules, warsaw

NOON = warsaw(2026, 11, 18)
ROUNDINGS: tuple[Rounding, ...] = ("floor", "ceil", "half_up")

earn_rules = st.builds(
    EarnRule,
    gr_per_point=st.integers(min_value=1, max_value=10_000),
    rounding=st.sampled_from(ROUNDINGS),
    min_amount_gr=st.integers(min_value=0, max_value=10_000),
    max_points_per_sale=st.none() | st.integers(min_value=0, max_value=100_000),
)
amounts = st.integers(min_value=0, max_value=100_000_000)
multipliers = st.integers(min_value=0, max_value=10)


def exact_points(paid: int, earn: EarnRule, multiplier: int) -> int:
    """The same rule computed independently with exact fractions."""
    if paid <= 0 or paid < earn.min_amount_gr:
        return 0
    x = Fraction(paid * multiplier, earn.gr_per_point)
    if earn.rounding == "floor":
        p = math.floor(x)
    elif earn.rounding == "ceil":
        p = math.ceil(x)
    else:
        p = math.floor(x + Fraction(1, 2))
    if earn.max_points_per_sale is not None:
        p = min(p, earn.max_points_per_sale)
    return p


@given(paid=amounts, earn=earn_rules, multiplier=multipliers)
def test_integer_arithmetic_equals_exact_fractions(
    paid: int, earn: EarnRule, multiplier: int
) -> None:
    assert purchase_points(paid, earn, multiplier) == exact_points(paid, earn, multiplier)


@given(paid=amounts, earn=earn_rules, multiplier=multipliers)
def test_points_are_never_negative(paid: int, earn: EarnRule, multiplier: int) -> None:
    assert purchase_points(paid, earn, multiplier) >= 0


@given(a=amounts, b=amounts, earn=earn_rules, multiplier=multipliers)
def test_points_do_not_decrease_with_the_amount(
    a: int, b: int, earn: EarnRule, multiplier: int
) -> None:
    lo, hi = sorted((a, b))
    assert purchase_points(lo, earn, multiplier) <= purchase_points(hi, earn, multiplier)


@pytest.mark.parametrize(
    ("n", "d", "floor", "ceil", "half_up"),
    [
        (0, 100, 0, 0, 0),
        (49, 100, 0, 1, 0),
        (50, 100, 0, 1, 1),  # exactly half goes up
        (51, 100, 0, 1, 1),
        (100, 100, 1, 1, 1),
        (149, 100, 1, 2, 1),
        (150, 100, 1, 2, 2),
        (250, 100, 2, 3, 3),  # half_up, not banker's rounding (which gives 2)
        (12345, 100, 123, 124, 123),
    ],
)
def test_round_div(n: int, d: int, floor: int, ceil: int, half_up: int) -> None:
    assert round_div(n, d, "floor") == floor
    assert round_div(n, d, "ceil") == ceil
    assert round_div(n, d, "half_up") == half_up


def test_unknown_rounding_is_an_error() -> None:
    with pytest.raises(ValueError, match="rounding"):
        round_div(1, 1, "banker")


@pytest.mark.parametrize(
    ("amount", "min_amount", "points"),
    [(999, 1000, 0), (1000, 1000, 10), (1001, 1000, 10), (0, 0, 0)],
)
def test_min_amount_gr(amount: int, min_amount: int, points: int) -> None:
    assert purchase_points(amount, EarnRule(min_amount_gr=min_amount)) == points


@pytest.mark.parametrize(
    ("amount", "cap", "points"), [(4900, 50, 49), (5000, 50, 50), (9999, 50, 50)]
)
def test_max_points_per_sale(amount: int, cap: int, points: int) -> None:
    assert purchase_points(amount, EarnRule(max_points_per_sale=cap)) == points


def test_purchase_points_are_on_the_paid_amount_after_redemption() -> None:
    """12,00 zł bought, 10,00 zł paid with 100 points: points on 2,00 zł only."""
    card = make_card(points=100)
    till = Till()
    e = till.sell(card, make_rules(), SaleRequest(amount_gr=1200, redeem_points=100), NOON)
    assert (e.discount_gr, e.points_redeemed, e.points_earned) == (1000, 100, 2)


def test_min_amount_is_compared_with_the_paid_amount() -> None:
    card = make_card(points=100)
    rules = make_rules(earn=EarnRule(min_amount_gr=500))
    q = Till().quote(card, rules, SaleRequest(amount_gr=1400, redeem_points=100), NOON)
    assert q.purchase_points == 0  # paid 4,00 zł < 5,00 zł
    assert any(line.code == "below_min_amount" for line in q.explanation)


SENIOR_KDR = EarnRule(program_multipliers={"senior": 2, "kdr": 3, "zero": 0})


@pytest.mark.parametrize(
    ("programs", "multiplier"),
    [
        ((("mieszkaniec", date(2030, 1, 1)),), 1),
        ((("mieszkaniec", date(2030, 1, 1)), ("senior", date(2030, 1, 1))), 2),
        # the highest valid multiplier applies; they are not multiplied (2*3 would be 6)
        ((("senior", date(2030, 1, 1)), ("kdr", date(2030, 1, 1))), 3),
        # a package past its valid_to gives no multiplier
        ((("senior", date(2030, 1, 1)), ("kdr", date(2026, 11, 17))), 2),
        ((("senior", date(2030, 1, 1)), ("kdr", date(2026, 11, 18))), 3),  # last valid day
        # a multiplier below 1 never lowers the base rate of another package
        ((("mieszkaniec", date(2030, 1, 1)), ("zero", date(2030, 1, 1))), 1),
    ],
)
def test_program_multipliers(programs: tuple[tuple[str, date], ...], multiplier: int) -> None:
    card = make_card(programs=programs)
    assert best_multiplier(card, SENIOR_KDR, date(2026, 11, 18))[0] == multiplier
    q = Till().quote(card, make_rules(earn=SENIOR_KDR), SaleRequest(amount_gr=10_000), NOON)
    assert q.purchase_points == 100 * multiplier
    assert q.multiplier == multiplier


def test_multiplier_is_applied_before_the_single_rounding() -> None:
    """1,50 zł at 1 pt per 1,00 zł, senior x2: 3 points, not floor(1.5)*2 = 2."""
    earn = EarnRule(program_multipliers={"senior": 2})
    assert purchase_points(150, earn, 2) == 3


def test_the_explanation_adds_up_to_the_purchase_points() -> None:
    earn = EarnRule(program_multipliers={"senior": 2}, max_points_per_sale=150)
    card = make_card(programs=(("senior", date(2030, 1, 1)),))
    q = Till().quote(card, make_rules(earn=earn), SaleRequest(amount_gr=12_345), NOON)
    purchase_lines = [
        ln for ln in q.explanation if ln.code in ("purchase", "multiplier", "points_cap")
    ]
    assert [ln.code for ln in purchase_lines] == ["purchase", "multiplier", "points_cap"]
    assert sum(ln.points for ln in purchase_lines) == q.purchase_points == 150
    assert purchase_lines[0].text_pl == (
        "Zakup 123,45 zł: 123 pkt (1 pkt za każde 1,00 zł, zaokrąglenie w dół)"
    )


def test_partner_pays_ten_groszy_per_point_granted() -> None:
    """Programme offer: 1 point = 0.10 PLN net for the partner."""
    till = Till()
    e = till.sell(make_card(), make_rules(), SaleRequest(amount_gr=25_000), NOON)
    assert e.points_earned == 250
    assert partner_cost_gr(e.points_earned) == 2500  # 25,00 zł
    assert partner_cost_gr(1) == 10
