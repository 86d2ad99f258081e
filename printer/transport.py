"""Async transports to receipt printers: network (9100), serial, USB line printer, file.

Each job gets its own connection (port 9100 printers take one client at a time; a
lock keeps status queries and jobs of one transport from overlapping). Status comes
from DLE EOT 1/2/4 with a timeout; no answer is "unknown", never "online".
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, TypeVar

from config.schema import PrinterSection
from printer import texts

State = Literal["online", "offline", "paper_near_end", "paper_out", "cover_open", "unknown"]

DLE_EOT = b"\x10\x04"
STATUS_TIMEOUT_S = 0.5

_T = TypeVar("_T")


async def within(seconds: float, aw: Awaitable[_T]) -> _T:
    """Await with a deadline (TimeoutError after it).

    asyncio.wait_for of Python 3.11 can swallow a cancellation that races with the
    awaited result, which leaves a worker running after its TaskGroup cancelled it;
    asyncio.timeout counts cancellations correctly.
    """
    async with asyncio.timeout(seconds):
        return await aw


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    """What the printer said about itself (or that it said nothing)."""

    state: State
    detail: str = ""

    @property
    def can_print(self) -> bool:
        """Worth sending a job: ready, nearly out of paper, or silent (many clones are)."""
        return self.state in ("online", "paper_near_end", "unknown")

    @property
    def message(self) -> str:
        """The state for the cashier, in Polish."""
        return texts.STATUS[self.state]


class PrinterError(Exception):
    """A job could not be delivered."""


class PrinterOffline(PrinterError, ConnectionError):
    """The printer could not be reached; nothing of the job was sent."""


class PrinterWriteError(PrinterError, OSError):
    """Sending broke off: part of the job may have reached the printer."""


class Transport(Protocol):
    async def send(self, data: bytes) -> None: ...

    async def status(self) -> PrinterStatus: ...


def parse_status(printer: int | None, cause: int | None, paper: int | None) -> PrinterStatus:
    """Interpret the DLE EOT 1, 2 and 4 answer bytes (None: not answered)."""
    for b in (printer, cause, paper):
        # Every status byte has bits 1 and 4 set and bits 0 and 7 clear.
        if b is not None and b & 0x93 != 0x12:
            return PrinterStatus("unknown", f"unexpected status byte 0x{b:02x}")
    if printer is None:
        return PrinterStatus("unknown", "no answer to DLE EOT")
    if paper is not None and paper & 0x60:
        return PrinterStatus("paper_out", "paper roll end")
    if cause is not None:
        if cause & 0x04:
            return PrinterStatus("cover_open")
        if cause & 0x20:
            return PrinterStatus("paper_out", "stopped at paper end")
        if cause & 0x40:
            return PrinterStatus("offline", "printer error")
    if printer & 0x08:
        return PrinterStatus("offline", "printer reports offline")
    if paper is not None and paper & 0x0C:
        return PrinterStatus("paper_near_end")
    return PrinterStatus("online")


async def query_status(
    write: Callable[[bytes], Awaitable[None]],
    read_byte: Callable[[], Awaitable[bytes]],
    answer_within: float,
) -> PrinterStatus:
    """Ask DLE EOT 1, 2, 4 in turn; stop at the first question left unanswered."""
    answers: list[int | None] = [None, None, None]
    for i, n in enumerate((1, 2, 4)):
        await write(DLE_EOT + bytes([n]))
        try:
            got = await within(answer_within, read_byte())
        except TimeoutError:
            break
        if not got:
            break
        answers[i] = got[0]
    return parse_status(*answers)


async def _stream_status(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    write_timeout: float,
    status_timeout: float,
) -> PrinterStatus:
    """DLE EOT over an open byte stream (network or serial); a broken stream is offline."""

    async def write(b: bytes) -> None:
        writer.write(b)
        await within(write_timeout, writer.drain())

    try:
        return await query_status(write, lambda: reader.read(1), status_timeout)
    except (OSError, TimeoutError) as e:
        return PrinterStatus("offline", str(e))


class NetworkTransport:
    """A raw TCP printer (JetDirect port 9100)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        connect_timeout: float = 2.0,
        write_timeout: float = 5.0,
        status_timeout: float = STATUS_TIMEOUT_S,
    ) -> None:
        self.host, self.port = host, port
        self.connect_timeout = connect_timeout
        self.write_timeout = write_timeout
        self.status_timeout = status_timeout
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"NetworkTransport({self.host}:{self.port})"

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await within(self.connect_timeout, asyncio.open_connection(self.host, self.port))
        except (OSError, TimeoutError) as e:
            raise PrinterOffline(f"{self.host}:{self.port}: {e or 'connect timeout'}") from e

    async def _close(self, writer: asyncio.StreamWriter) -> None:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await within(self.write_timeout, writer.wait_closed())

    async def send(self, data: bytes) -> None:
        async with self._lock:
            _, writer = await self._connect()
            try:
                writer.write(data)
                await within(self.write_timeout, writer.drain())
            except (OSError, TimeoutError) as e:
                writer.transport.abort()
                raise PrinterWriteError(f"{self.host}:{self.port}: {e or 'write timeout'}") from e
            finally:
                await self._close(writer)

    async def status(self) -> PrinterStatus:
        async with self._lock:
            try:
                reader, writer = await self._connect()
            except PrinterOffline as e:
                return PrinterStatus("offline", str(e))
            try:
                return await _stream_status(reader, writer, self.write_timeout, self.status_timeout)
            finally:
                await self._close(writer)


