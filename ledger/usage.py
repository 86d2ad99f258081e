"""Usage counts of cards and benefits: a read model derived from this terminal's ledger.

`UsageBook` is rebuilt from the ledger's entries at start (`from_entries`) and fed every
new entry after its durable append (`apply`, in seq order). It is never changed any other
way, so a restart, a crash or a replayed request cannot make it disagree with the ledger:
counts that would bypass a limit after a restart simply cannot exist.

A void gives back what its sale used: the sale's benefit uses, its redemption and its
person stop counting; its points are negated by the void entry's own (negative) deltas.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from ledger.clock import WARSAW, parse_ts, unix_ms
from ledger.domain import CardRecord
from ledger.entry import Entry, EntryKind


class _CardPoints:
    """A card's points deltas ordered by entry time (ts may step back after a clock fix)."""

    __slots__ = ("deltas", "times")

    def __init__(self) -> None:
        self.times: list[int] = []
        self.deltas: list[int] = []

    def add(self, at_ms: int, delta: int) -> None:
        i = bisect_right(self.times, at_ms)
        self.times.insert(i, at_ms)
        self.deltas.insert(i, delta)

    def after(self, at_ms: int | None) -> int:
        if at_ms is None:
            return sum(self.deltas)
        return sum(self.deltas[bisect_right(self.times, at_ms) :])


