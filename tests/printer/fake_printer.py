"""A loopback ESC/POS network printer for tests (`python -m tests.printer.fake_printer`).

Records each connection's job bytes, answers DLE EOT 1/2/4 as scripted (online, paper
near end, paper out, cover open, silent), takes one client at a time like a real
port-9100 printer, and can refuse connections (printer switched off) and come back on
the same port.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
from pathlib import Path
from types import TracebackType
from typing import Literal

Mode = Literal["online", "paper_near_end", "paper_out", "cover_open", "silent"]

# Answers to DLE EOT 1 (printer), 2 (offline cause), 4 (paper sensor); Epson bit layout.
ANSWERS: dict[str, tuple[int, int, int] | None] = {
    "online": (0x12, 0x12, 0x12),
    "paper_near_end": (0x12, 0x12, 0x1E),
    "paper_out": (0x1A, 0x32, 0x7E),
    "cover_open": (0x1A, 0x16, 0x12),
    "silent": None,
}
DLE_EOT = b"\x10\x04"


class FakePrinter:
    def __init__(self, mode: Mode = "online", *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.mode: Mode = mode
        self.host = host
        self._port = port
        self.jobs: list[bytes] = []
        self.status_queries = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._one_client = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._handlers: set[asyncio.Task[None]] = set()
        self.out_file: Path | None = None

    @property
    def port(self) -> int:
        return self._port

    async def start(self) -> None:
        """Listen (again, on the same port after refuse()); no-op when already listening."""
        if self._server is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        self._port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._handle, sock=sock)

    async def refuse(self) -> None:
        """Stop listening: new connections are refused (the printer is switched off)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def stop(self) -> None:
        await self.refuse()
        for task in list(self._handlers):
            task.cancel()
        for task in list(self._handlers):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> FakePrinter:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def wait_jobs(self, count: int, within: float = 5.0) -> list[bytes]:
        """Wait until at least ``count`` jobs arrived; raise TimeoutError otherwise."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(self.jobs) >= count)
        return list(self.jobs)

    async def wait_status_queries(self, count: int, within: float = 5.0) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: self.status_queries >= count)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            async with self._one_client:
                await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        buf = b""
        status_phase = True
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            buf += chunk
            while status_phase and buf:
                if buf.startswith(DLE_EOT) and len(buf) >= 3:
                    n, buf = buf[2], buf[3:]
                    answers = ANSWERS[self.mode]
                    async with self._changed:
                        self.status_queries += 1
                        self._changed.notify_all()
                    if answers is not None and n in (1, 2, 4):
                        writer.write(bytes([answers[{1: 0, 2: 1, 4: 2}[n]]]))
                        await writer.drain()
                elif DLE_EOT.startswith(buf[:2]) and len(buf) < 3:
                    break  # the rest of a status query is still coming
                else:
                    status_phase = False
        if buf:
            if self.out_file is not None:
                with self.out_file.open("ab") as f:
                    f.write(buf)
            async with self._changed:
                self.jobs.append(buf)
                self._changed.notify_all()


async def _main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description="Loopback ESC/POS printer for tests")
    ap.add_argument("--port", type=int, default=9100)
    ap.add_argument("--mode", choices=sorted(ANSWERS), default="online")
    ap.add_argument("--out", type=Path, help="append every job's bytes to this file")
    args = ap.parse_args(argv)
    printer = FakePrinter(args.mode, port=args.port)
    printer.out_file = args.out
    async with printer:
        print(f"listening 127.0.0.1:{printer.port}", flush=True)
        await asyncio.Event().wait()
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(_main(sys.argv[1:])))
