"""The quote as a whole: request checks, determinism, drafts, refusal texts."""

from __future__ import annotations

import re
from datetime import date

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain import Benefit, CardStatus, EarnRule
from ledger.entry import EntryKind, request_fields
from ledger.refusals import DETAIL_MESSAGES, MESSAGES, Refusal, message_for
from ledger.rules import (
    CatalogState,
    SaleRequest,
    benefit_views,
    card_snapshot,
    quote,
    rules_problems,
)
from tests.ledger.test_rules_support import (
    FRESH,
    POLICY,
    Till,
    benefit,
    make_card,
    make_rules,
    refusal_code,
    warsaw,
)

NOON = warsaw(2026, 11, 18)

CONTRACT_CODES = {
    "card_unknown",
    "card_blocked",
    "card_inactive",
    "benefit_unavailable",
    "points_locked",
    "insufficient_points",
    "offline_limit",
    "invalid_amount",
    "inactive",
    "not_yet_valid",
    "expired",
    "age_below",
    "age_above",
    "program_missing",
    "points_below_threshold",
    "persons_limit_reached",
    "period_limit_reached",
    "override_reason_required",
    "already_voided",
    "cannot_void_void",
    "not_a_sale",
    "invalid_redeem_tier",
    "invalid_quantity",
}


def test_every_required_code_has_a_polish_message() -> None:
    assert MESSAGES.keys() >= CONTRACT_CODES
    assert set(DETAIL_MESSAGES) <= MESSAGES.keys()
    for code, text in MESSAGES.items():
        assert re.fullmatch(r"[a-z_]+", code)
        assert text[0].isupper()
        assert text.endswith(".")
    # the card_blocked text of the brief, diacritics included
    assert MESSAGES["card_blocked"] == "Karta zastrzeżona — nie można jej użyć."


def test_refusal_carries_code_message_and_details() -> None:
    r = Refusal("age_below", {"age": 17, "age_min": 18})
    assert r.code == "age_below"
    assert r.message == "Mieszkaniec jest za młody na ten benefit. Wymagany wiek od 18 lat."
    assert r.details == {"age": 17, "age_min": 18}
    assert message_for("age_below", {"age": 17}) == MESSAGES["age_below"]  # template incomplete
    with pytest.raises(KeyError, match="no message"):
        Refusal("made_up_code")


@pytest.mark.parametrize(
    ("sale", "code"),
    [
        (SaleRequest(amount_gr=-1), "invalid_amount"),
        (SaleRequest(amount_gr=100_000_001), "invalid_amount"),
        (SaleRequest(amount_gr=True), "invalid_amount"),
        (SaleRequest(amount_gr=0), None),  # a benefit-only visit
        (SaleRequest(amount_gr=100, benefit_ids=("b1", "b1")), "invalid_quantity"),
        (
            SaleRequest(amount_gr=100, benefit_ids=("b1",), benefit_quantities={"b2": 1}),
            "invalid_quantity",
        ),
        (
            SaleRequest(amount_gr=100, benefit_ids=("b1",), benefit_quantities={"b1": 0}),
            "invalid_quantity",
        ),
        (SaleRequest(amount_gr=100, benefit_ids=("nope",)), "benefit_unavailable"),
        (
            SaleRequest(
                amount_gr=100, benefit_ids=("b1", "b2"), points_override=5, override_reason="x"
            ),
            "invalid_override",  # an override names one benefit
        ),
        (SaleRequest(amount_gr=100, points_override=5, override_reason="x"), "invalid_override"),
    ],
)
def test_request_checks(sale: SaleRequest, code: str | None) -> None:
    rules = make_rules(benefit("b1"), benefit("b2"))
    assert refusal_code(lambda: Till().quote(make_card(), rules, sale, NOON)) == code


def test_quote_records_the_rules_version_and_balance() -> None:
    card = make_card(points=40, as_of=warsaw(2026, 11, 1))
    rules = make_rules(benefit("b1", points=10), version="2026-11-15.3")
    q = Till().quote(card, rules, SaleRequest(amount_gr=2550, benefit_ids=("b1",)), NOON)
    assert q.rules_version == "2026-11-15.3"
    assert (q.balance_before, q.purchase_points, q.benefit_points) == (40, 25, {"b1": 10})
    assert (q.points_earned, q.balance_after) == (35, 75)
    assert q.benefit_quantities == {"b1": 1}


