"""The programme's data as the terminal holds it: cards, holders, benefit and points rules.

These are also the wire types of the city server's card feed and rules document
(docs/architecture.md §5.4), so `sync` decodes straight into them.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Literal

import msgspec


class CardStatus(StrEnum):
    ACTIVE = "active"
    BLOCKED = "blocked"  # zastrzeżona: lost or stolen; only the city can unblock
    EXPIRED = "expired"
    REPLACED = "replaced"  # a duplicate was issued


class Holder(msgspec.Struct, frozen=True, kw_only=True):
    """The card's holder. ``id`` is the city's opaque, stable id of the person: every
    card of one person (a duplicate, a replacement, the app's card) shares it, and
    benefit limits count per holder (docs/architecture.md §5.8)."""

    display_name: str
    birth_date: date | None = None
    id: str | None = None


class Program(msgspec.Struct, frozen=True, kw_only=True):
    """A programme package (pakiet) on a card: mieszkaniec, senior, kdr, ..."""

    code: str
    valid_to: date


class CardRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One card of the city's card list."""

    @property
    def holder_key(self) -> str:
        """Whom benefit limits count for: the holder id, or the card's own number."""
        return self.holder.id or self.number

    number: str
    status: CardStatus
    holder: Holder
    uids: tuple[str, ...] = ()
    programs: tuple[Program, ...] = ()
    points: int = 0
    points_as_of: datetime | None = None
    # Set by the catalogue from the feed header's terminal_seq (not a feed-line field):
    # ``points`` includes this terminal's entries up to this seq (None: the feed said not).
    points_seq: int | None = None


class CardRemoved(msgspec.Struct, frozen=True, kw_only=True):
    """A delta line removing a card from the list."""

    number: str
    removed: Literal[True]


Period = Literal["day", "week", "month", "year"]
Unit = Literal["pieces", "hours"]
Rounding = Literal["floor", "ceil", "half_up"]


class Benefit(msgspec.Struct, frozen=True, kw_only=True):
    """A partner's benefit (benefit), every field of the partner panel's form."""

    id: str
    name: str
    description: str = ""
    label: str = ""  # size of the discount, e.g. "-10%"
    limited: bool = False
    valid_from: date | None = None
    valid_to: date | None = None
    age_min: int | None = None
    age_max: int | None = None
    active: bool = True
    visible: bool = True
    programs: tuple[str, ...] = ()  # empty: any programme
    points: int = 0  # points granted per use
    points_locked: bool = False
    min_points: int | None = None  # available only when the balance is above this
    max_persons: int | None = None  # distinct residents, programme-wide
    uses_per_period: int | None = None  # uses (or hours) per period, per card
    period: Period | None = None
    unit: Unit = "pieces"
    persons_used: int = 0  # distinct residents so far, as the server counted
    # Set by the till, never by the city: why this benefit could not be read (an unknown
    # enum value, a wrong type). `sync.wire.decode_rules` keeps such a benefit with its id
    # and name so the screen shows it unavailable (benefit_unsupported) and the rest sells.
    unsupported: str | None = None


class EarnRule(msgspec.Struct, frozen=True, kw_only=True):
    gr_per_point: int = 100
    rounding: Rounding = "floor"
    min_amount_gr: int = 0
    max_points_per_sale: int | None = None
    program_multipliers: dict[str, int] = {}


class RedeemTier(msgspec.Struct, frozen=True, kw_only=True):
    points: int
    discount_gr: int


DEFAULT_REDEEM_TIERS: tuple[RedeemTier, ...] = (
    RedeemTier(points=100, discount_gr=1000),
    RedeemTier(points=250, discount_gr=2500),
    RedeemTier(points=500, discount_gr=5000),
)


class Cashier(msgspec.Struct, frozen=True, kw_only=True):
    """A cashier of the rules document; a ``manager`` also approves points overrides and
    closes the day (docs/architecture.md §5.10)."""

    id: str
    name: str
    pin_hash: str  # see ledger.pins
    role: Literal["cashier", "manager"] = "cashier"


class Partner(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    address: str = ""
    nip: str = ""


class Rules(msgspec.Struct, frozen=True, kw_only=True):
    """A partner's rules document (GET /v1/partners/{pid}/rules)."""

    version: str | int
    earn: EarnRule = EarnRule()
    redeem_tiers: tuple[RedeemTier, ...] = DEFAULT_REDEEM_TIERS
    benefits: tuple[Benefit, ...] = ()
    cashiers: tuple[Cashier, ...] = ()
    partner: Partner = Partner(name="")
    # A cashier's points override of a benefit may grant at most its points per use
    # times the quantity times this factor (docs/architecture.md §5.9); the till and the
    # city check the same bound.
    override_max_factor: int = 5
    # What the partner pays the programme per point granted, in grosze (the Z report's
    # and the partner statistics' "koszt partnera").
    point_cost_gr: int = 10

    @property
    def version_str(self) -> str:
        return str(self.version)
