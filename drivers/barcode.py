"""1D barcodes (EAN-13, Code 128, plain digits) to the city card number."""

from __future__ import annotations

from drivers.errors import DecodeError
from drivers.luhn import looks_like_pan
from ledger.cards import CardNumberError, CardNumberFormat

MAX_BARCODE_LEN = 64
PAN_MIN_IN_BARCODE = 15


class BarcodeError(DecodeError):
    """A scanned barcode that is not a city card."""


def ean13_valid(digits: str) -> bool:
    """True when a 13-digit string's last digit is its EAN-13 check digit."""
    if len(digits) != 13 or not (digits.isascii() and digits.isdigit()):
        return False
    total = sum((3 if i % 2 else 1) * (ord(c) - 48) for i, c in enumerate(digits[:12]))
    return (10 - total % 10) % 10 == ord(digits[12]) - 48


def _ean13_candidates(digits: str, fmt: CardNumberFormat) -> list[str]:
    data = digits[:12]
    out = [digits, data]
    # A shorter number is carried right-aligned and zero-padded; the padding cannot be
    # told from a leading zero of the number, so the shortest configured length that
    # holds the significant digits wins (one length per city is the usual case).
    significant = data.lstrip("0")
    out += [significant.zfill(n) for n in sorted(fmt.digit_lengths) if len(significant) <= n < 12]
    return out


def decode_barcode(text: str, fmt: CardNumberFormat) -> str:
    """Return the normalised city card number of a scan, or raise :class:`BarcodeError`."""
    t = text.strip("\r\n\t ")
    if not t or len(t) > MAX_BARCODE_LEN or not t.isprintable() or not t.isascii():
        raise BarcodeError("garbled")
    if len(t) == 13 and t.isdigit():
        if not ean13_valid(t):
            raise BarcodeError("garbled")
        candidates = _ean13_candidates(t, fmt)
    else:
        candidates = [t]
    for c in candidates:
        try:
            return fmt.normalise(c)
        except CardNumberError:
            continue
    digits = t.replace(" ", "")
    # A payment card's number typed or scanned in is refused like a swiped one. Product
    # codes (EAN-13, UPC-A, GTIN-14) pass Luhn by chance, so only 15-19 digits count.
    if len(digits) >= PAN_MIN_IN_BARCODE and looks_like_pan(digits):
        raise BarcodeError("payment_card")
    raise BarcodeError("unknown_barcode")
