"""`kartapos sync` and `kartapos keys show`: standalone against the real server, via a daemon."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from config.loader import load_config
from ledger.clock import FakeClock
from ledger.store import LedgerStore
from sync.central.app import CentralServer
from sync.keys import load_or_create_key
from terminal.cmd_keys import show_key
from terminal.cmd_sync import sync_once
from tests.sync.test_client_env import (
    PID,
    TID,
    TOKEN,
    Faults,
    append_sales,
    central,
    free_port_for_tests,
    local_entries,
)

REPO = Path(__file__).resolve().parents[2]


def write_config(tmp: Path, url: str, api_port: int) -> Path:
    state = tmp / "state"
    state.mkdir(exist_ok=True)
    (tmp / "token").write_text(TOKEN + "\n")
    path = tmp / "kartapos.toml"
    path.write_text(
        f'[terminal]\nid = "{TID}"\npartner_id = "{PID}"\nstate_dir = "state"\n\n'
        f'[api]\nlisten = "127.0.0.1:{api_port}"\n\n'
        f'[sync]\nurl = "{url}"\ntoken_file = "token"\nbatch_size = 7\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture
async def server_env(tmp_path: Path, clock: FakeClock) -> AsyncIterator[tuple[Path, CentralServer]]:
    state = tmp_path / "state"
    state.mkdir()
    key = load_or_create_key(state)
    async with central(tmp_path / "srv", clock, Faults(), key, seed=True) as server:
        cfg_path = write_config(tmp_path, server.url, free_port_for_tests())
        async with await LedgerStore.open(state / "ledger.sqlite", terminal=TID) as store:
            await append_sales(store, clock, 20)
        yield cfg_path, server


async def test_cli_standalone_uploads_everything_and_exits_0(
    server_env: tuple[Path, CentralServer],
) -> None:
    cfg_path, server = server_env
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "terminal.cli", "sync", "-c", str(cfg_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=REPO,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 0, (text, err.decode())
    assert "20 entries sent; acknowledged up to seq 20 of 20 - all acknowledged" in text
    assert "cards: full list version" in text
    assert "sync: OK" in text
    assert "upload: server holds" in err.decode()  # plain progress lines when not a tty
    assert "Traceback" not in err.decode()
    db = server.db
    async with await LedgerStore.open(
        cfg_path.parent / "state" / "ledger.sqlite", terminal=TID, readonly=True
    ) as store:
        mine = [(e.seq, e.hash) for e in await local_entries(store)]
    assert [(int(e["seq"]), e["hash"]) for e in await db.entries(TID)] == mine


async def test_unreachable_server_exits_1(tmp_path: Path, clock: FakeClock) -> None:
    state = tmp_path / "state"
    state.mkdir()
    async with await LedgerStore.open(state / "ledger.sqlite", terminal=TID) as store:
        await append_sales(store, clock, 2)
    cfg = load_config(write_config(tmp_path, f"http://127.0.0.1:{free_port_for_tests()}", 1))
    out, err = io.StringIO(), io.StringIO()
    # One attempt: the point is the exit code, not the backoff (tested elsewhere).
    rc = await sync_once(cfg, standalone=True, out=out, err=err, max_attempts=1)
    assert rc == 1
    assert "NOT all acknowledged (unreachable" in out.getvalue()
    assert "sync: FAILED" in out.getvalue()


async def test_missing_token_file_exits_2(tmp_path: Path, clock: FakeClock) -> None:
    state = tmp_path / "state"
    state.mkdir()
    async with await LedgerStore.open(state / "ledger.sqlite", terminal=TID):
        pass
    cfg = load_config(write_config(tmp_path, "http://127.0.0.1:9", 1))
    (tmp_path / "token").unlink()
    err = io.StringIO()
    rc = await sync_once(cfg, standalone=True, out=io.StringIO(), err=err)
    assert rc == 2
    assert str(tmp_path / "token") in err.getvalue()


async def test_running_daemon_is_asked_instead(tmp_path: Path) -> None:
    calls: list[str] = []

    async def sync_handler(request: web.Request) -> web.Response:
        calls.append(request.headers.get("Authorization", ""))
        return web.json_response(
            {
                "ok": True,
                "upload": {"ok": True, "acked_seq": 5, "local_seq": 5, "sent": 2},
                "refresh": {"ok": True, "rules_version": "r1", "rules_changed": False},
            }
        )

    app = web.Application()
    app.router.add_post("/api/v1/sync", sync_handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port_for_tests()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        cfg = load_config(write_config(tmp_path, "http://127.0.0.1:9", port))
        (tmp_path / "state" / "api-token").write_text("daemon-secret\n")
        out, err = io.StringIO(), io.StringIO()
        rc = await sync_once(cfg, out=out, err=err)
    finally:
        await runner.cleanup()
    assert rc == 0
    assert calls == ["Bearer daemon-secret"]
    assert "acknowledged up to seq 5 of 5 - all acknowledged" in out.getvalue()
    assert not (tmp_path / "state" / "catalog.sqlite").exists()  # the daemon is the writer


def test_keys_show_prints_the_public_key_only(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path, "http://127.0.0.1:9", 1))
    out = io.StringIO()
    assert show_key(cfg, out=out) == 0
    key = load_or_create_key(tmp_path / "state")
    assert f"public key: {key.public_key_b64}" in out.getvalue()
    raw = io.StringIO()
    assert show_key(cfg, raw=True, out=raw) == 0
    assert raw.getvalue() == key.public_key_b64 + "\n"
    assert "PRIVATE" not in out.getvalue()


def test_keys_show_reports_a_broken_key_file(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path, "http://127.0.0.1:9", 1))
    (tmp_path / "state" / "terminal.key").write_text("garbage")
    err = io.StringIO()
    assert show_key(cfg, err=err, out=io.StringIO()) == 1
    assert "terminal.key" in err.getvalue()


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_tty_and_lines_otherwise() -> None:
    from sync.client import SyncEvent
    from terminal.cmd_sync import _Progress

    tty = _Tty()
    bar = _Progress(tty)
    for acked in (0, 500, 1000):
        bar(SyncEvent("upload_progress", acked_seq=acked, local_seq=1000))
    bar.finish()
    assert tty.getvalue().count("\r") == 3
    assert "[###############...............] 500/1000" in tty.getvalue()
    assert tty.getvalue().endswith("1000/1000\n")
    plain = io.StringIO()
    lines = _Progress(plain)
    for acked in range(0, 1001, 10):  # 101 events: at most one line per tenth
        lines(SyncEvent("upload_progress", acked_seq=acked, local_seq=1000))
    assert "\r" not in plain.getvalue()
    assert 10 <= plain.getvalue().count("\n") <= 11


@pytest.mark.parametrize("flags", [{"standalone": True}, {"clear_fork": True}])
async def test_standalone_and_clear_fork_refuse_while_the_daemon_runs(
    tmp_path: Path, flags: dict[str, bool]
) -> None:
    # Their help says the daemon must be stopped; they used to run beside it anyway.
    state = tmp_path / "state"
    state.mkdir()
    cfg = load_config(write_config(tmp_path, "http://127.0.0.1:9", 1))
    err = io.StringIO()
    async with await LedgerStore.open(state / "ledger.sqlite", terminal=TID):  # the daemon
        rc = await sync_once(cfg, out=io.StringIO(), err=err, **flags)
    assert rc == 2
    assert "needs the daemon stopped" in err.getvalue()
    assert str(state / "ledger.sqlite") in err.getvalue()
    # Stopped: the same command goes on (and fails later only for the unreachable city).
    rc = await sync_once(cfg, out=io.StringIO(), err=io.StringIO(), max_attempts=1, **flags)
    assert rc == 1  # the city at port 9 does not answer: a failed sync, not a refusal
