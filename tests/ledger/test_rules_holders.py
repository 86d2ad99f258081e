"""Benefit limits count per holder, across every card of one person (docs/architecture.md §5.8).

A duplicate card, a replaced card and the app's card share the city's holder id; each
family member has their own; a card without a holder id counts as a holder of its own.
Balances stay per card.
"""

from __future__ import annotations

from ledger.rules import SaleRequest, card_balance
from tests.ledger.test_rules_support import (
    Till,
    benefit,
    make_card,
    make_rules,
    refusal_code,
    warsaw,
)

NOON = warsaw(2026, 11, 18)
ANNA = make_card(number="01-000018", holder_id="H-1", points=500)
ANNA_DUPLICATE = make_card(number="01-000091", holder_id="H-1", points=20)
DAUGHTER = make_card(number="01-000026", holder_id="H-2", points=0)
NO_ID = make_card(number="01-000034", points=0)
NO_ID_OTHER = make_card(number="01-000042", points=0)
ONCE_A_DAY = benefit("b-basen", uses_per_period=1, period="day", limited=True)
PERSONS = benefit("b-kino", max_persons=1, limited=True)


def test_once_a_day_holds_across_a_persons_cards() -> None:
    till = Till()
    rules = make_rules(ONCE_A_DAY)
    sale = SaleRequest(amount_gr=1000, benefit_ids=("b-basen",))
    till.sell(ANNA, rules, sale, NOON)
    assert refusal_code(lambda: till.quote(ANNA_DUPLICATE, rules, sale, NOON)) == (
        "period_limit_reached"
    )
    # her daughter has a card of her own, and so does a card without a holder id
    till.sell(DAUGHTER, rules, sale, NOON)
    till.sell(NO_ID, rules, sale, NOON)
    till.sell(NO_ID_OTHER, rules, sale, NOON)
    assert refusal_code(lambda: till.quote(NO_ID, rules, sale, NOON)) == "period_limit_reached"


def test_a_void_on_one_card_frees_the_use_for_the_other() -> None:
    till = Till()
    rules = make_rules(ONCE_A_DAY)
    sale = SaleRequest(amount_gr=1000, benefit_ids=("b-basen",))
    first = till.sell(ANNA_DUPLICATE, rules, sale, NOON)
    assert first.holder == "H-1"
    void = till.void(first.seq, NOON)
    assert void.holder == "H-1"
    till.sell(ANNA, rules, sale, NOON)  # allowed again: the use was given back


def test_the_same_person_with_another_card_is_not_a_new_person() -> None:
    till = Till()
    rules = make_rules(PERSONS)
    sale = SaleRequest(amount_gr=1000, benefit_ids=("b-kino",))
    till.sell(ANNA, rules, sale, NOON)
    till.sell(ANNA_DUPLICATE, rules, sale, NOON)  # still one person
    assert refusal_code(lambda: till.quote(DAUGHTER, rules, sale, NOON)) == (
        "persons_limit_reached"
    )
    assert till.usage.pending_persons("b-kino") == frozenset({"H-1"})


def test_balances_stay_per_card() -> None:
    till = Till()
    rules = make_rules(ONCE_A_DAY)
    till.sell(ANNA, rules, SaleRequest(amount_gr=5000), NOON)
    earned = till.entries[-1].points_earned
    assert earned > 0
    assert card_balance(ANNA, till.usage) == 500 + earned
    assert card_balance(ANNA_DUPLICATE, till.usage) == 20


def test_an_entry_without_a_holder_keeps_its_old_bytes() -> None:
    """Entries of cards without a holder id (and all older entries) carry no holder key."""
    till = Till()
    e = till.sell(NO_ID, make_rules(), SaleRequest(amount_gr=1000), NOON)
    assert "holder" not in e.to_dict()
    assert e.holder_key == NO_ID.number
