"""Keyboard-wedge readers (USB barcode/QR scanners, keyboard-emulating magstripe readers).

The device layer is thin: open by ``/dev/input/by-id/...`` path (stable across reboots)
or by name / ``vvvv:pppp`` vendor:product, ``grab()`` it so scans never type into the
focused window, read with ``loop.add_reader`` + ``dev.read()``. Unplug (``ENODEV``)
closes the device and reopens it with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import Callable, Iterable
from typing import Protocol

import structlog
from evdev import InputEvent

from config.backoff import Backoff
from drivers.base import TaskReader
from drivers.classify import TextDecoder
from drivers.deliver import deliver_scan
from drivers.errors import DeviceError
from drivers.wedge import Scan, WedgeDecoder
from ledger.clock import Clock

log = structlog.get_logger()


class InputDevice(Protocol):
    """The part of ``evdev.InputDevice`` the reader uses (tests pass a fake)."""

    @property
    def fd(self) -> int: ...

    def read(self) -> Iterable[InputEvent]: ...

    def grab(self) -> None: ...

    def close(self) -> None: ...


DeviceOpener = Callable[[], InputDevice]


def _matches(dev_name: str, vendor: int, product: int, spec: str) -> bool:
    if len(spec) == 9 and spec[4] == ":":
        try:
            return (vendor, product) == (int(spec[:4], 16), int(spec[5:], 16))
        except ValueError:
            return False
    return spec.lower() in dev_name.lower()


def open_input_device(spec: str) -> InputDevice:
    """Open by path (``/dev/input/...``) or by name substring / ``vvvv:pppp`` (blocking)."""
    import evdev

    if spec.startswith("/"):
        try:
            return evdev.InputDevice(os.path.realpath(spec))
        except OSError as e:
            raise DeviceError(e.errno, f"{spec}: {os.strerror(e.errno or 0)}") from e
    denied: OSError | None = None
    for path in evdev.list_devices():
        try:
            dev = evdev.InputDevice(path)
        except OSError as e:
            # Unreadable devices are skipped; if nothing matched, say why some could not be read.
            denied = denied or e
            continue
        if _matches(dev.name, dev.info.vendor, dev.info.product, spec):
            return dev
        dev.close()
    if denied is not None and denied.errno in (errno.EACCES, errno.EPERM):
        raise DeviceError(denied.errno, f"{spec}: {os.strerror(denied.errno)}")
    raise DeviceError(errno.ENODEV, f"{spec}: no such input device")


class EvdevReader(TaskReader):
    """An evdev keyboard-wedge reader; reconnects by itself."""

    kind = "evdev"

    def __init__(
        self,
        name: str,
        opener: DeviceOpener,
        decoder: TextDecoder,
        wedge: WedgeDecoder,
        clock: Clock,
        *,
        grab: bool = True,
        dedupe_window_s: float = 1.5,
        backoff: Backoff | None = None,
        describe: str = "",
    ) -> None:
        super().__init__(name, clock, dedupe_window_s)
        self._opener = opener
        self.decoder = decoder
        self.wedge = wedge
        self.grab = grab
        self.backoff = backoff or Backoff()
        self._describe = describe or name
        self._timer: asyncio.TimerHandle | None = None

    def _deliver(self, scan: Scan) -> None:
        deliver_scan(self.core, self.decoder, scan)

    def _expire(self) -> None:
        self._timer = None
        scan = self.wedge.expire()
        if scan is not None:
            self._deliver(scan)

    def _on_readable(self, dev: InputDevice, lost: asyncio.Future[OSError]) -> None:
        try:
            for ev in dev.read():
                for scan in self.wedge.feed(ev):
                    self._deliver(scan)
        except BlockingIOError:
            pass
        except OSError as e:
            if not lost.done():
                lost.set_result(e)
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.wedge.pending:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.wedge.timeout_s, self._expire)

    async def _open(self) -> InputDevice:
        def open_and_grab() -> InputDevice:
            dev = self._opener()
            if self.grab:
                try:
                    dev.grab()
                except OSError:
                    dev.close()
                    raise
            return dev

        try:
            return await asyncio.to_thread(open_and_grab)
        except OSError as e:
            raise DeviceError(e.errno, f"{self._describe}: {os.strerror(e.errno or 0)}") from e

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                dev = await self._open()
            except DeviceError as e:
                self.core.set_state("disconnected", e.strerror)
                await asyncio.sleep(self.backoff.next_delay())
                continue
            self.backoff.reset()
            self.core.set_state("connected")
            lost: asyncio.Future[OSError] = loop.create_future()
            loop.add_reader(dev.fd, self._on_readable, dev, lost)
            try:
                err = await lost
            finally:
                loop.remove_reader(dev.fd)
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                # A scan cut by the unplug is half a read: dropped.
                self.wedge.expire()
                with contextlib.suppress(OSError):
                    dev.close()
            self.core.set_state("disconnected", f"{self._describe}: {os.strerror(err.errno or 0)}")
            await asyncio.sleep(self.backoff.next_delay())
