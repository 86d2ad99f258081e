"""Serial reader on real pseudo-terminals: swipes, garbage, half swipes, unplug/replug."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from config.schema import CardsSection, ReaderSection
from drivers.events import CardRead, ReaderEvent, ReaderState, ReadRejected
from drivers.factory import build_reader
from drivers.serial import SerialReader
from ledger.clock import FakeClock
from tests.drivers.harnesses import PtyHarness, next_event, wait_for
from tests.drivers.helpers import make_pan


@pytest.fixture
async def pty(clock: FakeClock, tmp_path: Path) -> AsyncIterator[PtyHarness]:
    h = PtyHarness(clock, tmp_path)
    async with h.serial:
        ev = await next_event(h.serial.events())
        assert isinstance(ev, ReaderState)
        assert ev.state == "connected"
        yield h
    h.close()


async def test_swipes_and_refusals_in_order(pty: PtyHarness, clock: FakeClock) -> None:
    events = pty.serial.events()
    pty.write(b";01000018?\r")
    pty.write(b"\x00\xff\xfe garbage \x07\r")
    pty.write(b"%MIESZKANIEC^KOWALSKA/ANNA^2712?;01000019=2712?\r\n")
    pty.write(b";E?\r")
    pty.write(b"5901234123457\r")  # a product barcode on a USB-COM scanner
    got = [await next_event(events) for _ in range(5)]
    assert got == [
        CardRead(source="msr", reader="msr", number="01-000018", at=clock.mono),
        ReadRejected(reader="msr", source="barcode", reason="garbled"),
        CardRead(source="msr", reader="msr", number="01-000019", at=clock.mono),
        ReadRejected(reader="msr", source="msr", reason="garbled"),
        ReadRejected(reader="msr", source="barcode", reason="unknown_barcode"),
    ]


async def test_half_swipe_then_silence_is_discarded(pty: PtyHarness) -> None:
    events = pty.serial.events()
    pty.write(b";0100")
    assert await next_event(events) == ReadRejected(reader="msr", source="msr", reason="incomplete")
    # The missing half arriving late never completes the old read.
    pty.write(b"0018?\r;01000020?\r")
    got = [await next_event(events) for _ in range(2)]
    assert isinstance(got[0], ReadRejected)
    assert isinstance(got[1], CardRead)
    assert got[1].number == "01-000020"


async def test_swipe_without_terminator_completes_when_the_line_goes_quiet(
    pty: PtyHarness,
) -> None:
    events = pty.serial.events()
    pty.write(b"%E?;01000018?")
    read = await next_event(events)
    assert isinstance(read, CardRead)
    assert read.number == "01-000018"


async def test_payment_card_refused_and_never_logged(pty: PtyHarness) -> None:
    events = pty.serial.events()
    pan = make_pan(7)
    with capture_logs() as logs:
        pty.write(f"%B{pan}^KOWALSKI/JAN^28121010000?;{pan}=2812101?\r".encode())
        ev = await next_event(events)
    assert ev == ReadRejected(reader="msr", source="msr", reason="payment_card")
    assert logs  # the refusal is logged ...
    assert all(pan not in repr(line) and pan[-8:] not in repr(line) for line in logs)


async def test_unplug_half_swipe_then_replug(pty: PtyHarness) -> None:
    events = pty.serial.events()
    pty.write(b";0100")  # cable pulled mid-swipe
    await pty.unplug()
    got: list[ReaderEvent] = [await next_event(events)]
    if isinstance(got[0], ReadRejected):  # the inter-byte timer may fire first
        got.append(await next_event(events))
    assert isinstance(got[-1], ReaderState)
    assert got[-1].state == "disconnected"
    await pty.replug()
    back = await next_event(events)
    assert isinstance(back, ReaderState)
    assert back.state == "connected"
    pty.write(b";01000021?\r")
    read = await next_event(events)
    assert isinstance(read, CardRead)
    assert read.number == "01-000021"


async def test_reconnect_backs_off_instead_of_spinning(clock: FakeClock, tmp_path: Path) -> None:
    h = PtyHarness(clock, tmp_path)
    await h.unplug()
    h.link.unlink()
    attempts: list[float] = []
    real_open = h.serial._open

    async def counting_open() -> object:
        attempts.append(time.monotonic())
        return await real_open()

    h.serial._open = counting_open  # type: ignore[method-assign,assignment]
    async with h.serial:
        await wait_for(lambda: len(attempts) >= 7)
        assert h.serial.state.state == "disconnected"
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    # 0.02, 0.04, 0.08, 0.16, 0.2, 0.2: doubling and capped (a little scheduling slack allowed).
    assert gaps[0] >= 0.015
    assert gaps[3] >= 0.14
    assert gaps[4] >= 0.18
    # Capped at 0.2 s: uncapped, these two would be 0.32 and 0.64 s.
    assert min(gaps[4:6]) < 0.3


async def test_missing_port_is_reported_with_its_path(clock: FakeClock, tmp_path: Path) -> None:
    path = tmp_path / "nope"
    reader = SerialReader("msr", str(path), PtyHarness.decoder_for(clock), clock)
    async with reader:
        ev = await next_event(reader.events())
    assert isinstance(ev, ReaderState)
    assert ev.state == "disconnected"
    assert ev.detail == f"{path}: No such file or directory"


async def test_build_reader_from_config_with_prefix_and_suffix(
    clock: FakeClock, tmp_path: Path
) -> None:
    master, slave = os.openpty()
    name = os.ttyname(slave)
    os.close(slave)
    try:
        section = ReaderSection(
            name="msr", kind="serial", path=name, prefix="@", suffix="#", inter_byte_timeout_ms=50
        )
        reader = build_reader(section, CardsSection(), clock)
        assert isinstance(reader, SerialReader)
        async with reader:
            events = reader.events()
            assert isinstance(await next_event(events), ReaderState)
            os.write(master, b"@;01000018?#")
            read = await next_event(events)
            assert isinstance(read, CardRead)
            assert read.number == "01-000018"
    finally:
        os.close(master)


async def test_exclusive_open_refuses_a_second_reader(clock: FakeClock, pty: PtyHarness) -> None:
    # Two configured readers on one port would each get half of the bytes.
    second = SerialReader("msr2", str(pty.link), PtyHarness.decoder_for(clock), clock)
    async with second:
        ev = await next_event(second.events())
        assert isinstance(ev, ReaderState)
        assert ev.state == "disconnected"
    await asyncio.sleep(0)
