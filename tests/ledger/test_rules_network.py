"""The rules engine with the partner's usage feed and this till's leases.

docs/architecture.md §5.8.

A window counts the feed's lines plus this till's entries the feed does not hold yet
(seq above its terminal_seq); a holder the feed knows is not a new person; a new person
needs a free slot of the till's lease, and the sale records that it took one.
"""

from __future__ import annotations

from ledger.rules import SaleRequest
from ledger.usage import Network
from tests.ledger.test_rules_support import (
    Till,
    benefit,
    make_card,
    make_rules,
    refusal_code,
    warsaw,
)

NOON = warsaw(2026, 11, 18)
TODAY = NOON.date().toordinal()
ANNA = make_card(number="01-000018", holder_id="H-1")
PIOTR = make_card(number="01-000026", holder_id="H-2")
EWA = make_card(number="01-000034", holder_id="H-3")
DAILY = benefit("b-basen", uses_per_period=1, period="day", limited=True)
MONTHLY_HOURS = benefit("b-kort", uses_per_period=4, period="month", unit="hours")
PERSONS = benefit("b-kino", max_persons=5, limited=True)
BASEN = SaleRequest(amount_gr=1000, benefit_ids=("b-basen",))
KINO = SaleRequest(amount_gr=1000, benefit_ids=("b-kino",))


def test_a_use_at_another_till_counts_here() -> None:
    till = Till()
    rules = make_rules(DAILY)
    elsewhere = Network(terminal_seq=0, lines={"b-basen": ((TODAY, 1),)})
    assert refusal_code(lambda: till.quote(ANNA, rules, BASEN, NOON, network=elsewhere)) == (
        "period_limit_reached"
    )
    yesterday = Network(terminal_seq=0, lines={"b-basen": ((TODAY - 1, 1),)})
    till.sell(ANNA, rules, BASEN, NOON, network=yesterday)


def test_own_entries_the_feed_holds_are_not_counted_twice() -> None:
    till = Till()
    rules = make_rules(MONTHLY_HOURS)
    hours = SaleRequest(amount_gr=1000, benefit_ids=("b-kort",), benefit_quantities={"b-kort": 2})
    first = till.sell(ANNA, rules, hours, NOON)
    # the feed now includes that sale (its terminal_seq) and one more hour at till B
    feed = Network(terminal_seq=first.seq, lines={"b-kort": ((TODAY, 3),)})
    q = till.quote(ANNA, rules, SaleRequest(amount_gr=1000, benefit_ids=("b-kort",)), NOON,
                   network=feed)  # fmt: skip
    assert q.benefit_quantities == {"b-kort": 1}  # 3 + 1 = 4: allowed
    assert refusal_code(lambda: till.quote(ANNA, rules, hours, NOON, network=feed)) == (
        "period_limit_reached"  # 3 + 2 > 4
    )
    # before the feed included it, the till's own 2 hours count on top of the feed's
    older = Network(terminal_seq=0, lines={"b-kort": ((TODAY, 1),)})
    assert refusal_code(lambda: till.quote(ANNA, rules, hours, NOON, network=older)) == (
        "period_limit_reached"  # 1 + 2 + 2 > 4
    )


def test_a_new_person_takes_a_slot_of_the_lease_and_keeps_it_through_a_void() -> None:
    till = Till()
    rules = make_rules(PERSONS)
    lease = Network(terminal_seq=0, grants={"b-kino": 1})
    sale = till.sell(ANNA, rules, KINO, NOON, network=lease)
    assert sale.persons_new == ("b-kino",)
    assert till.usage.admitted("b-kino") == 1
    # Anna again: not a new person, no slot needed
    again = till.sell(ANNA, rules, KINO, NOON, network=lease)
    assert again.to_dict().get("persons_new") is None
    # Piotr would be a second new person: the lease has one slot
    assert refusal_code(lambda: till.quote(PIOTR, rules, KINO, NOON, network=lease)) == (
        "persons_limit_reached"
    )
    # Ewa used it at another till of the partner: she is not new here either
    known = Network(terminal_seq=0, grants={"b-kino": 1}, lines={"b-kino": ((TODAY - 3, 1),)})
    till.sell(EWA, rules, KINO, NOON, network=known)
    assert till.usage.admitted("b-kino") == 1
    # voiding Anna's admitting sale does not free the slot: another till may have let her
    # in as a known person because of it, so the city could not keep the limit otherwise
    till.void(sale.seq, NOON)
    assert till.usage.admitted("b-kino") == 1
    assert refusal_code(lambda: till.quote(PIOTR, rules, KINO, NOON, network=lease)) == (
        "persons_limit_reached"
    )
    more = Network(terminal_seq=0, grants={"b-kino": 2})
    till.sell(PIOTR, rules, KINO, NOON, network=more)


def test_without_a_lease_service_the_old_persons_count_applies() -> None:
    till = Till()
    rules = make_rules(benefit("b-kino", max_persons=1, persons_used=1, limited=True))
    assert refusal_code(lambda: till.quote(ANNA, rules, KINO, NOON)) == "persons_limit_reached"
