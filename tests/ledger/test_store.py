"""The SQLite ledger store: appends, reads, idempotency, tamper guards, locking."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import structlog
import structlog.testing

from ledger.clock import parse_ts, unix_ms
from ledger.entry import GENESIS_HASH, Draft, verify_chain
from ledger.store import (
    IdempotencyConflict,
    LedgerCorruptError,
    LedgerError,
    LedgerLockedError,
    LedgerStore,
    ledger_info,
)
from tests.conftest import REPO_ROOT
from tests.ledger.test_store_support import raw, sale


@pytest.fixture
def db_path(state_dir: Path) -> Path:
    return state_dir / "ledger.sqlite"


async def test_empty_ledger_head_is_genesis(db_path: Path) -> None:
    async with await LedgerStore.open(db_path, terminal="T-0001") as store:
        assert store.head.seq == 0
        assert store.head.hash == GENESIS_HASH
        assert await store.get(1) is None
        assert await store.read_after(0, 10) == []
        assert await store.verify() is None


async def test_append_fills_store_fields_and_reads_back(db_path: Path) -> None:
    async with await LedgerStore.open(db_path, terminal="T-0001") as store:
        first = await store.append(sale(1, ts="2026-11-18T11:00:00.123Z"))
        second = await store.append(sale(2))
        assert first.created
        assert second.created
        e1, e2 = first.entry, second.entry
        assert (e1.seq, e2.seq) == (1, 2)
        assert e1.terminal == e2.terminal == "T-0001"
        assert e1.prev_hash == GENESIS_HASH
        assert e2.prev_hash == e1.hash
        u = uuid.UUID(e1.id)
        assert u.version == 7
        assert u.int >> 80 == unix_ms(parse_ts("2026-11-18T11:00:00.123Z"))
        assert e1.id != e2.id
        assert store.head.seq == 2
        assert store.head.hash == e2.hash
        assert await store.get(1) == e1
        assert await store.get(2) == e2
        assert await store.get(3) is None
        assert await store.by_sale_id("req-2") == e2
        assert await store.by_sale_id("nope") is None
        assert await store.read_after(1, 10) == [e2]
        assert await store.read_after(0, 1) == [e1]
    # The head survives a reopen.
    async with await LedgerStore.open(db_path, terminal="T-0001") as store:
        assert store.head.seq == 2
        assert store.head.hash == e2.hash


async def test_iter_after_streams_in_batches(db_path: Path) -> None:
    async with await LedgerStore.open(db_path, terminal="T-0001") as store:
        for i in range(25):
            await store.append(sale(i))
        seqs = [e.seq async for e in store.iter_after(3, batch=4)]
        assert seqs == list(range(4, 26))
        assert [e.seq async for e in store.iter_after(25, batch=4)] == []


async def test_200_concurrent_appends_get_seqs_1_to_200_without_gaps(db_path: Path) -> None:
    async with await LedgerStore.open(db_path, terminal="T-0001") as store:
        results = await asyncio.gather(*(store.append(sale(i)) for i in range(200)))
        assert sorted(r.entry.seq for r in results) == list(range(1, 201))
        assert all(r.created for r in results)
        # Each caller got the entry that holds its own request.
        assert all(r.entry.sale_id == f"req-{i}" for i, r in enumerate(results))
        stored = await store.read_after(0, 1000)
        assert [e.seq for e in stored] == list(range(1, 201))
        assert verify_chain(stored) is None
        assert await store.verify() is None
        assert store.head.seq == 200


async def test_same_request_again_returns_the_existing_entry(db_path: Path) -> None:
    async with await LedgerStore.open(db_path, terminal="T-0001") as store:
        first = await store.append(sale(1))
        again = await store.append(sale(1))
        assert again.created is False
        assert again.entry == first.entry
        assert store.head.seq == 1


async def test_same_request_id_with_different_body_conflicts(db_path: Path) -> None:
    async with await LedgerStore.open(db_path, terminal="T-0001") as store:
        first = await store.append(sale(1, amount_gr=500))
        with pytest.raises(IdempotencyConflict) as info:
            await store.append(sale(1, amount_gr=600))
        assert info.value.existing == first.entry
        assert store.head.seq == 1
        # A conflict in a batch does not disturb the others queued with it.
        results = await asyncio.gather(
            store.append(sale(2)),
            store.append(sale(1, amount_gr=700)),
            store.append(sale(3)),
            return_exceptions=True,
        )
        assert isinstance(results[1], IdempotencyConflict)
        assert [getattr(r, "created", None) for r in (results[0], results[2])] == [True, True]
        assert await store.verify() is None
        assert store.head.seq == 3


async def test_concurrent_appends_of_one_request_write_one_entry(db_path: Path) -> None:
    async with await LedgerStore.open(db_path, terminal="T-0001") as store:
        results = await asyncio.gather(*(store.append(sale(7)) for _ in range(30)))
        assert sum(r.created for r in results) == 1
        assert all(r.entry == results[0].entry for r in results)
        assert store.head.seq == 1


async def test_drafts_without_request_id_are_never_deduplicated(db_path: Path) -> None:
    async with await LedgerStore.open(db_path, terminal="T-0001") as store:
        d = Draft(
            ts="2026-11-18T23:00:00.000Z", local_date="2026-11-19", kind="day_close", card=None
        )
        a = await store.append(d)
        b = await store.append(d)
        assert (a.entry.seq, b.entry.seq) == (1, 2)


async def test_cancelled_append_is_still_committed_and_retry_gets_it(db_path: Path) -> None:
    async with await LedgerStore.open(db_path, terminal="T-0001") as store:
        task = asyncio.create_task(store.append(sale(1)))
        await asyncio.sleep(0)  # let it queue
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        retry = await store.append(sale(1))
        assert retry.created is False
        assert retry.entry.seq == 1
        assert store.head.seq == 1


async def test_float_money_is_refused(db_path: Path) -> None:
    async with await LedgerStore.open(db_path, terminal="T-0001") as store:
        bad = Draft(
            ts="2026-11-18T11:00:00.000Z",
            local_date="2026-11-18",
            kind="sale",
            card="01-000018",
            amount_gr=12.5,  # type: ignore[arg-type]
        )
        with pytest.raises(LedgerError, match="invalid ledger draft"):
            await store.append(bad)
        assert store.head.seq == 0


async def test_triggers_refuse_update_and_delete(db_path: Path) -> None:
    async with await LedgerStore.open(db_path, terminal="T-0001") as store:
        await store.append(sale(1))
    with raw(db_path) as db:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE entries SET hash = ? WHERE seq = 1", ("0" * 64,))
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("DELETE FROM entries WHERE seq = 1")
        # A second row claiming the same request id.
        body = db.execute("SELECT body FROM entries WHERE seq = 1").fetchone()[0]
        with pytest.raises(sqlite3.IntegrityError):
            db.execute(
                "INSERT INTO entries (seq, prev_hash, hash, body) VALUES (2, 'x', 'y', ?)",
                (body,),
            )
    async with await LedgerStore.open(db_path, terminal="T-0001", readonly=True) as ro:
        assert await ro.verify() is None


async def test_second_writer_in_another_process_is_refused(db_path: Path) -> None:
    child = textwrap.dedent(
        """
        import asyncio, sys
        from pathlib import Path
        from ledger.store import LedgerStore, LedgerLockedError

        async def main() -> None:
            try:
                s = await LedgerStore.open(Path(sys.argv[1]), terminal="T-0001")
            except LedgerLockedError as e:
                print("LOCKED", e)
                return
            await s.close()
            print("OPENED")

        asyncio.run(main())
        """
    )
    argv = [sys.executable, "-c", child, str(db_path)]
    async with await LedgerStore.open(db_path, terminal="T-0001") as store:
        await store.append(sale(1))
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, cwd=REPO_ROOT
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        text = out.decode().strip().splitlines()[-1]
        assert text.startswith("LOCKED"), text
        assert str(db_path) in text
        # A second writer inside this process is refused too.
        with pytest.raises(LedgerLockedError):
            await LedgerStore.open(db_path, terminal="T-0001")
    # Once closed, another process can take over.
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, cwd=REPO_ROOT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert out.decode().strip().splitlines()[-1] == "OPENED"


async def test_readonly_open_reads_beside_a_writer_and_never_writes(db_path: Path) -> None:
    async with await LedgerStore.open(db_path, terminal="T-0001") as writer:
        await writer.append(sale(1))
        async with await LedgerStore.open(db_path, terminal="T-0001", readonly=True) as ro:
            assert ro.head.seq == 1
            await writer.append(sale(2))
            assert (await ro.refresh_head()).seq == 2
            assert [e.seq for e in await ro.read_after(0, 10)] == [1, 2]
            with pytest.raises(LedgerError, match="read-only"):
                await ro.append(sale(3))
            assert await ro.verify() is None
    with raw(db_path) as db:
        assert db.execute("SELECT count(*) FROM entries").fetchone()[0] == 2


async def test_readonly_open_of_a_missing_ledger_creates_nothing(db_path: Path) -> None:
    with pytest.raises(LedgerError, match=str(db_path)):
        await LedgerStore.open(db_path, terminal="T-0001", readonly=True)
    assert await asyncio.to_thread(os.listdir, db_path.parent) == []


async def test_garbage_file_is_reported_corrupt_naming_it(db_path: Path) -> None:
    await asyncio.to_thread(db_path.write_bytes, b"this is not a database at all" * 200)
    with pytest.raises(LedgerCorruptError, match=str(db_path)):
        await LedgerStore.open(db_path, terminal="T-0001")
    with pytest.raises(LedgerCorruptError, match=str(db_path)):
        await LedgerStore.open(db_path, terminal="T-0001", readonly=True)
    # The failed open released its lock: a later open is not "locked".
    await asyncio.to_thread(db_path.unlink)
    async with await LedgerStore.open(db_path, terminal="T-0001") as store:
        assert store.head.seq == 0


async def test_damaged_pages_are_reported_corrupt(db_path: Path) -> None:
    async with await LedgerStore.open(db_path, terminal="T-0001") as store:
        await asyncio.gather(*(store.append(sale(i)) for i in range(300)))
    data = bytearray(await asyncio.to_thread(db_path.read_bytes))
    page = 4096
    assert len(data) > 8 * page
    # Scribble over the middle of the file (b-tree pages), keeping the header intact.
    for off in range(3 * page, len(data) - page, page):
        data[off : off + 64] = b"\xa5" * 64
    await asyncio.to_thread(db_path.write_bytes, bytes(data))
    with pytest.raises(LedgerCorruptError, match=str(db_path)):
        await LedgerStore.open(db_path, terminal="T-0001", readonly=True)


async def test_a_ledger_of_another_terminal_is_refused(db_path: Path) -> None:
    async with await LedgerStore.open(db_path, terminal="T-0001") as store:
        await store.append(sale(1))
    with pytest.raises(LedgerError, match="T-0001"):
        await LedgerStore.open(db_path, terminal="T-0002")
    with pytest.raises(LedgerError, match="T-0001"):
        await LedgerStore.open(db_path, terminal="T-0002", readonly=True)


async def test_ledger_info_names_the_owner_and_head_without_writing(db_path: Path) -> None:
    with pytest.raises(LedgerError, match=str(db_path)):
        await ledger_info(db_path)
    assert await asyncio.to_thread(os.listdir, db_path.parent) == []
    async with await LedgerStore.open(db_path, terminal="T-0001") as store:
        await store.append(sale(1))
        last = (await store.append(sale(2))).entry
        # Beside the writer: no lock is taken.
        info = await ledger_info(db_path)
    assert (info.terminal, info.head.seq, info.head.hash) == ("T-0001", 2, last.hash)
    with raw(db_path) as db:
        assert db.execute("SELECT count(*) FROM entries").fetchone()[0] == 2


async def test_ledger_info_of_a_file_that_is_no_ledger_is_an_error(db_path: Path) -> None:
    await asyncio.to_thread(db_path.write_bytes, b"this is not a database at all" * 200)
    with pytest.raises(LedgerCorruptError, match=str(db_path)):
        await ledger_info(db_path)
    await asyncio.to_thread(db_path.unlink)
    with raw(db_path) as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(LedgerCorruptError, match="not a kartapos ledger"):
        await ledger_info(db_path)


async def test_append_after_close_is_refused(db_path: Path) -> None:
    store = await LedgerStore.open(db_path, terminal="T-0001")
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(LedgerError):
        await store.append(sale(1))
    with pytest.raises(LedgerError):
        await store.get(1)


async def test_close_commits_what_was_queued(db_path: Path) -> None:
    store = await LedgerStore.open(db_path, terminal="T-0001")
    tasks = [asyncio.create_task(store.append(sale(i))) for i in range(20)]
    await asyncio.sleep(0)
    await store.close()
    assert {t.result().entry.seq for t in tasks} == set(range(1, 21))


def test_process_exits_after_close(db_path: Path) -> None:
    """An unclosed aiosqlite connection keeps its thread (and the process) alive."""
    child = textwrap.dedent(
        """
        import asyncio, sys
        from pathlib import Path
        from ledger.store import LedgerStore
        from tests.ledger.test_store_support import sale

        async def main() -> None:
            async with await LedgerStore.open(Path(sys.argv[1]), terminal="T-0001") as s:
                await s.append(sale(1))
            ro = await LedgerStore.open(Path(sys.argv[1]), terminal="T-0001", readonly=True)
            await ro.verify()
            await ro.close()

        asyncio.run(main())
        print("done")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", child, str(db_path)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "done"


