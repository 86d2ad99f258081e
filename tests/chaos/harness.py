"""Runs a seeded chaos schedule against the real daemon process and checks what must hold.

The daemon (`kartapos run`) is a child process with a pseudo-terminal magnetic-stripe
reader behind a symlink (unplug = the pty goes away, replug = a new one), its state dir
on a small tmpfs (so "disk full" is real), a shiftable wall clock and armable fault
points. The reference city server and the loopback ESC/POS printer run in this process,
with faults injected by a middleware and by the printer's scripted modes. A multi-till
run (tests/chaos/tills.py) runs one ChaosRun per till against a shared city.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
import tty
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from config.schema import CentralConfig, CentralSection
from sync.central import CentralServer
from sync.central.demo_data import seed_demo_into
from tests.chaos.schedule import Fault, Op, Schedule
from tests.printer.escpos_decode import DecodeError, decode
from tests.printer.fake_printer import FakePrinter

KARTAPOS = str(Path(sys.executable).parent / "kartapos")
TERMINAL = "T-0001"
PARTNER = "P-0001"
ARMABLE = ("after_commit_before_print", "mid_print", "mid_catalog_swap", "after_upload_commit")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class SaleRecord:
    body: dict[str, Any]
    outcome: str = "unknown"  # acked | refused | unknown
    entry: dict[str, Any] | None = None
    refusal: str | None = None


@dataclass
class Report:
    seed: int
    schedule: dict[str, Any]
    faults_done: list[str] = field(default_factory=list)
    restarts: int = 0
    sales_acked: int = 0
    sales_refused: dict[str, int] = field(default_factory=dict)
    retried: int = 0
    answers_5xx: int = 0  # the daemon answered a server error (disk full, ...)
    no_answer: int = 0  # the daemon was gone mid-request (killed, fault point)
    down_at: list[int] = field(default_factory=list)  # ops where it could not start
    entries: int = 0
    receipts_original: int = 0
    receipts_copy: int = 0
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0


def receipts_in(data: bytes) -> list[tuple[int, bool]]:
    """(transaction number, is a KOPIA) of every receipt in printer bytes.

    Every receipt starts with ESC @ (init); KOPIA stands above its header and at its
    end, so a receipt cut off half-way (a crash mid-print) still shows which it was.
    Pieces too broken to decode are left out.
    """
    out: list[tuple[int, bool]] = []
    for piece in data.split(b"\x1b@")[1:]:
        try:
            text = decode(b"\x1b@" + piece).text
        except DecodeError:
            continue
        m = re.search(r"Transakcja nr:\s*(\d+)", text)
        if m:
            out.append((int(m.group(1)), "KOPIA" in text))
    return out


class ServerFaults:
    """Faults the city server applies to the next uploads (a middleware)."""

    def __init__(self) -> None:
        self.next_uploads: list[str] = []
        self.release = asyncio.Event()
        self.applied: list[str] = []

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not (request.method == "POST" and request.path.endswith("/entries")):
            return await handler(request)
        if not self.next_uploads:
            return await handler(request)
        kind = self.next_uploads.pop(0)
        self.applied.append(kind)
        if kind == "server_retry_after":
            await request.read()
            return web.json_response({"error": "busy"}, status=503, headers={"Retry-After": "1"})
        resp = await handler(request)
        if kind == "server_500_after_commit":
            return web.json_response({"error": "internal"}, status=500)
        if kind == "server_drop_after_commit":
            assert request.transport is not None
            request.transport.abort()
            return resp
        if kind == "server_timeout":
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await self.release.wait()
            return resp
        return resp


class Pty:
    def __init__(self, link: Path) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        tmp = link.with_name(link.name + ".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(self.slave))
        os.replace(tmp, link)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class ChaosRun:
    def __init__(self, root: Path, schedule: Schedule, *, terminal: str = TERMINAL) -> None:
        self.root = root
        self.terminal = terminal
        self.sched = schedule
        self.rng = random.Random(f"run:{schedule.seed}")
        self.state = root / "state"
        self.cfg_path = root / "terminal.toml"
        self.clock_file = root / "clock-offset"
        self.reader_link = root / "msr"
        self.log_path = root / "daemon.log"
        self.report = Report(seed=schedule.seed, schedule=schedule.describe())
        self.sales: dict[str, SaleRecord] = {}
        self.voids: dict[str, str] = {}  # sale id -> outcome
        self.proc: subprocess.Popen[bytes] | None = None
        self.armed: dict[str, float] = {}
        self.api_port = free_port()
        self.central_port = free_port()
        self.server_faults = ServerFaults()
        self.central: CentralServer | None = None
        self.printer = FakePrinter()
        self.pty: Pty | None = None
        self.cards: list[str] = []
        self.undo: list[tuple[int, Fault]] = []
        self.filler: Path | None = None
        self.mounted = False
        self.http: aiohttp.ClientSession | None = None
        self.terminal_token = secrets.token_urlsafe(24)
        self.op_index = 0
        self.restarts = 0
        self.tag = ""  # printed before "op": a multi-till run names the till

    # --- set-up ------------------------------------------------------------------------

    def _mount(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=48m,mode=0700", "tmpfs", str(self.state)],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            raise RuntimeError(f"chaos: cannot mount a tmpfs state dir (run as root): {r.stderr}")
        self.mounted = True

    def _unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.state)], capture_output=True)
            self.mounted = False

    def _write_config(self) -> None:
        self.cfg_path.write_text(
            f"""
