"""The city re-checks the business of every entry and holds what does not add up
(docs/architecture.md §5.9): the real server, entries made by the till's own engine."""

from __future__ import annotations

import random
from datetime import datetime, time
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from ledger.clock import WARSAW, SystemClock, local_date
from ledger.domain import CardRecord, CardStatus, Rules
from ledger.entry import Draft, Entry, seal
from ledger.rules import MAX_POINTS_OVERRIDE, SaleRequest, override_max
from sync.central import CentralError
from sync.central.business import REASONS
from sync.central.demo_data import demo_cards, demo_number, demo_rules
from tests.ledger.test_rules_support import Till
from tests.sync.central_harness import CentralHarness, central

pytestmark = pytest.mark.usefixtures("central_engine")  # on SQLite and PostgreSQL

__all__ = ["central"]

TODAY = local_date(SystemClock().now())
NOON = datetime.combine(TODAY, time(12, 0), tzinfo=WARSAW)
RULES: Rules = demo_rules(TODAY)["P-0001"]
CARDS: dict[str, CardRecord] = {c.number: c for c in demo_cards(TODAY)}
ANNA, JERZY, MALGOSIA = demo_number(1), demo_number(2), demo_number(3)  # senior: 2, kdr: 3
SELLABLE = [c for c in CARDS.values() if c.status == CardStatus.ACTIVE]
UNLOCKED = next(b for b in RULES.benefits if not b.points_locked and b.points > 0)


def sell(till: Till, card: str, **sale: Any) -> Entry:
    return till.sell(CARDS[card], RULES, SaleRequest(**sale), NOON)


def reseal(till: Till, e: Entry, **changes: Any) -> Entry:
    """``e`` as a till that does not follow its rules would write it: changed, re-chained."""
    fields = msgspec.structs.asdict(e)
    for k in ("seq", "id", "terminal", "prev_hash", "hash"):
        fields.pop(k)
    fields.update(changes)
    out = seal(
        Draft(**fields), seq=e.seq, entry_id=e.id, terminal=e.terminal, prev_hash=e.prev_hash
    )
    till.entries[e.seq - 1] = out
    return out


async def upload(central: CentralHarness, entries: list[Entry]) -> dict[str, Any]:
    body = central.batch_body(entries)
    async with central.session() as http, http.post("/v1/terminals/T-0001/entries", data=body) as r:
        assert r.status == 200, await r.text()
        answer: dict[str, Any] = await r.json()
        return answer


async def balance(central: CentralHarness, number: str) -> int:
    card = await central.db.card(number)
    assert card is not None
    return card.points


async def test_a_free_sale_with_a_million_point_override_is_held_and_never_credited(
    central: CentralHarness,
) -> None:
    # The attack of the issue: 0 zł, points_override = 1,000,000, reason given.
    till = Till()
    honest = sell(till, ANNA, amount_gr=0, benefit_ids=(UNLOCKED.id,))
    minted = reseal(
        till,
        honest,
        points_override=1_000_000,
        override_reason="promocja",
        benefit_points={UNLOCKED.id: 1_000_000},
        points_earned=1_000_000,
    )
    before = await balance(central, ANNA)
    answer = await upload(central, [minted])
    assert answer["quarantined"] == [{"seq": 1, "reason": "override_not_allowed"}]
    assert answer["head"]["seq"] == 1  # stored: the chain stays whole
    assert await balance(central, ANNA) == before
    [held] = await central.db.quarantined()
    assert (held.terminal, held.seq, held.status) == ("T-0001", 1, "held")
    assert held.entry["points_override"] == 1_000_000


def _tamperings() -> list[tuple[str, dict[str, Any], str]]:
    base_points = 12  # 12,34 zł on Anna's card: 12 points, no benefit
    return [
        ("one point too many", {"points_earned": base_points + 1}, "purchase_points_mismatch"),
        ("a rules version never served", {"rules_version": "2099.1"}, "rules_unknown"),
        ("a benefit the rules lack", {"benefits": ("B-999",)}, "benefit_unknown"),
        ("a local date of another day", {"local_date": "2001-01-01"}, "date_mismatch"),
        ("a card the city does not know", {"card": "01-999992"}, "card_unknown"),
        ("a discount without its tier", {"discount_gr": 1000}, "redeem_mismatch"),
        ("a tier's points for a bigger discount", {"points_redeemed": 100, "discount_gr": 5000},
         "redeem_mismatch"),
    ]  # fmt: skip


@pytest.mark.parametrize(("what", "changes", "reason"), _tamperings(), ids=lambda v: str(v)[:30])
async def test_each_kind_of_wrong_sale_is_held_with_its_reason(
    central: CentralHarness, what: str, changes: dict[str, Any], reason: str
) -> None:
    till = Till()
    ok = sell(till, ANNA, amount_gr=1234)
    assert ok.points_earned == 12, what
    bad = reseal(till, ok, **changes)
    answer = await upload(central, [bad])
    assert answer["quarantined"] == [{"seq": 1, "reason": reason}], what
    assert reason in REASONS


