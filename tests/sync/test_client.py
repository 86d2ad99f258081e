"""Upload against the real reference server on loopback, with faults injected."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog
from aiohttp import web

from ledger.clock import FakeClock
from ledger.store import LedgerStore
from sync.catalog import Catalog
from sync.keys import load_or_create_key
from tests.sync.test_client_env import (
    TID,
    CuttingProxy,
    Env,
    Faults,
    Handler,
    answer,
    append_sales,
    catalog,
    central,
    commit_then_500,
    commit_then_drop,
    commit_then_hang,
    local_entries,
    running_env,
    store,
)

__all__ = ["catalog", "store"]  # fixtures used here


@pytest.fixture
async def env(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Env]:
    async with running_env(tmp_path, clock, seed=False) as e:
        yield e


async def assert_server_holds_exactly(env: Env, store: LedgerStore) -> None:
    mine = [(e.seq, e.hash) for e in await local_entries(store)]
    assert await env.server_hashes() == mine


async def test_upload_in_batches_then_nothing_to_do(
    env: Env, store: LedgerStore, catalog: Catalog
) -> None:
    await append_sales(store, env.clock, 25)
    client = env.client(store, catalog, batch_size=10)
    try:
        res = await client.upload()
        assert res.ok, res
        assert (res.sent, res.batches, res.acked_seq) == (25, 3, 25)
        await assert_server_holds_exactly(env, store)
        assert client.last_upload_at == env.clock.now()
        again = await client.upload()
        assert again.ok
        assert again.sent == 0
        assert env.faults.count("POST", "entries") == 3  # nothing re-sent when all is acked
    finally:
        await client.close()
    # The acknowledged head is kept for the health endpoint across restarts.
    reopened = env.client(store, catalog)
    assert reopened.acked_seq == 25
    assert reopened.pending_entries == 0
    await reopened.close()


@pytest.mark.parametrize("fault", ["500", "drop", "timeout"])
async def test_server_commits_then_fails_retry_is_a_replay(
    fault: str, env: Env, store: LedgerStore, catalog: Catalog
) -> None:
    await append_sales(store, env.clock, 12)
    injected = {
        "500": commit_then_500,
        "drop": commit_then_drop,
        "timeout": commit_then_hang(env.faults.release),
    }[fault]
    # The second batch is committed by the server, but its answer is lost.
    env.faults.add("entries", answer_passthrough, injected)
    client = env.client(store, catalog, batch_size=5, request_timeout_s=0.5)
    try:
        with structlog.testing.capture_logs() as logs:
            res = await client.upload()
    finally:
        await client.close()
    assert res.ok, res
    await assert_server_holds_exactly(env, store)
    events = [e["event"] for e in logs]
    assert "upload_replay" in events  # the retry really found the batch already stored
    assert len(env.sleeps) == 1  # one backoff wait, through the injected sleep


async def answer_passthrough(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Let the first batch through untouched (a Fault that does nothing)."""
    return await handler(request)


async def test_connection_dropped_mid_body(env: Env, store: LedgerStore, catalog: Catalog) -> None:
    await append_sales(store, env.clock, 8)
    proxy = CuttingProxy(int(env.server.url.rsplit(":", 1)[1]))
    await proxy.start()
    # The first connection carries the GET head (~200 bytes) and then the POST, cut
    # inside its body; the retry goes over a new, healthy connection.
    proxy.cut_request_after = 1200
    client = env.client(store, catalog, url=f"http://127.0.0.1:{proxy.port}", gzip=False)
    try:
        res = await client.upload()
    finally:
        await client.close()
        await proxy.stop()
    posts = [st for m, r, st in env.faults.seen if (m, r) == ("POST", "entries")]
    assert len(posts) == 2
    assert posts[1] == 200
    assert posts[0] != 200  # the cut POST failed on the server side too
    assert proxy.cuts == 1
    assert res.ok, res
    await assert_server_holds_exactly(env, store)


async def test_two_uploads_at_once_send_each_batch_once(
    env: Env, store: LedgerStore, catalog: Catalog
) -> None:
    await append_sales(store, env.clock, 30)
    client = env.client(store, catalog, batch_size=10)
    try:
        a, b = await asyncio.gather(client.upload(), client.upload())
    finally:
        await client.close()
    assert a.ok
    assert b.ok
    assert a.sent + b.sent == 30
    assert env.faults.count("POST", "entries") == 3
    await assert_server_holds_exactly(env, store)


