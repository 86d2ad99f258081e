"""A terminal (ledger, catalogue, key, client) against the real reference server on loopback.

Faults are injected by an aiohttp middleware inside the real server (commit, then fail)
and by a loopback TCP proxy that cuts connections after a number of bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from config.loader import config_from_dict
from config.schema import Config
from ledger.clock import FakeClock, format_ts, local_date
from ledger.domain import CardRecord, CardRemoved
from ledger.entry import Draft, Entry
from ledger.store import LedgerStore
from sync.catalog import Catalog
from sync.central.app import CentralServer
from sync.client import SyncClient
from sync.keys import TerminalKey, load_or_create_key
from tests.sync.central_harness import PARTNER, TERMINAL, CentralHarness

TID = TERMINAL
PID = PARTNER
TOKEN = "test-token-T-0001"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Fault = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


@dataclass
class Faults:
    """Per-route queues of faults the server's middleware applies, and a request log."""

    queue: dict[str, list[Fault]] = field(default_factory=dict)
    seen: list[tuple[str, str, int]] = field(default_factory=list)  # method, route, status
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, route: str, *faults: Fault) -> None:
        self.queue.setdefault(route, []).extend(faults)

    def count(self, method: str, route: str, status: int | None = None) -> int:
        return sum(
            1
            for m, r, s in self.seen
            if m == method and r == route and (status is None or s == status)
        )

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = _route(request.path)
        pending = self.queue.get(route)
        try:
            if pending:
                resp = await pending.pop(0)(request, handler)
            else:
                resp = await handler(request)
        except Exception as e:  # the server's own error replies are exceptions with a status
            self.seen.append((request.method, route, int(getattr(e, "status", 500))))
            raise
        self.seen.append((request.method, route, resp.status))
        return resp


def _route(path: str) -> str:
    if path.endswith("/entries"):
        return "entries"
    if path.endswith("/head"):
        return "head"
    if path.startswith("/v1/cards"):
        return "cards"
    if "/rules" in path:
        return "rules"
    return path


# --- faults -----------------------------------------------------------------------------


async def commit_then_500(request: web.Request, handler: Handler) -> web.StreamResponse:
    await handler(request)
    return web.json_response({"error": "internal", "message": "injected"}, status=500)


async def commit_then_drop(request: web.Request, handler: Handler) -> web.StreamResponse:
    await handler(request)
    assert request.transport is not None
    request.transport.abort()
    return web.Response(status=200)


def commit_then_hang(release: asyncio.Event) -> Fault:
    async def fault(request: web.Request, handler: Handler) -> web.StreamResponse:
        await handler(request)
        await release.wait()  # the client has long timed out; released at teardown
        return web.Response(status=200)

    return fault


def answer(status: int, body: bytes, headers: dict[str, str] | None = None) -> Fault:
    async def fault(request: web.Request, handler: Handler) -> web.StreamResponse:
        await request.read()
        return web.Response(status=status, body=body, headers=headers)

    return fault


# --- a loopback TCP proxy that can cut a connection ---------------------------------------


class CuttingProxy:
    """Forwards TCP to ``target``; ``cut_after`` bytes client->server ends the next connection."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.cut_request_after: int | None = None
        self.cut_response_after: int | None = None
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        sr, sw = await asyncio.open_connection("127.0.0.1", self.target_port)
        up_limit, self.cut_request_after = self.cut_request_after, None
        down_limit, self.cut_response_after = self.cut_response_after, None

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter, limit: int | None) -> None:
            sent = 0
            with contextlib.suppress(ConnectionError):
                while True:
                    data = await r.read(65536)
                    if not data:
                        break
                    if limit is not None and sent + len(data) >= limit:
                        w.write(data[: limit - sent])
                        await w.drain()
                        self.cuts += 1
                        break
                    sent += len(data)
                    w.write(data)
                    await w.drain()
            for wr in (cw, sw):
                wr.transport.abort()

        async with asyncio.TaskGroup() as tg:
            tg.create_task(pump(cr, sw, up_limit))
            tg.create_task(pump(sr, cw, down_limit))


# --- the terminal side ------------------------------------------------------------------


def make_config(state_dir: Path, url: str, **sync: Any) -> Config:
    token_file = state_dir / "token"
    if not token_file.exists():
        token_file.write_text(TOKEN + "\n")
    return config_from_dict(
        {
            "terminal": {"id": TID, "partner_id": PID, "state_dir": str(state_dir)},
            "sync": {"url": url, "token_file": str(token_file), **sync},
        },
        base=state_dir,
    )


async def append_sales(store: LedgerStore, clock: FakeClock, n: int, *, tag: str = "") -> None:
    """Append ``n`` sales, committed together (group commit)."""
    drafts = []
    for i in range(n):
        clock.advance(1)
        now = clock.now()
        drafts.append(
            Draft(
                ts=format_ts(now),
                local_date=local_date(now).isoformat(),
                kind="sale",
                card="01-000018",
                amount_gr=1000 + i,
                points_earned=10,
                rules_version="1",
                cashier="K1",
                sale_id=f"{tag}{store.head.seq + i}-{now.timestamp()}",
            )
        )
    await asyncio.gather(*(store.append(d) for d in drafts))


async def local_entries(store: LedgerStore) -> list[Entry]:
    return [e async for e in store.iter_after(0)]


@dataclass
class Env:
    tmp: Path
    clock: FakeClock
    server: CentralServer
    faults: Faults
    key: TerminalKey
    sleeps: list[float]

    async def server_hashes(self) -> list[tuple[int, str]]:
        return [(int(e["seq"]), str(e["hash"])) for e in await self.server.db.entries(TID)]

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0)

    def client(
        self, store: LedgerStore, catalog: Catalog, *, url: str | None = None, **sync: Any
    ) -> SyncClient:
        cfg = make_config(self.tmp / "state", url or self.server.url, **sync)
        return SyncClient(cfg, store, catalog, self.key, self.clock, sleep=self.sleep)

    async def load_cards(self, items: list[CardRecord | CardRemoved]) -> int:
        return await self.server.db.upsert_cards(items)


def free_port_for_tests() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def central(
    tmp: Path, clock: FakeClock, faults: Faults, key: TerminalKey, *, seed: bool = False
) -> AsyncIterator[CentralServer]:
    """E2's harness server (database ``tmp/central.sqlite``), this terminal's key enrolled."""
    async with CentralHarness.start(
        tmp, middlewares=[faults.middleware], seed=seed, clock=clock
    ) as h:
        await h.db.enrol(TID, PID, TOKEN, key.public_key_b64)
        yield h.server


@contextlib.asynccontextmanager
async def running_env(tmp: Path, clock: FakeClock, *, seed: bool) -> AsyncIterator[Env]:
    """The terminal's state dir and key beside a reference server (demo data with ``seed``)."""
    faults = Faults()
    (tmp / "state").mkdir()
    key = load_or_create_key(tmp / "state")
    async with central(tmp, clock, faults, key, seed=seed) as server:
        yield Env(tmp, clock, server, faults, key, [])
        faults.release.set()


@pytest.fixture
async def store(env: Env) -> AsyncIterator[LedgerStore]:
    """The terminal's ledger (import it beside an ``env`` fixture)."""
    async with await LedgerStore.open(env.tmp / "state" / "ledger.sqlite", terminal=TID) as s:
        yield s


@pytest.fixture
async def catalog(env: Env) -> AsyncIterator[Catalog]:
    """The terminal's catalogue (import it beside an ``env`` fixture)."""
    async with await Catalog.open(env.tmp / "state" / "catalog.sqlite", env.clock) as c:
        yield c
