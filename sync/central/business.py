"""The city re-checks the business of every uploaded entry (docs/architecture.md §5.9).

The chain and the signature say an entry is the terminal's; this says whether it adds
up. Each sale is recomputed from the rules version it names, with the till's own
functions (``ledger.rules``), on the card as the city knows it, on the entry's
``local_date``: the benefits allowed (programme, age, validity, understood), their
quantities, the redemption tier and its discount, the multiplier and the purchase
points, each benefit's points or an override within `ledger.rules.override_max`, and
the total. A void must name an earlier sale of the same terminal, once, and negate it
exactly. What does not add up is stored (the chain stays whole) but not credited: the
first reason found is returned, and the entry waits in quarantine for a city operator.

What is NOT re-checked here, because it depends on what the till knew offline: the
balance before a redemption and ``min_points`` (the card list a till holds may be
days old), and the period limits counted across tills (a limit two offline tills each
honoured can be passed in total; the usage feed shows it). Persons limits are held by
leases (§5.8). A card the city blocked after the sale is still credited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from ledger.clock import parse_ts
from ledger.domain import CardRecord, Rules
from ledger.entry import Entry, EntryKind
from ledger.periods import local_day
from ledger.rules import (
    MAX_QUANTITY,
    benefit_condition,
    best_multiplier,
    override_max,
    purchase_points,
)

# Every reason an entry can be held for, with the words a city operator (CLI) and the
# cashier's status bar show.
REASONS: dict[str, str] = {
    "rules_unknown": "nazywa wersję zasad, której miasto nie wydało",
    "date_mismatch": "data lokalna nie zgadza się z czasem wpisu",
    "card_unknown": "karty nie ma na liście miasta",
    "card_inactive": "karta nie miała ważnego pakietu w dniu sprzedaży",
    "benefit_unknown": "benefitu nie ma w tej wersji zasad",
    "benefit_not_allowed": "benefit nie przysługiwał tej karcie w dniu sprzedaży",
    "quantity_invalid": "liczba użyć benefitu poza zakresem",
    "redeem_mismatch": "wymiana punktów nie odpowiada żadnemu progowi zasad",
    "purchase_points_mismatch": "punkty za zakup nie wynikają z kwoty i zasad",
    "benefit_points_mismatch": "punkty za benefit nie wynikają z zasad",
    "override_not_allowed": "zmiana punktów poza zakresem dozwolonym przez zasady",
    "points_mismatch": "suma punktów nie zgadza się ze składnikami",
    "void_unknown_sale": "anulowanie wskazuje sprzedaż, której nie ma",
    "void_twice": "ta sprzedaż została już anulowana",
    "void_mismatch": "anulowanie nie odwraca dokładnie sprzedaży",
    "void_of_held": "anulowanie sprzedaży wstrzymanej do wyjaśnienia",
}


@dataclass(frozen=True)
class Held:
    """Why an entry is held: a ``REASONS`` code and the operator's detail."""

    reason: str
    detail: str


def _held(reason: str, detail: str) -> Held:
    assert reason in REASONS, reason  # a programming error, caught by tests
    return Held(reason, detail)


def _sale_day(e: Entry) -> date | Held:
    try:
        day = date.fromisoformat(e.local_date)
        at = parse_ts(e.ts)
    except ValueError:
        return _held("date_mismatch", f"local_date {e.local_date!r}, ts {e.ts!r}")
    if local_day(at) != day:
        return _held("date_mismatch", f"local_date {e.local_date} but ts {e.ts}")
    return day


