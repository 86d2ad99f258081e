"""A printer at the far end of a real pseudo-terminal (serial and USB-lp transports)."""

from __future__ import annotations

import asyncio
import os
import tty

from tests.printer.fake_printer import ANSWERS, DLE_EOT, Mode


class PtyPrinter:
    def __init__(self, mode: Mode = "online") -> None:
        self.mode: Mode = mode
        self.master, self._slave = os.openpty()
        # Raw: no echo of answers, no LF -> CRLF on the way to the printer.
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        os.set_blocking(self.master, False)
        self.received = bytearray()
        self.status_queries = 0
        self._pending = b""
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.master, self._on_readable)

    def close(self) -> None:
        self._loop.remove_reader(self.master)
        os.close(self.master)
        os.close(self._slave)

    def _on_readable(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except (BlockingIOError, OSError):
            return
        buf = self._pending + data
        self._pending = b""
        while buf:
            at = buf.find(DLE_EOT)
            if at < 0:
                self.received += buf
                break
            self.received += buf[:at]
            if len(buf) < at + 3:
                self._pending = buf[at:]
                break
            n, buf = buf[at + 2], buf[at + 3 :]
            self.status_queries += 1
            answers = ANSWERS[self.mode]
            if answers is not None and n in (1, 2, 4):
                os.write(self.master, bytes([answers[{1: 0, 2: 1, 4: 2}[n]]]))
        for size, fut in self._waiters:
            if len(self.received) >= size and not fut.done():
                fut.set_result(None)

    async def wait_received(self, size: int, within: float = 5.0) -> bytes:
        """Wait until ``size`` job bytes arrived; raise TimeoutError otherwise."""
        if len(self.received) < size:
            fut: asyncio.Future[None] = self._loop.create_future()
            self._waiters.append((size, fut))
            try:
                await asyncio.wait_for(fut, within)
            finally:
                self._waiters.remove((size, fut))
        return bytes(self.received)
