"""The events every reader yields: a card read, a rejected read, a device state change."""

from __future__ import annotations

from typing import Literal

import msgspec

Source = Literal["msr", "barcode", "qr", "nfc", "manual"]
ConnState = Literal["connected", "disconnected", "error"]
RejectReason = Literal[
    "payment_card",
    "garbled",
    "unknown_barcode",
    "bad_qr",
    "expired_qr",
    "plain_qr_refused",
    "not_an_identity",
    "not_a_card_number",
    "incomplete",
]


class CardRead(msgspec.Struct, frozen=True, kw_only=True):
    """A card identified by a reader: a normalised card number or a contactless UID."""

    source: Source
    reader: str
    number: str | None = None  # normalised printed form, e.g. '01-000018'
    uid: str | None = None  # upper-case hex, e.g. '04A1B2C3'
    at: float  # the clock's monotonic seconds when the read completed


class ReaderState(msgspec.Struct, frozen=True, kw_only=True):
    """A reader's connection state; sent once per change."""

    reader: str
    kind: str
    state: ConnState
    detail: str | None = None


class ReadRejected(msgspec.Struct, frozen=True, kw_only=True):
    """A read that was refused; never carries the rejected data itself."""

    reader: str
    source: Source
    reason: RejectReason


ReaderEvent = CardRead | ReaderState | ReadRejected