async def test_a_failing_commit_fails_only_its_own_entry_and_is_logged_once(
    db_path: Path,
) -> None:
    async with await LedgerStore.open(db_path, terminal="T-0001") as store:
        await store.append(sale(0))
        # Another connection makes inserts of one card fail, like a disk error would.
        with raw(db_path) as db:
            db.execute(
                "CREATE TRIGGER poison BEFORE INSERT ON entries "
                "WHEN json_extract(CAST(NEW.body AS TEXT), '$.card') = '99-999999' "
                "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
            )
        with structlog.testing.capture_logs() as logs:
            results = await asyncio.gather(
                store.append(sale(1)),
                store.append(sale(2, card="99-999999")),
                store.append(sale(3, card="99-999999")),
                store.append(sale(4)),
                return_exceptions=True,
            )
            assert isinstance(results[1], LedgerError)
            assert "disk on fire" in str(results[1])
            assert isinstance(results[2], LedgerError)
            ok = [r for r in (results[0], results[3]) if not isinstance(r, BaseException)]
            assert sorted(r.entry.seq for r in ok) == [2, 3]
            assert store.head.seq == 3
            with raw(db_path) as db:
                db.execute("DROP TRIGGER poison")
            again = await store.append(sale(2, card="99-999999"))
            assert again.created
            assert again.entry.seq == 4
        events = [e["event"] for e in logs]
        assert events.count("ledger_commit_failed") == 1
        assert events.count("ledger_commit_recovered") == 1
        assert await store.verify() is None


