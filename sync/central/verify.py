"""Checks of an uploaded batch that need no database: shape, every hash, the signature.

Every hash is computed over the raw object received (minus "hash" and "prev_hash",
canonical JSON), never over a re-encoded struct, so fields this server does not know
are covered as the terminal hashed them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from ledger.canonical import canonical
from ledger.entry import ChainCursor, Entry, Head, body_bytes
from ledger.rules import MAX_AMOUNT_GR, MAX_ENTRY_POINTS
from sync.wire import RawUploadBatch, verify_batch_signature

_HASH_RE = re.compile(r"[0-9a-f]{64}")


class BatchRejected(Exception):
    """The batch cannot be stored: ``status`` (400/422), ``error`` code, message, seq."""

    def __init__(self, status: int, error: str, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.seq = seq


@dataclass(frozen=True)
class VerifiedBatch:
    """A batch whose entries chain to each other and whose hashes verify."""

    entries: list[Entry]
    hashes: list[str]
    bodies: list[bytes]  # each entry as received, canonical JSON, for storage
    first_seq: int
    first_prev_hash: str
    last_seq: int


def _is_hash(v: str) -> bool:
    return _HASH_RE.fullmatch(v) is not None


# Every integer of an entry fits a double exactly (docs/architecture.md §5.5): what a
# JSON reader in any language reads back is what the terminal wrote.
MAX_WIRE_INT = 2**53 - 1
MAX_DEPTH = 32  # an entry is a flat object with a few small maps; nothing legitimate nests
# The programme's bounds on an entry's amounts and points (voids carry them negated).
ENTRY_BOUNDS = {
    "amount_gr": MAX_AMOUNT_GR,
    "discount_gr": MAX_AMOUNT_GR,
    "points_earned": MAX_ENTRY_POINTS,
    "points_redeemed": MAX_ENTRY_POINTS,
}


def _scan(raw: dict[str, Any], seq: int | None) -> None:
    """Refuse floats, integers beyond ±MAX_WIRE_INT and deep nesting; iterative, no recursion.

    A value at depth ``d`` (the entry itself is 1) is refused past MAX_DEPTH. The values a
    JSON decoder gives (str, int, bool, None, float, dict, list) are told apart by their
    exact type, the common scalars first: this runs over every field of every entry.
    """
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(raw, 1)]
    while stack:
        container, depth = stack.pop()
        # Its values are at depth + 1: a non-empty container at MAX_DEPTH has one too deep.
        if depth > MAX_DEPTH or (depth == MAX_DEPTH and container):
            raise BatchRejected(400, "bad_request", f"an entry nests deeper than {MAX_DEPTH}", seq)
        values: Iterable[Any] = container.values() if type(container) is dict else container
        for v in values:
            t = type(v)
            if t is str or v is None or t is bool:
                continue
            if t is int:
                if -MAX_WIRE_INT <= v <= MAX_WIRE_INT:
                    continue
                raise BatchRejected(422, "out_of_range", f"{v} is beyond ±(2^53 - 1)", seq)
            if t is dict or t is list:
                stack.append((v, depth + 1))
                continue
            _scan_other(v, depth + 1, seq, stack)  # a float, or a subclass


def _scan_other(
    v: object, depth: int, seq: int | None, stack: list[tuple[dict[str, Any] | list[Any], int]]
) -> None:
    """A value of any other type at ``depth`` (already within MAX_DEPTH): the general checks."""
    if isinstance(v, float):
        raise BatchRejected(422, "bad_entry", "entries carry integers only, never floats", seq)
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_WIRE_INT:
        raise BatchRejected(422, "out_of_range", f"{v} is beyond ±(2^53 - 1)", seq)
    if isinstance(v, dict | list):
        stack.append((v, depth))


def _check_bounds(e: Entry) -> None:
    for name, bound in ENTRY_BOUNDS.items():
        value = getattr(e, name)
        if abs(value) > bound:
            raise BatchRejected(
                422, "out_of_range", f"{name} = {value} is beyond the programme's ±{bound}", e.seq
            )


def verify_chain_of(terminal_id: str, raws: list[dict[str, Any]]) -> VerifiedBatch:
    """Check every entry's shape, terminal, seq continuity, prev_hash link and hash."""
    if not raws:
        raise BatchRejected(400, "bad_request", "the batch has no entries")
    entries: list[Entry] = []
    hashes: list[str] = []
    bodies: list[bytes] = []
    cursor: ChainCursor | None = None
    for raw in raws:
        seq = raw.get("seq")
        where = seq if isinstance(seq, int) and not isinstance(seq, bool) else None
        _scan(raw, where if where is not None and abs(where) <= MAX_WIRE_INT else None)
        try:
            e = msgspec.convert(raw, Entry, strict=True)
        except msgspec.ValidationError as err:
            msg = f"entry is not a ledger entry: {err}"
            raise BatchRejected(422, "bad_entry", msg, where) from None
        if e.seq < 1:
            raise BatchRejected(422, "bad_entry", "seq must be 1 or more", e.seq)
        if e.terminal != terminal_id:
            raise BatchRejected(
                422,
                "bad_entry",
                f"entry of terminal {e.terminal!r} in a batch of {terminal_id}",
                e.seq,
            )
        _check_bounds(e)
        if not _is_hash(e.prev_hash) or not _is_hash(e.hash):
            raise BatchRejected(422, "bad_hash", "hash and prev_hash must be 64 hex digits", e.seq)
        # The batch's first entry links to the server's head (checked by the database).
        cursor = cursor or ChainCursor(Head(seq=e.seq - 1, hash=e.prev_hash))
        why = cursor.follow(e.seq, e.prev_hash, e.hash, body_bytes(raw))
        if why is not None:
            raise BatchRejected(422, "bad_hash", why, e.seq)
        entries.append(e)
        hashes.append(e.hash)
        bodies.append(canonical(raw))
    return VerifiedBatch(
        entries=entries,
        hashes=hashes,
        bodies=bodies,
        first_seq=entries[0].seq,
        first_prev_hash=entries[0].prev_hash,
        last_seq=entries[-1].seq,
    )


def check_signature(terminal_id: str, batch: RawUploadBatch, verified: VerifiedBatch) -> None:
    """The signature must cover '{tid}:{last seq}:{last hash}' under the batch's key."""
    if not verify_batch_signature(
        batch.public_key, batch.signature, terminal_id, verified.last_seq, verified.hashes[-1]
    ):
        raise BatchRejected(422, "bad_signature", "the batch signature does not verify")
