"""The shipped fake reader and the shared reader core (state once, dedupe, log once)."""

from __future__ import annotations

from structlog.testing import capture_logs

from config.backoff import Backoff
from config.schema import CardsSection, ReaderSection
from drivers.base import MAX_QUEUED_EVENTS, REJECT_LOG_INTERVAL_S, ReaderCore
from drivers.events import CardRead, ReaderState, ReadRejected
from drivers.factory import build_reader
from drivers.fake import FakeReader
from drivers.pcsc import PcscReader
from ledger.clock import FakeClock
from tests.drivers.harnesses import next_event
from tests.drivers.helpers import KeyTyper, make_key, sign_qr, text_decoder


async def test_fake_runs_the_real_decoders(clock: FakeClock) -> None:
    priv, pub = make_key()
    async with FakeReader("demo", text_decoder(clock, pub), clock, layout="pl") as fake:
        events = fake.events()
        assert await next_event(events) == ReaderState(
            reader="demo", kind="fake", state="connected"
        )
        fake.push_bytes(b";0100")
        fake.silence()
        fake.push_keys(KeyTyper("pl").type("01000018"))
        fake.push_text(sign_qr(priv, "01-000019", int(clock.now().timestamp()) + 30))
        fake.push_uid(bytes.fromhex("04AABBCC"))
        fake.push_uid(bytes.fromhex("08AABBCC"))
        got = [await next_event(events) for _ in range(5)]
    assert got == [
        ReadRejected(reader="demo", source="msr", reason="incomplete"),
        CardRead(source="barcode", reader="demo", number="01-000018", at=clock.mono),
        CardRead(source="qr", reader="demo", number="01-000019", at=clock.mono),
        CardRead(source="nfc", reader="demo", uid="04AABBCC", at=clock.mono),
        ReadRejected(reader="demo", source="nfc", reason="not_an_identity"),
    ]


async def test_fake_unplugged_loses_input_like_a_cable(clock: FakeClock) -> None:
    async with FakeReader("demo", text_decoder(clock), clock, plugged=False) as fake:
        events = fake.events()
        fake.push_bytes(b";01000018?\r")
        fake.push_bytes(b";0100")  # half a swipe, then the cable is plugged
        fake.plug()
        fake.push_bytes(b"0018?\r")
        fake.push_bytes(b";01000020?\r")
        first = await next_event(events)
        assert first == ReaderState(reader="demo", kind="fake", state="connected")
        got = [await next_event(events) for _ in range(2)]
    assert got == [
        ReadRejected(reader="demo", source="barcode", reason="unknown_barcode"),  # "0018?"
        CardRead(source="msr", reader="demo", number="01-000020", at=clock.mono),
    ]


async def test_state_changes_are_reported_and_logged_once(clock: FakeClock) -> None:
    core = ReaderCore("msr", "serial", clock, 1.5)
    with capture_logs() as logs:
        core.set_state("disconnected", "starting")
        core.set_state("connected")
        for _ in range(10):  # a retry loop reporting the same failure over and over
            core.set_state("disconnected", "gone")
        core.set_state("connected")
        core.close()
    states = [ev async for ev in core.events()]
    assert [s.state for s in states if isinstance(s, ReaderState)] == [
        "disconnected",
        "connected",
        "disconnected",
        "connected",
    ]
    assert [line["event"] for line in logs] == [
        "reader_unavailable",
        "reader_connected",
        "reader_unavailable",
        "reader_reconnected",
    ]


async def test_dedupe_window_slides_while_the_card_stays(clock: FakeClock) -> None:
    core = ReaderCore("nfc", "pcsc", clock, 1.5)
    core.card("nfc", uid="04AA")
    for _ in range(5):  # the same card presented every second: still one read
        clock.advance(1.0)
        core.card("nfc", uid="04AA")
    clock.advance(2.0)
    core.card("nfc", uid="04AA")
    core.card("nfc", uid="04BB")
    core.card("nfc", uid="04AA")  # another card in between: a new read
    core.close()
    got = [ev async for ev in core.events()]
    assert [ev.uid for ev in got if isinstance(ev, CardRead)] == ["04AA", "04AA", "04BB", "04AA"]


async def test_queue_is_bounded_for_a_consumer_that_does_not_read(clock: FakeClock) -> None:
    core = ReaderCore("msr", "serial", clock, 0)
    for i in range(MAX_QUEUED_EVENTS * 2):
        core.card("msr", number=f"01-{i:06d}")
    core.close()
    got = [ev async for ev in core.events()]
    assert len(got) == MAX_QUEUED_EVENTS
    last = got[-1]
    assert isinstance(last, CardRead)
    assert last.number == f"01-{MAX_QUEUED_EVENTS * 2 - 1:06d}"


def test_backoff_doubles_caps_and_resets() -> None:
    b = Backoff(0.2, 5.0)
    assert [b.next_delay() for _ in range(7)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    b.reset()
    assert b.next_delay() == 0.2


def test_build_reader_pcsc(clock: FakeClock) -> None:
    section = ReaderSection(
        name="nfc", kind="pcsc", path="ACS ACR122", reconnect_min_s=0.1, reconnect_max_s=2
    )
    reader = build_reader(section, CardsSection(), clock)
    assert isinstance(reader, PcscReader)
    assert reader.match == "ACS ACR122"
    assert (reader.backoff.first_s, reader.backoff.cap_s) == (0.1, 2)


async def test_refusals_are_all_delivered_but_logged_once_per_interval(clock: FakeClock) -> None:
    core = ReaderCore("msr", "serial", clock, 1.5)
    with capture_logs() as logs:
        for _ in range(50):  # a reader at the wrong baud rate
            core.reject("msr", "garbled")
            clock.advance(0.1)
        core.reject("msr", "payment_card")  # another reason is logged at once
        clock.advance(REJECT_LOG_INTERVAL_S)
        core.reject("msr", "garbled")
        core.close()
    got = [ev async for ev in core.events()]
    assert len(got) == 52
    assert [(line["reason"], line["repeated"]) for line in logs] == [
        ("garbled", 0),
        ("payment_card", 0),
        ("garbled", 49),
    ]
