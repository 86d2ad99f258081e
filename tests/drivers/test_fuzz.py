"""Hypothesis: every decoder, fed anything, raises only its own error and never yields
a number outside the configured pattern; payment-card digits never reach a log line."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from evdev import InputEvent
from evdev import ecodes as e
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from drivers.barcode import BarcodeError, decode_barcode
from drivers.base import ReaderCore
from drivers.classify import TextDecodeError
from drivers.deliver import deliver_frame, deliver_scan
from drivers.framing import SerialFramer
from drivers.keymap import LAYOUTS
from drivers.msr import MsrError, decode_swipe
from drivers.qr import QrDecoder, QrError, load_public_key
from drivers.wedge import WedgeDecoder
from ledger.cards import CardNumberFormat
from ledger.clock import FakeClock
from tests.drivers.helpers import FMT, KeyTyper, make_key, make_pan, sign_qr, text_decoder

FORMATS = [
    FMT,
    CardNumberFormat(pattern=r"^\d{3}-\d{7}$", issuer_digits=3, digit_lengths=(10,)),
    CardNumberFormat(pattern=r"^[A-Z]{2}\d{6}$", issuer_digits=0, digit_lengths=()),
]
# Text made of what swipes, barcodes and tokens are made of, plus anything at all.
TRACKISH = st.text(alphabet="%;+?^=/:E B0123456789-\x02\x03\r\nKM", max_size=80)
ANY_TEXT = st.one_of(TRACKISH, st.text(max_size=80))
CLOCK = FakeClock(datetime(2026, 11, 18, 11, 0, tzinfo=UTC))
PRIV, PUB = make_key()
QR = QrDecoder(FMT, CLOCK, load_public_key(PUB))
MANY = settings(max_examples=400, deadline=None)


@MANY
@given(ANY_TEXT, st.sampled_from(FORMATS))
def test_msr_decoder(text: str, fmt: CardNumberFormat) -> None:
    try:
        number = decode_swipe(text, fmt)
    except MsrError:
        return
    assert fmt.matches(number)


@MANY
@given(ANY_TEXT, st.sampled_from(FORMATS))
def test_barcode_decoder(text: str, fmt: CardNumberFormat) -> None:
    try:
        number = decode_barcode(text, fmt)
    except BarcodeError:
        return
    assert fmt.matches(number)


@MANY
@given(
    st.one_of(
        ANY_TEXT,
        st.builds(lambda n, x, s: f"KM1:{n}:{x}:{s}", ANY_TEXT, st.integers(), ANY_TEXT),
        st.builds(
            lambda n, x: sign_qr(PRIV, n, x),
            st.text(alphabet="0123456789-:", max_size=12),
            st.integers(0, 2**40),
        ),
    )
)
def test_qr_decoder(text: str) -> None:
    try:
        number = QR.decode(text)
    except QrError:
        return
    assert FMT.matches(number)


KEY_CODES = st.sampled_from(sorted({*range(0, 130)}))


@st.composite
def key_events(draw: st.DrawFn) -> list[InputEvent]:
    events = []
    t = 1_700_000_000.0
    for _ in range(draw(st.integers(0, 60))):
        t += draw(st.sampled_from([0.0, 0.002, 0.05, 0.2]))
        kind = draw(st.sampled_from(["key", "key", "key", "syn", "drop", "other"]))
        sec, usec = int(t), int((t % 1) * 1e6)
        if kind == "key":
            events.append(InputEvent(sec, usec, e.EV_KEY, draw(KEY_CODES), draw(st.integers(0, 2))))
        elif kind == "syn":
            events.append(InputEvent(sec, usec, e.EV_SYN, e.SYN_REPORT, 0))
        elif kind == "drop":
            events.append(InputEvent(sec, usec, e.EV_SYN, e.SYN_DROPPED, 0))
        else:
            events.append(InputEvent(sec, usec, e.EV_MSC, e.MSC_SCAN, draw(st.integers(0, 999))))
    return events


@settings(max_examples=200, deadline=None)
@given(key_events(), st.sampled_from(["us", "pl"]))
def test_wedge_decoder_then_text_decoder(events: list[InputEvent], layout: str) -> None:
    wedge = WedgeDecoder(LAYOUTS[layout], 0.08)
    dec = text_decoder(CLOCK, PUB)
    scans = [s for ev in events for s in wedge.feed(ev)]
    last = wedge.expire()
    scans += [last] if last else []
    for scan in scans:
        if scan.text is None:
            continue
        try:
            decoded = dec.decode(scan.text)
        except TextDecodeError:
            continue
        assert FMT.matches(decoded.number)


@MANY
@given(st.lists(st.binary(max_size=40), max_size=8))
def test_framer_then_text_decoder(chunks: list[bytes]) -> None:
    framer = SerialFramer(prefix="\x1b", suffix="\x04")
    dec = text_decoder(CLOCK, PUB)
    frames = [f for c in chunks for f in framer.feed(c)]
    last = framer.expire()
    frames += [last] if last else []
    for frame in frames:
        if frame.text is None:
            continue
        try:
            decoded = dec.decode(frame.text)
        except TextDecodeError:
            continue
        assert FMT.matches(decoded.number)


def _payment_swipes() -> st.SearchStrategy[tuple[str, str]]:
    def build(seed: int, length: int, name: str, junk: str, style: int) -> tuple[str, str]:
        pan = make_pan(seed, length)
        swipes = [
            f"%B{pan}^{name}^2812101?;{pan}=2812101?",
            f"%B{pan}^{name}^2812?",
            f";{pan}=2812101{junk}?",
            f"%B{pan}^{name}^2812?;01000018?",
            f"\x02%B{pan}^{name}^2812?;{pan}=28",  # cut off mid-swipe
        ]
        return pan, swipes[style]

    return st.builds(
        build,
        st.integers(0, 10**6),
        st.integers(13, 19),
        st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ /", max_size=20),
        st.text(alphabet="0123456789", max_size=10),
        st.integers(0, 4),
    )


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_payment_swipes(), st.booleans())
def test_no_payment_card_digits_in_any_log_line_or_event(
    case: tuple[str, str], by_keys: bool
) -> None:
    pan, swipe = case
    core = ReaderCore("msr", "serial", CLOCK, 1.5)
    dec = text_decoder(CLOCK, PUB)
    with capture_logs() as logs:
        if by_keys:
            wedge = WedgeDecoder(LAYOUTS["us"], 0.08)
            events = KeyTyper().type(swipe.replace("\x02", "").replace("\r", ""))
            for ev in events:
                for scan in wedge.feed(ev):
                    deliver_scan(core, dec, scan)
            if (s := wedge.expire()) is not None:
                deliver_scan(core, dec, s)
        else:
            framer = SerialFramer()
            for f in framer.feed(swipe.encode() + b"\r"):
                deliver_frame(core, dec, f)
            if (fr := framer.expire()) is not None:
                deliver_frame(core, dec, fr)
    queued = []
    while not core._queue.empty():
        queued.append(repr(core._queue.get_nowait()))
    everything = "\n".join([*map(repr, logs), *queued])
    digits_only = re.sub(r"\D", "", everything)
    assert pan not in digits_only
    # Not even the last digits a receipt would show.
    assert pan[-8:] not in everything
    assert any("payment_card" in q or "incomplete" in q for q in queued)
