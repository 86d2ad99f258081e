"""Usage counts of cards and benefits: a bounded read model of this terminal's ledger.

The rules engine needs little of a ledger that grows for years, and the book keeps only
that (docs/architecture.md §5.7). Benefit limits count per holder (the entry's
``holder``, or its card number when the card has no holder id: §5.8); points and
redemptions per card:

* a card's points: this terminal's deltas the city has not yet included in the card
  list it sent, i.e. with a seq above ``points_floor`` (the last card feed's
  ``terminal_seq``); all of them until such a feed arrives;
* benefit uses per period: local dates from ``horizon`` on, the first day of the
  longest calendar window still open (this year's 1 January, or the Monday of this week
  when that is earlier);
* lifetime counts ("has this person used the benefit", a limit without a period) only for
  the ``tracked`` benefits, those whose rules need them (None: every benefit);
* redemptions per card of ``today`` only; uses the server has not acknowledged (the
  persons limit counts them itself); the totals of the last two local days (Z report).

It changes only through :meth:`apply` (entries in seq order), :meth:`set_acknowledged`
and :meth:`prune`, so a rebuild from the ledger with the same prune inputs gives the same
book (tests compare them). :meth:`snapshot` and :meth:`restore` are the checkpoint kept
beside the ledger, so a restart reads only the entries after it.

A void gives back what its sale used: the sale's benefit uses, its redemption and its
person stop counting; its points are negated by the void entry's own (negative) deltas.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final, Protocol
from zoneinfo import ZoneInfo

import msgspec

from ledger.clock import WARSAW, parse_ts, unix_ms
from ledger.daytotals import DayTotals
from ledger.domain import CardRecord
from ledger.entry import Entry, EntryKind
from ledger.periods import window_dates

# The local days whose totals the book keeps (today and yesterday: a Z report after
# midnight still finds the day it closes).
DAYS_KEPT: Final = 2
SNAPSHOT_FORMAT: Final = 5


def open_horizon(today: date) -> date:
    """The first local date of any calendar window (day … year) that contains ``today``."""
    return min(window_dates("year", today)[0], window_dates("week", today)[0])


class BookSnapshot(msgspec.Struct, array_like=True, frozen=True):
    """The book as plain data (msgpack in the ledger's ``derived`` table)."""

    format: int
    tz: str
    last_seq: int
    acked_seq: int
    points_floor: int
    horizon: int | None
    today: int | None
    tracked: list[str] | None
    points: dict[str, bytes]  # card -> int64 triples (seq, ts ms, delta), native order
    uses: list[tuple[str, str, int, int, int]]
    ever_qty: dict[str, dict[str, int]]
    cold_voided: list[tuple[str, str, int]]
    admitted: dict[str, int]
    pending: dict[str, tuple[bytes, list[str]]]  # benefit -> (int64 seqs, holders)
    redeems: list[tuple[str, int]]
    days: dict[str, list[int]]


class ColdHolder(msgspec.Struct, frozen=True):
    """One holder's uses in the cold store: benefit -> {seq: (day, qty)}, and lifetime."""

    windows: dict[str, dict[int, tuple[int, int]]]
    lifetime: dict[str, int]


class ColdUsage(Protocol):
    """Uses and lifetime counts written beside the ledger (terminal/readmodels.py)."""

    def holder(self, holder: str) -> ColdHolder: ...


@dataclass(frozen=True)
class Flush:
    """What a flush writes: window uses, cold uses voided, lifetime deltas, the horizon."""

    windows: list[tuple[str, str, int, int, int]]  # holder, benefit, seq, day, qty
    voided: list[tuple[str, str, int]]  # holder, benefit, seq
    lifetime: list[tuple[str, str, int]]  # holder, benefit, quantity delta
    horizon: int | None  # window uses on earlier dates can go


@dataclass
class _Layer:
    uses: dict[tuple[str, str], dict[int, tuple[int, int]]]
    ever_qty: dict[str, dict[str, int]]
    cold_voided: dict[tuple[str, str], set[int]]


_COLD_CACHE: Final = 512  # holders whose cold uses are kept in memory between flushes

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(BookSnapshot)


class UsageBook:
    """What this terminal's ledger says each card and benefit has used, for what is open."""

    def __init__(
        self,
        *,
        tz: ZoneInfo = WARSAW,
        today: date | None = None,
        tracked: Iterable[str] | None = None,
        points_floor: int = 0,
        cold: ColdUsage | None = None,
    ) -> None:
        self.tz = tz
        # Uses and lifetime counts already written beside the ledger (None: all in memory).
        self._cold = cold
        self._cold_cache: dict[str, ColdHolder] = {}
        self._flushing: _Layer | None = None
        self._flushed_horizon: int | None = None  # the cold store dropped dates before it
        self._last_seq = 0
        self._acked_seq = 0
        self._points_floor = points_floor
        self._today = today.toordinal() if today is not None else None
        self._horizon = open_horizon(today).toordinal() if today is not None else None
        self._tracked = None if tracked is None else set(tracked)
        # card -> seq, ts unix ms, points delta, seq, ... (flat int64 triples, seq ascending,
        # all above points_floor): 24 bytes a delta, where a tuple in a list takes ~100.
        self._points: dict[str, array[int]] = {}
        # Since the last flush to the cold store (all of them without one):
        # (holder, benefit) -> {sale seq: (local date ordinal, quantity)}, dates >= horizon
        self._uses: dict[tuple[str, str], dict[int, tuple[int, int]]] = {}
        # tracked benefit -> {holder: quantity, voids subtracted} (negative: a void of a
        # use already in the cold store)
        self._ever_qty: dict[str, dict[str, int]] = {}
        # (holder, benefit) -> seqs of cold-store uses voided since the last flush
        self._cold_voided: dict[tuple[str, str], set[int]] = {}
        # benefit -> (sale seqs ascending, their holders) of uses the server has not
        # acknowledged yet
        self._pending: dict[str, tuple[array[int], list[str]]] = {}
        # benefit -> how many pending uses each card has (its keys: the distinct cards)
        self._pending_cards: dict[str, dict[str, int]] = {}
        # sale seq -> card, for sales that redeemed points on `today` (all days if None)
        self._redeems: dict[int, tuple[str, int]] = {}
        self._redeem_count: dict[tuple[str, int], int] = {}
        self._days: dict[str, DayTotals] = {}
        # benefit -> sales that admitted a new person within a lease (a void never takes
        # one back: docs/architecture.md §5.8), so a count, not a set of holders
        self._admitted: dict[str, int] = {}

    @classmethod
    def from_entries(
        cls,
        entries: Iterable[Entry],
        *,
        tz: ZoneInfo = WARSAW,
        today: date | None = None,
        tracked: Iterable[str] | None = None,
        points_floor: int = 0,
    ) -> UsageBook:
        """Rebuild the book from the ledger, entries in seq order."""
        book = cls(tz=tz, today=today, tracked=tracked, points_floor=points_floor)
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

    @property
    def points_floor(self) -> int:
        return self._points_floor

    @property
    def tracked(self) -> frozenset[str] | None:
        """The benefits whose lifetime counts are kept (None: every benefit)."""
        return None if self._tracked is None else frozenset(self._tracked)

    def apply(self, entry: Entry) -> None:
        """Take in one appended entry; an entry at or below `last_seq` is ignored (replay)."""
        if entry.seq <= self._last_seq:
            return
        self._last_seq = entry.seq
        self._add_day(entry)
        if entry.card is None:
            return
        card = sys.intern(entry.card)
        delta = entry.points_earned - entry.points_redeemed
        if delta and entry.seq > self._points_floor:
            points = self._points.get(card)
            if points is None:
                points = self._points[card] = array("q")
            points.extend((entry.seq, unix_ms(parse_ts(entry.ts)), delta))
        who = card if not isinstance(entry.holder, str) else sys.intern(entry.holder)
        if isinstance(entry.persons_new, tuple) and entry.kind == EntryKind.SALE:
            for b in entry.persons_new:
                self._admitted[b] = self._admitted.get(b, 0) + 1
        if entry.kind == EntryKind.SALE:
            self._apply_sale(entry, card, who)
        elif entry.kind == EntryKind.VOID and entry.ref is not None:
            self._apply_void(entry, card, who, entry.ref)

    def _add_day(self, entry: Entry) -> None:
        day = self._days.get(entry.local_date)
        if day is None:
            day = self._days[entry.local_date] = DayTotals()
            if len(self._days) > DAYS_KEPT:
                for d in sorted(self._days)[:-DAYS_KEPT]:
                    del self._days[d]
        if entry.local_date in self._days:
            day.add(entry)

    def _is_tracked(self, benefit: str) -> bool:
        return self._tracked is None or benefit in self._tracked

    def _apply_sale(self, entry: Entry, card: str, who: str) -> None:
        if not entry.benefits and entry.points_redeemed <= 0:
            return
        day = date.fromisoformat(entry.local_date).toordinal()
        for benefit in entry.benefits:
            qty = entry.benefit_quantities.get(benefit, 1)
            if self._horizon is None or day >= self._horizon:
                key = (who, benefit)
                uses = self._uses.get(key)
                if uses is None:
                    uses = self._uses[key] = {}
                uses[entry.seq] = (day, qty)
            if self._is_tracked(benefit):
                self._count_ever(benefit, who, 1, qty)
            if entry.seq > self._acked_seq:
                self._add_pending(benefit, entry.seq, who)
        if entry.points_redeemed > 0 and (self._today is None or day >= self._today):
            key2 = (card, day)
            self._redeems[entry.seq] = key2
            self._redeem_count[key2] = self._redeem_count.get(key2, 0) + 1

    def _apply_void(self, entry: Entry, card: str, who: str, ref: int) -> None:
        for benefit in entry.benefits:
            uses = self._uses.get((who, benefit))
            if uses is not None and ref in uses:
                del uses[ref]
                if not uses:
                    del self._uses[(who, benefit)]
            elif self._cold is not None:  # the sale's use went to the cold store already
                self._cold_voided.setdefault((who, benefit), set()).add(ref)
            if self._is_tracked(benefit):
                self._count_ever(benefit, who, -1, -entry.benefit_quantities.get(benefit, 1))
            self._drop_pending(benefit, ref)
        key = self._redeems.pop(ref, None)
        if key is not None:
            self._drop_redeem(key)

    def _count_ever(self, benefit: str, card: str, n: int, qty: int) -> None:
        # Quantities are >= 1 a use, so a holder with quantity > 0 has a use not voided.
        del n
        qtys = self._ever_qty.setdefault(benefit, {})
        left = qtys.get(card, 0) + qty
        if left:
            qtys[card] = left
        else:
            del qtys[card]

    def _drop_redeem(self, key: tuple[str, int]) -> None:
        left = self._redeem_count.get(key, 0) - 1
        if left > 0:
            self._redeem_count[key] = left
        else:
            self._redeem_count.pop(key, None)

    def _add_pending(self, benefit: str, seq: int, card: str) -> None:
        pending = self._pending.get(benefit)
        if pending is None:
            pending = self._pending[benefit] = (array("q"), [])
            self._pending_cards[benefit] = {}
        seqs, whos = pending
        if seqs and seq < seqs[-1]:  # a restore or a history read out of order
            i = bisect_right(seqs, seq)
            seqs.insert(i, seq)
            whos.insert(i, card)
        else:
            seqs.append(seq)
            whos.append(card)
        cards = self._pending_cards[benefit]
        cards[card] = cards.get(card, 0) + 1

    def _drop_pending(self, benefit: str, seq: int) -> None:
        pending = self._pending.get(benefit)
        if pending is None:
            return
        seqs, whos = pending
        i = bisect_left(seqs, seq)
        if i == len(seqs) or seqs[i] != seq:
            return
        del seqs[i]
        card = whos.pop(i)
        self._uncount_pending(benefit, card)

    def _uncount_pending(self, benefit: str, card: str) -> None:
        cards = self._pending_cards[benefit]
        cards[card] -= 1
        if cards[card] <= 0:
            del cards[card]
        if not cards:
            del self._pending[benefit]
            del self._pending_cards[benefit]

    def set_acknowledged(self, seq: int) -> None:
        """The server holds entries up to ``seq`` AND its rules' ``persons_used`` counts them.

        Call it only once a rules document fetched after that upload is in use: until
        then this terminal's uses keep counting as persons on top of ``persons_used``.
        """
        if seq <= self._acked_seq:
            return
        self._acked_seq = seq
        for benefit, (seqs, whos) in list(self._pending.items()):
            cut = bisect_right(seqs, seq)
            gone = whos[:cut]
            del seqs[:cut]
            del whos[:cut]
            for card in gone:
                self._uncount_pending(benefit, card)

    # --- forgetting what has closed --------------------------------------------------

    def prune(self, *, today: date | None = None, points_floor: int | None = None) -> bool:
        """Drop what can no longer count; True when anything was dropped or moved.

        ``today``: windows that closed before it and redemptions of earlier days go.
        ``points_floor``: the city's card list includes this terminal's entries up to
        that seq (the card feed's ``terminal_seq``), so their deltas go.
        """
        changed = False
        if points_floor is not None and points_floor > self._points_floor:
            self._points_floor = points_floor
            changed = True
            for card, deltas in list(self._points.items()):
                i = 0
                while i < len(deltas) and deltas[i] <= points_floor:
                    i += 3
                if i >= len(deltas):
                    del self._points[card]
                elif i:
                    self._points[card] = deltas[i:]
        if today is not None and today.toordinal() != self._today:
            changed = True
            self._today = today.toordinal()
            horizon = open_horizon(today).toordinal()
            if self._horizon is None or horizon > self._horizon:
                self._horizon = horizon
                for key in list(self._uses):
                    kept_uses = {s: u for s, u in self._uses[key].items() if u[0] >= horizon}
                    if kept_uses:
                        self._uses[key] = kept_uses
                    else:
                        del self._uses[key]
            for seq, key2 in list(self._redeems.items()):
                if key2[1] < self._today:
                    del self._redeems[seq]
                    self._drop_redeem(key2)
        return changed

    def needs_history(self, benefits: Iterable[str]) -> frozenset[str]:
        """Which of ``benefits`` need lifetime counts the book does not keep yet."""
        if self._tracked is None:
            return frozenset()
        return frozenset(b for b in benefits if b not in self._tracked)

    def start_tracking(self, benefits: Iterable[str]) -> None:
        """Keep lifetime counts of ``benefits`` from the next entry applied on; the
        entries up to ``last_seq`` must then be given to :meth:`learn_history`."""
        if self._tracked is not None:
            self._tracked |= set(benefits)

    def learn_history(self, benefits: Iterable[str], history: Iterable[Entry]) -> None:
        """Count the lifetime uses of ``benefits`` in ``history`` (entries up to the
        ``last_seq`` at :meth:`start_tracking`, in seq order, given once)."""
        wanted = set(benefits)
        for e in history:
            if e.card is None or e.kind not in (EntryKind.SALE, EntryKind.VOID):
                continue
            hit = wanted.intersection(e.benefits)
            if not hit:
                continue
            sign = 1 if e.kind == EntryKind.SALE else -1
            who = sys.intern(e.holder if isinstance(e.holder, str) else e.card)
            for b in hit:
                self._count_ever(b, who, sign, sign * e.benefit_quantities.get(b, 1))

    # --- the checkpoint --------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The whole book as bytes; :meth:`restore` gives it back."""
        uses = [
            (card, benefit, seq, day, qty)
            for (card, benefit), by_seq in self._uses.items()
            for seq, (day, qty) in by_seq.items()
        ]
        return _encoder.encode(
            BookSnapshot(
                format=SNAPSHOT_FORMAT,
                tz=self.tz.key,
                last_seq=self._last_seq,
                acked_seq=self._acked_seq,
                points_floor=self._points_floor,
                horizon=self._horizon,
                today=self._today,
                tracked=None if self._tracked is None else sorted(self._tracked),
                points={c: a.tobytes() for c, a in self._points.items()},
                uses=uses,
                ever_qty=self._ever_qty,
                cold_voided=[
                    (h, b, seq) for (h, b), seqs in self._cold_voided.items() for seq in seqs
                ],
                admitted=self._admitted,
                pending={b: (seqs.tobytes(), whos) for b, (seqs, whos) in self._pending.items()},
                redeems=[(card, seq) for seq, (card, _day) in self._redeems.items()],
                days={d: t.to_state() for d, t in self._days.items()},
            )
        )

    @classmethod
    def restore(cls, data: bytes, *, cold: ColdUsage | None = None) -> UsageBook:
        """A book from :meth:`snapshot`; ValueError when the bytes are not one."""
        try:
            s = _decoder.decode(data)
        except msgspec.DecodeError as e:
            raise ValueError(f"not a usage book snapshot: {e}") from e
        if s.format != SNAPSHOT_FORMAT:
            raise ValueError(f"usage book snapshot format {s.format}, expected {SNAPSHOT_FORMAT}")
        book = cls(tz=ZoneInfo(s.tz), tracked=s.tracked, points_floor=s.points_floor, cold=cold)
        book._last_seq, book._acked_seq = s.last_seq, s.acked_seq
        book._horizon, book._today = s.horizon, s.today
        intern = sys.intern
        for c, raw in s.points.items():
            deltas = array("q")
            deltas.frombytes(raw)
            book._points[intern(c)] = deltas
        for card, benefit, seq, day, qty in s.uses:
            book._uses.setdefault((intern(card), benefit), {})[seq] = (day, qty)
        book._ever_qty = {b: {intern(c): n for c, n in m.items()} for b, m in s.ever_qty.items()}
        for h, b, seq in s.cold_voided:
            book._cold_voided.setdefault((intern(h), b), set()).add(seq)
        book._admitted = dict(s.admitted)
        for benefit, (raw_seqs, whos) in s.pending.items():
            seqs = array("q")
            seqs.frombytes(raw_seqs)
            for seq, card in zip(seqs, whos, strict=True):
                book._add_pending(benefit, seq, intern(card))
        for card, seq in s.redeems:
            key = (intern(card), s.today if s.today is not None else 0)
            book._redeems[seq] = key
            book._redeem_count[key] = book._redeem_count.get(key, 0) + 1
        book._days = {d: DayTotals.from_state(v) for d, v in s.days.items()}
        return book

    # --- queries -------------------------------------------------------------------

    def points_delta_after(self, card: str, as_of: datetime | None) -> int:
        """Sum of ``points_earned - points_redeemed`` of the card's kept entries later than
        ``as_of`` (the older rule, for a card feed without ``terminal_seq``)."""
        deltas = self._points.get(card)
        if not deltas:
            return 0
        if as_of is None:
            return sum(deltas[2::3])
        if as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=UTC)  # the feed's instants are UTC
        at = unix_ms(as_of)
        return sum(d for t, d in zip(deltas[1::3], deltas[2::3], strict=True) if t > at)

    def points_delta_above(self, card: str, seq: int) -> int:
        """Sum of ``points_earned - points_redeemed`` of the card's entries with seq > ``seq``."""
        deltas = self._points.get(card)
        if not deltas:
            return 0
        total, i = 0, len(deltas) - 3
        while i >= 0 and deltas[i] > seq:  # seqs ascend: walk back from the newest
            total += deltas[i + 2]
            i -= 3
        return total

    def uses_between(self, holder: str, benefit: str, start: date | None, end: date | None) -> int:
        """Quantity of ``benefit`` the holder (a holder id, or a card number for a card
        without one) used on local dates in ``[start, end)``.

        ``start`` and ``end`` None: the lifetime quantity (a tracked benefit).
        """
        if start is None and end is None:
            return self._lifetime(holder, benefit)
        return self.uses_above(holder, benefit, start, end, 0)

    def _lifetime(self, holder: str, benefit: str) -> int:
        total = self._ever_qty.get(benefit, {}).get(holder, 0)
        if self._flushing is not None:
            total += self._flushing.ever_qty.get(benefit, {}).get(holder, 0)
        if self._cold is not None:
            total += self._cold_holder(holder).lifetime.get(benefit, 0)
        return total

    def _cold_holder(self, holder: str) -> ColdHolder:
        assert self._cold is not None
        got = self._cold_cache.get(holder)
        if got is None:
            if len(self._cold_cache) >= _COLD_CACHE:
                self._cold_cache.clear()
            got = self._cold_cache[holder] = self._cold.holder(holder)
        return got

    def uses_above(
        self, holder: str, benefit: str, start: date | None, end: date | None, seq: int
    ) -> int:
        """Like :meth:`uses_between`, counting only entries with a seq above ``seq`` (the
        ones a usage feed with ``terminal_seq`` = ``seq`` does not include yet), among
        the dates kept (the open windows)."""
        lo = start.toordinal() if start is not None else None
        hi = end.toordinal() if end is not None else None
        key = (holder, benefit)
        layers: list[dict[int, tuple[int, int]]] = []
        gone: set[int] = set()
        if self._cold is not None:
            gone |= self._cold_voided.get(key, set())
            if self._flushing is not None:
                gone |= self._flushing.cold_voided.get(key, set())
                layers.append(self._flushing.uses.get(key, {}))
            layers.append(self._cold_holder(holder).windows.get(benefit, {}))
        layers.append(self._uses.get(key, {}))
        total = 0
        for uses in layers:
            for s, (day, qty) in uses.items():
                if (
                    s > seq
                    and s not in gone
                    and (lo is None or day >= lo)
                    and (hi is None or day < hi)
                ):
                    total += qty
        return total

    def has_used(self, holder: str, benefit: str) -> bool:
        """Whether the holder has a (not voided) use of a tracked benefit on this terminal."""
        return self._lifetime(holder, benefit) > 0

    # --- the cold store ----------------------------------------------------------------

    def begin_flush(self) -> tuple[Flush, bytes]:
        """Move what is in memory to a layer being written, and snapshot the rest: the
        caller writes both in one transaction, then calls :meth:`end_flush` (or
        :meth:`abort_flush` when it failed). Queries see the layer meanwhile."""
        assert self._cold is not None
        assert self._flushing is None
        layer = _Layer(self._uses, self._ever_qty, self._cold_voided)
        self._uses, self._ever_qty, self._cold_voided = {}, {}, {}
        self._flushing = layer
        flush = Flush(
            windows=[
                (h, b, s, day, qty)
                for (h, b), by_seq in layer.uses.items()
                for s, (day, qty) in by_seq.items()
            ],
            voided=[(h, b, s) for (h, b), seqs in layer.cold_voided.items() for s in seqs],
            lifetime=[(h, b, q) for b, by_h in layer.ever_qty.items() for h, q in by_h.items()],
            horizon=self._horizon if self._horizon != self._flushed_horizon else None,
        )
        self._flushed_horizon = self._horizon
        return flush, self.snapshot()

    def end_flush(self) -> None:
        """The layer is in the cold store now."""
        self._flushing = None
        self._cold_cache.clear()

    def abort_flush(self) -> None:
        """The write failed: the layer goes back into memory."""
        layer, self._flushing = self._flushing, None
        assert layer is not None
        for key, by_seq in layer.uses.items():
            self._uses.setdefault(key, {}).update(by_seq)
        for b, by_h in layer.ever_qty.items():
            for h, q in by_h.items():
                self._count_ever(b, h, 0, q)
        for key, seqs in layer.cold_voided.items():
            self._cold_voided.setdefault(key, set()).update(seqs)

    def admitted(self, benefit: str) -> int:
        """New persons this till admitted to ``benefit`` within its leases (for good)."""
        return self._admitted.get(benefit, 0)

    def pending_persons(self, benefit: str) -> frozenset[str]:
        """Distinct holders with uses of ``benefit`` the server has not acknowledged yet."""
        cards = self._pending_cards.get(benefit)
        return frozenset(cards) if cards else frozenset()

    def pending_person_count(self, benefit: str) -> int:
        cards = self._pending_cards.get(benefit)
        return len(cards) if cards else 0

    def redemptions_on(self, card: str, day: date) -> int:
        """How many (not voided) sales redeemed points for the card on a local date."""
        return self._redeem_count.get((card, day.toordinal()), 0)

    def day(self, local_date: str) -> DayTotals:
        """The totals of one of the last local days (empty for any other date)."""
        return self._days.get(local_date) or DayTotals()

    def sizes(self) -> dict[str, int]:
        """How much the book holds, for health and the benchmarks."""
        return {
            "cards_with_points": len(self._points),
            "points_deltas": sum(len(v) for v in self._points.values()) // 3,
            "window_uses": sum(len(v) for v in self._uses.values()),
            "lifetime_pairs": sum(len(v) for v in self._ever_qty.values()),
            "pending_uses": sum(len(v[0]) for v in self._pending.values()),
            "admitted": sum(self._admitted.values()),
        }


