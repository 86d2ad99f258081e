"""The city server on PostgreSQL: what only that engine has to show.

Every other central test runs on both engines (tests/conftest.py ``central_engine``);
these check the translation of the schema (BIGINT, append-only triggers, versioned
migrations), the locking that keeps concurrent uploads and leases right when many
connections write at once, the feeds' snapshots read through server-side cursors, and
a PostgreSQL killed in the middle of an upload (docs/architecture.md §11).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path

import msgspec
import psycopg
import pytest

from ledger.clock import FakeClock
from ledger.domain import Benefit, CardRecord, CardStatus, Holder, Program, Rules
from ledger.entry import GENESIS_HASH
from ledger.store import LedgerStore
from sync.catalog import Catalog
from sync.central import CentralDB, CentralError
from sync.central import db as central_db
from sync.central.db import SCHEMA_VERSION
from sync.central.engine import Conn, EngineError, PostgresConn, postgresql_ddl, postgresql_sql
from sync.central.verify import verify_chain_of
from sync.client import SyncClient
from sync.keys import load_or_create_key
from tests.pgserver import PostgresServer, running_postgres
from tests.sync.central_harness import PARTNER, CentralHarness, make_entries
from tests.sync.test_client_env import (
    PID,
    TID,
    TOKEN,
    Faults,
    append_sales,
    local_entries,
    make_config,
)


@pytest.fixture
def pg_database(postgres: PostgresServer) -> Iterator[str]:
    url = postgres.create_database("pgonly")
    yield url
    postgres.drop_databases([url])


def test_placeholders_become_psycopg_ones_and_literals_stay() -> None:
    sql = "SELECT '?', \"a?\", x FROM t INDEXED BY t_by_x WHERE a = ? AND b LIKE 'x%' || ?"
    assert postgresql_sql(sql) == (
        "SELECT '?', \"a?\", x FROM t WHERE a = %s AND b LIKE 'x%' || %s"
    )
    assert postgresql_sql("SELECT 5 % 3 WHERE a = ?") == "SELECT 5 %% 3 WHERE a = %s"
    with pytest.raises(EngineError, match="ON CONFLICT"):
        postgresql_sql("INSERT OR REPLACE INTO t VALUES (?)")
    with pytest.raises(EngineError, match="numbered"):
        postgresql_sql("SELECT ?1")


def test_the_schema_translation_refuses_what_it_cannot_translate() -> None:
    ddl = postgresql_ddl(
        "CREATE TABLE t (a INTEGER NOT NULL CHECK (typeof(a) = 'integer'), b BLOB) WITHOUT ROWID;"
    )
    assert ddl == "CREATE TABLE t (a BIGINT NOT NULL CHECK (TRUE), b BYTEA) ;"
    with pytest.raises(EngineError, match="trigger"):
        postgresql_ddl("CREATE TRIGGER IF NOT EXISTS x AFTER INSERT ON t BEGIN SELECT 1; END;")
    with pytest.raises(EngineError, match="INSERT OR REPLACE"):
        postgresql_ddl("INSERT OR REPLACE INTO meta VALUES ('a', 1);")


async def test_every_integer_is_a_bigint_and_entries_are_append_only(pg_database: str) -> None:
    async with await CentralDB.open(pg_database) as db:
        assert db.engine == "postgresql"
        await db.enrol("T-1", PARTNER, "token-of-t-1-xxxxxxxx", None)
        await db.upsert_cards([_card("01-000018")])
    with psycopg.connect(pg_database, autocommit=True) as pg:
        narrow = pg.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'public' AND data_type IN"
            " ('integer', 'smallint', 'numeric', 'real', 'double precision')"
        ).fetchall()
        assert narrow == []
        kinds: dict[str, str] = dict(
            pg.execute(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_name = 'cards'"
            ).fetchall()
        )
        assert kinds["points"] == "bigint"
        assert kinds["body"] == "bytea"
        # An overflow is refused; SQLite without its CHECK would have made it a REAL.
        pg.execute("UPDATE cards SET points = 9223372036854775807")
        with pytest.raises(psycopg.errors.NumericValueOutOfRange):
            pg.execute("UPDATE cards SET points = points + 1")
        pg.execute(
            "INSERT INTO entries (terminal, seq, hash, body, received_at)"
            " VALUES ('T-1', 1, 'h', '\\x7b7d', 'now')"
        )
        with pytest.raises(psycopg.IntegrityError, match="append-only"):
            pg.execute("UPDATE entries SET hash = 'x'")
        with pytest.raises(psycopg.IntegrityError, match="append-only"):
            pg.execute("DELETE FROM entries")
        assert pg.execute("SELECT count(*) FROM entries").fetchone() == (1,)


async def test_the_schema_version_is_kept_and_a_newer_database_is_refused(
    pg_database: str,
) -> None:
    async with await CentralDB.open(pg_database) as db:
        assert await db.meta("schema") == SCHEMA_VERSION
        await db.upsert_cards([_card("01-000018")])
    async with await CentralDB.open(pg_database) as db:  # opening again changes nothing
        assert await db.meta("schema") == SCHEMA_VERSION
        assert (await db.card("01-000018")) is not None
    with psycopg.connect(pg_database, autocommit=True) as pg:
        pg.execute("UPDATE meta SET value = value + 1 WHERE key = 'schema'")
    with pytest.raises(CentralError, match=f"schema {SCHEMA_VERSION + 1}"):
        await CentralDB.open(pg_database)


async def test_a_migration_step_runs_in_order_at_open(
    pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with await CentralDB.open(pg_database):
        pass
    with psycopg.connect(pg_database, autocommit=True) as pg:
        pg.execute("UPDATE meta SET value = %s WHERE key = 'schema'", (SCHEMA_VERSION - 1,))
    ran: list[int] = []

    def step(db: Conn) -> None:
        ran.append(central_db._meta(db, "schema"))
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (SCHEMA_VERSION,))

    monkeypatch.setitem(central_db.MIGRATIONS["postgresql"], SCHEMA_VERSION - 1, step)
    async with await CentralDB.open(pg_database) as db:
        assert await db.meta("schema") == SCHEMA_VERSION
    assert ran == [SCHEMA_VERSION - 1]


# --- many connections at once ------------------------------------------------------------

LIMITED = "B-PERSONS"
MAX_PERSONS = 7
BASE = 1


async def test_concurrent_leases_never_share_a_slot(pg_database: str) -> None:
    """Six tills, each on a connection of its own (as six city servers would be), ask at
    once, over and over: the sum of max(granted, admitted) stays within max_persons."""
    tills = [f"T-{i}" for i in range(6)]
    rules = Rules(
        version="lease-race",
        benefits=(
            Benefit(
                id=LIMITED, name="Pula", limited=True, max_persons=MAX_PERSONS, persons_used=BASE
            ),
        ),
    )
    async with await CentralDB.open(pg_database) as setup:
        await setup.load_rules(PARTNER, rules)
        for t in tills:
            await setup.enrol(t, PARTNER, f"token-{t}-xxxxxxxxxxxx", None)
    dbs = [await CentralDB.open(pg_database) for _ in tills]
    rng = random.Random(5)
    admitted = dict.fromkeys(tills, 0)
    granted = dict.fromkeys(tills, 0)
    try:
        for _ in range(15):

            async def ask(i: int, t: str, want: int) -> None:
                out = await dbs[i].lease(t, LIMITED, admitted[t], want)
                granted[t] = out.granted

            await asyncio.gather(
                *(ask(i, t, admitted[t] + rng.randint(0, 4)) for i, t in enumerate(tills))
            )
            for t in tills:  # each till admits within what it was granted
                admitted[t] = min(granted[t], admitted[t] + rng.randint(0, 1))
            held = await dbs[0].leases(PARTNER, LIMITED)
            assert sum(max(g, a) for g, a in held.values()) + BASE <= MAX_PERSONS, held
        # The room was really contended for: every slot ended up granted.
        held = await dbs[0].leases(PARTNER, LIMITED)
        assert sum(max(g, a) for g, a in held.values()) + BASE == MAX_PERSONS, held
    finally:
        for d in dbs:
            await d.close()


async def test_concurrent_uploads_of_many_terminals_credit_every_entry_once(
    pg_database: str, tmp_path: Path
) -> None:
    """Eight terminals upload at once through eight servers on one database, all onto
    the same card, each batch twice (a retry racing the original)."""
    async with CentralHarness.start(tmp_path, database=pg_database) as h:
        start = (await h.db.card("01-000018")) or pytest.fail("demo card missing")
        terminals = [f"T-R{i}" for i in range(8)]
        for t in terminals:
            await h.enrol(t, PARTNER, h.public_key)
        # Honest sales (what the demo rules grant), so the city credits every one (§5.9).
        chains = {t: make_entries(30, terminal=t) for t in terminals}
        dbs = [await CentralDB.open(pg_database) for _ in range(len(terminals))]
        try:

            async def upload(i: int, t: str) -> list[str]:
                kinds = []
                for lo in range(0, 30, 10):
                    raws = [msgspec.to_builtins(e) for e in chains[t][lo : lo + 10]]
                    batch = verify_chain_of(t, raws)
                    one, two = await asyncio.gather(
                        dbs[i].append(t, PARTNER, batch),
                        dbs[(i + 1) % len(dbs)].append(t, PARTNER, batch),
                    )
                    kinds.append("".join(sorted((one.kind[0], two.kind[0]))))
                return kinds

            results = await asyncio.gather(*(upload(i, t) for i, t in enumerate(terminals)))
        finally:
            for d in dbs:
                await d.close()
        assert all(k == ["ar"] * 3 for k in results), results  # one appended, one replay
        for t in terminals:
            assert await h.db.entry_count(t) == 30
            assert (await h.db.terminal(t)) is not None
        card = await h.db.card("01-000018")
        assert card is not None
        earned = sum(e.points_earned for chain in chains.values() for e in chain)
        assert earned > 8 * 30
        assert card.points == start.points + earned


async def test_the_card_feed_reads_one_snapshot_in_chunks(
    pg_database: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More cards than one chunk. A balance committed elsewhere just after the feed read
    its header's version, and a card blocked while the feed is being read, are both not
    in it (one REPEATABLE READ snapshot, a server-side cursor), and are in the next delta."""
    n = central_db.FEED_CHUNK * 2 + 10
    first, last = "01-000000", f"01-{n - 1:06d}"
    armed: list[bool] = []
    real_meta = central_db._meta

    def meta_then_commit_elsewhere(db: Conn, key: str) -> int:
        value = real_meta(db, key)
        if armed and key == "cards_version" and db.in_transaction:
            armed.clear()
            with psycopg.connect(pg_database, autocommit=True) as other:
                other.execute(
                    "UPDATE cards SET points = 77, version = version + 1 WHERE number = %s",
                    (first,),
                )
        return value

    monkeypatch.setattr(central_db, "_meta", meta_then_commit_elsewhere)
    async with await CentralDB.open(pg_database, clock) as db:
        cards = [_card(f"01-{i:06d}") for i in range(n)]
        version = await db.upsert_cards(cards)
        armed.append(True)
        feed = db.card_feed(None)
        header = msgspec.json.decode(await anext(feed))
        assert not armed  # the other connection committed inside the feed's transaction
        assert header["version"] == version
        chunks = [await anext(feed)]  # the first chunk is read: the cursor is open
        blocked = msgspec.structs.replace(cards[-1], status=CardStatus.BLOCKED)
        await db.upsert_cards([blocked])  # committed on the main connection meanwhile
        chunks += [c async for c in feed]
        lines = [msgspec.json.decode(x) for x in b"".join(chunks).splitlines()]
        assert lines[-1] == {"end": True, "count": n}
        by_number = {x["number"]: x for x in lines[:-1]}
        assert len(by_number) == n
        assert by_number[first]["points"] == 0
        assert by_number[last]["status"] == "active"
        delta = [msgspec.json.decode(x) async for x in _lines(db.card_feed(version))]
        changed = {x["number"]: x for x in delta[1:-1]}
        assert set(changed) == {first, last}
        assert (changed[first]["points"], changed[last]["status"]) == (77, "blocked")


