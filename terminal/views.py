"""The local API's bodies and answers (docs/architecture.md §5.3, CONTRACT).

The sale service returns these Structs and knows nothing of HTTP; ``terminal/api.py``
encodes them and picks the status. ``terminal/openapi.yaml`` describes the same shapes,
and the schemathesis test checks the running daemon against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import msgspec

from ledger.clock import format_ts
from ledger.domain import Rules
from ledger.entry import Entry
from ledger.refusals import message_for
from ledger.rules import CardSnapshot, Quote

# --- requests ------------------------------------------------------------------------


class Approval(msgspec.Struct, kw_only=True, frozen=True):
    """A manager's consent on the cashier's request: their id and PIN (§5.10)."""

    cashier: str
    pin: str


class SaleBody(msgspec.Struct, kw_only=True, frozen=True):
    """SALE of docs/architecture.md §5.3; ``approval`` lets a cashier write a points
    override (docs/architecture.md §5.10)."""

    id: str
    card: str
    amount_gr: int
    benefit_ids: tuple[str, ...] = ()
    redeem_points: int = 0
    points_override: int | None = None
    override_reason: str | None = None
    benefit_quantities: dict[str, int] = {}
    approval: Approval | None = None


class CloseDayBody(msgspec.Struct, kw_only=True, frozen=True):
    """The day close's optional body: a manager's approval when a cashier closes."""

    approval: Approval | None = None


class ResolveBody(msgspec.Struct, frozen=True):
    input: str


class VoidBody(msgspec.Struct, frozen=True):
    reason: str = ""


class LoginBody(msgspec.Struct, frozen=True, kw_only=True):
    """A login: the cashier chosen on the screen, then their PIN (docs/architecture.md
    §5.10); a body without ``cashier`` is refused with ``cashier_required``."""

    pin: str
    cashier: str | None = None


class SwipeBody(msgspec.Struct, frozen=True):
    key: str


Role = Literal["cashier", "manager"]


@dataclass(frozen=True)
class Caller:
    """Who is calling: a cashier session, or the API token (no cashier, or ``X-Cashier``).

    ``approved_by`` is the manager whose PIN came with this request. The API token alone
    is the box owner's key (a file only the daemon's user reads) and counts as a manager.
    """

    cashier_id: str | None
    cashier_name: str | None
    role: Role = "cashier"
    approved_by: str | None = None

    @property
    def may_approve(self) -> bool:
        """May write what needs a manager: points overrides, the day close."""
        return self.cashier_id is None or self.role == "manager" or self.approved_by is not None


class CashierItem(msgspec.Struct, frozen=True, kw_only=True):
    """A name on the login screen (never the PIN hash)."""

    id: str
    name: str
    role: Role


class CashierList(msgspec.Struct, frozen=True, kw_only=True):
    cashiers: list[CashierItem]


class SessionView(msgspec.Struct, frozen=True, kw_only=True):
    cashier: CashierItem


# --- the card view -------------------------------------------------------------------


class HolderView(msgspec.Struct, frozen=True, kw_only=True):
    display_name: str
    age: int | None


class ProgramView(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    valid_to: str
    valid: bool  # still valid on the local date (extension)


class BalanceView(msgspec.Struct, frozen=True, kw_only=True):
    points: int
    as_of: str | None  # the city's balance date: the screen says "stan na …"
    stale: bool  # the card list is older than offline.stale_after_s


class BenefitItem(msgspec.Struct, frozen=True, kw_only=True):
    """A CARDVIEW ``benefits`` item, plus what the screen shows beside it."""

    id: str
    name: str
    label: str
    available: bool
    reason: str | None
    points: int
    points_locked: bool
    unit: str
    description: str
    remaining: int | None  # uses/hours left in the period; None: no limit
    free_at: str | None  # when a reached period limit frees up
    message: str | None  # the reason in Polish
    # What the screen needs to say "from when" and "how many points": the benefit's own
    # dates and threshold (None when it has none, or without the partner's rules).
    valid_from: str | None = None
    valid_to: str | None = None
    min_points: int | None = None


class RedeemOption(msgspec.Struct, frozen=True, kw_only=True):
    points: int
    discount_gr: int


class CardView(msgspec.Struct, frozen=True, kw_only=True):
    """CARDVIEW of docs/architecture.md §5.3 with the card's own refusal and the offline flag."""

    number: str
    status: str
    active: bool
    holder: HolderView
    programs: list[ProgramView]
    balance: BalanceView
    benefits: list[BenefitItem]
    redeem_options: list[RedeemOption]
    reason: str | None  # card_blocked | card_inactive, None when AKTYWNA
    message: str | None
    offline: bool
    # Every tier of the partner, so the screen can say how many points a card lacks
    # (``redeem_options`` holds only those the card can use now).
    redeem_tiers: list[RedeemOption] = []


