"""The city app's QR code: a plain card number, or a signed, expiring token.

Token: ``KM1:<number>:<expiry unix seconds>:<base64 Ed25519 signature over
"KM1:<number>:<expiry>">``, verified offline with ``cards.qr_public_key``. An expired
token (a screenshot shown days later) is refused as ``expired_qr``. Once the city's key
is configured, a QR with only a plain number (anyone can print one) is refused as
``plain_qr_refused`` unless ``cards.accept_plain_qr`` is set.
"""

from __future__ import annotations

import base64
import binascii
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from drivers.errors import DecodeError
from ledger.cards import CardNumberError, CardNumberFormat
from ledger.clock import Clock

TOKEN_PREFIX = "KM1:"  # noqa: S105 - a format tag, not a secret
MAX_QR_LEN = 512
_B64_RE = re.compile(r"[A-Za-z0-9+/]+={0,2}|[A-Za-z0-9_-]+={0,2}")


class QrError(DecodeError):
    """A QR code that is not a valid city card token."""


def load_public_key(b64: str) -> Ed25519PublicKey:
    """The city's Ed25519 key from base64 of its 32 raw bytes; ValueError if malformed."""
    try:
        raw = base64.b64decode(b64, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError) as e:
        raise ValueError("qr_public_key is not base64 of a 32-byte Ed25519 key") from e


def _b64decode(text: str) -> bytes:
    if not _B64_RE.fullmatch(text):
        raise QrError("bad_qr")
    bare = text.rstrip("=")
    padded = bare + "=" * (-len(bare) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise QrError("bad_qr") from None


class QrDecoder:
    """Decode QR payloads; the expiry is checked against the clock's wall time."""

    def __init__(
        self,
        fmt: CardNumberFormat,
        clock: Clock,
        public_key: Ed25519PublicKey | None,
        *,
        accept_plain: bool = False,
    ) -> None:
        self._fmt = fmt
        self._clock = clock
        self._key = public_key
        # Without a key every QR is a plain number; with one, only signed tokens count.
        self._accept_plain = accept_plain or public_key is None

    def decode(self, text: str) -> str:
        """Return the normalised card number, or raise :class:`QrError`."""
        t = text.strip("\r\n\t ")
        if not t or len(t) > MAX_QR_LEN or not t.isascii() or not t.isprintable():
            raise QrError("bad_qr")
        if not t.startswith(TOKEN_PREFIX):
            try:
                number = self._fmt.normalise(t)
            except CardNumberError:
                raise QrError("bad_qr") from None
            if not self._accept_plain:
                raise QrError("plain_qr_refused")
            return number
        parts = t.split(":")
        if len(parts) != 4:
            raise QrError("bad_qr")
        _, number, expiry, sig_b64 = parts
        if not (expiry.isdigit() and len(expiry) <= 12):
            raise QrError("bad_qr")
        sig = _b64decode(sig_b64)
        if self._key is None or len(sig) != 64:
            raise QrError("bad_qr")
        try:
            self._key.verify(sig, f"{TOKEN_PREFIX}{number}:{expiry}".encode("ascii"))
        except InvalidSignature:
            raise QrError("bad_qr") from None
        if int(expiry) < self._clock.now().timestamp():
            raise QrError("expired_qr")
        try:
            return self._fmt.normalise(number)
        except CardNumberError:
            raise QrError("not_a_card_number") from None