class SerialTransport:
    """A printer on a serial port (pyserial-asyncio-fast); the port is opened per job."""

    def __init__(
        self,
        path: str,
        baudrate: int,
        *,
        write_timeout: float = 5.0,
        status_timeout: float = STATUS_TIMEOUT_S,
    ) -> None:
        self.path, self.baudrate = path, baudrate
        self.write_timeout = write_timeout
        self.status_timeout = status_timeout
        self._lock = asyncio.Lock()

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        from serial import SerialException
        from serial_asyncio_fast import open_serial_connection

        try:
            return await within(
                self.write_timeout,
                open_serial_connection(url=self.path, baudrate=self.baudrate),
            )
        except (SerialException, OSError, TimeoutError) as e:
            raise PrinterOffline(f"{self.path}: {e}") from e

    async def send(self, data: bytes) -> None:
        async with self._lock:
            _, writer = await self._open()
            try:
                writer.write(data)
                await within(self.write_timeout, writer.drain())
            except (OSError, TimeoutError) as e:
                raise PrinterWriteError(f"{self.path}: {e or 'write timeout'}") from e
            finally:
                writer.close()

    async def status(self) -> PrinterStatus:
        async with self._lock:
            try:
                reader, writer = await self._open()
            except PrinterOffline as e:
                return PrinterStatus("offline", str(e))
            try:
                return await _stream_status(reader, writer, self.write_timeout, self.status_timeout)
            finally:
                writer.close()