def test_draft_seals_into_an_entry_whose_retry_is_equal() -> None:
    """The same request quoted twice gives the same request fields (idempotent retry)."""
    card = make_card(points=300)
    rules = make_rules(benefit("b1", points=3))
    sale = SaleRequest(amount_gr=4321, benefit_ids=("b1",), redeem_points=250)
    till = Till()
    entry = till.sell(card, rules, sale, NOON)
    till.verify()
    assert entry.kind == EntryKind.SALE
    assert entry.card == card.number
    assert (entry.amount_gr, entry.discount_gr, entry.points_redeemed) == (4321, 2500, 250)
    assert entry.points_earned == 18 + 3
    assert entry.benefits == ("b1",)
    assert entry.local_date == "2026-11-18"
    retry = Till().quote(card, rules, sale, NOON)
    draft = retry.to_draft(
        ts=entry.ts, local_date=entry.local_date, card=card.number, cashier="K-1", sale_id="x"
    )
    assert request_fields(draft) == request_fields(entry)
    # an implicit quantity of 1 and an explicit one are the same request
    explicit = msgspec.structs.replace(sale, benefit_quantities={"b1": 1})
    again = Till().quote(card, rules, explicit, NOON)
    assert again.benefit_quantities == retry.benefit_quantities


catalogs = st.builds(CatalogState, age_s=st.none() | st.floats(min_value=0, max_value=10**6))
sales = st.builds(
    SaleRequest,
    amount_gr=st.integers(min_value=-10, max_value=200_000),
    benefit_ids=st.lists(st.sampled_from(["b1", "b2", "b3"]), max_size=3, unique=True).map(tuple),
    redeem_points=st.sampled_from([0, 0, 100, 250, 500, 7]),
    points_override=st.none() | st.integers(min_value=-5, max_value=500),
    override_reason=st.none() | st.sampled_from(["", "reklamacja"]),
)
BENEFITS = (
    Benefit(id="b1", name="Basen", points=10, points_locked=True),
    Benefit(id="b2", name="Kino", points=5, limited=True, uses_per_period=2, period="week"),
    Benefit(id="b3", name="Muzeum", points=0, age_min=65),
)
RULES = make_rules(*BENEFITS, earn=EarnRule(program_multipliers={"senior": 2}))


@given(sale=sales, catalog=catalogs, points=st.integers(min_value=0, max_value=1000))
def test_same_inputs_same_quote_and_never_negative_points(
    sale: SaleRequest, catalog: CatalogState, points: int
) -> None:
    card = make_card(
        points=points, birth=date(1955, 1, 1), programs=(("senior", date(2030, 1, 1)),)
    )
    till = Till()
    outcomes = []
    for _ in range(2):
        try:
            outcomes.append(till.quote(card, RULES, sale, NOON, catalog=catalog))
        except Refusal as r:
            outcomes.append(r.code)  # type: ignore[arg-type]
    assert outcomes[0] == outcomes[1]
    q = outcomes[0]
    if isinstance(q, str):
        return
    assert q.purchase_points >= 0
    assert all(p >= 0 for p in q.benefit_points.values())
    assert q.points_earned == q.purchase_points + sum(q.benefit_points.values())
    # a locked benefit's points are never changed
    if "b1" in q.benefit_ids:
        assert q.benefit_points["b1"] == 10
        assert q.points_override is None


def test_views_match_what_quote_allows() -> None:
    """Whatever the screen offers, the quote grants; whatever it refuses, the quote refuses."""
    benefits = (
        benefit("ok"),
        benefit("old", valid_to=date(2026, 1, 1)),
        benefit("young", age_max=20),
        benefit("senior", programs=("senior",)),
        benefit("rich", min_points=1000),
    )
    rules = make_rules(*benefits)
    card = make_card(points=10)
    till = Till()
    views = benefit_views(card, rules, till.usage, NOON, catalog=FRESH, policy=POLICY)
    for v in views:
        sale = SaleRequest(amount_gr=100, benefit_ids=(v.id,))

        def sell(sale: SaleRequest = sale) -> object:
            return quote(card, rules, till.usage, sale, NOON, catalog=FRESH, policy=POLICY)

        assert refusal_code(sell) == v.reason
    assert [v.available for v in views] == [True, False, False, False, False]


