"""One suite, every reader kind: the in-memory fake, serial on a real pty, evdev on a real
fd with a fake device object, and PC/SC through a real pcscd with a virtual card."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.events import CardRead, ReaderState
from ledger.clock import FakeClock
from tests.drivers.harnesses import (
    EvdevHarness,
    FakeHarness,
    Harness,
    PcscHarness,
    PtyHarness,
    next_event,
)

KINDS = ["fake", "pty", "evdev", "pcsc"]


@pytest.fixture(params=KINDS)
async def harness(
    request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[Harness]:
    kind = request.param
    h: Harness
    if kind == "fake":
        h = FakeHarness(clock)
    elif kind == "pty":
        h = PtyHarness(clock, tmp_path)
    elif kind == "evdev":
        h = EvdevHarness(clock)
    else:
        h = PcscHarness(clock, request.getfixturevalue("pcscd"))
    async with h.reader:
        yield h
    close = getattr(h, "close", None)
    if close is not None:
        close()


async def test_reports_connected_once_then_reads(harness: Harness) -> None:
    events = harness.reader.events()
    first = await next_event(events)
    assert isinstance(first, ReaderState)
    assert first.state == "connected"
    assert harness.reader.state.state == "connected"
    await harness.present(0)
    read = await next_event(events)
    assert isinstance(read, CardRead)
    assert (read.number, read.uid) == harness.expected(0)
    assert read.reader == harness.reader.name


async def test_same_card_within_window_is_one_read(harness: Harness, clock: FakeClock) -> None:
    events = harness.reader.events()
    await next_event(events)
    await harness.present(1)
    await harness.present(1)  # within the dedupe window (the fake clock stands still)
    await harness.present(2)
    got = [await next_event(events) for _ in range(2)]
    clock.advance(5)
    await harness.present(2)  # the window has passed: a new read
    got.append(await next_event(events))
    ids = [(g.number, g.uid) if isinstance(g, CardRead) else g for g in got]
    # A duplicate would sit between the two first reads.
    assert ids == [harness.expected(1), harness.expected(2), harness.expected(2)]


async def test_unplug_reported_once_and_replug_reads_again(harness: Harness) -> None:
    events = harness.reader.events()
    await next_event(events)
    await harness.unplug()
    gone = await next_event(events)
    assert isinstance(gone, ReaderState)
    assert gone.state in ("disconnected", "error")
    await harness.replug()
    # Retries while unplugged are not reported again: the next event is the return.
    back = await next_event(events)
    assert isinstance(back, ReaderState)
    assert back.state == "connected"
    await harness.present(3)
    read = await next_event(events)
    assert isinstance(read, CardRead)
    assert (read.number, read.uid) == harness.expected(3)


async def test_events_end_when_the_context_exits(harness: Harness) -> None:
    events = harness.reader.events()
    await next_event(events)
    await harness.reader.__aexit__(None, None, None)
    with pytest.raises(StopAsyncIteration):
        await next_event(events)
