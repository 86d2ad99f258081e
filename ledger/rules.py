"""The points and benefit rules engine: pure, exact, explained.

Given a card, the partner's rules, the usage read model and an instant, the engine says
which benefits the card can use now (and why not), which redemption tiers it can use,
and what a sale would grant (`quote`). Nothing here does I/O or reads a clock.

Decisions (tested in ``tests/ledger/test_rules*.py`` and ``test_benefit_fields.py``):

* Every date rule works on the sale's local date in the programme's zone (``usage.tz``,
  Europe/Warsaw): validity dates are inclusive, a package counts until its ``valid_to``
  inclusive, ages are completed years (29 February birthdays fall on 1 March).
* Purchase points are earned on what the resident paid, ``amount_gr - discount_gr``;
  nothing below ``min_amount_gr`` (compared with that paid amount). Points are
  ``paid * multiplier / gr_per_point`` rounded ONCE as declared (floor, ceil, half_up) in
  integer arithmetic, then capped at ``max_points_per_sale``.
* Programme multipliers do not stack: the HIGHEST multiplier among the card's packages
  valid on the sale's date applies (a package without a multiplier counts as 1).
* A benefit grants ``points`` per use times the quantity (pieces or hours). The cashier
  may override the points of a single unlocked benefit (the override is the total for
  it in this sale) only with a non-empty reason, and at most `override_max` (its points
  times the quantity times the rules' ``override_max_factor``); a locked benefit refuses
  any override.
* Every limit that is set holds, whatever ``limited`` says (the contract's 11.1):
  ``max_persons`` always, ``uses_per_period`` per ``period`` (calendar day / week
  Monday–Sunday / month / year in Europe/Warsaw) or, without a period, over the card's
  whole history; the quantity (pieces or hours) counts against the limit. ``limited =
  False`` beside a limit is an inconsistent document: the limit is enforced and
  `rules_problems` says so. ``visible`` only says whether the city's web site and app
  show the benefit: the till offers it like any other.
* ``min_points``: available only when the balance before the sale is strictly greater
  than ``min_points`` ("dopiero po przekroczeniu określonej liczby punktów").
* A benefit the till cannot understand (`unsupported_reason`: an unknown ``unit`` or
  ``period``, a negative number, …) is shown unavailable as ``benefit_unsupported``;
  the other benefits of the document apply.
* A refused benefit is ``Refusal("benefit_unavailable", reason=<why>, benefit=<id>)``
  (`Refusal.of_benefit`); the card view's ``reason`` uses the same words.
* ``age_min``/``age_max``: inclusive completed years; a holder without a birth date
  cannot use an age-restricted benefit (``age_unknown``).
* Persons limit: the server's ``persons_used`` plus the distinct cards in this
  terminal's not-yet-acknowledged uses; a card that already used the benefit here is
  already one of the persons. While the card list is older than the offline maximum,
  a card that is not yet a person is refused with ``offline_limit``.
* Redemption: only an exact tier of the rules; never more than the balance before the
  sale; the discount never more than the amount. Refused with ``offline_limit`` when the
  card list was never loaded or is older than ``max_catalog_age_s``, or, while the list
  is stale (older than ``stale_after_s``), when the card already redeemed
  ``redeem_per_card_per_day`` times this local day. Earning is never limited offline.
"""

from __future__ import annotations

from datetime import date, datetime

import msgspec

from ledger.domain import Benefit, CardRecord, CardStatus, EarnRule, RedeemTier, Rules
from ledger.entry import Draft, EntryKind
from ledger.explanations import (
    ROUNDING_PL,
    Explanation,
    explain,
    pln,
    quantity_suffix,
)
from ledger.periods import age_on, local_day, local_midnight, window_dates
from ledger.refusals import Refusal
from ledger.usage import LOCAL, Network, UsageBook, card_balance
from ledger.voids import VoidPlan, day_summary, plan_void

__all__ = [
    "BenefitView",
    "CardSnapshot",
    "CatalogState",
    "Explanation",
    "OfflinePolicy",
    "Quote",
    "SaleRequest",
    "VoidPlan",
    "benefit_condition",
    "benefit_views",
    "best_multiplier",
    "card_balance",
    "card_is_active",
    "card_snapshot",
    "day_summary",
    "override_max",
    "plan_void",
    "purchase_points",
    "quote",
    "redeem_options",
    "round_div",
    "rules_problems",
    "unsupported_reason",
]

