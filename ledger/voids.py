"""Voids (compensating entries); the day's totals for the Z report live in ledger.daytotals.

A void never edits its sale: it is a new entry that negates the sale's amount, points and
discount exactly and names the same card, benefits and quantities, so the sum of the two
is zero in every column and the usage book gives the sale's uses back.
"""

from __future__ import annotations

import msgspec

from ledger.daytotals import SUMMARY_KEYS, day_summary
from ledger.domain import CardRecord
from ledger.entry import Draft, Entry, EntryKind
from ledger.refusals import Refusal
from ledger.usage import UsageBook, card_balance


class VoidPlan(msgspec.Struct, frozen=True, kw_only=True):
    """What voiding ``ref`` writes: every quantity of the sale, negated."""

    ref: int
    card: str | None
    amount_gr: int
    points_earned: int
    points_redeemed: int
    discount_gr: int
    benefits: tuple[str, ...]
    benefit_quantities: dict[str, int]
    benefit_points: dict[str, int]
    rules_version: str
    reason: str
    balance_after: int | None = None
    holder: str | msgspec.UnsetType = msgspec.UNSET
    persons_new: tuple[str, ...] | msgspec.UnsetType = msgspec.UNSET

    def to_draft(
        self, *, ts: str, local_date: str, cashier: str | None, sale_id: str | None
    ) -> Draft:
        """The void entry's draft for the store."""
        return Draft(
            ts=ts,
            local_date=local_date,
            kind=EntryKind.VOID,
            card=self.card,
            amount_gr=self.amount_gr,
            points_earned=self.points_earned,
            points_redeemed=self.points_redeemed,
            discount_gr=self.discount_gr,
            benefits=self.benefits,
            benefit_quantities=dict(self.benefit_quantities),
            benefit_points=dict(self.benefit_points),
            rules_version=self.rules_version,
            cashier=cashier,
            ref=self.ref,
            sale_id=sale_id,
            reason=self.reason,
            balance_after=self.balance_after,
            holder=self.holder,
            persons_new=self.persons_new,
        )


def plan_void(
    original: Entry,
    usage: UsageBook,
    *,
    reason: str,
    card: CardRecord | None = None,
    voided_by: int | None = None,
) -> VoidPlan:
    """Plan the void of ``original``; refuse a void of a void, of a non-sale, or a second void.

    ``voided_by``: the seq of a void entry that already cancelled ``original`` (the
    caller looks it up in the ledger: a sale of years ago can be voided once, too).

    With ``card`` (the catalogue's record of the sale's card) the plan also carries the
    balance after the void. The balance may go below zero when the sale's points were
    already redeemed; the void is still allowed, because refusing it would keep points
    that a refunded purchase no longer earns.
    """
    if original.kind == EntryKind.VOID:
        raise Refusal("cannot_void_void", {"seq": original.seq})
    if original.kind != EntryKind.SALE:
        raise Refusal("not_a_sale", {"seq": original.seq, "kind": original.kind})
    if voided_by is not None:
        raise Refusal("already_voided", {"seq": original.seq, "void_seq": voided_by})
    if not reason.strip():
        raise Refusal("void_reason_required", {"seq": original.seq})
    balance_after: int | None = None
    if card is not None and card.number == original.card:
        balance_after = (
            card_balance(card, usage) - original.points_earned + original.points_redeemed
        )
    return VoidPlan(
        ref=original.seq,
        card=original.card,
        amount_gr=-original.amount_gr,
        points_earned=-original.points_earned,
        points_redeemed=-original.points_redeemed,
        discount_gr=-original.discount_gr,
        benefits=original.benefits,
        benefit_quantities=dict(original.benefit_quantities),
        benefit_points={k: -v for k, v in original.benefit_points.items()},
        rules_version=original.rules_version,
        reason=reason.strip(),
        balance_after=balance_after,
        holder=original.holder,  # the void gives back what the sale counted, to whom
        # A void never gives a persons-limit slot back: another till may have let the
        # same resident in as "not new" on the strength of this sale (§5.8).
    )


__all__ = ["SUMMARY_KEYS", "VoidPlan", "day_summary", "plan_void"]
