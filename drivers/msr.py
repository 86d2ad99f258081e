"""ISO/IEC 7813 magnetic-stripe decoding: tracks 1/2/3 to the city card number.

City cards carry the number on track 2 (``;01000018?`` or ``;01000018=...?``). A
payment card (track 1 ``%B<PAN>^...`` or a track 2 PAN, Luhn-valid) is refused as
``payment_card``; its data is never returned, stored or put in an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drivers.errors import DecodeError
from drivers.luhn import looks_like_pan
from ledger.cards import CardNumberError, CardNumberFormat

STX, ETX = "\x02", "\x03"
# One track: start sentinel, data without sentinels, end sentinel.
_TRACK_RE = re.compile(r"([%;+])([^%;+?]*)\?")
_TRACK1_DATA = re.compile(r"[ -_]*")  # ISO 7813 track 1: 6-bit alphabet 0x20-0x5F
_TRACK2_DATA = re.compile(r"[0-9:;<=>]*")  # 4-bit alphabet 0x30-0x3F (without ?)


class MsrError(DecodeError):
    """A swipe that does not give a city card number."""


@dataclass(frozen=True)
class Tracks:
    """The tracks of one swipe; ``None`` = absent, ``""`` after ``E`` = failed read."""

    track1: str | None
    track2: str | None
    track3: str | None


def split_tracks(text: str) -> Tracks:
    """Split a framed swipe into its tracks; anything outside tracks is garbled."""
    text = text.strip("\r\n")
    if text.startswith(STX):
        text = text[1:]
    if text.endswith(ETX):
        text = text[:-1]
    found: dict[str, str] = {}
    pos = 0
    for m in _TRACK_RE.finditer(text):
        if m.start() != pos or m.group(1) in found:
            raise MsrError("garbled")
        found[m.group(1)] = m.group(2)
        pos = m.end()
    if pos != len(text):
        # A start sentinel whose end never came: the reader sent half a swipe.
        rest = text[pos:]
        raise MsrError("incomplete" if rest[:1] in "%;+" and "?" not in rest else "garbled")
    if not found:
        raise MsrError("garbled")
    return Tracks(found.get("%"), found.get(";"), found.get("+"))


def _is_failed(track: str | None) -> bool:
    return track == "E"


def decode_swipe(text: str, fmt: CardNumberFormat) -> str:
    """Return the normalised city card number of a swipe, or raise :class:`MsrError`."""
    tracks = split_tracks(text)
    t1, t2 = tracks.track1, tracks.track2
    # The payment-card check comes first, whatever else the swipe holds.
    if t1 is not None and t1[:1] == "B":
        pan = t1[1:].split("^", 1)[0].replace(" ", "")
        if looks_like_pan(pan):
            raise MsrError("payment_card")
    if t2 is not None and not _is_failed(t2):
        field = t2.split("=", 1)[0]
        if looks_like_pan(field):
            try:
                fmt.normalise(field)
            except CardNumberError:
                raise MsrError("payment_card") from None
    if t1 is not None and not _is_failed(t1) and not _TRACK1_DATA.fullmatch(t1):
        raise MsrError("garbled")
    if t2 is None:
        present = [t for t in (tracks.track1, tracks.track3) if t is not None]
        raise MsrError("garbled" if all(map(_is_failed, present)) else "not_a_card_number")
    if _is_failed(t2) or not _TRACK2_DATA.fullmatch(t2):
        raise MsrError("garbled")
    field = t2.split("=", 1)[0]
    if not field.isdigit():
        raise MsrError("garbled")
    try:
        return fmt.normalise(field)
    except CardNumberError:
        raise MsrError("not_a_card_number") from None