MAX_AMOUNT_GR = 100_000_000  # 1 000 000,00 zł: anything larger is a typing error
MAX_QUANTITY = 1000
MAX_POINTS_OVERRIDE = 1_000_000
# The most points one entry may grant or take. The till refuses a quote above it and the
# city refuses an entry above it (422 out_of_range, docs/architecture.md §5.5), so a
# card's balance, a sum of such entries, stays far inside SQLite's 64-bit integers.
MAX_ENTRY_POINTS = 1_000_000_000


class SaleRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The cashier's sale (the API's SALE without its id and card)."""

    amount_gr: int
    benefit_ids: tuple[str, ...] = ()
    benefit_quantities: dict[str, int] = {}
    redeem_points: int = 0
    points_override: int | None = None
    override_reason: str | None = None


class OfflinePolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How far redemptions may go without a fresh card list (config ``[offline]``)."""

    max_catalog_age_s: int = 72 * 3600
    redeem_per_card_per_day: int = 1
    stale_after_s: int = 900


class CatalogState(msgspec.Struct, frozen=True, kw_only=True):
    """Age of the card list in seconds; None when it was never loaded."""

    age_s: float | None

    def too_old(self, policy: OfflinePolicy) -> bool:
        return self.age_s is None or self.age_s > policy.max_catalog_age_s

    def stale(self, policy: OfflinePolicy) -> bool:
        return self.age_s is None or self.age_s > policy.stale_after_s


class BenefitView(msgspec.Struct, frozen=True, kw_only=True):
    """A benefit as the cashier sees it for one card at one moment."""

    id: str
    name: str
    label: str
    available: bool
    reason: str | None
    points: int
    points_locked: bool
    unit: str
    free_at: datetime | None = None  # when a reached period limit frees up
    visible: bool = True
    description: str = ""
    remaining: int | None = None  # uses/hours left in the current period, None: no limit


class Quote(msgspec.Struct, frozen=True, kw_only=True):
    """What a sale grants and takes, with the rules that did it."""

    card: str
    holder: str | None  # the card holder's id (None: the card counts as its own holder)
    persons_new: tuple[str, ...]  # benefits for which this sale admits a new person (lease)
    amount_gr: int
    purchase_points: int
    benefit_points: dict[str, int]
    points_earned: int
    points_redeemed: int
    discount_gr: int
    benefit_ids: tuple[str, ...]
    benefit_quantities: dict[str, int]
    points_override: int | None
    override_reason: str | None
    rules_version: str
    balance_before: int
    balance_after: int
    multiplier: int
    explanation: list[Explanation]

    def to_draft(
        self, *, ts: str, local_date: str, card: str, cashier: str | None, sale_id: str | None
    ) -> Draft:
        """The sale entry's draft for the store."""
        return Draft(
            ts=ts,
            local_date=local_date,
            kind=EntryKind.SALE,
            card=card,
            holder=self.holder if self.holder is not None else msgspec.UNSET,
            persons_new=self.persons_new or msgspec.UNSET,
            amount_gr=self.amount_gr,
            points_earned=self.points_earned,
            points_redeemed=self.points_redeemed,
            discount_gr=self.discount_gr,
            benefits=self.benefit_ids,
            benefit_quantities=dict(self.benefit_quantities),
            benefit_points=dict(self.benefit_points),
            rules_version=self.rules_version,
            cashier=cashier,
            sale_id=sale_id,
            points_override=self.points_override,
            override_reason=self.override_reason,
            balance_after=self.balance_after,
        )


# --- arithmetic -----------------------------------------------------------------------


