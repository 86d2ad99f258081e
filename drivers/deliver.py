"""Decoded input to reader events: shared by the real transports and the fake."""

from __future__ import annotations

from drivers.base import ReaderCore
from drivers.classify import TextDecodeError, TextDecoder
from drivers.events import RejectReason
from drivers.framing import Frame
from drivers.wedge import Scan

# Phones (HCE) and bank cards give a fresh random UID per tap: 0x08 as the first byte.
RANDOM_UID_FIRST_BYTE = 0x08


def deliver_text(core: ReaderCore, decoder: TextDecoder, text: str) -> None:
    """Decode one framed read and hand the read or the refusal to the reader's core."""
    try:
        decoded = decoder.decode(text)
    except TextDecodeError as e:
        core.reject(e.source, e.reason)
        return
    core.card(decoded.source, number=decoded.number)


def deliver_frame(core: ReaderCore, decoder: TextDecoder, frame: Frame) -> None:
    """A serial frame: decoded, or refused as it was discarded."""
    if frame.text is None:
        core.reject(frame.source, frame.error or "garbled")
    else:
        deliver_text(core, decoder, frame.text)


def deliver_scan(core: ReaderCore, decoder: TextDecoder, scan: Scan) -> None:
    """A keyboard-wedge scan: decoded, or refused as it was discarded."""
    if scan.text is None:
        core.reject("barcode", scan.error.reason if scan.error else "garbled")
    else:
        deliver_text(core, decoder, scan.text)


def check_uid(uid: bytes) -> RejectReason | None:
    """Why a contactless UID cannot identify a card, or None when it can."""
    if not uid:
        return "garbled"
    if uid[0] == RANDOM_UID_FIRST_BYTE:
        return "not_an_identity"
    return None


def deliver_uid(core: ReaderCore, uid: bytes) -> None:
    """A contactless UID: a read, or refused when it is random by design."""
    reason = check_uid(uid)
    if reason is not None:
        core.reject("nfc", reason)
    else:
        core.card("nfc", uid=uid.hex().upper())