async def test_server_restored_from_older_backup_gets_the_rest_again(
    tmp_path: Path, clock: FakeClock
) -> None:
    faults = Faults()
    state = tmp_path / "state"
    state.mkdir()
    key = load_or_create_key(state)
    async with central(tmp_path, clock, faults, key) as server:
        env = Env(tmp_path, clock, server, faults, key, [])
        async with (
            await LedgerStore.open(state / "ledger.sqlite", terminal=TID) as store,
            await Catalog.open(state / "catalog.sqlite", clock) as catalog,
        ):
            await append_sales(store, clock, 10)
            client = env.client(store, catalog, batch_size=4)
            assert (await client.upload()).ok
            await client.close()
    shutil.copy(tmp_path / "central.sqlite", tmp_path / "backup.sqlite")
    async with central(tmp_path, clock, faults, key) as server:
        env.server = server
        async with (
            await LedgerStore.open(state / "ledger.sqlite", terminal=TID) as store,
            await Catalog.open(state / "catalog.sqlite", clock) as catalog,
        ):
            await append_sales(store, clock, 10)
            client = env.client(store, catalog, batch_size=4)
            assert (await client.upload()).ok
            await client.close()
    # The city restores yesterday's backup: it knows 10 entries of 20.
    shutil.copy(tmp_path / "backup.sqlite", tmp_path / "central.sqlite")
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"central.sqlite{suffix}").unlink(missing_ok=True)
    async with central(tmp_path, clock, faults, key) as server:
        env.server = server
        assert len(await env.server_hashes()) == 10
        async with (
            await LedgerStore.open(state / "ledger.sqlite", terminal=TID) as store,
            await Catalog.open(state / "catalog.sqlite", clock) as catalog,
        ):
            client = env.client(store, catalog, batch_size=4)
            assert client.acked_seq == 20  # what it believed before the restore
            res = await client.upload()
            await client.close()
            assert res.ok, res
            assert res.sent == 10
            await assert_server_holds_exactly(env, store)


async def test_terminal_restored_from_older_copy_raises_fork_alarm(
    env: Env, store: LedgerStore, catalog: Catalog
) -> None:
    await append_sales(store, env.clock, 6)
    old_copy = env.tmp / "old-ledger.sqlite"
    await asyncio.to_thread(_backup_sqlite, store.path, old_copy)
    await append_sales(store, env.clock, 4)
    client = env.client(store, catalog, batch_size=3)
    assert (await client.upload()).ok
    await client.close()
    before = await env.server_hashes()
    assert len(before) == 10

    async with await LedgerStore.open(old_copy, terminal=TID) as restored:
        # The restored box sells again: its seq 7.. differ from what the city holds.
        await append_sales(restored, env.clock, 5, tag="after-restore-")
        client = env.client(restored, catalog, batch_size=3)
        events: list[str] = []
        client._on_event = lambda ev: events.append(ev.kind)
        with structlog.testing.capture_logs() as logs:
            res = await client.upload()
            again = await client.upload()
        await client.close()
    assert res.error == "fork"
    assert not res.ok
    assert again.error == "fork"
    assert client.fork_alarm
    assert "fork" in events
    assert [e["event"] for e in logs].count("sync_fork_detected") == 1  # logged once
    assert await env.server_hashes() == before  # nothing overwritten
    # The alarm is persisted: a restarted daemon does not resume uploading.
    assert env.client(store, catalog).fork_alarm


async def test_fork_reported_by_server_stops_upload(
    env: Env, store: LedgerStore, catalog: Catalog
) -> None:
    """The server's own 409 fork (not only the client's head check) raises the alarm."""
    await append_sales(store, env.clock, 3)
    env.faults.add(
        "entries",
        answer(
            409,
            b'{"error":"fork","message":"entry 1 differs","head":{"seq":0,"hash":"'
            + b"0" * 64
            + b'"}}',
        ),
    )
    client = env.client(store, catalog)
    res = await client.upload()
    await client.close()
    assert res.error == "fork"
    assert client.fork_alarm
    assert env.faults.count("POST", "entries") == 1
    assert await env.server_hashes() == []


def _backup_sqlite(src: Path, dst: Path) -> None:
    import sqlite3

    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    a.close()
    b.close()


async def test_retry_after_is_honoured(env: Env, store: LedgerStore, catalog: Catalog) -> None:
    await append_sales(store, env.clock, 2)
    env.faults.add("entries", answer(503, b'{"error":"internal"}', {"Retry-After": "42"}))
    client = env.client(store, catalog)
    res = await client.upload()
    await client.close()
    assert res.ok
    assert env.sleeps
    assert env.sleeps[0] >= 42


