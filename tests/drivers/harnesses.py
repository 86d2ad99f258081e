"""One harness per reader kind, so one conformance suite runs against all of them."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Protocol

from evdev import InputEvent

from config.backoff import Backoff
from drivers.base import Reader
from drivers.classify import TextDecoder
from drivers.evdev_reader import EvdevReader
from drivers.events import ReaderEvent
from drivers.fake import FakeReader
from drivers.keymap import US
from drivers.pcsc import PcscReader
from drivers.serial import SerialReader
from drivers.wedge import WedgeDecoder
from ledger.clock import Clock
from tests.drivers.helpers import KeyTyper, text_decoder
from tests.drivers.pcsc_harness import READER_NAME, PcscdProcess, VirtualCard

FAST = (0.02, 0.2)  # reconnect backoff in tests: quick, still exponential and capped
EVENT_TIMEOUT_S = 15.0


def card_number(i: int) -> str:
    return f"01-{i + 18:06d}"


def card_uid(i: int) -> str:
    return f"04A1B2{i:02X}"


async def next_event(
    events: AsyncIterator[ReaderEvent], within: float = EVENT_TIMEOUT_S
) -> ReaderEvent:
    """The reader's next event, or a test failure after ``within`` seconds."""
    return await asyncio.wait_for(anext(events), within)


async def wait_for(condition: object, within: float = EVENT_TIMEOUT_S) -> None:
    """Wait until ``condition()`` is true (checked every 10 ms), or fail."""
    assert callable(condition)
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)


class Harness(Protocol):
    """Drives one reader kind like a cashier and a cable would."""

    reader: Reader

    def expected(self, i: int) -> tuple[str | None, str | None]:
        """(number, uid) a read of card ``i`` must carry."""
        ...

    async def present(self, i: int) -> None:
        """Swipe / scan / tap card ``i`` once."""
        ...

    async def unplug(self) -> None: ...

    async def replug(self) -> None: ...


# -- fake -------------------------------------------------------------------------------


class FakeHarness:
    def __init__(self, clock: Clock) -> None:
        self.fake = FakeReader("fake", text_decoder(clock), clock, kind="fake")
        self.reader: Reader = self.fake

    def expected(self, i: int) -> tuple[str | None, str | None]:
        return card_number(i), None

    async def present(self, i: int) -> None:
        self.fake.push_bytes(f";{card_number(i).replace('-', '')}?\r".encode())

    async def unplug(self) -> None:
        self.fake.unplug()

    async def replug(self) -> None:
        self.fake.plug()


# -- serial on a real pseudo-terminal ---------------------------------------------------


class PtyHarness:
    """A SerialReader on a pty behind a stable symlink, re-pointed on replug like udev."""

    def __init__(self, clock: Clock, tmp: Path, *, suffix: str = "") -> None:
        self.link = tmp / "pos" / "msr"
        self.link.parent.mkdir(parents=True, exist_ok=True)
        self.master: int | None = None
        self._plug()
        self.serial = SerialReader(
            "msr",
            str(self.link),
            text_decoder(clock),
            clock,
            inter_byte_timeout_s=0.05,
            suffix=suffix,
            backoff=Backoff(*FAST),
        )
        self.reader: Reader = self.serial

    @staticmethod
    def decoder_for(clock: Clock) -> TextDecoder:
        return text_decoder(clock)

    def _plug(self) -> None:
        master, slave = os.openpty()
        name = os.ttyname(slave)
        # The reader opens the slave by path; holding it here would keep it alive on unplug.
        os.close(slave)
        tmp_link = self.link.with_suffix(".new")
        tmp_link.unlink(missing_ok=True)
        tmp_link.symlink_to(name)
        os.replace(tmp_link, self.link)
        self.master = master

    def write(self, data: bytes) -> None:
        assert self.master is not None
        os.write(self.master, data)

    def expected(self, i: int) -> tuple[str | None, str | None]:
        return card_number(i), None

    async def present(self, i: int) -> None:
        self.write(f";{card_number(i).replace('-', '')}?\r".encode())

    async def unplug(self) -> None:
        if self.master is not None:
            os.close(self.master)
            self.master = None

    async def replug(self) -> None:
        self._plug()

    def close(self) -> None:
        if self.master is not None:
            os.close(self.master)
            self.master = None


