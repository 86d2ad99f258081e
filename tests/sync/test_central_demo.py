"""The demo data set: the cards the demo's buttons use, and rules using every field."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import msgspec

from ledger.clock import FakeClock
from ledger.domain import Benefit, CardStatus
from ledger.pins import verify_pin
from sync.central import CentralDB, demo_number
from sync.central.demo_data import demo_cards, demo_rules, luhn_digit, seed_demo_into
from tests.pgserver import central_database

TODAY = date(2026, 11, 18)


def test_numbers_carry_a_luhn_check_digit() -> None:
    assert [demo_number(i) for i in range(1, 8)] == [
        "01-000018", "01-000026", "01-000034", "01-000042", "01-000059", "01-000067",
        "01-000075",
    ]  # fmt: skip
    assert luhn_digit(0) == 0


def test_the_cards_the_demo_and_page_tests_rely_on() -> None:
    cards = {c.number: c for c in demo_cards(TODAY)}
    assert len(cards) >= 57

    def valid(number: str) -> set[str]:
        return {p.code for p in cards[number].programs if p.valid_to >= TODAY}

    anna = cards["01-000018"]
    assert (anna.status, anna.holder.display_name) == (CardStatus.ACTIVE, "Anna K.")
    assert valid("01-000018") == {"mieszkaniec"}
    assert 100 <= anna.points < 1000
    jerzy = cards["01-000026"]
    assert jerzy.holder.display_name == "Jerzy Ż."
    assert jerzy.holder.birth_date is not None
    assert TODAY.year - jerzy.holder.birth_date.year >= 70
    assert valid("01-000026") == {"senior", "mieszkaniec"}
    assert cards["01-000034"].holder.display_name == "Małgorzata Ś."
    assert valid("01-000034") == {"kdr", "mieszkaniec"}
    assert cards["01-000042"].status is CardStatus.BLOCKED
    assert cards["01-000042"].holder.display_name == "Łukasz B."
    zofia = cards["01-000059"]
    assert (zofia.status, zofia.holder.display_name) == (CardStatus.ACTIVE, "Zofia Ł.")
    assert zofia.programs
    assert valid("01-000059") == set()
    assert cards["01-000067"].status is CardStatus.REPLACED
    assert cards["01-000075"].status is CardStatus.ACTIVE
    assert cards["01-000075"].holder == cards["01-000067"].holder
    assert any(c.uids for c in cards.values())
    assert all(bytes.fromhex(u) for c in cards.values() for u in c.uids)
    assert any(set(c.holder.display_name) & set("ąćęłńóśźżĄĆĘŁŃÓŚŹŻ") for c in cards.values())


def test_demo_dates_move_with_the_seeding_day() -> None:
    later = TODAY + timedelta(days=3000)
    cards = {c.number: c for c in demo_cards(later)}
    assert all(p.valid_to > later for p in cards["01-000018"].programs)
    assert all(p.valid_to < later for p in cards["01-000059"].programs)


def test_benefits_of_the_three_partners_use_every_rule_field() -> None:
    rules = demo_rules(TODAY)
    assert set(rules) == {"P-0001", "P-0002", "P-0003"}
    benefits = [b for r in rules.values() for b in r.benefits]
    defaults = Benefit(id="x", name="x")
    for field in msgspec.structs.fields(Benefit):
        if field.name in ("id", "name", "unsupported"):  # unsupported: set by the till only
            continue
        used = {repr(getattr(b, field.name)) for b in benefits}
        assert used - {repr(getattr(defaults, field.name))}, f"no demo benefit sets {field.name}"
    assert {b.limited for b in benefits} == {True, False}
    assert {b.period for b in benefits} >= {"day", "week", "month", "year", None}
    assert {b.unit for b in benefits} == {"pieces", "hours"}
    assert any(not b.active for b in benefits)
    assert any(not b.visible for b in benefits)
    near = [b for b in benefits if b.max_persons is not None]
    assert near
    assert all(b.max_persons is not None and b.max_persons - b.persons_used <= 2 for b in near)


def test_demo_partner_and_cashier_pin() -> None:
    cafe = demo_rules(TODAY)["P-0001"]
    assert cafe.partner.name == "Kawiarnia Pod Żółwiem"
    assert "Częstochowa" in cafe.partner.address
    nip = cafe.partner.nip
    weights = (6, 5, 7, 2, 3, 4, 5, 6, 7)
    assert len(nip) == 10
    assert sum(int(d) * w for d, w in zip(nip, weights, strict=False)) % 11 == int(nip[9])
    kasia = next(c for c in cafe.cashiers if c.name == "Kasia")
    assert verify_pin("1234", kasia.pin_hash)
    assert not verify_pin("0000", kasia.pin_hash)
    assert cafe.earn.program_multipliers == {"senior": 2}
    assert cafe.earn.gr_per_point == 100


async def test_seeding_is_idempotent(tmp_path: Path, clock: FakeClock, central_engine: str) -> None:
    async with await CentralDB.open(central_database(tmp_path, "c.sqlite"), clock) as db:
        assert await seed_demo_into(db) is True
        version = await db.cards_version()
        rules = await db.rules("P-0001")
        assert await seed_demo_into(db) is False
        assert await db.cards_version() == version
        assert await db.rules("P-0001") == rules
        card = await db.card("01-000018")
        assert card is not None
        assert card.points_as_of == clock.now()