def reason_text(code: str | None) -> str | None:
    """Polish text of a benefit or card reason code (``ledger.refusals`` owns the words)."""
    return None if code is None else message_for(code)


def card_view(snap: CardSnapshot, *, stale: bool, rules: Rules | None = None) -> CardView:
    """The screen's CARDVIEW of a judged card; available benefits first.

    ``stale``: the card list is older than ``offline.stale_after_s`` (balance and
    benefits may be out of date: the screen says so). ``rules``: the partner's rules the
    card was judged by, for the benefits' dates and thresholds and all redeem tiers.
    """
    card = snap.card
    defs = {b.id: b for b in rules.benefits} if rules is not None else {}
    benefits = [
        BenefitItem(
            id=b.id,
            name=b.name,
            label=b.label,
            available=b.available,
            reason=b.reason,
            points=b.points,
            points_locked=b.points_locked,
            unit=b.unit,
            description=b.description,
            remaining=b.remaining,
            free_at=format_ts(b.free_at) if b.free_at else None,
            message=reason_text(b.reason),
            valid_from=_iso(defs[b.id].valid_from) if b.id in defs else None,
            valid_to=_iso(defs[b.id].valid_to) if b.id in defs else None,
            min_points=defs[b.id].min_points if b.id in defs else None,
        )
        # ``visible`` is about the city's web site and app only: the till offers them all.
        for b in snap.benefits
    ]
    benefits.sort(key=lambda b: not b.available)
    return CardView(
        number=card.number,
        status=str(card.status),
        active=snap.active,
        holder=HolderView(display_name=card.holder.display_name, age=snap.age),
        programs=[
            ProgramView(code=p.code, valid_to=p.valid_to.isoformat(), valid=p.valid_to >= snap.day)
            for p in card.programs
        ],
        balance=BalanceView(
            points=snap.balance,
            as_of=format_ts(card.points_as_of) if card.points_as_of else None,
            stale=stale,
        ),
        benefits=benefits,
        redeem_options=[
            RedeemOption(points=t.points, discount_gr=t.discount_gr) for t in snap.redeem_options
        ],
        reason=snap.reason,
        message=reason_text(snap.reason),
        offline=stale,
        redeem_tiers=sorted(
            (RedeemOption(points=t.points, discount_gr=t.discount_gr) for t in rules.redeem_tiers),
            key=lambda t: t.points,
        )
        if rules is not None
        else [],
    )


def _iso(d: date | None) -> str | None:
    return None if d is None else d.isoformat()


# --- sales ---------------------------------------------------------------------------

ReceiptStatus = Literal["printed", "queued", "failed", "none"]


