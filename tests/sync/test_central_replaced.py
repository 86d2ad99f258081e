"""A replaced card: the city moves its balance to the holder's current card and credits
late entries made on the old card to the current one (docs/architecture.md §5.8).

Through the real reference server: the card list is loaded, the old card is marked
replaced, and a till that had not heard yet uploads a sale on the old card.
"""

from __future__ import annotations

from datetime import date

import aiohttp
import pytest

from ledger.domain import CardRecord, CardStatus, Holder, Program
from sync.central.demo_data import demo_number
from tests.sync.central_harness import CentralHarness, central, make_entries

pytestmark = pytest.mark.usefixtures("central_engine")  # on SQLite and PostgreSQL

__all__ = ["central"]

OLD, NEW, OTHER = demo_number(101), demo_number(102), demo_number(103)


def card(number: str, holder: str, points: int) -> CardRecord:
    return CardRecord(
        number=number,
        status=CardStatus.ACTIVE,
        holder=Holder(display_name="Grzegorz Ć.", birth_date=date(1977, 1, 19), id=holder),
        programs=(Program(code="mieszkaniec", valid_to=date(2030, 1, 1)),),
        points=points,
    )


async def test_the_balance_moves_and_late_entries_credit_the_current_card(
    central: CentralHarness,
) -> None:
    db = central.db
    await db.upsert_cards(
        [card(OLD, "H-9", 120), card(NEW, "H-9", 5), card(OTHER, "H-10", 40)],
        points_given=frozenset({OLD, NEW, OTHER}),
    )
    before = await db.cards_version()
    assert await db.set_card_status(OLD, CardStatus.REPLACED)
    old, new, other = [await db.card(n) for n in (OLD, NEW, OTHER)]
    assert old is not None
    assert new is not None
    assert other is not None
    assert (old.status, old.points, new.points, other.points) == ("replaced", 0, 125, 40)
    # both cards are in the next delta, so every till learns the move
    async with central.session() as s, s.get(f"/v1/cards?since={before}") as r:
        assert r.status == 200
        text = await r.text()
    assert OLD in text
    assert NEW in text
    assert OTHER not in text
    # a till that had not heard yet sells on the old card: the points go to the new one
    entries = make_entries(2, card=OLD)
    earned = sum(e.points_earned for e in entries)
    assert earned > 0
    async with (
        aiohttp.ClientSession(headers=central.headers()) as s,
        s.post(central.url + "/v1/terminals/T-0001/entries", data=central.batch_body(entries)) as r,
    ):
        assert r.status == 200, await r.text()
    old, new = await db.card(OLD), await db.card(NEW)
    assert old is not None
    assert new is not None
    assert (old.points, new.points) == (0, 125 + earned)


async def test_a_replaced_card_without_a_current_one_keeps_its_balance(
    central: CentralHarness,
) -> None:
    db = central.db
    await db.upsert_cards([card(OLD, "H-9", 120)], points_given=frozenset({OLD}))
    assert await db.set_card_status(OLD, CardStatus.REPLACED)
    old = await db.card(OLD)
    assert old is not None
    assert old.points == 120