async def test_backoff_gives_up_and_reports_unreachable(
    env: Env, store: LedgerStore, catalog: Catalog
) -> None:
    await append_sales(store, env.clock, 2)
    env.faults.add("head", *[answer(500, b"boom")] * 10)
    client = env.client(store, catalog)
    res = await client.upload()
    await client.close()
    assert res.error == "server_error"
    assert not res.ok
    assert len(env.sleeps) == 4  # 5 attempts, 4 waits
    assert env.faults.count("GET", "head") == 5
    assert res.pending == 2


async def test_wrong_token_is_final(env: Env, store: LedgerStore, catalog: Catalog) -> None:
    await append_sales(store, env.clock, 2)
    (env.tmp / "state" / "token").write_text("not-the-token\n")
    client = env.client(store, catalog)
    res = await client.upload()
    await client.close()
    assert res.error == "unauthorized"
    assert env.faults.count("GET", "head") == 1  # no retries on 401
    assert env.sleeps == []


async def test_unenrolled_key_is_rejected_and_nothing_stored(
    env: Env, store: LedgerStore, catalog: Catalog
) -> None:
    await append_sales(store, env.clock, 2)
    client = env.client(store, catalog)
    client._key = load_or_create_key(env.tmp / "other-box")
    res = await client.upload()
    await client.close()
    assert res.error == "rejected"
    assert "unknown_key" in res.message
    assert await env.server_hashes() == []


async def test_gap_answer_resends_from_the_head_it_names(
    env: Env, store: LedgerStore, catalog: Catalog
) -> None:
    """A 409 gap (the head moved between GET and POST) -> resend from the head in the reply."""
    await append_sales(store, env.clock, 9)
    client = env.client(store, catalog, batch_size=3)
    assert (await client.upload()).ok
    await append_sales(store, env.clock, 3)
    genesis = b'{"seq":0,"hash":"' + b"0" * 64 + b'"}'
    # As if the server had lost everything (restored) right after our GET head.
    env.faults.add("entries", answer(409, b'{"error":"gap","head":' + genesis + b"}"))
    with structlog.testing.capture_logs() as logs:
        res = await client.upload()
    await client.close()
    assert res.ok, res
    assert any(e["event"] == "sync_gap" for e in logs)
    # It re-sent seq 1-3 (a replay: stored once); the reply's real head (9) let it skip on.
    assert sum(1 for e in logs if e["event"] == "upload_replay") == 1
    await assert_server_holds_exactly(env, store)


async def test_body_too_large_halves_the_batch(
    env: Env, store: LedgerStore, catalog: Catalog
) -> None:
    await append_sales(store, env.clock, 8)
    env.faults.add("entries", answer(413, b'{"error":"too_large"}'))
    client = env.client(store, catalog, batch_size=8)
    res = await client.upload()
    await client.close()
    assert res.ok, res
    assert res.batches == 2  # 8 entries in batches of 4 after the 413
    await assert_server_holds_exactly(env, store)


async def test_cancelled_upload_leaves_nothing_running_and_resumes(
    env: Env, store: LedgerStore, catalog: Catalog
) -> None:
    """Daemon shutdown mid-upload: the read-ahead is cancelled too; the next run resumes."""
    await append_sales(store, env.clock, 9)
    reached = asyncio.Event()

    async def hang_after_commit(request: web.Request, handler: Handler) -> web.StreamResponse:
        resp = await handler(request)
        reached.set()
        await env.faults.release.wait()
        return resp

    env.faults.add("entries", hang_after_commit)
    client = env.client(store, catalog, batch_size=3)
    task = asyncio.create_task(client.upload())
    await asyncio.wait_for(reached.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    left = [
        t for t in asyncio.all_tasks() if "SyncClient" in getattr(t.get_coro(), "__qualname__", "")
    ]
    assert left == []  # the read-ahead of the next batch did not outlive the upload
    env.faults.release.set()
    res = await client.upload()
    await client.close()
    assert res.ok, res
    await assert_server_holds_exactly(env, store)


async def test_sales_during_an_upload_are_no_fork(
    env: Env, store: LedgerStore, catalog: Catalog
) -> None:
    """The daemon keeps selling while it uploads: entries newer than the run's start
    may be sent along; the server then holds more than the run's first local head."""
    await append_sales(store, env.clock, 4)

    async def sell_then_answer(request: web.Request, handler: Handler) -> web.StreamResponse:
        await append_sales(store, env.clock, 3, tag="during-")
        return await handler(request)

    env.faults.add("head", sell_then_answer)
    client = env.client(store, catalog, batch_size=100)
    res = await client.upload()
    await client.close()
    assert res.error is None, res
    assert not client.fork_alarm
    assert res.acked_seq == 7
    await assert_server_holds_exactly(env, store)
