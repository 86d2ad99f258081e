"""Route one framed read (from a serial port or a keyboard wedge) to its decoder.

The same device may be a barcode/QR scanner or a keyboard-emulating magstripe reader,
so the text decides: a swipe starts with a track sentinel, a signed QR with ``KM1:``,
anything else is a barcode (plain digits or a Code 128 number). A scanner set up to send
AIM symbology identifiers (ISO/IEC 15424: ``]Q1`` QR Code, ``]C0`` Code 128, ``]E0``
EAN, …) says which symbol it read: then a QR holding a plain number is known as a QR
(and refused once the city's QR key is configured, see ``drivers.qr``). Without the
identifiers a plain-number QR cannot be told from a barcode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from drivers.barcode import decode_barcode
from drivers.errors import DecodeError
from drivers.msr import STX, decode_swipe
from drivers.qr import TOKEN_PREFIX, QrDecoder
from ledger.cards import CardNumberFormat

TextSource = Literal["msr", "barcode", "qr"]


def split_symbology(text: str) -> tuple[str | None, str]:
    """The AIM symbology identifier's code letter (``"Q"``, ``"C"``, …) and the data."""
    if len(text) >= 3 and text[0] == "]" and text[1].isascii() and text[1].isalpha():
        return text[1], text[3:]
    return None, text


def classify(text: str) -> TextSource:
    """Which decoder a framed read belongs to."""
    t = text.lstrip(STX)
    symbology, _ = split_symbology(t)
    if symbology is not None:
        return "qr" if symbology == "Q" else "barcode"
    if t[:1] in ("%", ";", "+"):
        return "msr"
    if t.startswith(TOKEN_PREFIX):
        return "qr"
    return "barcode"


@dataclass(frozen=True)
class Decoded:
    source: TextSource
    number: str


class TextDecodeError(DecodeError):
    """A framed read refused by its decoder; ``source`` says which one."""

    def __init__(self, source: TextSource, error: DecodeError) -> None:
        super().__init__(error.reason)
        self.source: TextSource = source


class TextDecoder:
    """Decode framed text into a card number with the right decoder."""

    def __init__(self, fmt: CardNumberFormat, qr: QrDecoder) -> None:
        self.fmt = fmt
        self._qr = qr

    def decode(self, text: str) -> Decoded:
        """Return the source and normalised number, or raise :class:`TextDecodeError`."""
        source = classify(text)
        symbology, data = split_symbology(text)
        if symbology is not None:
            text = data
        try:
            if source == "msr":
                number = decode_swipe(text, self.fmt)
            elif source == "qr":
                number = self._qr.decode(text)
            else:
                number = decode_barcode(text, self.fmt)
        except DecodeError as e:
            raise TextDecodeError(source, e) from None
        return Decoded(source, number)