class UsageBook:
    """What this terminal's ledger says each card and benefit has used."""

    def __init__(self, *, tz: ZoneInfo = WARSAW) -> None:
        self.tz = tz
        self._last_seq = 0
        self._acked_seq = 0
        self._points: dict[str, _CardPoints] = {}
        # (card, benefit) -> {sale seq: (local date ordinal, quantity)}
        self._uses: dict[tuple[str, str], dict[int, tuple[int, int]]] = {}
        # benefit -> {sale seq: card} for uses the server has not acknowledged yet
        self._pending: dict[str, dict[int, str]] = {}
        # benefit -> how many pending uses each card has (its keys: the distinct cards)
        self._pending_cards: dict[str, dict[str, int]] = {}
        # (card, local date ordinal) -> sale seqs that redeemed points
        self._redeems: dict[tuple[str, int], set[int]] = {}
        self._redeem_key: dict[int, tuple[str, int]] = {}
        self._voided: dict[int, int] = {}  # sale seq -> void seq

    @classmethod
    def from_entries(cls, entries: Iterable[Entry], *, tz: ZoneInfo = WARSAW) -> UsageBook:
        """Rebuild the book from the ledger, entries in seq order."""
        book = cls(tz=tz)
        for entry in entries:
            book.apply(entry)
        return book

    # --- feeding -------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """The seq of the last entry applied (0 when none)."""
        return self._last_seq

    @property
    def acknowledged_seq(self) -> int:
        return self._acked_seq

    def apply(self, entry: Entry) -> None:
        """Take in one appended entry; an entry at or below `last_seq` is ignored (replay)."""
        if entry.seq <= self._last_seq:
            return
        self._last_seq = entry.seq
        card = entry.card
        if card is None:
            return
        delta = entry.points_earned - entry.points_redeemed
        if delta:
            points = self._points.get(card)
            if points is None:
                points = self._points[card] = _CardPoints()
            points.add(unix_ms(parse_ts(entry.ts)), delta)
        if entry.kind == EntryKind.SALE:
            self._apply_sale(entry, card)
        elif entry.kind == EntryKind.VOID and entry.ref is not None:
            self._apply_void(entry, card, entry.ref)

    def _apply_sale(self, entry: Entry, card: str) -> None:
        if not entry.benefits and entry.points_redeemed <= 0:
            return
        day = date.fromisoformat(entry.local_date).toordinal()
        for benefit in entry.benefits:
            qty = entry.benefit_quantities.get(benefit, 1)
            key = (card, benefit)
            uses = self._uses.get(key)
            if uses is None:
                uses = self._uses[key] = {}
            uses[entry.seq] = (day, qty)
            if entry.seq > self._acked_seq:
                self._add_pending(benefit, entry.seq, card)
        if entry.points_redeemed > 0:
            day_key = (card, day)
            self._redeems.setdefault(day_key, set()).add(entry.seq)
            self._redeem_key[entry.seq] = day_key

    def _apply_void(self, entry: Entry, card: str, ref: int) -> None:
        self._voided[ref] = entry.seq
        for benefit in entry.benefits:
            uses = self._uses.get((card, benefit))
            if uses is not None:
                uses.pop(ref, None)
            self._drop_pending(benefit, ref)
        key = self._redeem_key.pop(ref, None)
        if key is not None:
            self._redeems[key].discard(ref)

    def _add_pending(self, benefit: str, seq: int, card: str) -> None:
        pending = self._pending.get(benefit)
        if pending is None:
            pending = self._pending[benefit] = {}
            self._pending_cards[benefit] = {}
        pending[seq] = card
        cards = self._pending_cards[benefit]
        cards[card] = cards.get(card, 0) + 1

    def _drop_pending(self, benefit: str, seq: int) -> None:
        pending = self._pending.get(benefit)
        if pending is None or seq not in pending:
            return
        card = pending.pop(seq)
        cards = self._pending_cards[benefit]
        cards[card] -= 1
        if cards[card] <= 0:
            del cards[card]

    def set_acknowledged(self, seq: int) -> None:
        """The server holds entries up to ``seq`` AND its rules' ``persons_used`` counts them.

        Call it only once a rules document fetched after that upload is in use: until
        then this terminal's uses keep counting as persons on top of ``persons_used``.
        """
        if seq <= self._acked_seq:
            return
        self._acked_seq = seq
        for benefit, pending in self._pending.items():
            for sale_seq in [s for s in pending if s <= seq]:
                self._drop_pending(benefit, sale_seq)

    # --- queries -------------------------------------------------------------------

    def points_delta_after(self, card: str, as_of: datetime | None) -> int:
        """Sum of ``points_earned - points_redeemed`` of the card's entries later than ``as_of``."""
        book = self._points.get(card)
        if book is None:
            return 0
        if as_of is not None and as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=UTC)  # the feed's instants are UTC
        return book.after(None if as_of is None else unix_ms(as_of))

    def uses_between(self, card: str, benefit: str, start: date | None, end: date | None) -> int:
        """Quantity of ``benefit`` the card used on local dates in ``[start, end)``; None: open."""
        uses = self._uses.get((card, benefit))
        if not uses:
            return 0
        lo = start.toordinal() if start is not None else None
        hi = end.toordinal() if end is not None else None
        return sum(
            qty
            for day, qty in uses.values()
            if (lo is None or day >= lo) and (hi is None or day < hi)
        )

    def has_used(self, card: str, benefit: str) -> bool:
        """Whether the card has a (not voided) use of the benefit on this terminal."""
        return bool(self._uses.get((card, benefit)))

    def pending_persons(self, benefit: str) -> frozenset[str]:
        """Distinct cards with uses of ``benefit`` the server has not acknowledged yet."""
        cards = self._pending_cards.get(benefit)
        return frozenset(cards) if cards else frozenset()

    def pending_person_count(self, benefit: str) -> int:
        cards = self._pending_cards.get(benefit)
        return len(cards) if cards else 0

    def redemptions_on(self, card: str, day: date) -> int:
        """How many (not voided) sales redeemed points for the card on a local date."""
        return len(self._redeems.get((card, day.toordinal()), ()))

    def is_voided(self, seq: int) -> bool:
        return seq in self._voided

    def void_of(self, seq: int) -> int | None:
        """The seq of the void entry that cancelled sale ``seq``, if any."""
        return self._voided.get(seq)


def card_balance(card: CardRecord, usage: UsageBook) -> int:
    """The card's points now: the synced balance plus this terminal's later entries.

    docs/architecture.md §5.4: ``card.points`` (as of ``card.points_as_of``) plus the sum of
    ``points_earned - points_redeemed`` of this terminal's entries for the card whose
    ts is later than ``points_as_of`` (all of them when the feed gives no instant).
    """
    return card.points + usage.points_delta_after(card.number, card.points_as_of)