async def test_appends_never_hang_when_the_writer_is_cancelled(db_path: Path) -> None:
    store = await LedgerStore.open(db_path, terminal="T-0001")
    try:
        tasks = [asyncio.create_task(store.append(sale(i))) for i in range(50)]
        await asyncio.sleep(0)
        assert store._writer is not None
        store._writer.cancel()  # as when close() itself is cancelled mid-commit
        done, pending = await asyncio.wait(tasks, timeout=10)
        assert not pending
        failed = [t for t in done if t.exception() is not None]
        assert all(isinstance(t.exception(), LedgerError) for t in failed)
        with pytest.raises(LedgerError, match="closed"):
            await store.append(sale(99))
    finally:
        await store.close()
    # Whatever was written is a valid chain, and a retry learns each outcome.
    async with await LedgerStore.open(db_path, terminal="T-0001") as store:
        assert await store.verify() is None
        for i in range(50):
            await store.append(sale(i))
        assert store.head.seq == 50


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir())}


async def test_readonly_open_never_writes_the_database(db_path: Path) -> None:
    """SQLite needs its -shm/-wal sidecars for any WAL reader and may create them; the
    database file and every entry stay untouched, and no WAL frame is written."""
    async with await LedgerStore.open(db_path, terminal="T-0001") as store:
        await asyncio.gather(*(store.append(sale(i)) for i in range(30)))
    before = await asyncio.to_thread(_snapshot, db_path.parent)
    async with await LedgerStore.open(db_path, terminal="T-0001", readonly=True) as ro:
        assert await ro.verify() is None
        await ro.check_integrity()
        assert len(await ro.read_after(0, 100)) == 30
    after = await asyncio.to_thread(_snapshot, db_path.parent)
    assert {k: v for k, v in after.items() if k in before} == before
    assert set(after) - set(before) <= {"ledger.sqlite-wal", "ledger.sqlite-shm"}
    assert after.get("ledger.sqlite-wal", (0, b""))[1] == b""