class DeviceTransport:
    """A character device such as /dev/usb/lp0, driven non-blocking from the event loop."""

    def __init__(
        self, path: str, *, write_timeout: float = 5.0, status_timeout: float = STATUS_TIMEOUT_S
    ) -> None:
        self.path = path
        self.write_timeout = write_timeout
        self.status_timeout = status_timeout
        self._lock = asyncio.Lock()

    def _open(self) -> tuple[int, bool]:
        flags = os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        try:
            return os.open(self.path, os.O_RDWR | flags), True
        except PermissionError:
            pass
        except OSError as e:
            raise PrinterOffline(f"{self.path}: {e.strerror}") from e
        try:
            return os.open(self.path, os.O_WRONLY | flags), False
        except OSError as e:
            raise PrinterOffline(f"{self.path}: {e.strerror}") from e

    async def _wait(self, fd: int, *, write: bool, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        if write:
            loop.add_writer(fd, wake)
        else:
            loop.add_reader(fd, wake)
        try:
            await within(seconds, ready)
        finally:
            if write:
                loop.remove_writer(fd)
            else:
                loop.remove_reader(fd)

    async def _write(self, fd: int, data: bytes, deadline: float) -> int:
        loop = asyncio.get_running_loop()
        view, sent = memoryview(data), 0
        while sent < len(data):
            try:
                sent += os.write(fd, view[sent:])
            except BlockingIOError:
                await self._wait(fd, write=True, seconds=max(deadline - loop.time(), 0.001))
        return sent

    async def send(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        async with self._lock:
            fd, _ = self._open()
            sent = 0
            try:
                view, deadline = memoryview(data), loop.time() + self.write_timeout
                while sent < len(data):
                    try:
                        sent += os.write(fd, view[sent:])
                    except BlockingIOError:
                        await self._wait(fd, write=True, seconds=max(deadline - loop.time(), 0.001))
            except (OSError, TimeoutError) as e:
                err = PrinterWriteError if sent else PrinterOffline
                raise err(f"{self.path}: {e or 'write timeout'}") from e
            finally:
                os.close(fd)

    async def status(self) -> PrinterStatus:
        loop = asyncio.get_running_loop()
        async with self._lock:
            try:
                fd, readable = self._open()
            except PrinterOffline as e:
                return PrinterStatus("offline", str(e))
            try:
                if not readable:
                    return PrinterStatus("unknown", "device is write-only")

                async def write(b: bytes) -> None:
                    await self._write(fd, b, loop.time() + self.write_timeout)

                async def read_byte() -> bytes:
                    while True:
                        try:
                            return os.read(fd, 1)
                        except BlockingIOError:
                            await self._wait(fd, write=False, seconds=self.status_timeout)

                return await query_status(write, read_byte, self.status_timeout)
            except OSError as e:
                if e.errno in (errno.ENODEV, errno.EIO, errno.ENXIO):
                    return PrinterStatus("offline", f"{self.path}: {e.strerror}")
                return PrinterStatus("unknown", f"{self.path}: {e.strerror}")
            except TimeoutError:
                return PrinterStatus("unknown", "write timeout")
            finally:
                os.close(fd)


class FileTransport:
    """Appends each job to a file (the demo's printer, and tests)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def _append(self, data: bytes) -> None:
        with self.path.open("ab") as f:
            f.write(data)
            f.flush()

    async def send(self, data: bytes) -> None:
        try:
            await asyncio.to_thread(self._append, data)
        except OSError as e:
            raise PrinterOffline(f"{self.path}: {e.strerror}") from e

    async def status(self) -> PrinterStatus:
        folder = self.path.parent
        if folder.is_dir() and os.access(folder, os.W_OK):
            return PrinterStatus("online", str(self.path))
        return PrinterStatus("offline", f"{folder}: not a writable folder")


def build_transport(
    section: PrinterSection, *, status_timeout: float = STATUS_TIMEOUT_S
) -> Transport | None:
    """The transport the [printer] section describes; None for kind = "none"."""
    if section.kind == "network":
        return NetworkTransport(
            section.host,
            section.port,
            connect_timeout=section.connect_timeout_s,
            write_timeout=section.write_timeout_s,
            status_timeout=status_timeout,
        )
    if section.kind == "serial":
        return SerialTransport(
            section.path,
            section.baudrate,
            write_timeout=section.write_timeout_s,
            status_timeout=status_timeout,
        )
    if section.kind == "usb":
        return DeviceTransport(
            section.path, write_timeout=section.write_timeout_s, status_timeout=status_timeout
        )
    if section.kind == "file":
        return FileTransport(section.path)
    return None