class Network(msgspec.Struct, frozen=True, kw_only=True):
    """What the partner's other tills and the city say for one holder (docs/architecture.md
    §5.8): the usage feed's lines for the holder and the till's leases.

    ``terminal_seq``: the usage feed includes this till's entries up to that seq (None:
    no feed; the till's own entries count alone). ``lines``: benefit -> ((local date
    ordinal, net quantity), ...). ``grants``: benefit -> how many new persons the city
    lets this till admit (cumulative); a benefit without one has no lease service.
    """

    terminal_seq: int | None = None
    lines: dict[str, tuple[tuple[int, int], ...]] = {}
    grants: dict[str, int] = {}

    def used(self, benefit: str, start: date | None, end: date | None) -> int:
        lo = start.toordinal() if start is not None else None
        hi = end.toordinal() if end is not None else None
        return sum(
            qty
            for day, qty in self.lines.get(benefit, ())
            if (lo is None or day >= lo) and (hi is None or day < hi)
        )

    def knows(self, benefit: str) -> bool:
        """Whether the holder has a use of ``benefit`` through the partner or the city."""
        return any(qty > 0 for _day, qty in self.lines.get(benefit, ()))


LOCAL: Final = Network()


def card_balance(card: CardRecord, usage: UsageBook) -> int:
    """The card's points now: the synced balance plus this terminal's entries not in it.

    docs/architecture.md §5.4: with a card feed that says up to which of this terminal's
    entries its ``points`` count (``card.points_seq``), the sum of ``points_earned -
    points_redeemed`` of the card's entries with a higher seq, whatever the clocks say;
    without it, the older rule: entries whose ts is later than ``points_as_of``.
    """
    if card.points_seq is not None:
        return card.points + usage.points_delta_above(card.number, card.points_seq)
    return card.points + usage.points_delta_after(card.number, card.points_as_of)
