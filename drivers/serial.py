"""Serial readers (RS-232 / USB-COM magstripe readers and scanners) via pyserial-asyncio-fast.

Give the reader a stable path (a udev symlink such as ``/dev/pos/msr``): after an
unplug the port is reopened by that path with capped exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

import serial
import structlog
from serial_asyncio_fast import create_serial_connection

from config.backoff import Backoff
from drivers.base import TaskReader
from drivers.classify import TextDecoder
from drivers.deliver import deliver_frame
from drivers.framing import SerialFramer
from ledger.clock import Clock

log = structlog.get_logger()


class _LineProtocol(asyncio.Protocol):
    """Bytes -> frames -> events, on the loop thread as the bytes arrive."""

    def __init__(self, reader: SerialReader) -> None:
        self._reader = reader
        self._framer = SerialFramer(reader.prefix, reader.suffix)
        self._timer: asyncio.TimerHandle | None = None
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        r = self._reader
        for frame in self._framer.feed(data):
            deliver_frame(r.core, r.decoder, frame)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._framer.pending:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(r.inter_byte_timeout_s, self._expire)

    def _expire(self) -> None:
        self._timer = None
        frame = self._framer.expire()
        if frame is not None:
            deliver_frame(self._reader.core, self._reader.decoder, frame)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # Half a frame when the cable went: dropped, not delivered.
        self._framer = SerialFramer(self._reader.prefix, self._reader.suffix)
        if not self.lost.done():
            self.lost.set_result(exc)


class SerialReader(TaskReader):
    """A serial port reader; reconnects by itself."""

    kind = "serial"

    def __init__(
        self,
        name: str,
        path: str,
        decoder: TextDecoder,
        clock: Clock,
        *,
        baudrate: int = 9600,
        prefix: str = "",
        suffix: str = "",
        inter_byte_timeout_s: float = 0.1,
        dedupe_window_s: float = 1.5,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(name, clock, dedupe_window_s)
        self.path = path
        self.decoder = decoder
        self.baudrate = baudrate
        self.prefix = prefix
        self.suffix = suffix
        self.inter_byte_timeout_s = inter_byte_timeout_s
        self.backoff = backoff or Backoff()

    async def _open(self) -> tuple[asyncio.BaseTransport, _LineProtocol]:
        loop = asyncio.get_running_loop()
        transport, protocol = await create_serial_connection(
            loop,
            lambda: _LineProtocol(self),
            url=self.path,
            baudrate=self.baudrate,
            exclusive=True,
        )
        assert isinstance(protocol, _LineProtocol)
        return transport, protocol

    async def run(self) -> None:
        while True:
            try:
                transport, protocol = await self._open()
            except (serial.SerialException, OSError, ValueError) as e:
                self.core.set_state("disconnected", _describe(e, self.path))
                await asyncio.sleep(self.backoff.next_delay())
                continue
            self.backoff.reset()
            self.core.set_state("connected")
            try:
                exc = await asyncio.shield(protocol.lost)
            finally:
                transport.close()
                with contextlib.suppress(Exception):
                    # The library closes the port in an executor; wait so it is released.
                    await asyncio.wait_for(asyncio.shield(protocol.lost), 2.0)
            self.core.set_state("disconnected", _describe(exc, self.path) if exc else "closed")
            await asyncio.sleep(self.backoff.next_delay())


def _describe(e: BaseException, path: str) -> str:
    """A short device-failure reason naming the path (never any read data)."""
    errno = getattr(e, "errno", None)
    if isinstance(errno, int):
        return f"{path}: {os.strerror(errno)}"
    if isinstance(e, serial.SerialException):
        return f"{path}: device error"
    return f"{path}: {type(e).__name__}"