[terminal]
id = "{self.terminal}"
partner_id = "{PARTNER}"
state_dir = "{self.state}"

[api]
listen = "127.0.0.1:{self.api_port}"

[[readers]]
name = "msr"
kind = "serial"
path = "{self.reader_link}"
dedupe_window_s = 0

[printer]
kind = "network"
host = "127.0.0.1"
port = {self.printer.port}
sale_wait_s = 0.5
connect_timeout_s = 0.5
write_timeout_s = 2.0

[sync]
url = "http://127.0.0.1:{self.central_port}"
token_file = "{self.root / "token"}"
request_timeout_s = 2.0
upload_interval_s = 3600
catalog_refresh_s = 3600

[offline]
stale_after_s = 3600

[logging]
level = "info"
format = "json"
"""
        )

    async def _start_central(self) -> None:
        cfg = CentralConfig(
            central=CentralSection(
                listen=f"127.0.0.1:{self.central_port}",
                database=str(self.root / "central.sqlite"),
                trust_on_first_use=True,
            )
        )
        self.central = CentralServer(cfg, middlewares=[self.server_faults.middleware])
        await self.central.start()

    async def _stop_central(self) -> None:
        if self.central is not None:
            self.server_faults.release.set()
            await self.central.stop()
            self.central = None
            self.server_faults.release = asyncio.Event()

    # --- the daemon --------------------------------------------------------------------

    def _token(self) -> str:
        return (self.state / "api-token").read_text().strip()

    async def start_daemon(self, *, must: bool = True) -> bool:
        """Start the daemon and wait for its API; a few tries if it dies at start.

        With ``must=False`` (mid-run) a daemon that cannot start (its disk is full, say)
        stays down: requests meanwhile get no answer, as at a real till.
        """
        env = {
            **os.environ,
            "KARTAPOS_CLOCK_OFFSET_FILE": str(self.clock_file),
            "ESCPOS_CAPABILITIES_PICKLE_DIR": str(self.root / "escpos-cache"),
        }
        if self.armed:
            env["KARTAPOS_FAULTS"] = json.dumps(self.armed)
        for attempt in range(5):
            if self.armed:
                env["KARTAPOS_FAULT_SEED"] = f"{self.sched.seed}:{self.restarts}:{attempt}"
            with self.log_path.open("ab") as log:
                self.proc = subprocess.Popen(  # noqa: ASYNC220 - Popen returns at once
                    [KARTAPOS, "run", "-c", str(self.cfg_path)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                )
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self.proc.poll() is None:
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    status, _ = await self._raw("GET", "/api/v1/health", None, wait_s=2)
                    if status == 200:
                        return True
                await asyncio.sleep(0.05)
            if self.proc.poll() is None:
                break  # alive but never answered: fail below
            await asyncio.sleep(0.2 * (attempt + 1))
        if must:
            raise RuntimeError("chaos: the daemon did not come up:\n" + self._log_tail())
        self.report.down_at.append(self.op_index)
        return False

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    async def ensure_daemon(self, *, must: bool = False) -> None:
        if not self.alive():
            self.restarts += 1
            self.report.restarts += 1
            await self.start_daemon(must=must)

    async def _raw(
        self, method: str, path: str, body: Any, *, wait_s: float = 30
    ) -> tuple[int, Any]:
        assert self.http is not None
        async with self.http.request(
            method,
            f"http://127.0.0.1:{self.api_port}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self._token()}"},
            timeout=aiohttp.ClientTimeout(total=wait_s),
        ) as r:
            data = await r.json() if r.content_type == "application/json" else await r.read()
            return r.status, data

    async def api(self, method: str, path: str, body: Any = None) -> tuple[int | None, Any]:
        """Call the daemon; None when it is gone (it is restarted before returning)."""
        try:
            status, data = await self._raw(method, path, body)
        except (aiohttp.ClientError, OSError, TimeoutError):
            self.report.no_answer += 1
            await asyncio.sleep(0.05)
            await self.ensure_daemon()
            return None, None
        if status >= 500:
            self.report.answers_5xx += 1
        return status, data

    # --- the workload ------------------------------------------------------------------

    async def _sale_body(self, op: Op) -> dict[str, Any]:
        card = self.cards[op.card % len(self.cards)]
        body: dict[str, Any] = {
            "id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "card": card,
            "amount_gr": op.amount_gr,
        }
        status, view = await self.api("POST", "/api/v1/cards/resolve", {"input": card})
        if status == 200:
            avail = [b for b in view["benefits"] if b["available"]]
            if op.benefit_pick >= 0 and avail:
                body["benefit_ids"] = [avail[int(op.benefit_pick * len(avail))]["id"]]
            opts = view["redeem_options"]
            if op.redeem_pick >= 0 and opts:
                body["redeem_points"] = opts[int(op.redeem_pick * len(opts))]["points"]
        return body

    async def send_sale(self, rec: SaleRecord) -> None:
        status, data = await self.api("POST", "/api/v1/sales", rec.body)
        if status in (200, 201):
            if rec.entry is not None and rec.entry != data["entry"]:
                self.report.violations.append(f"sale {rec.body['id']}: a retry got another entry")
            rec.outcome, rec.entry = "acked", data["entry"]
        elif status is not None and 400 <= status < 500:
            code = data["error"]["code"]
            if code == "sale_conflict":
                self.report.violations.append(f"sale {rec.body['id']}: 409 on its own retry")
            if rec.outcome != "acked":
                rec.outcome, rec.refusal = "refused", code
        # 5xx or no answer: unknown, retried later with the same id

    async def do_op(self, op: Op) -> None:
        acked = [r for r in self.sales.values() if r.outcome == "acked"]
        if op.kind == "sale":
            rec = SaleRecord(await self._sale_body(op))
            self.sales[rec.body["id"]] = rec
            await self.send_sale(rec)
        elif op.kind == "void" and acked:
            target = acked[int(op.target * len(acked))]
            sid = target.body["id"]
            status, data = await self.api("POST", f"/api/v1/sales/{sid}/void", {"reason": "chaos"})
            if status in (200, 201):
                self.voids[sid] = "acked"
            elif status is not None and 400 <= status < 500:
                self.voids.setdefault(sid, "refused:" + data["error"]["code"])
            else:
                self.voids.setdefault(sid, "unknown")
        elif op.kind == "reprint" and acked:
            seq = acked[int(op.target * len(acked))].entry["seq"]  # type: ignore[index]
            await self.api("POST", f"/api/v1/receipts/{seq}/reprint")
        elif op.kind == "day_close":
            await self.api("POST", "/api/v1/day/close")
        elif op.kind == "sync":
            await self.api("POST", "/api/v1/sync")
        elif op.kind == "swipe" and self.pty is not None:
            card = self.cards[op.card % len(self.cards)]
            with contextlib.suppress(OSError):
                os.write(self.pty.master, f";{card.replace('-', '')}=4912?\r".encode())

    # --- faults ------------------------------------------------------------------------

    async def apply(self, f: Fault) -> None:
        self.report.faults_done.append(f.kind)
        k = f.kind
        if k == "kill9":
            bodies = [
                SaleRecord(
                    await self._sale_body(
                        Op(
                            kind="sale",
                            card=self.rng.randrange(1000),
                            amount_gr=self.rng.randrange(100, 9000),
                        )
                    )
                )
                for _ in range(4)
            ]
            for rec in bodies:
                self.sales[rec.body["id"]] = rec
            tasks = [asyncio.create_task(self.send_sale(r)) for r in bodies]
            await asyncio.sleep(f.delay_ms / 1000)
            self.kill9()
            await asyncio.gather(*tasks)
            await self.ensure_daemon()
            return
        if k == "fault_points":
            self.armed = dict.fromkeys(ARMABLE, f.odds)
            self.kill9()
            await self.ensure_daemon()
        elif k == "printer_offline":
            await self.printer.refuse()
        elif k == "printer_paper_out":
            self.printer.mode = "paper_out"
        elif k == "printer_silent":
            self.printer.mode = "silent"
        elif k.startswith("server_") and k != "server_down":
            self.server_faults.next_uploads.extend([k] * self.rng.randrange(1, 3))
            await self.api("POST", "/api/v1/sync")
        elif k == "server_down":
            await self._stop_central()
        elif k == "reader_unplug":
            if self.pty is not None:
                self.pty.close()
                self.pty = None
        elif k == "clock_back":
            self.clock_file.write_text(str(-3600))
        elif k == "clock_forward":
            self.clock_file.write_text(str(3 * 86400))
        elif k == "clock_1970":
            self.clock_file.write_text(str(-(time.time() - 86400 * 2)))
        elif k == "disk_full":
            self.filler = self.state / "filler"
            with contextlib.suppress(OSError), self.filler.open("wb") as fh:
                chunk = b"\0" * (1 << 20)
                while True:
                    fh.write(chunk)
                    fh.flush()
        elif k == "second_instance":
            await self.ensure_daemon()
            try:
                r = await asyncio.to_thread(
                    subprocess.run,
                    [KARTAPOS, "run", "-c", str(self.cfg_path)],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    env={
                        **os.environ,
                        "ESCPOS_CAPABILITIES_PICKLE_DIR": str(self.root / "escpos-cache"),
                    },
                )
            except subprocess.TimeoutExpired:
                # It kept running: right only if the first one had died meanwhile (an
                # armed fault point), leaving the state dir free. run() killed it.
                if self.alive():
                    self.report.violations.append(
                        "second instance kept running beside a live daemon"
                    )
                await self.ensure_daemon()
                return
            if r.returncode != 1 or "Traceback" in r.stderr or "ledger" not in r.stderr.lower():
                self.report.violations.append(
                    f"second instance: exit {r.returncode}: {r.stderr.strip()[:300]}"
                )
            return
        self.undo.append((self.op_index + f.lasts, f))

    async def revert(self, f: Fault) -> None:
        k = f.kind
        print(f"chaos: {self.tag}op {self.op_index}: end of {k}", flush=True)
        if k == "fault_points":
            self.armed = {}
            self.kill9()
            await self.ensure_daemon()
        elif k == "printer_offline":
            await self.printer.start()
        elif k in ("printer_paper_out", "printer_silent"):
            self.printer.mode = "online"
        elif k == "server_down":
            await self._start_central()
        elif k.startswith("server_"):
            self.server_faults.next_uploads.clear()
            self.server_faults.release.set()
            self.server_faults.release = asyncio.Event()
        elif k == "reader_unplug":
            self.pty = Pty(self.reader_link)
            await self._expect_reader_back()
        elif k.startswith("clock_"):
            self.clock_file.write_text("0")
        elif k == "disk_full" and self.filler is not None:
            self.filler.unlink(missing_ok=True)
            self.filler = None

    async def _expect_reader_back(self) -> None:
        """After a replug the next swipe must reach the screen (backoff is capped at 5 s)."""
        assert self.http is not None
        assert self.pty is not None
        card = self.cards[0]
        deadline = time.monotonic() + 20
        async with self.http.ws_connect(
            f"http://127.0.0.1:{self.api_port}/api/v1/events",
            headers={"Authorization": f"Bearer {self._token()}"},
        ) as ws:
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    os.write(self.pty.master, f";{card.replace('-', '')}=4912?\r".encode())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        while True:
                            msg = await ws.receive()
                            if msg.type != aiohttp.WSMsgType.TEXT:
                                break
                            if json.loads(msg.data)["type"] == "card":
                                return
                if not self.alive():
                    await self.ensure_daemon()
                    return
        self.report.violations.append("reader: swipes not read within 20 s of the replug")

    async def _undo_due(self, force: bool = False) -> None:
        due = [(i, f) for i, f in self.undo if force or i <= self.op_index]
        self.undo = [(i, f) for i, f in self.undo if not (force or i <= self.op_index)]
        for _, f in due:
            await self.revert(f)

    # --- the run -----------------------------------------------------------------------

    async def run(self) -> Report:
        t0 = time.monotonic()
        (self.root / "escpos-cache").mkdir(parents=True, exist_ok=True)
        (self.root / "token").write_text(self.terminal_token)
        self.clock_file.write_text("0")
        self._mount()
        try:
            await self.printer.start()
            await self._start_central()
            assert self.central is not None
            await seed_demo_into(self.central.db)
            await self.central.db.enrol(self.terminal, PARTNER, self.terminal_token, None)
            self.pty = Pty(self.reader_link)
            self._write_config()
            async with aiohttp.ClientSession() as self.http:
                await self.start_daemon()
                await self._load_cards()
                for step in self.sched.steps:
                    if isinstance(step, Fault):
                        print(f"chaos: op {self.op_index}: {step.kind}", flush=True)
                        await self.apply(step)
                    else:
                        await self.do_op(step)
                        self.op_index += 1
                        await self._undo_due()
                await self._undo_due(force=True)
                await self.drain()
                await self.check()
        finally:
            self.kill9()
            if self.pty is not None:
                self.pty.close()
            await self._stop_central()
            await self.printer.stop()
            self._unmount()
            self.report.seconds = round(time.monotonic() - t0, 1)
        return self.report

    async def _load_cards(self) -> None:
        status, _ = await self.api("POST", "/api/v1/sync")
        assert status == 200, "the first sync failed"
        from sync.central.demo_data import demo_number

        for n in [demo_number(i) for i in range(1, 61)]:
            st, view = await self.api("POST", "/api/v1/cards/resolve", {"input": n})
            if st == 200 and view["active"]:
                self.cards.append(n)
        assert len(self.cards) >= 10, self.cards

    async def drain(self) -> None:
        """Everything back to normal: retry the unknown, upload all, print all."""
        await self.ensure_daemon(must=True)
        for _ in range(5):
            unknown = [r for r in self.sales.values() if r.outcome == "unknown"]
            if not unknown:
                break
            for rec in unknown:
                self.report.retried += 1
                await self.send_sale(rec)
        for sid, outcome in list(self.voids.items()):
            if outcome == "unknown":
                st, _ = await self.api("POST", f"/api/v1/sales/{sid}/void", {"reason": "chaos"})
                self.voids[sid] = "acked" if st in (200, 201) else f"refused:{st}"
        for _ in range(10):
            await self.api("POST", "/api/v1/sync")
            _, health = await self.api("GET", "/api/v1/health")
            if health and health["sync"]["pending_entries"] == 0:
                break
            await asyncio.sleep(0.5)
        else:
            self.report.violations.append(f"upload did not finish: {health and health['sync']}")

    # --- what must hold ----------------------------------------------------------------

    async def ledger_entries(self) -> list[dict[str, Any]]:
        """Every entry of the daemon's ledger, through its API."""
        entries: list[dict[str, Any]] = []
        after = 0
        while True:
            st, page = await self.api("GET", f"/api/v1/ledger?after={after}&limit=1000")
            assert st == 200
            if not page["entries"]:
                break
            entries += page["entries"]
            after = entries[-1]["seq"]
        return entries

    async def check(self) -> None:
        v = self.report.violations
        entries = await self.ledger_entries()
        self.report.entries = len(entries)
        by_sale = {e["sale_id"]: e for e in entries if e["kind"] == "sale"}
        ids = [e["sale_id"] for e in entries if e["kind"] == "sale"]
        if len(ids) != len(set(ids)):
            v.append("a sale id stands twice in the ledger")
        if [e["seq"] for e in entries] != list(range(1, len(entries) + 1)):
            v.append("ledger seqs have a gap")
        for sid, rec in self.sales.items():
            if rec.outcome == "acked":
                self.report.sales_acked += 1
                got = by_sale.get(sid)
                if got is None:
                    v.append(f"acknowledged sale {sid} is not in the ledger")
                elif rec.entry is not None and got["hash"] != rec.entry["hash"]:
                    v.append(f"acknowledged sale {sid} changed in the ledger")
            elif rec.outcome == "refused":
                self.report.sales_refused[rec.refusal or "?"] = (
                    self.report.sales_refused.get(rec.refusal or "?", 0) + 1
                )
                if sid in by_sale:
                    v.append(f"refused sale {sid} ({rec.refusal}) was written")
            else:
                v.append(f"sale {sid} never got an answer")
        if set(by_sale) - set(self.sales):
            v.append("the ledger holds sales nobody asked for")

        # The city server holds exactly this terminal's entries, each once.
        assert self.central is not None
        server = await self.central.db.entries(self.terminal)
        if server != entries:
            v.append(f"server holds {len(server)} entries, terminal {len(entries)}; they differ")
        row = await self.central.db.terminal(self.terminal)
        if row is None or (row.head.seq, row.head.hash) != (
            entries[-1]["seq"],
            entries[-1]["hash"],
        ):
            v.append("server head differs from the terminal's")

        # Receipts: every entry printed; no entry has two originals.
        await self._check_receipts({e["seq"] for e in entries})

        # The read model: balances the daemon shows equal a recomputation from the ledger.
        await self._check_balances(entries)

        # The daemon stops cleanly; then the chain and the databases verify.
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = await asyncio.to_thread(self.proc.wait, 30)
        except subprocess.TimeoutExpired:
            v.append("the daemon did not stop within 30 s of SIGTERM")
            rc = None
        if rc not in (0, None):
            v.append(f"the daemon exited {rc} on SIGTERM")
        r = await asyncio.to_thread(
            subprocess.run,
            [KARTAPOS, "ledger", "verify", "-c", str(self.cfg_path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if r.returncode != 0:
            v.append(f"kartapos ledger verify: {r.stdout}{r.stderr}")
        for db in ("ledger.sqlite", "catalog.sqlite", "print.sqlite"):
            con = sqlite3.connect(f"file:{self.state / db}?mode=ro", uri=True)
            try:
                (ok,) = con.execute("PRAGMA integrity_check").fetchone()
            finally:
                con.close()
            if ok != "ok":
                v.append(f"{db}: integrity_check: {ok}")
        self._check_logs()

    async def _check_receipts(self, seqs: set[int]) -> None:
        deadline = time.monotonic() + 60
        while True:
            originals, copies = self._receipts()
            if seqs <= set(originals) | set(copies) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
        self.report.receipts_original = sum(originals.values())
        self.report.receipts_copy = sum(copies.values())
        doubled = sorted(s for s, n in originals.items() if n > 1)
        if doubled:
            self.report.violations.append(f"two original receipts for entries {doubled[:10]}")
            self._save_jobs_of(doubled[:3])
        missing = sorted(seqs - set(originals) - set(copies))
        if missing:
            self.report.violations.append(f"entries never printed: {missing[:10]}")
        strays = sorted((set(originals) | set(copies)) - seqs)
        if strays:
            self.report.violations.append(f"receipts for no committed entry: {strays[:10]}")

    def _save_jobs_of(self, seqs: list[int]) -> None:
        """Keep what the printer got for these entries (a failing run's evidence)."""
        out = self.root / "printer-jobs.txt"
        with out.open("w") as f:
            for i, job in enumerate(self.printer.jobs):
                try:
                    text = decode(job).text
                except DecodeError as e:
                    text = f"<undecodable: {e}> {job[-200:]!r}"
                if any(f"Transakcja nr: {s}" in text or f"nr: {s}\n" in text for s in seqs):
                    f.write(f"===== job {i} ({len(job)} bytes)\n{text}\n")
        print(f"chaos: printer jobs of {seqs} saved in {out}", flush=True)

    def _receipts(self) -> tuple[dict[int, int], dict[int, int]]:
        originals: dict[int, int] = {}
        copies: dict[int, int] = {}
        for job in list(self.printer.jobs):
            for seq, copy in receipts_in(job):
                bucket = copies if copy else originals
                bucket[seq] = bucket.get(seq, 0) + 1
        return originals, copies

    async def _check_balances(self, entries: list[dict[str, Any]]) -> None:
        import msgspec

        from ledger.clock import SystemClock
        from ledger.entry import Entry
        from ledger.usage import UsageBook, card_balance
        from sync.catalog import Catalog

        book = UsageBook.from_entries(msgspec.convert(entries, list[Entry]))
        cards = sorted({e["card"] for e in entries if e["card"]})
        shown: dict[str, int] = {}
        for c in cards:
            st, view = await self.api("POST", "/api/v1/cards/resolve", {"input": c})
            if st == 200:
                shown[c] = view["balance"]["points"]
        cat = await Catalog.open(self.state / "catalog.sqlite", SystemClock())
        try:
            for c, points in shown.items():
                rec = await cat.lookup(c)
                if rec is None:
                    continue
                expect = card_balance(rec, book)
                if expect != points:
                    self.report.violations.append(
                        f"balance of {c[:3]}…: daemon shows {points}, ledger gives {expect}"
                    )
        finally:
            await cat.close()

    def _check_logs(self) -> None:
        text = self.log_path.read_text(errors="replace")
        secrets_seen = [s for s in (self.terminal_token, self._token()) if s in text]
        if secrets_seen:
            self.report.violations.append("a token appears in the daemon's log")
        if re.search(r"(?<![0-9A-Za-z*-])\d{2}-\d{6,7}(?![0-9A-Za-z-])", text):
            self.report.violations.append("an unmasked card number appears in the daemon's log")
        if re.search(r"(?<![0-9A-Za-z])4\d{14,15}(?![0-9A-Za-z])", text):
            self.report.violations.append("a payment card number appears in the daemon's log")