class ReceiptState(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    status: str
    copy: bool = False


class QuoteView(msgspec.Struct, frozen=True, kw_only=True):
    """The would-be result of a sale: nothing is written."""

    card: str
    amount_gr: int
    purchase_points: int
    benefit_points: dict[str, int]
    points_earned: int
    points_redeemed: int
    discount_gr: int
    to_pay_gr: int
    balance_before: int
    balance_after: int
    rules_version: str
    explanation: list[str]


def quote_view(q: Quote) -> QuoteView:
    return QuoteView(
        card=q.card,
        amount_gr=q.amount_gr,
        purchase_points=q.purchase_points,
        benefit_points=q.benefit_points,
        points_earned=q.points_earned,
        points_redeemed=q.points_redeemed,
        discount_gr=q.discount_gr,
        to_pay_gr=q.amount_gr - q.discount_gr,
        balance_before=q.balance_before,
        balance_after=q.balance_after,
        rules_version=q.rules_version,
        explanation=[x.text_pl for x in q.explanation],
    )


class EntryResult(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A written entry and its receipt; a new sale also says how its points came about."""

    entry: Entry
    receipt: ReceiptState
    explanation: list[str] | None = None
    summary: dict[str, int] | None = None


@dataclass(frozen=True)
class Written:
    """What a write did: ``created`` is False when the request replayed an earlier one."""

    result: EntryResult
    created: bool


class ReprintResult(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    receipt: ReceiptState
    text: str = ""  # the copy as printed (KOPIA), for the screen's preview


class ReceiptPreview(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    text: str
    png_url: str
    status: str


class LedgerPage(msgspec.Struct, frozen=True, kw_only=True):
    entries: list[Entry]


# --- status --------------------------------------------------------------------------


class ReaderHealth(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    kind: str
    state: str


class PrinterHealth(msgspec.Struct, frozen=True, kw_only=True):
    state: str


class HeldEntryView(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    reason: str


class SyncHealth(msgspec.Struct, frozen=True, kw_only=True):
    pending_entries: int = 0
    acked_seq: int | None = None
    last_upload_at: str | None = None
    cards_version: int | None = None
    cards_age_s: float | None = None
    fork_alarm: bool = False
    # The card list is older than offline.stale_after_s: the page shows the offline banner.
    offline: bool = True
    # The partner's usage feed applied (None: none yet, or a city without one) and the
    # last usage feed or lease answer refused (docs/architecture.md §5.8).
    usage_version: int | None = None
    usage_error: str | None = None
    lease_error: str | None = None
    # benefit -> persons this till may admit (its lease grants)
    leases: dict[str, int] = {}
    # Entries the city stores but holds in quarantine, not credited (docs/architecture.md
    # §5.9): how many, and the first ones with the city's reason.
    quarantined_count: int = 0
    quarantined: list[HeldEntryView] = []


class LedgerHealth(msgspec.Struct, frozen=True, kw_only=True):
    head_seq: int
    head_hash: str
    # The whole file's consistency check, run in the background after READY.
    integrity: Literal["pending", "running", "ok", "failed"] = "pending"
    integrity_detail: str | None = None


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: Literal["ok", "degraded"]
    version: str
    readers: list[ReaderHealth]
    printer: PrinterHealth
    sync: SyncHealth
    ledger: LedgerHealth


class TerminalInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    partner_id: str


class PartnerInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    address: str


class HeadSeq(msgspec.Struct, frozen=True, kw_only=True):
    head_seq: int


class TillState(msgspec.Struct, frozen=True, kw_only=True):
    """What the page needs to draw itself (``GET /api/v1/state`` and the stream's hello)."""

    terminal: TerminalInfo
    partner: PartnerInfo | None
    ledger: HeadSeq
    today: str


# --- events (the WebSocket stream) ---------------------------------------------------


class ReadInfo(msgspec.Struct, frozen=True, kw_only=True):
    source: str
    reader: str


class CardEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="card"):
    read: ReadInfo
    card: CardView


class CardErrorEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="card_error"):
    reason: str
    message: str
    read: ReadInfo


class DeviceEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="device"):
    """A reader (with its name, kind and detail) or the printer changed state."""

    device: Literal["reader", "printer"]
    state: str
    name: str | None = None
    kind: str | None = None
    detail: str | None = None


class SaleEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="sale"):
    entry: Entry
    receipt: ReceiptState


class HealthEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="health"):
    health: Health


Event = CardEvent | CardErrorEvent | DeviceEvent | SaleEvent | HealthEvent


def event_dict(ev: Event) -> dict[str, Any]:
    """The event as the stream sends it (the hub numbers it with ``eid``)."""
    out: dict[str, Any] = msgspec.to_builtins(ev)
    return out
