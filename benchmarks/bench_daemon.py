"""The daemon's budgets (docs/architecture.md §6), against a real `kartapos run` process.

- card read to screen: bytes written to a pty reader -> WebSocket message received, p99 <= 10 ms
- sale: POST /api/v1/sales -> durable commit -> receipt bytes at a loopback 9100 printer,
  p99 <= 25 ms
- sustained durable sales through the API >= 500/s and >= 40 % of a bare WAL+FULL
  insert-commit loop measured in the same run
- start -> READY (sd_notify) <= 1.5 s; idle RSS <= 70 MB

The reference city server and the loopback printer run in this process; the daemon is a
child process, so the load generator and the daemon each have a core.

Run: .venv/bin/python -m benchmarks.bench_daemon [--swipes 500] [--sales 300] [--sustained 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tty
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from benchmarks.bench_ledger_append import bare_loop
from config.schema import CentralConfig, CentralSection
from sync.central import CentralServer
from sync.central.demo_data import seed_demo_into
from tests.printer.fake_printer import FakePrinter

KARTAPOS = str(Path(sys.executable).parent / "kartapos")
CARDS = ["01-000018", "01-000026", "01-000034", "01-000075"]


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def line(what: str, value: str, budget: str, ok: bool) -> None:
    print(f"{what:<58} {value:>16}   budget {budget:<14} {'OK' if ok else 'OVER BUDGET'}")


class Child:
    """`kartapos run` with its own NOTIFY_SOCKET, so READY=1 is observed."""

    def __init__(self, root: Path, cfg: Path) -> None:
        self.root, self.cfg = root, cfg
        self.proc: subprocess.Popen[bytes] | None = None
        self.notify_path = root / "notify.sock"

    def start(self) -> float:
        """Start it and return seconds until READY=1."""
        self.notify_path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.notify_path))
        sock.settimeout(10)
        env = {**os.environ, "NOTIFY_SOCKET": str(self.notify_path)}
        env["ESCPOS_CAPABILITIES_PICKLE_DIR"] = str(self.root / "escpos-cache")
        t0 = time.perf_counter()
        log = (self.root / "daemon.log").open("ab")
        self.proc = subprocess.Popen(
            [KARTAPOS, "run", "-c", str(self.cfg)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        try:
            while True:
                msg = sock.recv(4096).decode()
                if "READY=1" in msg.split("\n"):
                    return time.perf_counter() - t0
        except TimeoutError:
            tail = (self.root / "daemon.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the daemon did not become ready:\n{tail}") from None
        finally:
            sock.close()

    def rss_mb(self) -> float:
        assert self.proc is not None
        for ln in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGUSR1)
                time.sleep(1)
                print((self.root / "daemon.log").read_text()[-6000:])
                raise
            self.proc = None


def write_config(
    root: Path, *, port: int, central: str, printer_port: int | None, reader: str, state: str
) -> Path:
    printer = (
        f'kind = "network"\nhost = "127.0.0.1"\nport = {printer_port}\nsale_wait_s = 2.0\n'
        if printer_port
        else 'kind = "none"\n'
    )
    text = f"""
[terminal]
id = "T-0001"
partner_id = "P-0001"
state_dir = "{state}"

[api]
listen = "127.0.0.1:{port}"

[[readers]]
name = "msr"
kind = "serial"
path = "{reader}"
dedupe_window_s = 0

[printer]
{printer}
[sync]
url = "{central}"
token_file = "{root / "token"}"
upload_interval_s = 3600
catalog_refresh_s = 3600