async def test_a_benefit_the_card_has_no_right_to_and_wrong_benefit_points_are_held(
    central: CentralHarness,
) -> None:
    till = Till()
    kdr_only = next(b for b in RULES.benefits if b.programs == ("kdr",))
    # Małgorzata holds the family card: the till sells her the benefit.
    mine = sell(till, MALGOSIA, amount_gr=2000, benefit_ids=(kdr_only.id,))
    # The same sale moved to Anna, who has no family card; and then with inflated points.
    moved = sell(till, ANNA, amount_gr=2000)
    moved = reseal(till, moved, benefits=(kdr_only.id,), benefit_points={kdr_only.id: 10},
                   points_earned=moved.points_earned + 10)  # fmt: skip
    inflated = sell(till, MALGOSIA, amount_gr=2000, benefit_ids=(kdr_only.id,))
    inflated = reseal(till, inflated, benefit_points={kdr_only.id: 999},
                      points_earned=inflated.points_earned - kdr_only.points + 999)  # fmt: skip
    answer = await upload(central, till.entries)
    assert answer["quarantined"] == [
        {"seq": moved.seq, "reason": "benefit_not_allowed"},
        {"seq": inflated.seq, "reason": "benefit_points_mismatch"},
    ]
    assert mine.seq not in {q["seq"] for q in answer["quarantined"]}


async def test_an_override_within_the_rules_is_credited_and_one_above_is_held(
    central: CentralHarness,
) -> None:
    till = Till()
    most = override_max(UNLOCKED, 1, RULES)
    assert 0 < most < MAX_POINTS_OVERRIDE
    within = sell(till, ANNA, amount_gr=0, benefit_ids=(UNLOCKED.id,), points_override=most,
                  override_reason="stały klient")  # fmt: skip
    above = sell(till, ANNA, amount_gr=0, benefit_ids=(UNLOCKED.id,), points_override=most,
                 override_reason="stały klient")  # fmt: skip
    above = reseal(till, above, points_override=most + 1, benefit_points={UNLOCKED.id: most + 1},
                   points_earned=most + 1)  # fmt: skip
    before = await balance(central, ANNA)
    answer = await upload(central, till.entries)
    assert answer["quarantined"] == [{"seq": above.seq, "reason": "override_not_allowed"}]
    assert await balance(central, ANNA) == before + within.points_earned


async def test_voids_must_cancel_an_earlier_sale_once_and_exactly(central: CentralHarness) -> None:
    till = Till()
    sale = sell(till, JERZY, amount_gr=5000)
    assert sale.points_earned == 100  # a senior: points x2
    till.void(sale.seq, NOON)  # honest: credited, the two cancel out
    other = sell(till, JERZY, amount_gr=3000)
    wrong = reseal(till, till.void(other.seq, NOON), points_earned=-1)  # takes back 1 of 60
    third = sell(till, JERZY, amount_gr=1000)
    twice = reseal(till, till.void(third.seq, NOON), ref=sale.seq)  # the first sale again
    fourth = sell(till, JERZY, amount_gr=1000)
    ghost = reseal(till, till.void(fourth.seq, NOON), ref=999)  # no such sale
    before = await balance(central, JERZY)
    answer = await upload(central, till.entries)
    assert answer["quarantined"] == [
        {"seq": wrong.seq, "reason": "void_mismatch"},
        {"seq": twice.seq, "reason": "void_twice"},
        {"seq": ghost.seq, "reason": "void_unknown_sale"},
    ]
    credited = other.points_earned + third.points_earned + fourth.points_earned
    assert await balance(central, JERZY) == before + credited


async def test_a_void_of_a_held_sale_waits_with_it_and_approval_goes_in_order(
    central: CentralHarness,
) -> None:
    till = Till()
    sale = reseal(till, sell(till, ANNA, amount_gr=1000), points_earned=500)
    void = till.void(sale.seq, NOON)
    before = await balance(central, ANNA)
    answer = await upload(central, till.entries)
    assert answer["quarantined"] == [
        {"seq": sale.seq, "reason": "purchase_points_mismatch"},
        {"seq": void.seq, "reason": "void_of_held"},
    ]
    assert await balance(central, ANNA) == before
    with pytest.raises(CentralError, match="decide the sale first"):
        await central.db.decide("T-0001", void.seq, approve=True, by="operator")
    approved = await central.db.decide("T-0001", sale.seq, approve=True, by="Ewa", note="ok")
    assert (approved.status, approved.decided_by, approved.note) == ("approved", "Ewa", "ok")
    assert await balance(central, ANNA) == before + 500
    await central.db.decide("T-0001", void.seq, approve=True, by="Ewa")
    assert await balance(central, ANNA) == before
    with pytest.raises(CentralError, match="already approved"):
        await central.db.decide("T-0001", sale.seq, approve=False, by="Ewa")
    assert await central.db.quarantined() == []
    assert len(await central.db.quarantined(None)) == 2