def round_div(numerator: int, denominator: int, rounding: str) -> int:
    """``numerator / denominator`` (both >= 0, denominator > 0) rounded as declared."""
    if rounding == "floor":
        return numerator // denominator
    if rounding == "ceil":
        return -(-numerator // denominator)
    if rounding == "half_up":
        return (2 * numerator + denominator) // (2 * denominator)
    raise ValueError(f"unknown rounding {rounding!r}")


def purchase_points(paid_gr: int, earn: EarnRule, multiplier: int = 1) -> int:
    """Points for a paid amount: below the minimum none, one rounding, then the cap."""
    if paid_gr <= 0 or paid_gr < earn.min_amount_gr or earn.gr_per_point <= 0:
        return 0
    points = round_div(paid_gr * max(multiplier, 0), earn.gr_per_point, earn.rounding)
    if earn.max_points_per_sale is not None:
        points = min(points, max(earn.max_points_per_sale, 0))
    return points


# --- the card at a moment ---------------------------------------------------------------


def card_is_active(card: CardRecord, on: date) -> bool:
    """AKTYWNA: status active and at least one package valid on the local date."""
    return card.status == CardStatus.ACTIVE and any(p.valid_to >= on for p in card.programs)


def _card_refusal(card: CardRecord, on: date) -> str | None:
    if card.status in (CardStatus.BLOCKED, CardStatus.REPLACED):
        return "card_blocked"
    if not card_is_active(card, on):
        return "card_inactive"
    return None


def best_multiplier(card: CardRecord, earn: EarnRule, on: date) -> tuple[int, str | None]:
    """The highest multiplier of the card's packages valid on ``on`` (1 when none)."""
    best, program = 1, None
    for p in card.programs:
        if p.valid_to < on:
            continue
        m = earn.program_multipliers.get(p.code, 1)
        if m > best:
            best, program = m, p.code
    return best, program


class _Moment:
    """Everything about the card that does not depend on the benefit, computed once."""

    __slots__ = (
        "balance",
        "card",
        "card_reason",
        "catalog",
        "day",
        "holder",
        "network",
        "policy",
        "usage",
    )

    def __init__(
        self,
        card: CardRecord,
        usage: UsageBook,
        at: datetime,
        catalog: CatalogState,
        policy: OfflinePolicy,
        network: Network = LOCAL,
    ) -> None:
        self.card = card
        self.holder = card.holder_key  # limits count per person, across all their cards
        self.network = network
        self.usage = usage
        self.day = local_day(at, usage.tz)
        self.card_reason = _card_refusal(card, self.day)
        self.balance = card_balance(card, usage)
        self.catalog = catalog
        self.policy = policy

    def used(self, benefit: str, start: date | None, end: date | None) -> int:
        """The holder's quantity of ``benefit`` on dates in ``[start, end)`` (None, None:
        lifetime): the partner's usage feed plus this till's entries it does not hold yet,
        or this till's own entries alone without a feed (docs/architecture.md §5.8)."""
        seen = self.network.terminal_seq
        if seen is None:
            return self.usage.uses_between(self.holder, benefit, start, end)
        own = self.usage.uses_above(self.holder, benefit, start, end, seen)
        return self.network.used(benefit, start, end) + own

    def known_person(self, benefit: str) -> bool:
        """Whether the holder already counts as a person of ``benefit`` (here or elsewhere)."""
        return self.usage.has_used(self.holder, benefit) or self.network.knows(benefit)


class _Verdict(msgspec.Struct, frozen=True):
    reason: str | None
    details: dict[str, object]
    free_at: datetime | None = None
    remaining: int | None = None
    new_person: bool = False  # a use now admits a new person within this till's lease


_OK = _Verdict(None, {})


_NON_NEGATIVE = (
    "points",
    "min_points",
    "max_persons",
    "uses_per_period",
    "age_min",
    "age_max",
    "persons_used",
)


def lifetime_benefits(rules: Rules | None) -> frozenset[str]:
    """Benefits whose limits need a card's uses over its whole life at this till: a
    persons limit ("is this a new person?") or a limit without a period."""
    if rules is None:
        return frozenset()
    return frozenset(
        b.id
        for b in rules.benefits
        if b.max_persons is not None or (b.uses_per_period is not None and b.period is None)
    )


def unsupported_reason(b: Benefit) -> str | None:
    """Why the till cannot apply benefit ``b`` as the partner meant it (None: it can)."""
    if b.unsupported is not None:
        return b.unsupported
    for name in _NON_NEGATIVE:
        value = getattr(b, name)
        if value is not None and value < 0:
            return f"{name} must be >= 0"
    return None


def benefit_condition(b: Benefit, card: CardRecord, day: date) -> _Verdict | None:
    """The first of ``b``'s conditions on the card and the date alone that fails (None:
    all hold): understood, active, valid on ``day``, the programme, the age.

    Nothing here depends on the balance or on usage, so the city re-checks an uploaded
    entry with this very function (``sync.central.business``)."""
    if unsupported_reason(b) is not None:
        return _Verdict("benefit_unsupported", {})
    if not b.active:
        return _Verdict("inactive", {})
    if b.valid_from is not None and day < b.valid_from:
        return _Verdict("not_yet_valid", {"valid_from": b.valid_from})
    if b.valid_to is not None and day > b.valid_to:
        return _Verdict("expired", {"valid_to": b.valid_to})
    if b.programs and not any(p.code in b.programs and p.valid_to >= day for p in card.programs):
        return _Verdict("program_missing", {"programs": list(b.programs)})
    if b.age_min is not None or b.age_max is not None:
        birth = card.holder.birth_date
        if birth is None:
            return _Verdict("age_unknown", {})
        age = age_on(birth, day)
        if b.age_min is not None and age < b.age_min:
            return _Verdict("age_below", {"age": age, "age_min": b.age_min})
        if b.age_max is not None and age > b.age_max:
            return _Verdict("age_above", {"age": age, "age_max": b.age_max})
    return None


def _judge(b: Benefit, m: _Moment, quantity: int) -> _Verdict:
    """Whether ``quantity`` uses of benefit ``b`` are allowed now, else the first reason."""
    if m.card_reason is not None:
        return _Verdict(m.card_reason, {})
    condition = benefit_condition(b, m.card, m.day)
    if condition is not None:
        return condition
    if b.min_points is not None and m.balance <= b.min_points:
        return _Verdict(
            "points_below_threshold", {"balance": m.balance, "min_points": b.min_points}
        )
    new_person = False
    if b.max_persons is not None and not m.known_person(b.id):
        granted = m.network.grants.get(b.id)
        if granted is not None:  # the city hands this till slots (a lease, §5.8)
            admitted = m.usage.admitted(b.id)
            if admitted >= granted:
                return _Verdict(
                    "persons_limit_reached",
                    {"admitted": admitted, "granted": granted, "max_persons": b.max_persons},
                )
            new_person = True
        else:
            if m.catalog.too_old(m.policy):
                return _Verdict("offline_limit", {"catalog_age_s": m.catalog.age_s})
            persons = b.persons_used + m.usage.pending_person_count(b.id)
            if persons >= b.max_persons:
                return _Verdict(
                    "persons_limit_reached", {"persons": persons, "max_persons": b.max_persons}
                )
    if b.uses_per_period is None:
        return _Verdict(None, {}, new_person=new_person)
    limit = b.uses_per_period
    if b.period is None:
        used = m.used(b.id, None, None)
        if used + quantity > limit:
            details: dict[str, object] = {"used": used, "limit": limit}
            return _Verdict("period_limit_reached", details, None, max(limit - used, 0))
        return _Verdict(None, {}, None, limit - used, new_person)
    start, end = window_dates(b.period, m.day)
    used = m.used(b.id, start, end)
    if used + quantity > limit:
        free_at = local_midnight(end, m.usage.tz)
        return _Verdict(
            "period_limit_reached",
            {"used": used, "limit": limit, "period": b.period, "free_at": free_at},
            free_at,
            max(limit - used, 0),
        )
    return _Verdict(None, {}, None, limit - used, new_person)


def _view(b: Benefit, v: _Verdict) -> BenefitView:
    return BenefitView(
        id=b.id,
        name=b.name,
        label=b.label,
        available=v.reason is None,
        reason=v.reason,
        points=b.points,
        points_locked=b.points_locked,
        unit=b.unit,
        free_at=v.free_at,
        visible=b.visible,
        description=b.description,
        remaining=v.remaining,
    )


def benefit_views(
    card: CardRecord,
    rules: Rules,
    usage: UsageBook,
    at: datetime,
    *,
    catalog: CatalogState,
    policy: OfflinePolicy,
    network: Network = LOCAL,
) -> list[BenefitView]:
    """Every benefit of the partner for this card now, available or with the reason why not."""
    m = _Moment(card, usage, at, catalog, policy, network)
    return [_view(b, _judge(b, m, 1)) for b in rules.benefits]


def _redeem_block(m: _Moment) -> dict[str, object] | None:
    """Why redemption is refused offline now (None when allowed)."""
    if m.catalog.too_old(m.policy):
        return {"catalog_age_s": m.catalog.age_s, "max_catalog_age_s": m.policy.max_catalog_age_s}
    if m.catalog.stale(m.policy):
        done = m.usage.redemptions_on(m.card.number, m.day)
        if done >= m.policy.redeem_per_card_per_day:
            return {"redemptions_today": done, "cap": m.policy.redeem_per_card_per_day}
    return None


def _tiers(m: _Moment, rules: Rules) -> list[RedeemTier]:
    if m.card_reason is not None or _redeem_block(m) is not None:
        return []
    return sorted((t for t in rules.redeem_tiers if t.points <= m.balance), key=lambda t: t.points)


def redeem_options(
    card: CardRecord,
    rules: Rules,
    usage: UsageBook,
    at: datetime,
    *,
    catalog: CatalogState,
    policy: OfflinePolicy,
    network: Network = LOCAL,
) -> list[RedeemTier]:
    """The redemption tiers the card can use now, smallest first."""
    return _tiers(_Moment(card, usage, at, catalog, policy, network), rules)


class CardSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """A card judged at one moment; the one home of its refusal reason.

    ``reason`` is ``card_blocked`` (blocked or replaced), ``card_inactive`` (no package
    valid on ``day``) or None when the card is AKTYWNA.
    """

    card: CardRecord
    day: date
    active: bool
    reason: str | None
    age: int | None  # completed years on ``day``; None without a birth date
    balance: int
    benefits: list[BenefitView]
    redeem_options: list[RedeemTier]


def card_snapshot(
    card: CardRecord,
    rules: Rules,
    usage: UsageBook,
    at: datetime,
    *,
    catalog: CatalogState,
    policy: OfflinePolicy,
    network: Network = LOCAL,
) -> CardSnapshot:
    """Everything the till says about a card now: CARDVIEW's facts (docs/architecture.md §5.3)."""
    m = _Moment(card, usage, at, catalog, policy, network)
    birth = card.holder.birth_date
    return CardSnapshot(
        card=card,
        day=m.day,
        active=m.card_reason is None,
        reason=m.card_reason,
        age=age_on(birth, m.day) if birth is not None else None,
        balance=m.balance,
        benefits=[_view(b, _judge(b, m, 1)) for b in rules.benefits],
        redeem_options=_tiers(m, rules),
    )


# --- the quote --------------------------------------------------------------------------


def _check_request(sale: SaleRequest) -> dict[str, int]:
    """Validate the request's shape; the quantity of every chosen benefit."""
    if (
        isinstance(sale.amount_gr, bool)
        or not isinstance(sale.amount_gr, int)
        or not 0 <= sale.amount_gr <= MAX_AMOUNT_GR
    ):
        raise Refusal("invalid_amount", {"amount_gr": sale.amount_gr})
    if len(set(sale.benefit_ids)) != len(sale.benefit_ids):
        raise Refusal("invalid_quantity", {"duplicate_benefit": True})
    for bid in sale.benefit_quantities:
        if bid not in sale.benefit_ids:
            raise Refusal("invalid_quantity", {"benefit_id": bid})
    quantities = {bid: sale.benefit_quantities.get(bid, 1) for bid in sale.benefit_ids}
    for bid, qty in quantities.items():
        if isinstance(qty, bool) or not 1 <= qty <= MAX_QUANTITY:
            raise Refusal("invalid_quantity", {"benefit_id": bid, "quantity": qty})
    return quantities


def quote(
    card: CardRecord,
    rules: Rules,
    usage: UsageBook,
    sale: SaleRequest,
    at: datetime,
    *,
    catalog: CatalogState,
    policy: OfflinePolicy,
    network: Network = LOCAL,
) -> Quote:
    """What this sale would grant and take now; raises `Refusal` when it may not happen."""
    quantities = _check_request(sale)
    m = _Moment(card, usage, at, catalog, policy, network)
    if m.card_reason is not None:
        raise Refusal(m.card_reason, {"card": card.number})

    by_id = {b.id: b for b in rules.benefits}
    chosen: list[Benefit] = []
    persons_new: list[str] = []
    for bid in sale.benefit_ids:
        b = by_id.get(bid)
        if b is None:
            raise Refusal.of_benefit(bid, None, {"benefit_id": bid})
        verdict = _judge(b, m, quantities[bid])
        if verdict.reason is not None:
            if verdict.reason == "period_limit_reached" and quantities[bid] > (
                b.uses_per_period or 0
            ):
                raise Refusal("invalid_quantity", {"benefit_id": bid, **verdict.details})
            raise Refusal.of_benefit(
                bid, verdict.reason, {"benefit_id": bid, "name": b.name, **verdict.details}
            )
        chosen.append(b)
        if verdict.new_person:
            persons_new.append(bid)

    override, reason = _check_override(sale, chosen, quantities, rules)
    tier = _check_redeem(sale, rules, m)
    discount = tier.discount_gr if tier is not None else 0
    redeemed = tier.points if tier is not None else 0

    lines: list[Explanation] = []
    if tier is not None:
        lines.append(
            explain(
                "redeem",
                points=-redeemed,
                amount_gr=discount,
                redeemed=redeemed,
                discount=pln(discount),
            )
        )
    multiplier, program = best_multiplier(card, rules.earn, m.day)
    paid = sale.amount_gr - discount
    earned_purchase = purchase_points(paid, rules.earn, multiplier)
    lines.extend(_purchase_lines(paid, rules.earn, multiplier, program, earned_purchase))

    benefit_points: dict[str, int] = {}
    for b in chosen:
        qty = quantities[b.id]
        default = max(b.points, 0) * qty
        if override is not None:
            benefit_points[b.id] = override
            lines.append(
                explain(
                    "override",
                    points=override,
                    name=b.name,
                    default=default,
                    reason=reason,
                )
            )
        else:
            benefit_points[b.id] = default
            lines.append(
                explain(
                    "benefit",
                    points=default,
                    name=b.name,
                    quantity=quantity_suffix(qty, b.unit),
                )
            )
    earned = earned_purchase + sum(benefit_points.values())
    if earned > MAX_ENTRY_POINTS:
        raise Refusal("invalid_quantity", {"points_earned": earned, "max": MAX_ENTRY_POINTS})
    return Quote(
        card=card.number,
        holder=card.holder.id,
        persons_new=tuple(persons_new),
        amount_gr=sale.amount_gr,
        purchase_points=earned_purchase,
        benefit_points=benefit_points,
        points_earned=earned,
        points_redeemed=redeemed,
        discount_gr=discount,
        benefit_ids=tuple(sale.benefit_ids),
        benefit_quantities=quantities,
        points_override=override,
        override_reason=reason,
        rules_version=rules.version_str,
        balance_before=m.balance,
        balance_after=m.balance - redeemed + earned,
        multiplier=multiplier,
        explanation=lines,
    )


def override_max(b: Benefit, quantity: int, rules: Rules) -> int:
    """The most points a cashier's override may grant for ``quantity`` uses of ``b``:
    its points per use times the quantity times the rules' ``override_max_factor``."""
    factor = max(rules.override_max_factor, 0)
    return min(max(b.points, 0) * quantity * factor, MAX_POINTS_OVERRIDE)


def _check_override(
    sale: SaleRequest, chosen: list[Benefit], quantities: dict[str, int], rules: Rules
) -> tuple[int | None, str | None]:
    if sale.points_override is None:
        return None, None
    locked = [b.id for b in chosen if b.points_locked]
    if locked:
        raise Refusal("points_locked", {"benefit_id": locked[0]})
    if len(chosen) != 1:
        raise Refusal(
            "invalid_override", {"benefits": len(chosen), "points_override": sale.points_override}
        )
    most = override_max(chosen[0], quantities[chosen[0].id], rules)
    if not 0 <= sale.points_override <= most:
        raise Refusal(
            "invalid_override",
            {"benefits": 1, "points_override": sale.points_override, "max": most},
        )
    reason = (sale.override_reason or "").strip()
    if not reason:
        raise Refusal("override_reason_required", {"benefit_id": chosen[0].id})
    return sale.points_override, reason


def _check_redeem(sale: SaleRequest, rules: Rules, m: _Moment) -> RedeemTier | None:
    if sale.redeem_points == 0:
        return None
    tier = next((t for t in rules.redeem_tiers if t.points == sale.redeem_points), None)
    if tier is None or sale.redeem_points < 0:
        raise Refusal(
            "invalid_redeem_tier",
            {"redeem_points": sale.redeem_points, "tiers": [t.points for t in rules.redeem_tiers]},
        )
    blocked = _redeem_block(m)
    if blocked is not None:
        raise Refusal("offline_limit", blocked)
    if tier.points > m.balance:
        raise Refusal("insufficient_points", {"balance": m.balance, "needed": tier.points})
    if tier.discount_gr > sale.amount_gr:
        raise Refusal(
            "discount_exceeds_amount",
            {"discount_gr": tier.discount_gr, "amount_gr": sale.amount_gr},
        )
    return tier


def _purchase_lines(
    paid: int, earn: EarnRule, multiplier: int, program: str | None, points: int
) -> list[Explanation]:
    if paid <= 0 or earn.gr_per_point <= 0:
        return []
    if paid < earn.min_amount_gr:
        return [explain("below_min_amount", min_amount=pln(earn.min_amount_gr))]
    base = round_div(paid, earn.gr_per_point, earn.rounding)
    lines = [
        explain(
            "purchase",
            points=base,
            amount_gr=paid,
            amount=pln(paid),
            per_point=pln(earn.gr_per_point),
            rounding=ROUNDING_PL.get(earn.rounding, earn.rounding),
        )
    ]
    uncapped = round_div(paid * multiplier, earn.gr_per_point, earn.rounding)
    if program is not None:
        lines.append(
            explain("multiplier", points=uncapped - base, program=program, multiplier=multiplier)
        )
    if points < uncapped:
        lines.append(explain("points_cap", points=points - uncapped, cap=points))
    return lines


# --- the rules document ---------------------------------------------------------------


def rules_problems(rules: Rules) -> list[str]:
    """What makes a rules document unusable or ambiguous (empty when it is sound)."""
    problems: list[str] = []
    earn = rules.earn
    if earn.gr_per_point <= 0:
        problems.append("earn.gr_per_point must be > 0")
    if earn.min_amount_gr < 0:
        problems.append("earn.min_amount_gr must be >= 0")
    if earn.max_points_per_sale is not None and earn.max_points_per_sale < 0:
        problems.append("earn.max_points_per_sale must be >= 0")
    for code, mult in earn.program_multipliers.items():
        if mult < 0:
            problems.append(f"earn.program_multipliers.{code} must be >= 0")
    seen_tiers: set[int] = set()
    for i, t in enumerate(rules.redeem_tiers):
        if t.points <= 0 or t.discount_gr <= 0:
            problems.append(f"redeem_tiers[{i}] needs points > 0 and discount_gr > 0")
        if t.points in seen_tiers:
            problems.append(f"redeem_tiers[{i}] repeats {t.points} points")
        seen_tiers.add(t.points)
    seen_ids: set[str] = set()
    for b in rules.benefits:
        where = f"benefits[{b.id}]"
        if b.id in seen_ids:
            problems.append(f"{where} id is repeated")
        seen_ids.add(b.id)
        if b.unsupported is not None:
            problems.append(f"{where} is not understood ({b.unsupported}): shown unavailable")
            continue
        if b.points < 0:
            problems.append(f"{where}.points must be >= 0")
        if b.uses_per_period is not None and b.uses_per_period < 1:
            problems.append(f"{where}.uses_per_period must be >= 1")
        for name in ("max_persons", "min_points", "age_min", "age_max", "persons_used"):
            value = getattr(b, name)
            if value is not None and value < 0:
                problems.append(f"{where}.{name} must be >= 0")
        if not b.limited:
            limits = [n for n in ("max_persons", "uses_per_period") if getattr(b, n) is not None]
            if limits:
                problems.append(
                    f"{where} is limited: false but sets {' and '.join(limits)}:"
                    " the limit is enforced"
                )
        if b.valid_from and b.valid_to and b.valid_from > b.valid_to:
            problems.append(f"{where}.valid_from is after valid_to")
        if b.age_min is not None and b.age_max is not None and b.age_min > b.age_max:
            problems.append(f"{where}.age_min is above age_max")
    return problems
