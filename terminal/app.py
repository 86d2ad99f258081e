"""The daemon: builds the whole object graph from config and runs it under one TaskGroup."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from aiohttp import web

from config.memory import give_back_memory
from config.schema import Config, parse_listen
from drivers.base import Reader
from drivers.events import ReaderState
from drivers.factory import build_reader
from ledger.clock import Clock, SystemClock
from ledger.periods import local_day
from ledger.store import LedgerStore, ledger_path
from printer.escpos_env import prepare_escpos_cache
from sync.catalog import Catalog, catalog_path
from sync.client import CycleResult, RefreshResult, SyncClient, UploadResult
from sync.keys import load_or_create_key
from sync.schedule import SyncScheduler
from terminal.api import ApiContext, DemoHooks, build_app
from terminal.auth import SessionBook, allowed_origins, load_api_token
from terminal.events import EventHub
from terminal.pinguard import PinGuard
from terminal.printing import Printing
from terminal.readmodels import UsageKeeper, load_usage
from terminal.sale import SaleService, offline_policy
from terminal.sdnotify import Notifier
from terminal.views import DeviceEvent, HealthEvent, HeldEntryView, event_dict

log = structlog.get_logger("kartapos.daemon")


def ensure_state_dir(path: Path) -> None:
    """Make the state dir (0700), make private one that others can read, or fail naming it.

    It holds the ledger, the signing key and the API token: nobody but the daemon reads it.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        try:
            path.chmod(mode & 0o700)
        except PermissionError:
            raise PermissionError(
                f"state dir {path} is open to others (mode {mode:04o}) and cannot be made "
                f"private: chmod 700 {path}"
            ) from None
        log.warning("state_dir_made_private", path=str(path), was=f"{mode:04o}", now="0700")
    if not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(f"state dir {path} is not writable")


async def open_queue(cfg: Config, state: Path, clock: Clock) -> Any | None:
    """The durable print queue, or None when no printer is configured."""
    if cfg.printer.kind == "none":
        return None
    from printer.queue import PrintQueue, queue_path
    from printer.transport import build_transport

    return await PrintQueue.open(
        queue_path(state),
        transport=build_transport(cfg.printer),
        printer=cfg.printer,
        clock=clock,
    )


SHUTDOWN_DEADLINE_S = 10.0
# How often the usage book drops what closed and is checkpointed when it changed.
MAINTAIN_EVERY_S = 30.0
MAX_HELD_SHOWN = 20  # quarantined entries health names one by one (all are counted)


def loop_time() -> float:
    return asyncio.get_running_loop().time()


def _stuck_shutdown() -> None:
    log.error("shutdown_stuck", deadline_s=SHUTDOWN_DEADLINE_S)
    dump_tasks()
    os._exit(1)


def dump_tasks() -> None:
    """SIGUSR1: log every asyncio task and where it waits (for a daemon that seems stuck)."""
    for task in asyncio.all_tasks():
        frames = [
            f"{f.f_code.co_filename.rsplit('/', 2)[-1]}:{f.f_lineno} {f.f_code.co_name}"
            for f in task.get_stack(limit=12)
        ]
        log.warning("task_dump", task=task.get_name(), done=task.done(), stack=frames)


class _Syncer:
    """The sync client as the scheduler and the API drive it, keeping the daemon current.

    After every upload the usage book learns what the server acknowledged (the persons
    limit counts only unacknowledged uses itself) and the screen gets fresh health.
    """

    def __init__(self, daemon: Daemon) -> None:
        self._d = daemon

    async def _after(self) -> None:
        self._d.usage.set_acknowledged(self._d.sync.acked_seq)
        # New rules without a cashier end that cashier's sessions now (§5.10).
        await self._d.sessions.keep_only(self._d.guard.known)
        await self._d._keep_usage()
        give_back_memory()  # a feed or an upload of many entries leaves freed pages behind
        await self._d.push_health()

    async def upload(self) -> UploadResult:
        try:
            return await self._d.sync.upload()
        finally:
            await self._after()

    async def refresh(self) -> RefreshResult:
        try:
            res = await self._d.sync.refresh()
            if res.ok:  # hold persons-limit slots before the till goes offline (§5.8)
                await self._d.sync.top_up_leases()
            return res
        finally:
            await self._after()

    async def cycle(self) -> CycleResult:
        try:
            return await self._d.sync.cycle()
        finally:
            await self._after()


