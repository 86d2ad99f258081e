"""The real daemon in-process for API tests: a pty reader, a loopback printer, the city server.

``async with running_daemon(tmp_path) as h:`` starts the reference city server (demo data,
terminal T-0001 enrolled, its key learnt on first upload), a loopback ESC/POS printer, a
pseudo-terminal as the serial magnetic-stripe reader, and the daemon on a free loopback
port; the first sync has loaded the card list and rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import tty
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from config.loader import config_from_dict
from ledger.clock import Clock
from terminal.app import Daemon
from terminal.auth import load_api_token
from tests.printer.fake_printer import FakePrinter, Mode
from tests.sync.central_harness import PARTNER, TERMINAL, CentralHarness


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class DaemonHarness:
    daemon: Daemon
    central: CentralHarness
    printer: FakePrinter
    url: str
    token: str
    pty_master: int
    http: aiohttp.ClientSession

    @property
    def api(self) -> str:
        return self.url + "/api/v1"

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def call(
        self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        h = {**self.auth(), **(headers or {})}
        async with self.http.request(method, self.api + path, json=body, headers=h) as r:
            data = await r.json() if r.content_type == "application/json" else await r.read()
            return r.status, data

    def swipe(self, raw: bytes) -> None:
        os.write(self.pty_master, raw)


def swipe_bytes(number: str) -> bytes:
    return f";{number.replace('-', '')}=49121010000000000000?\r".encode()


@contextlib.asynccontextmanager
async def running_daemon(
    tmp_path: Path,
    *,
    clock: Clock | None = None,
    printer_mode: Mode = "online",
    extra: dict[str, Any] | None = None,
    central: CentralHarness | None = None,
    terminal: str = TERMINAL,
) -> AsyncIterator[DaemonHarness]:
    """One daemon; with ``central`` (shared by several tills of one partner) it enrols
    ``terminal`` there instead of starting a city server of its own."""
    master, slave = os.openpty()
    tty.setraw(slave)
    port = free_port()
    try:
        async with contextlib.AsyncExitStack() as stack:
            if central is None:
                central = await stack.enter_async_context(
                    CentralHarness.start(tmp_path, trust_on_first_use=True, enrol_key=False)
                )
            token = central.tokens.get(terminal) or await central.enrol(terminal)
            printer = await stack.enter_async_context(FakePrinter(printer_mode))
            token_file = tmp_path / "terminal-token"
            token_file.write_text(token)
            data: dict[str, Any] = {
                "terminal": {"id": terminal, "partner_id": PARTNER, "state_dir": "state"},
                "api": {"listen": f"127.0.0.1:{port}"},
                "readers": [{"name": "msr", "kind": "serial", "path": os.ttyname(slave)}],
                "printer": {
                    "kind": "network",
                    "host": "127.0.0.1",
                    "port": printer.port,
                    "sale_wait_s": 3.0,
                },
                "sync": {
                    "url": central.url,
                    "token_file": str(token_file),
                    "upload_interval_s": 3600,
                    "catalog_refresh_s": 3600,
                },
            }
            for k, v in (extra or {}).items():
                data[k] = {**data.get(k, {}), **v}
            cfg = config_from_dict(data, base=tmp_path)
            async with Daemon(cfg, clock=clock) as daemon:
                ready = asyncio.Event()
                task = asyncio.create_task(
                    daemon.serve(on_ready=lambda _d: ready.set(), install_signals=False)
                )
                try:
                    async with asyncio.timeout(10):
                        await ready.wait()
                    # The card list and rules are there before the first test request.
                    await daemon.sync_cycle()
                    async with aiohttp.ClientSession() as http:
                        yield DaemonHarness(
                            daemon=daemon,
                            central=central,
                            printer=printer,
                            url=f"http://127.0.0.1:{port}",
                            token=load_api_token(Path(cfg.terminal.state_dir)),
                            pty_master=master,
                            http=http,
                        )
                finally:
                    daemon.stop()
                    async with asyncio.timeout(15):
                        await task
    finally:
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)