[logging]
level = "warning"
format = "json"
"""
    path = root / f"{state}.toml"
    path.write_text(text)
    return path


async def api(
    http: aiohttp.ClientSession, url: str, token: str, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    async with http.request(
        method, url + path, json=body, headers={"Authorization": f"Bearer {token}"}
    ) as r:
        return r.status, await r.json()


async def wait_up(http: aiohttp.ClientSession, url: str, token: str) -> None:
    async with asyncio.timeout(15):
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                s, _ = await api(http, url, token, "GET", "/api/v1/health")
                if s == 200:
                    return
            await asyncio.sleep(0.05)


def sale(card: str, amount: int = 2500) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "card": card, "amount_gr": amount}


async def main(args: argparse.Namespace) -> int:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    ok = True
    with tempfile.TemporaryDirectory(prefix="kp-bench-daemon-") as tmp:
        root = Path(tmp)
        token = secrets.token_urlsafe(24)
        (root / "token").write_text(token)
        master, slave = os.openpty()
        tty.setraw(slave)
        ccfg = CentralConfig(
            central=CentralSection(database=str(root / "central.sqlite"), trust_on_first_use=True)
        )
        async with CentralServer(ccfg, port=0) as central, FakePrinter() as printer:
            await seed_demo_into(central.db)
            await central.db.enrol("T-0001", "P-0001", token, None)
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            cfg = write_config(
                root,
                port=port,
                central=central.url,
                printer_port=printer.port,
                reader=os.ttyname(slave),
                state="state",
            )
            child = Child(root, cfg)
            # --- start to READY (first start makes keys and databases; then warm starts)
            starts = []
            for i in range(args.starts):
                starts.append(await asyncio.to_thread(child.start))
                if i < args.starts - 1:
                    child.stop() if args.blocking_stop else await asyncio.to_thread(child.stop)
            async with aiohttp.ClientSession() as http:
                api_token = (root / "state" / "api-token").read_text().strip()
                await wait_up(http, url, api_token)
                s, _ = await api(http, url, api_token, "POST", "/api/v1/sync")
                assert s == 200, "first sync failed"
                await asyncio.sleep(2.0)
                rss = child.rss_mb()

                # --- swipe -> WebSocket
                lat: list[float] = []
                async with http.ws_connect(
                    url + "/api/v1/events", headers={"Authorization": f"Bearer {api_token}"}
                ) as ws:
                    await ws.receive(timeout=5)  # hello
                    for i in range(args.swipes):
                        card = CARDS[i % len(CARDS)]
                        raw = f";{card.replace('-', '')}=4912?\r".encode()
                        t0 = time.perf_counter()
                        os.write(master, raw)
                        while True:
                            msg = json.loads((await ws.receive(timeout=5)).data)
                            if msg["type"] == "card":
                                break
                        lat.append((time.perf_counter() - t0) * 1000)
                p99 = pct(lat, 99)
                ok &= p99 <= 10
                # --- sale -> receipt bytes at the printer
                sale_lat: list[float] = []
                for i in range(args.sales):
                    n = len(printer.jobs)
                    t0 = time.perf_counter()
                    s, body = await api(
                        http, url, api_token, "POST", "/api/v1/sales", sale(CARDS[i % len(CARDS)])
                    )
                    assert s == 201, body
                    await printer.wait_jobs(n + 1, within=5)
                    sale_lat.append((time.perf_counter() - t0) * 1000)
                sp99 = pct(sale_lat, 99)
                ok &= sp99 <= 25
            await asyncio.to_thread(child.stop)

            # --- sustained durable sales (no printer: the API + ledger path)
            port2 = free_port()
            url2 = f"http://127.0.0.1:{port2}"
            cfg2 = write_config(
                root,
                port=port2,
                central=central.url,
                printer_port=None,
                reader=os.ttyname(slave),
                state="state2",
            )
            child2 = Child(root, cfg2)
            await asyncio.to_thread(child2.start)
            conn = aiohttp.TCPConnector(limit=args.concurrency)
            async with aiohttp.ClientSession(connector=conn) as http:
                tok2 = (root / "state2" / "api-token").read_text().strip()
                await wait_up(http, url2, tok2)
                s, _ = await api(http, url2, tok2, "POST", "/api/v1/sync")
                assert s == 200
                cards = []
                for c in (f"01-{i:05d}{_luhn(i)}" for i in range(1, 61)):
                    st, view = await api(
                        http, url2, tok2, "POST", "/api/v1/cards/resolve", {"input": c}
                    )
                    if st == 200 and view["active"]:
                        cards.append(c)
                counter = iter(range(args.sustained))

                async def worker() -> int:
                    done = 0
                    for i in counter:
                        st, _b = await api(
                            http,
                            url2,
                            tok2,
                            "POST",
                            "/api/v1/sales",
                            sale(cards[i % len(cards)], 1000 + i % 500),
                        )
                        done += st == 201
                    return done

                t0 = time.perf_counter()
                done = sum(await asyncio.gather(*(worker() for _ in range(args.concurrency))))
                elapsed = time.perf_counter() - t0
            await asyncio.to_thread(child2.stop)
            rate = done / elapsed
            bare = bare_loop(root / "bare.sqlite", 3000)
            ratio = rate / bare
            ok &= rate >= 500 and ratio >= 0.40
        os.close(master)
        os.close(slave)

    print(f"daemon benchmarks ({os.cpu_count()} cores)")
    line(
        "start -> READY=1, first start (keys, databases)",
        f"{starts[0] * 1000:.0f} ms",
        "<= 1500 ms",
        starts[0] <= 1.5,
    )
    warm = statistics.median(starts[1:]) if len(starts) > 1 else starts[0]
    line(
        f"start -> READY=1, median of {len(starts) - 1} warm starts",
        f"{warm * 1000:.0f} ms",
        "<= 1500 ms",
        warm <= 1.5,
    )
    line("idle RSS after first sync", f"{rss:.1f} MB", "<= 70 MB", rss <= 70)
    line(
        f"pty swipe -> WebSocket, p50 / p99 of {len(lat)}",
        f"{pct(lat, 50):.2f} / {p99:.2f} ms",
        "p99 <= 10 ms",
        p99 <= 10,
    )
    line(
        f"POST sale -> receipt bytes at printer, p50 / p99 of {len(sale_lat)}",
        f"{pct(sale_lat, 50):.2f} / {sp99:.2f} ms",
        "p99 <= 25 ms",
        sp99 <= 25,
    )
    line(
        f"sustained durable sales, {args.concurrency} clients, {done} sales",
        f"{rate:.0f}/s",
        ">= 500/s",
        rate >= 500,
    )
    line("  bare sqlite3 WAL+FULL insert-commit loop (same run)", f"{bare:.0f}/s", "baseline", True)
    line("  ratio sustained / bare", f"{ratio * 100:.0f} %", ">= 40 %", ratio >= 0.40)
    ok &= starts[0] <= 1.5 and rss <= 70
    return 0 if ok else 1


def _luhn(serial: int) -> int:
    from sync.central.demo_data import luhn_digit

    return luhn_digit(serial)


def cli() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--swipes", type=int, default=500)
    p.add_argument("--sales", type=int, default=300)
    p.add_argument("--sustained", type=int, default=4000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--starts", type=int, default=4)
    p.add_argument("--blocking-stop", action="store_true", help=argparse.SUPPRESS)
    return asyncio.run(main(p.parse_args()))


if __name__ == "__main__":
    sys.exit(cli())