class Daemon:
    """Everything the daemon runs. Use ``async with Daemon(cfg) as d: await d.serve()``."""

    def __init__(
        self, cfg: Config, *, clock: Clock | None = None, demo: DemoHooks | None = None
    ) -> None:
        self.cfg = cfg
        self.clock = clock or SystemClock()
        self.demo = demo
        self.state_dir = Path(cfg.terminal.state_dir)
        self.hub = EventHub()
        self.stopping = asyncio.Event()
        self.reader_states: dict[str, str] = {}
        self._stack = contextlib.AsyncExitStack()
        self.readers: list[Reader] = []
        self.queue: Any | None = None
        self._background: set[asyncio.Task[None]] = set()

    # --- building ------------------------------------------------------------------

    async def __aenter__(self) -> Daemon:
        try:
            await self._open()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _open(self) -> None:
        cfg, clk, st = self.cfg, self.clock, self.state_dir
        ensure_state_dir(st)
        prepare_escpos_cache(st)
        # The open checks what a crash can break (the WAL, the last entries, the head);
        # the whole file is checked in the background once the till is ready.
        self.store = await LedgerStore.open(
            ledger_path(st), terminal=cfg.terminal.id, integrity_check=False
        )
        self._stack.push_async_callback(self.store.close)
        self.catalog = await Catalog.open(catalog_path(st), clk)
        self._stack.push_async_callback(self.catalog.close)
        tz = ZoneInfo(cfg.terminal.timezone)
        loaded = await load_usage(
            self.store,
            tz=tz,
            today=local_day(clk.now(), tz),
            rules=self.catalog.rules,
            points_floor=self.catalog.points_floor,
        )
        self.usage = loaded.book
        self._stack.callback(loaded.cold.close)
        give_back_memory(collect=True)
        self.keeper = UsageKeeper(self.store, self.usage, clk)
        self._stack.push_async_callback(self._keep_usage)
        self.sync = SyncClient(cfg, self.store, self.catalog, load_or_create_key(st), clk)
        self._stack.push_async_callback(self.sync.close)
        self.usage.set_acknowledged(self.sync.acked_seq)
        self.sync.admitted = self.usage.admitted
        self.syncer = _Syncer(self)
        self.scheduler = SyncScheduler(self.syncer, cfg, clk)
        self.queue = await open_queue(cfg, st, clk)
        if self.queue is not None:
            self._stack.push_async_callback(self.queue.close)
        self.printing = Printing(
            cfg=cfg,
            queue=self.queue,
            catalog=self.catalog,
            store=self.store,
            policy=offline_policy(cfg),
        )
        self.readers = [build_reader(r, cfg.cards, clk) for r in cfg.readers]
        self.service = SaleService(
            cfg=cfg,
            store=self.store,
            catalog=self.catalog,
            usage=self.usage,
            printing=self.printing,
            hub=self.hub,
            clock=clk,
            keeper=self.keeper,
            sync_now=self.sync_cycle,
            lease_now=self._lease_one_more,
            on_day_closed=self._release_leases,
            sync_info=self.sync_info,
            readers_info=self.readers_info,
        )
        host, port = parse_listen(cfg.api.listen)
        catalog = self.catalog
        self.guard = PinGuard.from_state_dir(
            st,
            lambda: catalog.rules.cashiers if catalog.rules else (),
            lambda: clk.now().timestamp(),
            admin_pin_hash=cfg.terminal.admin_pin_hash,
        )
        self.sessions = SessionBook.from_state_dir(st, cfg.api.session_ttl_s)
        ctx = ApiContext(
            services=self.service,
            hub=self.hub,
            token=load_api_token(st),
            sessions=self.sessions,
            origins=allowed_origins(host, port, cfg.api.allowed_origins),
            guard=self.guard,
            wall_s=lambda: int(clk.now().timestamp()),
            demo=self.demo,
        )
        app = build_app(ctx, max_body_bytes=cfg.api.max_body_bytes)
        # The local API takes no compressed bodies: with aiohttp's inflating off, a broken
        # one is a JSON 400 from the API, not a plain-text answer from the HTTP parser.
        self.runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=5, auto_decompress=False
        )
        self.host, self.port = host, port

    async def _lease_one_more(self, benefit: str) -> int | None:
        """A sale needs a new person's slot now: ask for it and the usual headroom."""
        want = self.usage.admitted(benefit) + 1 + self.cfg.sync.lease_slots
        return await self.sync.lease(benefit, want)

    def _release_leases(self) -> None:
        """At day close the till gives back the slots it holds and does not use."""

        async def release() -> None:
            try:
                await self.sync.top_up_leases(release=True)
            except Exception as e:  # offline: the slots stay held until the next cycle
                log.warning("lease_release_failed", error=str(e))

        task = asyncio.get_running_loop().create_task(release(), name="lease-release")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _keep_usage(self) -> None:
        """Prune the usage book and checkpoint it (after each sync, every minute, at exit)."""
        try:
            await self.keeper.maintain(points_floor=self.catalog.points_floor)
        except Exception as e:  # a checkpoint is an optimisation: a failed one costs a replay
            log.warning("usage_checkpoint_failed", error=str(e))

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(MAINTAIN_EVERY_S)
            await self._keep_usage()

    async def _track_history(self) -> None:
        try:
            await self.keeper.ensure_tracked(self.catalog.rules)
        except Exception as e:  # a sale that needs the counts tries again (and says why)
            log.error("usage_history_unreadable", error=str(e))

    async def _check_integrity(self) -> None:
        """The whole file's consistency check, after READY: it never blocks a sale."""
        self.service.integrity = ("running", None)
        t0 = loop_time()
        try:
            await self.store.check_integrity()
        except Exception as e:
            self.service.integrity = ("failed", str(e))
            log.error("ledger_integrity_failed", error=str(e))
        else:
            self.service.integrity = ("ok", None)
            log.info("ledger_integrity_ok", seconds=round(loop_time() - t0, 3))
        await self.push_health()

    # --- what the API asks for -------------------------------------------------------

    def readers_info(self) -> list[dict[str, Any]]:
        return [
            {"name": r.name, "kind": r.kind, "state": self.reader_states.get(r.name, r.state.state)}
            for r in self.readers
        ]

    def sync_info(self) -> dict[str, Any]:
        s = self.sync
        return {
            "pending_entries": s.pending_entries,
            "acked_seq": s.acked_seq,
            "last_upload_at": s.last_upload_at.isoformat() if s.last_upload_at else None,
            "cards_version": self.catalog.cards_version,
            "fork_alarm": s.fork_alarm,
            "usage_version": self.catalog.usage_version,
            "usage_error": s.usage_error,
            "lease_error": s.lease_error,
            "leases": self.catalog.leases(),
            "quarantined_count": len(s.quarantined),
            "quarantined": [
                HeldEntryView(seq=seq, reason=reason)
                for seq, reason in list(s.quarantined.items())[:MAX_HELD_SHOWN]
            ],
        }

    async def sync_cycle(self) -> dict[str, Any]:
        out: dict[str, Any] = (await self.syncer.cycle()).to_dict()
        return out

    async def push_health(self) -> None:
        self.hub.publish(event_dict(HealthEvent(health=await self.service.health())))

    # --- running ---------------------------------------------------------------------

    async def serve(
        self,
        notifier: Notifier | None = None,
        *,
        on_ready: Callable[[Daemon], None] | None = None,
        install_signals: bool = True,
    ) -> None:
        """Run until SIGTERM/SIGINT or :meth:`stop`; finishes the sale in flight."""
        note = notifier or Notifier()
        await self.printing.reconcile()
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port, reuse_address=True)
        await site.start()
        loop = asyncio.get_running_loop()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stopping.set)
            loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(self._pump(r)) for r in self.readers]
                if self.queue is not None:
                    tasks.append(tg.create_task(self.queue.run()))
                    tasks.append(tg.create_task(self._watch_printer()))
                tasks.append(tg.create_task(self.scheduler.run()))
                tasks.append(tg.create_task(self._maintain()))
                tasks.append(tg.create_task(self._watchdog(note, tasks)))
                note.ready(f"kartapos {self.cfg.terminal.id} on {self.cfg.api.listen}")
                log.info(
                    "ready",
                    terminal=self.cfg.terminal.id,
                    listen=self.cfg.api.listen,
                    head_seq=self.store.head.seq,
                )
                tg.create_task(self._check_integrity())
                # Lifetime counts the rules need and the checkpoint lacks: read once now,
                # in the background (a sale that needs them waits for it).
                tg.create_task(self._track_history())
                if on_ready is not None:
                    on_ready(self)
                await self.stopping.wait()
                note.stopping("stopping")
                log.info("stopping")
                # Every commit is durable already; a task that ignores cancellation must
                # not keep the till from restarting (systemd would SIGKILL it anyway).
                if install_signals:
                    loop.call_later(SHUTDOWN_DEADLINE_S, _stuck_shutdown)
                # End the screens' event streams (their handlers would hold the server
                # open), then stop taking requests; in-flight ones (a sale being
                # committed) finish.
                self.hub.close()
                await self.runner.cleanup()
                for t in tasks:
                    t.cancel()
        finally:
            if install_signals:
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
                    loop.remove_signal_handler(sig)
            await self.runner.cleanup()
            self.hub.close()
            # The deadline stays armed through closing the databases; the process ends next.

    def stop(self) -> None:
        self.stopping.set()

    async def _pump(self, reader: Reader) -> None:
        async with reader:
            async for ev in reader.events():
                if isinstance(ev, ReaderState):
                    self.reader_states[ev.reader] = ev.state
                try:
                    await self.service.on_reader_event(ev)
                except Exception:
                    log.exception("reader_event_failed", reader=reader.name)
                if isinstance(ev, ReaderState):
                    await self.push_health()

    async def _watch_printer(self) -> None:
        last = None
        while True:
            state = self.printing.state()
            if state != last:
                if last is not None:
                    self.hub.publish(event_dict(DeviceEvent(device="printer", state=state)))
                    await self.push_health()
                last = state
            await asyncio.sleep(0.5)

    async def _watchdog(self, note: Notifier, tasks: list[asyncio.Task[Any]]) -> None:
        interval = note.watchdog_interval()
        if interval is None:
            return
        while True:
            if all(not t.done() for t in tasks if t is not asyncio.current_task()):
                note.watchdog()
            await asyncio.sleep(interval)