async def _lines(feed: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for chunk in feed:
        for line in chunk.splitlines():
            yield line


def _card(number: str) -> CardRecord:
    return CardRecord(
        number=number,
        status=CardStatus.ACTIVE,
        holder=Holder(id=f"H-{number}", display_name="Anna K.", birth_date=None),
        programs=(Program(code="resident", valid_to=date(2030, 12, 31)),),
    )


# --- PostgreSQL killed mid-upload ----------------------------------------------------------


async def test_postgresql_killed_mid_upload_the_till_lands_every_entry_once(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL of the postmaster inside the second batch's transaction (its entries
    inserted, not committed), then a restart: the server answers 500 meanwhile, the
    till's retries land every entry exactly once and the chain verifies."""
    with running_postgres() as pg:  # a server of its own: this one gets killed
        database = pg.create_database("killed")
        killed: list[int] = []
        real_apply_usage = central_db._apply_usage

        def apply_usage_then_die(db: Conn, *args: object) -> None:
            real_apply_usage(db, *args)  # type: ignore[arg-type]
            if isinstance(db, PostgresConn) and not killed and db.in_transaction:
                calls.append(1)
                if len(calls) == 2:  # the second batch, mid-transaction
                    assert pg.process is not None
                    killed.append(pg.process.pid)
                    pg.kill()
                    pg.start()  # back before the till's retry (the next statement fails)

        calls: list[int] = []
        monkeypatch.setattr(central_db, "_apply_usage", apply_usage_then_die)
        faults = Faults()
        (tmp_path / "state").mkdir()
        key = load_or_create_key(tmp_path / "state")
        async with CentralHarness.start(
            tmp_path, database=database, middlewares=[faults.middleware], clock=clock
        ) as h:
            await h.db.enrol(TID, PID, TOKEN, key.public_key_b64)
            async with (
                await LedgerStore.open(tmp_path / "state" / "ledger.sqlite", terminal=TID) as store,
                await Catalog.open(tmp_path / "state" / "catalog.sqlite", clock) as catalog,
            ):
                await append_sales(store, clock, 45)

                async def no_wait(_s: float) -> None:
                    await asyncio.sleep(0)

                client = SyncClient(
                    make_config(tmp_path / "state", h.url, batch_size=10),
                    store,
                    catalog,
                    key,
                    clock,
                    sleep=no_wait,
                )
                try:
                    result = await client.upload()
                finally:
                    await client.close()
                assert result.ok, result
                assert killed, "the kill never happened"
                assert pg.process is not None
                assert pg.process.pid != killed[0]
                assert faults.count("POST", "entries", 500) >= 1  # the killed batch failed
                mine = [(e.seq, e.hash) for e in await local_entries(store)]
                held = await h.db.entries(TID)
                assert [(int(e["seq"]), str(e["hash"])) for e in held] == mine
                assert await h.db.entry_count(TID) == 45
                head = await h.db.terminal(TID)
                assert head is not None
                assert head.head.seq == 45
        # The chain the city holds verifies from genesis, read straight from PostgreSQL.
        with psycopg.connect(database) as conn:
            bodies = [r[0] for r in conn.execute("SELECT body FROM entries ORDER BY seq")]
        chain = verify_chain_of(TID, [msgspec.json.decode(b) for b in bodies])
        assert (chain.first_seq, chain.first_prev_hash, chain.last_seq) == (1, GENESIS_HASH, 45)
