"""Canonical JSON: keys sorted, separators ',' and ':', UTF-8 without escaping non-ASCII."""

from __future__ import annotations

from typing import Any

import msgspec

_encoder = msgspec.json.Encoder(order="sorted")


def canonical(obj: Any) -> bytes:
    """Encode a JSON-able value (dicts, lists, str, int, bool, None, Structs) canonically."""
    return _encoder.encode(obj)
