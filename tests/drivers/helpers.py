"""Test helpers: Luhn-valid PANs built at test time, key event sequences, decoders."""

from __future__ import annotations

import base64
import random
from collections.abc import Iterator

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from evdev import InputEvent
from evdev import ecodes as e

from drivers.classify import TextDecoder
from drivers.keymap import KEYPAD, LAYOUTS
from drivers.qr import QrDecoder
from ledger.cards import CardNumberFormat
from ledger.clock import Clock

FMT = CardNumberFormat()


def luhn_check_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def make_pan(seed: int = 0, length: int = 16, prefix: str = "4") -> str:
    """A Luhn-valid payment-card-shaped number, made here so none sits in a fixture."""
    rng = random.Random(seed)
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    return body + luhn_check_digit(body)


def make_key() -> tuple[Ed25519PrivateKey, str]:
    """A fresh city QR key pair: the private key and the base64 public key for config."""
    priv = Ed25519PrivateKey.generate()
    pub = priv.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return priv, base64.b64encode(pub).decode()


def sign_qr(priv: Ed25519PrivateKey, number: str, expiry: int) -> str:
    msg = f"KM1:{number}:{expiry}"
    return f"{msg}:{base64.b64encode(priv.sign(msg.encode())).decode()}"


def text_decoder(clock: Clock, public_key_b64: str | None = None) -> TextDecoder:
    from drivers.qr import load_public_key

    key = load_public_key(public_key_b64) if public_key_b64 else None
    return TextDecoder(FMT, QrDecoder(FMT, clock, key))


# -- key events -------------------------------------------------------------------------


def _reverse_map(layout: str) -> dict[str, tuple[int, bool, bool]]:
    km = LAYOUTS[layout]
    out: dict[str, tuple[int, bool, bool]] = {}
    for code, (plain, shifted) in km.base.items():
        out.setdefault(plain, (code, False, False))
        out.setdefault(shifted, (code, True, False))
    for code, (plain, shifted) in km.altgr.items():
        out.setdefault(plain, (code, False, True))
        out.setdefault(shifted, (code, True, True))
    return out


class KeyTyper:
    """Builds the evdev event stream a keyboard wedge sends, with timestamps."""

    def __init__(self, layout: str = "us", start: float = 1_700_000_000.0) -> None:
        self.map = _reverse_map(layout)
        self.t = start

    def _ev(self, type_: int, code: int, value: int) -> InputEvent:
        sec = int(self.t)
        usec = round((self.t - sec) * 1_000_000)
        return InputEvent(sec, usec, type_, code, value)

    def _syn(self) -> InputEvent:
        return self._ev(e.EV_SYN, e.SYN_REPORT, 0)

    def tap(self, code: int, step: float) -> Iterator[InputEvent]:
        yield self._ev(e.EV_KEY, code, 1)
        yield self._syn()
        yield self._ev(e.EV_KEY, code, 0)
        yield self._syn()
        self.t += step

    def hold(self, code: int, down: bool) -> Iterator[InputEvent]:
        yield self._ev(e.EV_KEY, code, 1 if down else 0)
        yield self._syn()

    def type(
        self, text: str, step: float = 0.002, end: int | None = e.KEY_ENTER, keypad: bool = False
    ) -> list[InputEvent]:
        """Key events for ``text`` (shift / AltGr as needed), then ``end`` (None: no end key)."""
        out: list[InputEvent] = []
        kp = {v: k for k, v in KEYPAD.items()}
        for ch in text:
            if keypad and ch in kp:
                out += self.tap(kp[ch], step)
                continue
            code, shift, altgr = self.map[ch]
            if shift:
                out += self.hold(e.KEY_LEFTSHIFT, True)
            if altgr:
                out += self.hold(e.KEY_RIGHTALT, True)
            out += self.tap(code, step)
            if altgr:
                out += self.hold(e.KEY_RIGHTALT, False)
            if shift:
                out += self.hold(e.KEY_LEFTSHIFT, False)
        if end is not None:
            out += self.tap(end, step)
        return out

    def dropped(self) -> list[InputEvent]:
        return [self._ev(e.EV_SYN, e.SYN_DROPPED, 0)]

    def pause(self, seconds: float) -> None:
        self.t += seconds