def test_rules_problems() -> None:
    assert rules_problems(make_rules(benefit())) == []
    bad = make_rules(
        benefit(
            "x",
            points=-1,
            uses_per_period=0,
            valid_from=date(2026, 2, 1),
            valid_to=date(2026, 1, 1),
            age_min=30,
            age_max=20,
        ),
        benefit("x"),
        earn=EarnRule(gr_per_point=0, program_multipliers={"senior": -1}),
    )
    problems = rules_problems(bad)
    assert "earn.gr_per_point must be > 0" in problems
    assert "benefits[x] id is repeated" in problems
    # uses_per_period beside limited: false is itself an inconsistency (docs/architecture.md §5.6)
    assert "benefits[x] is limited: false but sets uses_per_period: the limit is enforced" in (
        problems
    )
    assert len(problems) == 8
    # a zero gr_per_point never divides by zero in a quote: no purchase points
    q = Till().quote(
        make_card(), make_rules(earn=EarnRule(gr_per_point=0)), SaleRequest(amount_gr=1000), NOON
    )
    assert q.purchase_points == 0


def test_card_snapshot_judges_the_card() -> None:
    # The CARDVIEW's facts; their JSON shape is tests/terminal/test_views.py's.
    card = make_card(
        points=260, birth=date(1960, 11, 19), programs=(("senior", date(2027, 6, 30)),)
    )
    rules = make_rules(benefit("b1", label="-10%", points=5), benefit("b2", age_min=66))
    snap = card_snapshot(card, rules, Till().usage, NOON, catalog=FRESH, policy=POLICY)
    assert (snap.active, snap.reason, snap.age, snap.balance) == (
        True,
        None,
        65,
        260,
    )  # 66 tomorrow
    assert [(b.id, b.label, b.available, b.reason, b.points) for b in snap.benefits] == [
        ("b1", "-10%", True, None, 5),
        ("b2", "", False, "age_below", 0),
    ]
    assert [(t.points, t.discount_gr) for t in snap.redeem_options] == [(100, 1000), (250, 2500)]
    blocked = card_snapshot(
        make_card(status=CardStatus.BLOCKED, points=900),
        rules,
        Till().usage,
        NOON,
        catalog=FRESH,
        policy=POLICY,
    )
    assert (blocked.active, blocked.reason) == (False, "card_blocked")
    assert blocked.redeem_options == []
    expired = card_snapshot(
        make_card(programs=(("mieszkaniec", date(2026, 11, 17)),)),
        rules,
        Till().usage,
        NOON,
        catalog=FRESH,
        policy=POLICY,
    )
    assert (expired.active, expired.reason) == (False, "card_inactive")


@given(
    override=st.none() | st.integers(min_value=-(10**7), max_value=10**7),
    reason=st.none() | st.text(max_size=20),
    qty=st.integers(min_value=1, max_value=5),
    per_use=st.integers(min_value=0, max_value=1000),
)
def test_a_locked_benefits_points_never_change(
    override: int | None, reason: str | None, qty: int, per_use: int
) -> None:
    locked = Benefit(id="lk", name="Zablokowany", points=per_use, points_locked=True)
    sale = SaleRequest(
        amount_gr=1000,
        benefit_ids=("lk",),
        benefit_quantities={"lk": qty},
        points_override=override,
        override_reason=reason,
    )
    till = Till()
    code = refusal_code(lambda: till.quote(make_card(), make_rules(locked), sale, NOON))
    if override is not None:
        assert code == "points_locked"
        return
    q = till.quote(make_card(), make_rules(locked), sale, NOON)
    assert q.benefit_points == {"lk": per_use * qty}


def test_no_quote_grants_more_points_than_one_entry_may_carry() -> None:
    # The city refuses an entry above MAX_ENTRY_POINTS (out_of_range); the till never
    # writes one: 1,000,000.00 zł at 1 gr a point plus 1000 pieces of a 1,000,000-point
    # benefit is 1.1 billion points.
    from ledger.rules import MAX_AMOUNT_GR, MAX_ENTRY_POINTS

    rules = make_rules(benefit("b", points=1_000_000), earn=EarnRule(gr_per_point=1))
    sale = SaleRequest(amount_gr=MAX_AMOUNT_GR, benefit_ids=("b",), benefit_quantities={"b": 1000})
    assert refusal_code(lambda: Till().quote(make_card(), rules, sale, NOON)) == "invalid_quantity"
    within = SaleRequest(amount_gr=MAX_AMOUNT_GR, benefit_ids=("b",), benefit_quantities={"b": 1})
    assert Till().quote(make_card(), rules, within, NOON).points_earned <= MAX_ENTRY_POINTS