def check_sale(e: Entry, rules: Rules | None, card: CardRecord | None) -> Held | None:
    """Recompute sale ``e`` from ``rules`` (the version it names; None: never served) on
    ``card`` (the city's record; None: unknown). None when it adds up."""
    if rules is None:
        return _held("rules_unknown", f"rules_version {e.rules_version!r}")
    day = _sale_day(e)
    if isinstance(day, Held):
        return day
    if e.card is None:
        if e.points_earned or e.points_redeemed or e.benefits:
            return _held("card_unknown", "points or benefits without a card")
        return None
    if card is None:
        return _held("card_unknown", f"card {e.card}")
    if not any(p.valid_to >= day for p in card.programs):
        return _held("card_inactive", f"no package valid on {day}")
    by_id = {b.id: b for b in rules.benefits}
    quantities = {bid: e.benefit_quantities.get(bid, 1) for bid in e.benefits}
    if len(quantities) != len(e.benefits) or set(e.benefit_quantities) - set(e.benefits):
        return _held("quantity_invalid", "benefit quantities do not match the benefits")
    for bid, qty in quantities.items():
        b = by_id.get(bid)
        if b is None:
            return _held("benefit_unknown", bid)
        failed = benefit_condition(b, card, day)
        if failed is not None:
            return _held("benefit_not_allowed", f"{bid}: {failed.reason}")
        if isinstance(qty, bool) or not 1 <= qty <= MAX_QUANTITY:
            return _held("quantity_invalid", f"{bid}: {qty}")
    if e.points_redeemed or e.discount_gr:
        tier = next((t for t in rules.redeem_tiers if t.points == e.points_redeemed), None)
        if tier is None or tier.discount_gr != e.discount_gr or e.discount_gr > e.amount_gr:
            return _held("redeem_mismatch", f"{e.points_redeemed} pkt for {e.discount_gr} gr")
    if e.amount_gr < 0:
        return _held("purchase_points_mismatch", f"amount_gr {e.amount_gr}")
    multiplier, _ = best_multiplier(card, rules.earn, day)
    purchase = purchase_points(e.amount_gr - e.discount_gr, rules.earn, multiplier)
    if set(e.benefit_points) != set(e.benefits):
        return _held("benefit_points_mismatch", "benefit_points do not name the benefits")
    if e.points_override is not None:
        if len(e.benefits) != 1 or not (e.override_reason or "").strip():
            return _held("override_not_allowed", "an override needs one benefit and a reason")
        bid = e.benefits[0]
        if by_id[bid].points_locked:
            return _held("override_not_allowed", f"{bid}: its points are locked")
        most = override_max(by_id[bid], quantities[bid], rules)
        if not 0 <= e.points_override <= most or e.benefit_points[bid] != e.points_override:
            return _held("override_not_allowed", f"{e.points_override} pkt, at most {most}")
    else:
        for bid, qty in quantities.items():
            expected = max(by_id[bid].points, 0) * qty
            if e.benefit_points[bid] != expected:
                return _held(
                    "benefit_points_mismatch", f"{bid}: {e.benefit_points[bid]} != {expected}"
                )
    total = purchase + sum(e.benefit_points.values())
    if e.points_earned != total:
        reason = "points_mismatch" if e.benefit_points else "purchase_points_mismatch"
        return _held(reason, f"points_earned {e.points_earned}, the rules give {total}")
    return None


def check_void(
    e: Entry, sale: Entry | None, *, voided_before: bool, sale_held: bool
) -> Held | None:
    """Void ``e`` against the sale it names (None: no such earlier sale of its terminal)."""
    if sale is None or e.ref is None or sale.kind != EntryKind.SALE or sale.seq >= e.seq:
        return _held("void_unknown_sale", f"ref {e.ref}")
    if voided_before:
        return _held("void_twice", f"ref {e.ref}")
    negates = (
        e.card == sale.card
        and e.amount_gr == -sale.amount_gr
        and e.points_earned == -sale.points_earned
        and e.points_redeemed == -sale.points_redeemed
        and e.discount_gr == -sale.discount_gr
        and sorted(e.benefits) == sorted(sale.benefits)
        and e.benefit_quantities == sale.benefit_quantities
        and e.benefit_points == {k: -v for k, v in sale.benefit_points.items()}
    )
    if not negates:
        return _held("void_mismatch", f"ref {e.ref}")
    if sale_held:
        return _held("void_of_held", f"ref {e.ref}")
    return None


def check_other(e: Entry) -> Held | None:
    """Any entry that is neither a sale nor a void must move no points."""
    if e.points_earned or e.points_redeemed:
        return _held("points_mismatch", f"a {e.kind} entry moves points")
    return None


__all__ = ["REASONS", "Held", "check_other", "check_sale", "check_void"]
