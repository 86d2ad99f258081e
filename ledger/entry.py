"""Ledger entries and the hash chain (docs/architecture.md §5.4, CONTRACT).

hash = sha256(bytes.fromhex(prev_hash) + canonical(entry minus "hash" and "prev_hash"))
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgspec

from ledger.canonical import canonical

GENESIS_HASH = "0" * 64
_CHAIN_KEYS = ("hash", "prev_hash")


class EntryKind(StrEnum):
    SALE = "sale"
    VOID = "void"
    DAY_CLOSE = "day_close"


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """One ledger entry; also the wire form sent to the city server.

    The fields after ``hash`` extend the contract (optional for other readers); they
    are always present in entries this terminal writes, and covered by the hash.
    """

    seq: int
    id: str
    ts: str
    local_date: str
    terminal: str
    kind: str
    card: str | None
    amount_gr: int
    points_earned: int
    points_redeemed: int
    discount_gr: int
    benefits: tuple[str, ...]
    rules_version: str
    cashier: str | None
    ref: int | None
    prev_hash: str
    hash: str
    # --- extensions -------------------------------------------------------------
    # The client's request id (SALE.id / the void's request id): idempotency key.
    sale_id: str | None = None
    # Quantity per benefit id in the benefit's unit (pieces, hours); default 1.
    benefit_quantities: dict[str, int] = {}
    # Points granted per benefit id (all uses of it in this entry).
    benefit_points: dict[str, int] = {}
    # The cashier's override of benefit points, and why (recorded when allowed).
    points_override: int | None = None
    override_reason: str | None = None
    # Why a void was made.
    reason: str | None = None
    # The card's points balance right after this entry, as the terminal saw it.
    balance_after: int | None = None
    # day_close only: totals of the closed day (counts, grosze, points, seq range).
    summary: dict[str, int] | None = None
    # Whom the benefit limits counted this entry for: the card holder's id from the
    # city's card list (docs/architecture.md §5.8). Absent (not null) when the card has
    # none, and in entries written before it existed, whose bytes must not change.
    holder: str | msgspec.UnsetType = msgspec.UNSET
    # The benefits with a persons limit for which this sale admitted a new person within
    # this till's lease (docs/architecture.md §5.8; a void never takes it back). UNSET: none.
    persons_new: tuple[str, ...] | msgspec.UnsetType = msgspec.UNSET

    @property
    def holder_key(self) -> str | None:
        """The holder the limits count for: ``holder``, or the card number."""
        return self.holder if isinstance(self.holder, str) else self.card

    def to_dict(self) -> dict[str, Any]:
        """The entry as a plain JSON-able dict (all fields)."""
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


class Draft(msgspec.Struct, frozen=True, kw_only=True):
    """What the sale service decides; the store adds seq, id, terminal and the chain."""

    ts: str
    local_date: str
    kind: str
    card: str | None
    amount_gr: int = 0
    points_earned: int = 0
    points_redeemed: int = 0
    discount_gr: int = 0
    benefits: tuple[str, ...] = ()
    rules_version: str = ""
    cashier: str | None = None
    ref: int | None = None
    sale_id: str | None = None
    benefit_quantities: dict[str, int] = {}
    benefit_points: dict[str, int] = {}
    points_override: int | None = None
    override_reason: str | None = None
    reason: str | None = None
    balance_after: int | None = None
    summary: dict[str, int] | None = None
    holder: str | msgspec.UnsetType = msgspec.UNSET
    persons_new: tuple[str, ...] | msgspec.UnsetType = msgspec.UNSET


def body_bytes(entry: Entry | dict[str, Any]) -> bytes:
    """Canonical bytes of the entry minus "hash" and "prev_hash"."""
    d = entry.to_dict() if isinstance(entry, Entry) else dict(entry)
    for k in _CHAIN_KEYS:
        d.pop(k, None)
    return canonical(d)


def chain_hash(prev_hash: str, body: bytes) -> str:
    """sha256(prev_hash bytes + canonical body), hex."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + body).hexdigest()


def seal(draft: Draft, *, seq: int, entry_id: str, terminal: str, prev_hash: str) -> Entry:
    """Turn a draft into the chained entry at ``seq`` after ``prev_hash``."""
    fields = msgspec.structs.asdict(draft)
    unsealed = Entry(
        seq=seq, id=entry_id, terminal=terminal, prev_hash=prev_hash, hash="", **fields
    )
    h = chain_hash(prev_hash, body_bytes(unsealed))
    return msgspec.structs.replace(unsealed, hash=h)


def request_fields(e: Entry | Draft) -> tuple[Any, ...]:
    """What the client asked for: equal for a retry of the same request."""
    return (
        e.kind,
        e.card,
        e.amount_gr if e.kind == EntryKind.SALE else None,
        tuple(sorted(e.benefits)),
        tuple(sorted(e.benefit_quantities.items())),
        e.points_redeemed if e.kind == EntryKind.SALE else None,
        e.points_override,
        e.override_reason,
        e.ref,
    )


class Head(msgspec.Struct, frozen=True, kw_only=True):
    """The last entry of a chain: its seq and hash; (0, 64 zeros) when there is none.

    The terminal's store, the sync client and the city server all speak of heads; this
    is the one type (also the wire form of ``GET /v1/terminals/{tid}/head``).
    """

    seq: int
    hash: str

    @classmethod
    def genesis(cls) -> Head:
        return cls(seq=0, hash=GENESIS_HASH)


@dataclass(frozen=True)
class ChainError:
    """The first place a chain does not verify."""

    seq: int
    reason: str


class ChainCursor:
    """Walks a chain link by link: the one check of seq, prev_hash and hash.

    The in-memory verifier below, the store's streaming verify and the city server's
    batch check all follow links with it, so the three cannot disagree about the chain.
    """

    __slots__ = ("hash", "seq")

    def __init__(self, head: Head | None = None) -> None:
        start = head or Head.genesis()
        self.seq = start.seq
        self.hash = start.hash

    def follow(self, seq: object, prev_hash: object, hash_: object, body: bytes) -> str | None:
        """Check the next entry (``body``: canonical bytes without the two hashes).

        Returns why it does not link, or None and moves on to it.
        """
        expect = self.seq + 1
        if seq != expect:
            return f"expected seq {expect}, found {seq}"
        if prev_hash != self.hash:
            return "prev_hash does not link to the previous entry"
        if (
            not isinstance(hash_, str)
            or hashlib.sha256(bytes.fromhex(self.hash) + body).hexdigest() != hash_
        ):
            return "hash does not match the entry's content"
        self.seq, self.hash = expect, hash_
        return None


def verify_chain(
    entries: Iterable[Entry | dict[str, Any]],
    *,
    start_seq: int = 1,
    start_hash: str = GENESIS_HASH,
) -> ChainError | None:
    """Check seq continuity, prev_hash links and every hash; None when all verify."""
    cursor = ChainCursor(Head(seq=start_seq - 1, hash=start_hash))
    for e in entries:
        d = e.to_dict() if isinstance(e, Entry) else e
        why = cursor.follow(d.get("seq"), d.get("prev_hash"), d.get("hash"), body_bytes(d))
        if why is not None:
            return ChainError(cursor.seq + 1, why)
    return None


entry_decoder = msgspec.json.Decoder(Entry)
entries_decoder = msgspec.json.Decoder(list[Entry])
