"""The local API's views: the CARDVIEW shape (docs/architecture.md §5.3) from a judged card."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import msgspec

from ledger.domain import CardStatus
from ledger.rules import card_snapshot
from terminal.views import BenefitItem, CardView, card_view
from tests.ledger.test_rules_support import (
    FRESH,
    POLICY,
    Till,
    benefit,
    make_card,
    make_rules,
    warsaw,
)

NOON = warsaw(2026, 11, 18)
CARDVIEW_KEYS = {
    "number",
    "status",
    "active",
    "holder",
    "programs",
    "balance",
    "benefits",
    "redeem_options",
}
BENEFIT_KEYS = {"id", "name", "label", "available", "reason", "points", "points_locked"}


def _contract(view: CardView) -> dict[str, Any]:
    """The CARDVIEW keys of the view's JSON (the screen's extensions left out)."""
    d: dict[str, Any] = msgspec.to_builtins(view)
    out = {k: d[k] for k in CARDVIEW_KEYS}
    out["holder"] = {k: d["holder"][k] for k in ("display_name", "age")}
    out["programs"] = [{k: p[k] for k in ("code", "valid_to")} for p in d["programs"]]
    out["balance"] = {k: d["balance"][k] for k in ("points", "as_of")}
    out["benefits"] = [{k: b[k] for k in BENEFIT_KEYS} for b in d["benefits"]]
    return out


def test_the_views_carry_every_cardview_key() -> None:
    assert set(CardView.__struct_fields__) >= CARDVIEW_KEYS
    assert set(BenefitItem.__struct_fields__) >= BENEFIT_KEYS


def test_card_view_is_the_contract_cardview() -> None:
    as_of = datetime(2026, 11, 17, 23, 0, tzinfo=UTC)
    card = msgspec.structs.replace(
        make_card(points=260, birth=date(1960, 11, 19), programs=(("senior", date(2027, 6, 30)),)),
        points_as_of=as_of,
    )
    rules = make_rules(benefit("b1", label="-10%", points=5), benefit("b2", age_min=66))
    snap = card_snapshot(card, rules, Till().usage, NOON, catalog=FRESH, policy=POLICY)
    view = card_view(snap, stale=False)
    assert _contract(view) == {
        "number": "01-000018",
        "status": "active",
        "active": True,
        "holder": {"display_name": "Anna K.", "age": 65},  # 66 tomorrow
        "programs": [{"code": "senior", "valid_to": "2027-06-30"}],
        # the city's balance date: the screen says "stan na …"
        "balance": {"points": 260, "as_of": "2026-11-17T23:00:00.000Z"},
        "benefits": [
            {
                "id": "b1",
                "name": "Benefit b1",
                "label": "-10%",
                "available": True,
                "reason": None,
                "points": 5,
                "points_locked": False,
            },
            {
                "id": "b2",
                "name": "Benefit b2",
                "label": "",
                "available": False,
                "reason": "age_below",
                "points": 0,
                "points_locked": False,
            },
        ],
        "redeem_options": [
            {"points": 100, "discount_gr": 1000},
            {"points": 250, "discount_gr": 2500},
        ],
    }
    assert (view.reason, view.message, view.offline) == (None, None, False)
    assert "za młody" in (view.benefits[1].message or "")


def test_a_blocked_card_says_why_once_and_offers_no_tier() -> None:
    rules = make_rules(benefit("b1"))
    snap = card_snapshot(
        make_card(status=CardStatus.BLOCKED, points=900),
        rules,
        Till().usage,
        NOON,
        catalog=FRESH,
        policy=POLICY,
    )
    view = card_view(snap, stale=True)
    assert (view.active, view.reason, view.offline, view.balance.stale) == (
        False,
        "card_blocked",
        True,
        True,
    )
    assert view.message == "Karta zastrzeżona — nie można jej użyć."
    assert view.redeem_options == []


def test_invisible_benefits_are_shown_and_available_ones_come_first() -> None:
    """``visible: false`` is about the city's website and app: the till offers it.

    docs/architecture.md §5.6.

    Bug caught: the card view dropped invisible benefits, so the cashier could not give one.
    """
    rules = make_rules(
        benefit("young", age_min=99), benefit("ok"), benefit("hidden", visible=False)
    )
    snap = card_snapshot(make_card(), rules, Till().usage, NOON, catalog=FRESH, policy=POLICY)
    view = card_view(snap, stale=False)
    assert [b.id for b in view.benefits] == ["ok", "hidden", "young"]
    assert next(b for b in view.benefits if b.id == "hidden").available
