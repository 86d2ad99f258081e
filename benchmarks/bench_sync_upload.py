"""Upload of 100,000 entries to the reference server on loopback, every hash verified.

The server (`kartapos central`) and a plain sink server run as their own processes; the
ledger is built by a child process, so this process's peak RSS is the client's.
Figures: upload time (budget 15 s), client peak RSS (budget 150 MB), and the ratio to
plain POSTs of the same gzip bodies to a sink that only reads them.

Run: .venv/bin/python -m benchmarks.bench_sync_upload [--entries N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from aiohttp import web

BUDGET_S = 15.0
BUDGET_RSS_MB = 150.0
TID = "T-BENCH"
PID = "P-0001"
REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def build_ledger(path: Path, n: int) -> None:
    """Child process: append ``n`` sales (group commits of 1,000)."""
    from ledger.clock import format_ts
    from ledger.entry import Draft
    from ledger.store import LedgerStore

    async with await LedgerStore.open(path, terminal=TID) as store:
        done = 0
        while done < n:
            k = min(1000, n - done)
            drafts = [
                Draft(
                    ts=format_ts(_ts(done + i)),
                    local_date="2026-11-18",
                    kind="sale",
                    card=f"01-{(done + i) % 900000:06d}",
                    amount_gr=1000 + (done + i) % 5000,
                    points_earned=10,
                    rules_version="2026.11-1",
                    cashier="P-0001-K01",
                    sale_id=f"bench-{done + i}",
                    benefits=("B-KAWA",) if i % 3 == 0 else (),
                )
                for i in range(k)
            ]
            await asyncio.gather(*(store.append(d) for d in drafts))
            done += k


def _ts(i: int) -> datetime:
    return datetime(2026, 11, 18, 8, 0, tzinfo=UTC) + timedelta(milliseconds=50 * i)


async def _wait_listening(url: str, within_s: float = 20.0) -> None:
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url) as r:
                    if r.status < 500:
                        return
            except aiohttp.ClientConnectionError:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.05)


def _sink_main(port: int) -> None:
    """Child process: a server that reads each POST body and answers 200."""

    async def sink(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"ok": True})

    async def health(_r: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(client_max_size=256 * 1024 * 1024)
    app.router.add_post("/sink", sink)
    app.router.add_get("/v1/health", health)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def run(n: int) -> None:
    """Set up the processes, then measure in an event loop."""
    from sync.keys import load_or_create_key

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        state = tmp / "state"
        state.mkdir()
        key = load_or_create_key(state)
        port, sink_port = _free_port(), _free_port()
        (tmp / "central.toml").write_text(
            f'[central]\nlisten = "127.0.0.1:{port}"\ndatabase = "central.sqlite"\n'
            '[logging]\nlevel = "warning"\n'
        )
        kp = [sys.executable, "-m", "terminal.cli", "central", "-c", str(tmp / "central.toml")]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        subprocess.run(
            [*kp, "enrol", TID, "--partner", PID, "--token-file", str(tmp / "token"),
             "--public-key", key.public_key_b64],
            check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_sync_upload", "--build-ledger",
             str(state / "ledger.sqlite"), "--entries", str(n)],
            check=True, env=env, cwd=REPO,
        )  # fmt: skip
        build_s = time.perf_counter() - t0
        server = subprocess.Popen(kp, env=env, cwd=REPO, stdout=subprocess.DEVNULL)
        sink = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.bench_sync_upload", "--sink", str(sink_port)],
            env=env,
            cwd=REPO,
        )
        try:
            upload_s, plain_s, mb, batches, cpu_s = asyncio.run(
                measure(n, tmp, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sink_port}")
            )
        finally:
            for p in (server, sink):
                p.terminate()
                p.wait(10)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"upload of {n:,} entries ({batches} signed gzip batches, {mb:.1f} MB on the wire)")
    print(f"  ledger build (child process, not timed against a budget): {build_s:.1f} s")
    print(f"  upload, server verifying every hash: {upload_s:6.2f} s    budget <= {BUDGET_S} s")
    print(f"  client CPU during the upload:        {cpu_s:6.2f} s    (the rest is the server)")
    print(f"  client peak RSS:                     {rss_mb:6.1f} MB   budget <= {BUDGET_RSS_MB} MB")
    print(f"  plain POST of the same gzip bodies:  {plain_s:6.2f} s    (baseline)")
    print(f"  ratio upload / plain POST:           {upload_s / plain_s:6.2f}")


async def measure(
    n: int, tmp: Path, url: str, sink_url: str
) -> tuple[float, float, float, int, float]:
    """(upload s, plain POST s, MB on the wire, batches, client CPU s during the upload)."""
    from config.loader import config_from_dict
    from ledger.clock import SystemClock
    from ledger.store import LedgerStore
    from sync.catalog import Catalog
    from sync.client import SyncClient
    from sync.keys import load_or_create_key

    state = tmp / "state"
    await _wait_listening(f"{url}/v1/health")
    await _wait_listening(f"{sink_url}/v1/health")
    cfg = config_from_dict(
        {
            "terminal": {"id": TID, "partner_id": PID, "state_dir": str(state)},
            "sync": {"url": url, "token_file": str(tmp / "token"), "batch_size": 1000},
        },
        base=tmp,
    )
    clock = SystemClock()
    key = load_or_create_key(state)
    async with (
        await LedgerStore.open(state / "ledger.sqlite", terminal=TID, readonly=True) as store,
        await Catalog.open(state / "catalog.sqlite", clock) as catalog,
    ):
        client = SyncClient(cfg, store, catalog, key, clock)
        try:
            t0, c0 = time.perf_counter(), time.process_time()
            res = await client.upload()
            upload_s = time.perf_counter() - t0
            client_cpu_s = time.process_time() - c0
        finally:
            await client.close()
        assert res.ok, res
        assert res.acked_seq == n, res
        # The baseline: the very same gzip bodies, POSTed one after another.
        bodies = []
        after = 0
        while after < n:
            entries = await store.read_after(after, 1000)
            bodies.append(client._encode_batch(entries))
            after = entries[-1].seq
    async with aiohttp.ClientSession() as http:
        t0 = time.perf_counter()
        for body in bodies:
            async with http.post(
                f"{sink_url}/sink",
                data=body,
                headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
            ) as r:
                await r.read()
                assert r.status == 200
        plain_s = time.perf_counter() - t0
    return upload_s, plain_s, sum(len(b) for b in bodies) / 1e6, len(bodies), client_cpu_s


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--build-ledger", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.build_ledger is not None:
        asyncio.run(build_ledger(a.build_ledger, a.entries))
    elif a.sink is not None:
        _sink_main(a.sink)
    else:
        run(a.entries)
