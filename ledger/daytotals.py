"""A local day's totals of sales and voids: what the Z report and the day_close entry say.

`DayTotals` is fed one entry at a time (the usage book keeps one for each of the last
local days, so a Z report needs no read of the day's entries); `day_summary` is the
same sum over a list of entries.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from ledger.entry import Entry, EntryKind
from ledger.money import PARTNER_COST_PER_POINT_GR, partner_cost_gr

SUMMARY_KEYS: Final = (
    "sales",
    "voids",
    "amount_gr",
    "discount_gr",
    "points_earned",
    "points_redeemed",
    "partner_cost_gr",
    "sales_amount_gr",
    "voids_amount_gr",
    "first_seq",
    "last_seq",
    "point_cost_gr",  # the price per point partner_cost_gr was counted at (added later)
)


class DayTotals:
    """Running totals of one local day, plus where its last Z report stands."""

    __slots__ = (
        "amount_gr",
        "discount_gr",
        "first_seq",
        "last_close_seq",
        "last_news_seq",
        "last_seq",
        "points_earned",
        "points_redeemed",
        "sales",
        "sales_amount_gr",
        "voids",
        "voids_amount_gr",
    )

    def __init__(self) -> None:
        self.sales = self.voids = self.amount_gr = self.discount_gr = 0
        self.points_earned = self.points_redeemed = 0
        self.sales_amount_gr = self.voids_amount_gr = 0
        self.first_seq = self.last_seq = 0
        self.last_close_seq = 0  # the day's last day_close entry (0: none yet)
        self.last_news_seq = 0  # the day's last sale or void

    def add(self, e: Entry) -> None:
        if e.kind == EntryKind.DAY_CLOSE:
            self.last_close_seq = max(self.last_close_seq, e.seq)
            return
        if e.kind not in (EntryKind.SALE, EntryKind.VOID):
            return
        if e.kind == EntryKind.SALE:
            self.sales += 1
            self.sales_amount_gr += e.amount_gr
        else:
            self.voids += 1
            self.voids_amount_gr += e.amount_gr
        self.amount_gr += e.amount_gr
        self.discount_gr += e.discount_gr
        self.points_earned += e.points_earned
        self.points_redeemed += e.points_redeemed
        if self.first_seq == 0 or e.seq < self.first_seq:
            self.first_seq = e.seq
        self.last_seq = max(self.last_seq, e.seq)
        self.last_news_seq = max(self.last_news_seq, e.seq)

    def summary(self, point_cost_gr: int = PARTNER_COST_PER_POINT_GR) -> dict[str, int]:
        """The day_close entry's ``summary``: net sums (a void's negative columns cancel
        its sale); ``partner_cost_gr`` is what the partner owes the city for the net
        points at the rules' ``point_cost_gr`` (the city's statistics count the same);
        ``first_seq``/``last_seq`` span the day's sales and voids (0: none)."""
        computed = ("partner_cost_gr", "point_cost_gr")
        out = {k: getattr(self, k) for k in SUMMARY_KEYS if k not in computed}
        out["partner_cost_gr"] = partner_cost_gr(self.points_earned, point_cost_gr)
        out["point_cost_gr"] = point_cost_gr
        return {k: out[k] for k in SUMMARY_KEYS}

    def has_news(self) -> bool:
        """Whether a sale or void came after the day's last Z report (or there is none)."""
        return self.last_close_seq == 0 or self.last_news_seq > self.last_close_seq

    def to_state(self) -> list[int]:
        return [getattr(self, k) for k in self.__slots__]

    @classmethod
    def from_state(cls, values: list[int]) -> DayTotals:
        t = cls()
        for k, v in zip(cls.__slots__, values, strict=True):
            setattr(t, k, v)
        return t


def day_summary(entries: Iterable[Entry], local_date: str) -> dict[str, int]:
    """Totals of one local day's sales and voids among ``entries`` (see DayTotals)."""
    t = DayTotals()
    for e in entries:
        if e.local_date == local_date:
            t.add(e)
    return t.summary()