async def test_a_rejected_entry_is_never_credited_and_the_head_reply_names_held_ones(
    central: CentralHarness,
) -> None:
    till = Till()
    bad = reseal(till, sell(till, ANNA, amount_gr=1000), points_earned=77)
    sell(till, ANNA, amount_gr=1000)
    before = await balance(central, ANNA)
    await upload(central, till.entries)
    assert await balance(central, ANNA) == before + 10
    async with central.session() as http, http.get("/v1/terminals/T-0001/head") as r:
        head = await r.json()
    assert head["quarantined"] == [{"seq": bad.seq, "reason": "purchase_points_mismatch"}]
    # Sent again (the till never heard the answer): the same answer, nothing credited twice.
    again = await upload(central, till.entries)
    assert again["quarantined"] == [{"seq": bad.seq, "reason": "purchase_points_mismatch"}]
    await central.db.decide("T-0001", bad.seq, approve=False, by="Ewa", note="fałszywe")
    assert await balance(central, ANNA) == before + 10
    async with central.session() as http, http.get("/v1/terminals/T-0001/head") as r:
        assert "quarantined" not in await r.json()
    [decided] = await central.db.quarantined("rejected")
    assert decided.note == "fałszywe"


async def test_approval_credits_the_card_feed_and_the_usage_feed(central: CentralHarness) -> None:
    till = Till()
    # A benefit with a daily limit for cards above 200 points: Anna has 340.
    limited = next(b for b in RULES.benefits if b.id == "B-104")
    sale = sell(till, ANNA, amount_gr=1000, benefit_ids=(limited.id,))
    sale = reseal(till, sale, points_earned=sale.points_earned + 1)
    await upload(central, till.entries)
    version = await central.db.cards_version()
    assert await usage_qty(central, limited.id) == 0
    await central.db.decide("T-0001", sale.seq, approve=True, by="Ewa")
    assert await usage_qty(central, limited.id) == 1
    async with central.session() as http, http.get(f"/v1/cards?since={version}") as r:
        lines = [msgspec.json.decode(x) for x in (await r.read()).splitlines()]
    assert ANNA in {line.get("number") for line in lines}


async def usage_qty(central: CentralHarness, benefit: str) -> int:
    async with central.session() as http, http.get("/v1/partners/P-0001/usage") as r:
        assert r.status == 200
        rows = [msgspec.json.decode(x) for x in (await r.read()).splitlines()]
    return sum(int(x["qty"]) for x in rows if x.get("benefit") == benefit)


async def test_three_hundred_sales_and_voids_of_the_tills_own_engine_are_all_credited(
    central: CentralHarness,
) -> None:
    # Every honest entry must pass: the city and the till compute with one engine.
    rng = random.Random(11)
    till = Till()
    expected: dict[str, int] = {}
    for _ in range(300):
        card = rng.choice(SELLABLE)
        e = till.try_sell(card, RULES, random_sale(rng), NOON)
        if e is None:
            continue
        made = [e, till.void(e.seq, NOON)] if rng.random() < 0.1 else [e]
        for x in made:
            number = x.card or ""
            expected[number] = expected.get(number, 0) + x.points_earned - x.points_redeemed
    assert len(till.entries) > 100
    before = {n: await balance(central, n) for n in expected}
    answer = await upload(central, till.entries)
    assert answer.get("quarantined", []) == []
    for number, delta in expected.items():
        assert await balance(central, number) == before[number] + delta, number


def random_sale(rng: random.Random) -> SaleRequest:
    chosen = rng.sample([b.id for b in RULES.benefits], rng.choice([0, 0, 1, 2]))
    override = None
    if len(chosen) == 1 and rng.random() < 0.3:
        override = rng.randint(0, 60)
    return SaleRequest(
        amount_gr=rng.choice([0, 99, 500, 1234, 5000, 99_999]),
        benefit_ids=tuple(chosen),
        benefit_quantities={b: rng.randint(1, 2) for b in chosen},
        redeem_points=rng.choice([0, 0, 0, 100]),
        points_override=override,
        override_reason="reklamacja" if override is not None else None,
    )


async def test_an_upload_answer_of_an_older_server_has_no_quarantined_field() -> None:
    # The till's decoder takes a reply without the field as "none held".
    from sync.wire import decode_upload_ok

    ok = decode_upload_ok(b'{"head": {"seq": 3, "hash": "' + b"a" * 64 + b'"}}')
    assert ok.quarantined == []


def test_the_sync_contract_names_every_reason_a_city_can_hold_an_entry_for() -> None:
    spec = yaml.safe_load((Path(__file__).parents[2] / "sync" / "openapi.yaml").read_text())
    assert set(spec["components"]["schemas"]["Quarantined"]["properties"]["reason"]["enum"]) == (
        set(REASONS)
    )
