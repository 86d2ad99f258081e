"""UUIDv7 identifiers (RFC 9562): time-ordered, so ids sort like the ledger."""

from __future__ import annotations

import os
import uuid


def uuid7(unix_ms: int, rand: bytes | None = None) -> str:
    """Return a UUIDv7 string for the given millisecond timestamp."""
    r = rand if rand is not None else os.urandom(10)
    if len(r) != 10:
        raise ValueError("uuid7 needs 10 random bytes")
    ms = unix_ms & ((1 << 48) - 1)
    value = ms << 80
    value |= 0x7 << 76
    value |= (int.from_bytes(r[0:2], "big") & 0x0FFF) << 64
    value |= 0b10 << 62
    value |= int.from_bytes(r[2:10], "big") & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))