# -- evdev through a real fd and loop.add_reader, with a fake device object ---------------


class FakeInputDevice:
    """Stands in for evdev.InputDevice: a pipe makes its fd readable; unplug -> ENODEV."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self._queue: list[InputEvent] = []
        self.gone = False
        self.grabbed = False
        self.closed = False

    @property
    def fd(self) -> int:
        return self._r

    def push(self, events: Iterable[InputEvent]) -> None:
        self._queue.extend(events)
        os.write(self._w, b"x")

    def vanish(self) -> None:
        self.gone = True
        os.write(self._w, b"x")

    def read(self) -> Iterable[InputEvent]:
        if self.gone:
            raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))
        with contextlib.suppress(BlockingIOError):
            os.read(self._r, 4096)
        out, self._queue = self._queue, []
        if not out:
            raise BlockingIOError(errno.EAGAIN, "no events")
        return out

    def grab(self) -> None:
        self.grabbed = True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self._r)
            os.close(self._w)


class EvdevHarness:
    def __init__(self, clock: Clock) -> None:
        self.plugged = True
        self.device: FakeInputDevice | None = None
        self.opens = 0
        self.typer = KeyTyper()
        self.evdev = EvdevReader(
            "scanner",
            self._open,
            text_decoder(clock),
            WedgeDecoder(US, 0.08),
            clock,
            backoff=Backoff(*FAST),
            describe="/dev/input/by-id/usb-Test_Scanner-event-kbd",
        )
        self.reader: Reader = self.evdev

    def _open(self) -> FakeInputDevice:
        self.opens += 1
        if not self.plugged:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
        self.device = FakeInputDevice()
        return self.device

    def expected(self, i: int) -> tuple[str | None, str | None]:
        return card_number(i), None

    async def present(self, i: int) -> None:
        assert self.device is not None
        self.device.push(self.typer.type(card_number(i).replace("-", "")))

    async def unplug(self) -> None:
        self.plugged = False
        if self.device is not None:
            self.device.vanish()

    async def replug(self) -> None:
        self.plugged = True

    def close(self) -> None:
        if self.device is not None:
            self.device.close()


# -- PC/SC through a real pcscd and vpcd ------------------------------------------------


class PcscHarness:
    def __init__(self, clock: Clock, pcscd: PcscdProcess) -> None:
        self.pcscd = pcscd
        self.pcsc = PcscReader(
            "nfc", READER_NAME, clock, dedupe_window_s=1.5, backoff=Backoff(*FAST)
        )
        self.reader: Reader = self.pcsc

    def expected(self, i: int) -> tuple[str | None, str | None]:
        return None, card_uid(i)

    async def present(self, i: int) -> None:
        await tap(self.pcscd, bytes.fromhex(card_uid(i)))

    async def unplug(self) -> None:
        await asyncio.to_thread(self.pcscd.stop)

    async def replug(self) -> None:
        await asyncio.to_thread(self.pcscd.start)


async def tap(pcscd: PcscdProcess, uid: bytes, *, vanish_on_apdu: bool = False) -> VirtualCard:
    """Put a card on the reader until it has been asked for its UID, then take it away."""
    card = VirtualCard(pcscd.port, uid, vanish_on_apdu=vanish_on_apdu)
    async with card:
        await wait_for(lambda: bool(card.apdus))
    await wait_reader_empty()
    return card


async def wait_reader_empty(within: float = EVENT_TIMEOUT_S) -> None:
    """Wait until pcscd itself sees no card on the virtual reader (a real condition)."""
    from smartcard import scard

    def wait() -> None:
        rc, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        assert rc == scard.SCARD_S_SUCCESS
        try:
            state = scard.SCARD_STATE_UNAWARE
            deadline = within
            while deadline > 0:
                rc, res = scard.SCardGetStatusChange(ctx, 500, [(READER_NAME, state)])
                if rc == scard.SCARD_S_SUCCESS:
                    state = res[0][1] & ~scard.SCARD_STATE_CHANGED
                    if state & scard.SCARD_STATE_EMPTY:
                        return
                deadline -= 0.5
            raise TimeoutError("card still on the reader")
        finally:
            scard.SCardReleaseContext(ctx)

    await asyncio.to_thread(wait)
