"""Partner statistics: what the partner panel calls "informacje statystyczne na temat
zużycia benefitów" (docs/architecture.md §5.11).

The city keeps running sums per partner and local day as entries are credited
(``stats_sales`` per terminal and cashier, ``stats_benefits`` per benefit), so a report
over any range of days is a sum of small rows, not a read of every entry. This module
is the pure part: what one entry adds to those sums, and the report's shape. Entries in
quarantine add nothing until approved; they are reported apart.

Every figure is counted on the entry's own ``local_date``, as the till's Z report counts
it: a void takes its sale back on the day it was made. "Persons" are the distinct
residents (holder ids) with a net use of the benefit in the range, on the sale's date
(the same table the benefit limits use, ``benefit_usage``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Final

import msgspec

from ledger.entry import Entry, EntryKind
from ledger.money import PARTNER_COST_PER_POINT_GR, format_pln

# Columns of stats_sales after its key (partner_id, date, terminal, cashier).
SALES_COLUMNS: Final = (
    "sales",
    "voids",
    "sales_amount_gr",
    "voids_amount_gr",
    "discount_gr",
    "points_earned",
    "points_redeemed",
)
# Columns of stats_benefits after its key (partner_id, date, benefit_id).
BENEFIT_COLUMNS: Final = ("uses", "quantity", "points")
NO_CASHIER: Final = ""  # the key of entries made without a cashier (an API token)
# Rules.point_cost_gr when a partner has no rules document (yet).
DEFAULT_POINT_COST_GR: Final = PARTNER_COST_PER_POINT_GR
MAX_RANGE_DAYS: Final = 3660  # a report covers at most ten years of days


SalesKey = tuple[str, str, str]  # local date, terminal, cashier
BenefitKey = tuple[str, str]  # local date, benefit id


class Sums(msgspec.Struct, kw_only=True):
    """Sales and voids of a slice; amounts in grosze, points as counted, net of voids."""

    sales: int = 0
    voids: int = 0
    amount_gr: int = 0  # net: the sales' amounts plus the voids' (negative) ones
    sales_amount_gr: int = 0
    voids_amount_gr: int = 0  # the voids' own amounts (negative)
    discount_gr: int = 0
    points_earned: int = 0
    points_redeemed: int = 0

    def add_row(self, row: Iterable[int]) -> None:
        values = dict(zip(SALES_COLUMNS, row, strict=True))
        for k, v in values.items():
            setattr(self, k, getattr(self, k) + int(v))
        self.amount_gr = self.sales_amount_gr + self.voids_amount_gr


class TerminalSums(Sums, kw_only=True):
    terminal: str


class CashierSums(Sums, kw_only=True):
    cashier: str | None  # null: entries made without a cashier (the box owner's token)
    name: str | None = None  # from the partner's current rules


class BenefitSums(msgspec.Struct, kw_only=True):
    benefit_id: str
    name: str | None = None  # from the partner's current rules (None: no longer there)
    uses: int = 0  # sales naming it, less the voids naming it
    persons: int = 0  # distinct residents with a net use in the range
    quantity: int = 0  # in the benefit's unit (pieces, hours), net
    points: int = 0  # points granted through it, net


class HeldSums(msgspec.Struct, kw_only=True):
    """Entries of the range the city holds (or rejected): stored, never in the sums."""

    entries: int = 0
    sales: int = 0
    voids: int = 0
    amount_gr: int = 0
    points_earned: int = 0
    points_redeemed: int = 0

    def add(self, e: Entry) -> None:
        self.entries += 1
        self.sales += e.kind == EntryKind.SALE
        self.voids += e.kind == EntryKind.VOID
        self.amount_gr += e.amount_gr
        self.points_earned += e.points_earned
        self.points_redeemed += e.points_redeemed


class PartnerStats(msgspec.Struct, kw_only=True):
    """``GET /v1/partners/{pid}/stats?from=&to=`` (sync/openapi.yaml ``PartnerStats``)."""

    partner_id: str
    date_from: str = msgspec.field(name="from")
    date_to: str = msgspec.field(name="to")
    point_cost_gr: int  # the programme's price per point, from the partner's rules
    partner_cost_gr: int  # net points earned × point_cost_gr: what the partner owes
    totals: Sums
    benefits: list[BenefitSums]
    terminals: list[TerminalSums]
    cashiers: list[CashierSums]
    quarantined: HeldSums  # held, awaiting a decision
    rejected: HeldSums  # rejected by the city: never credited


def sales_deltas(entries: Iterable[Entry]) -> dict[SalesKey, list[int]]:
    """What credited entries add to stats_sales, by (local date, terminal, cashier)."""
    out: dict[SalesKey, list[int]] = {}
    for e in entries:
        if e.kind not in (EntryKind.SALE, EntryKind.VOID):
            continue
        key = (e.local_date, e.terminal, e.cashier or NO_CASHIER)
        row = out.setdefault(key, [0] * len(SALES_COLUMNS))
        sale = e.kind == EntryKind.SALE
        row[0] += sale
        row[1] += not sale
        row[2 if sale else 3] += e.amount_gr
        row[4] += e.discount_gr
        row[5] += e.points_earned
        row[6] += e.points_redeemed
    return out


def benefit_deltas(entries: Iterable[Entry]) -> dict[BenefitKey, list[int]]:
    """What credited entries add to stats_benefits, by (local date, benefit id).

    A sale counts each benefit it names once, with its quantity (default 1) and the
    points it granted; a void (its quantities positive, its points negated, as the till
    writes it) takes them back."""
    out: dict[BenefitKey, list[int]] = {}
    for e in entries:
        if e.kind not in (EntryKind.SALE, EntryKind.VOID) or not e.benefits:
            continue
        sign = 1 if e.kind == EntryKind.SALE else -1
        for bid in dict.fromkeys(e.benefits):
            row = out.setdefault((e.local_date, bid), [0, 0, 0])
            row[0] += sign
            row[1] += sign * abs(e.benefit_quantities.get(bid, 1))
            row[2] += e.benefit_points.get(bid, 0)
    return out


class RangeError(ValueError):
    """A report range that cannot be read; ``str()`` says which end and why."""


def report_range(date_from: str, date_to: str) -> tuple[str, str]:
    """The local days ``date_from``..``date_to`` (YYYY-MM-DD, inclusive), checked."""
    days = []
    for name, value in (("from", date_from), ("to", date_to)):
        try:
            if len(value) != 10:
                raise ValueError(value)
            days.append(date.fromisoformat(value))
        except ValueError:
            raise RangeError(f"{name}={value!r} is not a date like 2026-12-01") from None
    if days[0] > days[1]:
        raise RangeError(f"from={date_from} is after to={date_to}")
    if (days[1] - days[0]).days >= MAX_RANGE_DAYS:
        raise RangeError(f"a report covers at most {MAX_RANGE_DAYS} days")
    return days[0].isoformat(), days[1].isoformat()


# --- the report as the operator reads it (`kartapos central stats`) -------------------

CSV_HEADER: Final = (
    "section",
    "id",
    "name",
    "uses",
    "persons",
    "quantity",
    "points",
    "sales",
    "voids",
    "amount_gr",
    "discount_gr",
    "points_earned",
    "points_redeemed",
)


def _sums_cells(s: Sums | HeldSums) -> list[object]:
    discount = s.discount_gr if isinstance(s, Sums) else ""
    return [s.sales, s.voids, s.amount_gr, discount, s.points_earned, s.points_redeemed]


def csv_rows(r: PartnerStats) -> list[list[object]]:
    """One table for a spreadsheet: a ``section`` column (total, benefit, terminal,
    cashier, quarantined, rejected), amounts in grosze, points as counted."""
    rows: list[list[object]] = [list(CSV_HEADER)]
    rows.append(["total", r.partner_id, "", "", "", "", "", *_sums_cells(r.totals)])
    rows.extend(
        ["benefit", b.benefit_id, b.name or "", b.uses, b.persons, b.quantity, b.points] + [""] * 6
        for b in r.benefits
    )
    rows.extend(["terminal", t.terminal, "", "", "", "", "", *_sums_cells(t)] for t in r.terminals)
    rows.extend(
        ["cashier", c.cashier or "", c.name or "", "", "", "", "", *_sums_cells(c)]
        for c in r.cashiers
    )
    for name, held in (("quarantined", r.quarantined), ("rejected", r.rejected)):
        rows.append([name, "", "", "", "", "", "", *_sums_cells(held)])
    return rows


def _pln(gr: int) -> str:
    return format_pln(gr)


def text_lines(r: PartnerStats) -> list[str]:
    """The report for a terminal window: totals, then benefits, terminals and cashiers."""
    t = r.totals
    out = [
        f"partner {r.partner_id}, local days {r.date_from} to {r.date_to}",
        f"  sales {t.sales}, voids {t.voids}; net amount {_pln(t.amount_gr)}"
        f" (sales {_pln(t.sales_amount_gr)}, voids {_pln(t.voids_amount_gr)}),"
        f" discounts {_pln(t.discount_gr)}",
        f"  points earned {t.points_earned}, redeemed {t.points_redeemed}",
        f"  partner's cost {_pln(r.partner_cost_gr)}"
        f" ({t.points_earned} points at {_pln(r.point_cost_gr)})",
        "benefits (uses, persons, quantity, points):",
    ]
    out += [
        f"  {b.benefit_id}\t{b.name or '(not in the rules now)'}\t{b.uses}\t{b.persons}"
        f"\t{b.quantity}\t{b.points}"
        for b in r.benefits
    ] or ["  none used"]
    out.append("terminals (sales, voids, net amount, points earned, redeemed):")
    out += [
        f"  {s.terminal}\t{s.sales}\t{s.voids}\t{_pln(s.amount_gr)}\t{s.points_earned}"
        f"\t{s.points_redeemed}"
        for s in r.terminals
    ] or ["  none"]
    out.append("cashiers (sales, voids, net amount, points earned, redeemed):")
    out += [
        f"  {c.cashier or '(no cashier: API token)'}\t{c.name or ''}\t{c.sales}\t{c.voids}"
        f"\t{_pln(c.amount_gr)}\t{c.points_earned}\t{c.points_redeemed}"
        for c in r.cashiers
    ] or ["  none"]
    for label, held in (
        ("held in quarantine", r.quarantined),
        ("rejected by the city", r.rejected),
    ):
        if held.entries:
            out.append(
                f"{label}, not counted above: {held.entries} entries ({held.sales} sales,"
                f" {held.voids} voids), {_pln(held.amount_gr)}, points earned"
                f" {held.points_earned}, redeemed {held.points_redeemed}"
            )
    return out
