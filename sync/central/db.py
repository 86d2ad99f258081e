"""The reference city server's database: SQLite (WAL, synchronous=FULL) or PostgreSQL.

Each operation is one transaction that runs in the engine's thread in one hop
(``sync/central/engine.py``: aiosqlite's, or psycopg's worker), so a
batch is appended (entries, head, card balances, benefit users, usage per holder, card
list and usage versions) atomically or not at all. The card and usage feeds read a
snapshot on a connection of their own. A lease (contract 11.5) is one transaction too.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self, TypeVar

import msgspec
import structlog

from ledger.canonical import canonical
from ledger.clock import Clock, SystemClock, format_ts
from ledger.domain import Benefit, CardRecord, CardRemoved, CardStatus, Rules
from ledger.entry import GENESIS_HASH, Entry, EntryKind, Head
from ledger.periods import local_day, window_dates
from sync.central import stats
from sync.central.business import Held, check_other, check_sale, check_void
from sync.central.engine import (
    Conn,
    Cursor,
    Engine,
    EngineError,
    SqliteEngine,
    database_errors,
    describe,
    open_engine,
    run_in_connection_thread,
)
from sync.central.verify import VerifiedBatch
from sync.wire import CardsEnd, CardsHeader, UsageEnd, UsageHeader, UsageLine, encode_line

log = structlog.get_logger()

_T = TypeVar("_T")

SCHEMA_VERSION: Final = 2
# The usage tables (benefit_usage, usage_sales, usage_floors, leases) are added to a
# schema-2 database in place: ``_SCHEMA`` creates them, and ``_migrate_usage`` fills
# benefit_usage from the entries already held once (meta ``usage_schema``).
USAGE_SCHEMA: Final = 1
FEED_CHUNK: Final = 2000

# Usage across the partner's tills (contract 11.4) and persons leases (11.5).
_USAGE_TABLES: Final = """
-- Net quantity of a benefit a holder used on a local date through the partner's tills;
-- ``version``: the usage_version of the transaction that last changed the row. A row
-- that falls to 0 stays (a delta carries it as a removal).
CREATE TABLE IF NOT EXISTS benefit_usage (
    partner_id TEXT NOT NULL,
    benefit_id TEXT NOT NULL,
    holder     TEXT NOT NULL,
    date       TEXT NOT NULL,
    qty        INTEGER NOT NULL CHECK (typeof(qty) = 'integer'),
    version    INTEGER NOT NULL,
    PRIMARY KEY (partner_id, benefit_id, holder, date)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS benefit_usage_by_version ON benefit_usage (partner_id, version);
CREATE INDEX IF NOT EXISTS benefit_usage_by_date ON benefit_usage (partner_id, benefit_id, date);
-- What each received sale added to benefit_usage (its holder resolved when received),
-- so a void takes back exactly that, once.
CREATE TABLE IF NOT EXISTS usage_sales (
    terminal   TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    benefit_id TEXT NOT NULL,
    partner_id TEXT NOT NULL,
    holder     TEXT NOT NULL,
    date       TEXT NOT NULL,
    qty        INTEGER NOT NULL,
    voided     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (terminal, seq, benefit_id)
) WITHOUT ROWID;
-- A partner's rules loaded at usage_version ``floor``: an older delta may lack lines of a
-- benefit that gained a limit, so a till older than it gets the full feed.
CREATE TABLE IF NOT EXISTS usage_floors (
    partner_id TEXT PRIMARY KEY,
    floor      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    partner_id TEXT NOT NULL,
    terminal   TEXT NOT NULL,
    benefit_id TEXT NOT NULL,
    granted    INTEGER NOT NULL CHECK (typeof(granted) = 'integer' AND granted >= 0),
    admitted   INTEGER NOT NULL CHECK (typeof(admitted) = 'integer' AND admitted >= 0),
    updated_at TEXT NOT NULL,
    PRIMARY KEY (partner_id, benefit_id, terminal)
) WITHOUT ROWID;
"""

# Business checks (docs/architecture.md §5.9): every rules version served, the entries
# held in quarantine, and which sale each void cancelled. Added in place (meta
# ``business_schema``); ``_migrate_business`` fills them from what is already held.
BUSINESS_SCHEMA: Final = 1
MAX_HELD_LISTED: Final = 1000  # a head reply names at most this many held entries
_BUSINESS_TABLES: Final = """
CREATE TABLE IF NOT EXISTS rules_versions (
    partner_id   TEXT NOT NULL,
    version      TEXT NOT NULL,
    rules        BLOB NOT NULL,
    first_served TEXT NOT NULL,
    PRIMARY KEY (partner_id, version)
);
CREATE TABLE IF NOT EXISTS quarantine (
    terminal   TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    partner_id TEXT NOT NULL,
    reason     TEXT NOT NULL,
    detail     TEXT NOT NULL,
    status     TEXT NOT NULL DEFAULT 'held' CHECK (status IN ('held', 'approved', 'rejected')),
    held_at    TEXT NOT NULL,
    decided_at TEXT,
    decided_by TEXT,
    note       TEXT,
    PRIMARY KEY (terminal, seq)
);
CREATE INDEX IF NOT EXISTS quarantine_by_status ON quarantine (status, terminal, seq);
-- Who read the register: every card-feed download (docs/architecture.md §5.9).
CREATE TABLE IF NOT EXISTS feed_reads (
    terminal TEXT NOT NULL,
    at       TEXT NOT NULL,
    is_full  INTEGER NOT NULL,
    since    INTEGER,
    version  INTEGER NOT NULL,
    lines    INTEGER NOT NULL,
    complete INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS feed_reads_by_terminal ON feed_reads (terminal, is_full, at);
CREATE TABLE IF NOT EXISTS voids (
    terminal TEXT NOT NULL,
    ref      INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    PRIMARY KEY (terminal, ref)
);
"""

# Partner statistics (sync/central/stats.py): running sums per partner and local day of
# the credited entries. Added in place (meta ``stats_schema``); ``_migrate_stats`` fills
# them from what is already held, once.
STATS_SCHEMA: Final = 1
_STATS_TABLES: Final = """
CREATE TABLE IF NOT EXISTS stats_sales (
    partner_id      TEXT NOT NULL,
    date            TEXT NOT NULL,
    terminal        TEXT NOT NULL,
    cashier         TEXT NOT NULL,
    sales           INTEGER NOT NULL CHECK (typeof(sales) = 'integer'),
    voids           INTEGER NOT NULL CHECK (typeof(voids) = 'integer'),
    sales_amount_gr INTEGER NOT NULL CHECK (typeof(sales_amount_gr) = 'integer'),
    voids_amount_gr INTEGER NOT NULL CHECK (typeof(voids_amount_gr) = 'integer'),
    discount_gr     INTEGER NOT NULL CHECK (typeof(discount_gr) = 'integer'),
    points_earned   INTEGER NOT NULL CHECK (typeof(points_earned) = 'integer'),
    points_redeemed INTEGER NOT NULL CHECK (typeof(points_redeemed) = 'integer'),
    PRIMARY KEY (partner_id, date, terminal, cashier)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stats_benefits (
    partner_id TEXT NOT NULL,
    date       TEXT NOT NULL,
    benefit_id TEXT NOT NULL,
    uses       INTEGER NOT NULL CHECK (typeof(uses) = 'integer'),
    quantity   INTEGER NOT NULL CHECK (typeof(quantity) = 'integer'),
    points     INTEGER NOT NULL CHECK (typeof(points) = 'integer'),
    PRIMARY KEY (partner_id, date, benefit_id)
) WITHOUT ROWID;
"""

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta VALUES ('schema', @SCHEMA@), ('cards_version', 0),
    ('delta_floor', 0), ('demo_seeded', 0), ('usage_version', 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS terminals (
    id             TEXT PRIMARY KEY,
    partner_id     TEXT NOT NULL,
    token_sha256   TEXT NOT NULL UNIQUE,
    public_key     TEXT,
    head_seq       INTEGER NOT NULL DEFAULT 0,
    head_hash      TEXT NOT NULL DEFAULT '@GENESIS@',
    enrolled_at    TEXT NOT NULL,
    last_upload_at TEXT
);
CREATE TABLE IF NOT EXISTS entries (
    terminal    TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    hash        TEXT NOT NULL,
    body        BLOB NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (terminal, seq)
);
CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
    BEGIN SELECT RAISE(ABORT, 'entries are append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
    BEGIN SELECT RAISE(ABORT, 'entries are append-only'); END;
CREATE TABLE IF NOT EXISTS cards (
    number       TEXT PRIMARY KEY,
    body         BLOB NOT NULL,
    -- SQLite turns an integer that overflows into a REAL; a float must never reach a feed.
    points       INTEGER NOT NULL DEFAULT 0 CHECK (typeof(points) = 'integer'),
    points_as_of TEXT,
    version      INTEGER NOT NULL,
    removed      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS cards_by_version ON cards (version);
CREATE TABLE IF NOT EXISTS partners (
    id         TEXT PRIMARY KEY,
    rules      BLOB NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS benefit_uses (
    partner_id TEXT NOT NULL,
    benefit_id TEXT NOT NULL,
    card       TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    PRIMARY KEY (partner_id, benefit_id, card)
) WITHOUT ROWID;
@USAGE_TABLES@
""".replace("@SCHEMA@", str(SCHEMA_VERSION)).replace("@GENESIS@", GENESIS_HASH)
_SCHEMA_ALL: Final = _SCHEMA.replace(
    "@USAGE_TABLES@", _USAGE_TABLES + _BUSINESS_TABLES + _STATS_TABLES
)


class CentralError(Exception):
    """The city server's database cannot do what was asked; ``str()`` is one line."""


@dataclass(frozen=True)
class TerminalRow:
    id: str
    partner_id: str
    public_key: str | None
    head: Head
    enrolled_at: str
    last_upload_at: str | None


class LeaseRefused(CentralError):
    """No lease can be given for this benefit (unknown, or without a persons limit)."""


@dataclass(frozen=True)
class LeaseOutcome:
    """What a lease request did (contract 11.5)."""

    benefit: str
    granted: int
    persons_used: int  # base (other channels) + every till's admitted
    held: int  # the grant this till held before the request
    max_persons: int
    committed: int  # base + sum over tills of max(granted, admitted), after the request


@dataclass(frozen=True)
class AppendOutcome:
    """What an upload did: appended, a replay, or refused as a gap or a fork."""

    kind: Literal["appended", "replay", "gap", "fork"]
    head: Head
    appended: int = 0
    seq: int | None = None  # fork: the first seq whose hash differs
    # (seq, reason) of the batch's entries held in quarantine (stored, not credited)
    quarantined: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class FeedRead:
    """One card-feed download: who, when, full or delta, how many lines were sent."""

    terminal: str
    at: str
    full: bool
    since: int | None
    version: int
    lines: int
    complete: bool  # the feed was sent to its end line (False: the client went away)


@dataclass(frozen=True)
class HeldEntry:
    """An entry in quarantine, as a city operator reviews it."""

    terminal: str
    seq: int
    partner_id: str
    reason: str
    detail: str
    status: Literal["held", "approved", "rejected"]
    held_at: str
    decided_at: str | None
    decided_by: str | None
    note: str | None
    entry: dict[str, Any]


def token_digest(token: str) -> str:
    """Tokens are stored only as their sha256."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


_T_SELECT = (
    "SELECT id, partner_id, public_key, head_seq, head_hash, enrolled_at, last_upload_at"
    " FROM terminals"
)


def _terminal_row(r: tuple[Any, ...] | None) -> TerminalRow | None:
    if r is None:
        return None
    return TerminalRow(
        id=r[0],
        partner_id=r[1],
        public_key=r[2],
        head=Head(seq=r[3], hash=r[4]),
        enrolled_at=r[5],
        last_upload_at=r[6],
    )


_card_encoder = msgspec.json.Encoder()
_rules_decoder = msgspec.json.Decoder(Rules)


def card_body(card: CardRecord) -> bytes:
    """A card's feed line without its balance (points are kept in their own columns)."""
    d = msgspec.to_builtins(card)
    d.pop("points", None)
    d.pop("points_as_of", None)
    d.pop("points_seq", None)  # the till's own bookkeeping, never a feed-line field
    return _card_encoder.encode(d)


def _card_line(body: bytes, points: int, as_of: str | None) -> bytes:
    if type(points) is not int:  # the CHECK keeps floats out; the feed never carries one
        raise CentralError(f"card balance {points!r} is not an integer")
    tail = b'"' + as_of.encode("ascii") + b'"' if as_of else b"null"
    return b"".join(
        (body[:-1], b',"points":', str(points).encode("ascii"), b',"points_as_of":', tail, b"}\n")
    )


def _removed_line(number: str) -> bytes:
    return encode_line(CardRemoved(number=number, removed=True))


def _bump_version(db: Conn) -> int:
    row = db.execute(
        "UPDATE meta SET value = value + 1 WHERE key = 'cards_version' RETURNING value"
    ).fetchone()
    return int(row[0])


def _meta(db: Conn, key: str) -> int:
    return int(db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])


def _migrate_1_to_2(db: Conn) -> None:
    """Schema 2: card balances are integers by a CHECK; a REAL an overflow left is repaired."""
    floats = int(
        db.execute("SELECT count(*) FROM cards WHERE typeof(points) != 'integer'").fetchone()[0]
    )
    db.executescript(
        """
        BEGIN IMMEDIATE;
        CREATE TABLE cards_v2 (
            number       TEXT PRIMARY KEY,
            body         BLOB NOT NULL,
            points       INTEGER NOT NULL DEFAULT 0 CHECK (typeof(points) = 'integer'),
            points_as_of TEXT,
            version      INTEGER NOT NULL,
            removed      INTEGER NOT NULL DEFAULT 0
        );
        INSERT INTO cards_v2
            SELECT number, body,
                   CASE WHEN typeof(points) = 'integer' THEN points
                        ELSE CAST(max(min(points, 9223372036854775807), -9223372036854775808)
                                  AS INTEGER) END,
                   points_as_of, version, removed
            FROM cards;
        DROP TABLE cards;
        ALTER TABLE cards_v2 RENAME TO cards;
        CREATE INDEX IF NOT EXISTS cards_by_version ON cards (version);
        UPDATE meta SET value = 2 WHERE key = 'schema';
        COMMIT;
        """
    )
    log.info("central_schema_migrated", schema=2, balances_repaired=floats)


def _put_meta(db: Conn, key: str, value: int) -> None:
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def _meta_or(db: Conn, key: str, default: int) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return default if row is None else int(row[0])


_entry_decoder = msgspec.json.Decoder(Entry)


def _credited_chunks(db: Conn) -> Iterator[tuple[str, str, list[Entry]]]:
    """Every terminal's credited entries already held, in seq order and in chunks, with
    its partner: entries in quarantine (held or rejected) are left out (§5.9)."""
    terminals = db.execute("SELECT id, partner_id FROM terminals ORDER BY id").fetchall()
    for tid, partner_id in terminals:
        held = {
            int(r[0])
            for r in db.execute(
                "SELECT seq FROM quarantine WHERE terminal = ? AND status != 'approved'",
                (tid,),
            ).fetchall()
        }
        cur = db.execute("SELECT body FROM entries WHERE terminal = ? ORDER BY seq", (tid,))
        while rows := cur.fetchmany(FEED_CHUNK):
            entries = []
            for (raw,) in rows:
                try:
                    e = _entry_decoder.decode(raw)
                except (msgspec.DecodeError, msgspec.ValidationError) as err:
                    log.warning("central_entry_unreadable", terminal=tid, reason=str(err))
                    continue
                if e.seq not in held:
                    entries.append(e)
            yield tid, partner_id, entries


def _migrate_usage(db: Conn) -> None:
    """Fill benefit_usage from the entries already held (a database older than usage).

    The holder of each sale is the card's holder id in the card table now, since the
    table at the time the entry was received is gone. One transaction: all or nothing.
    """

    def body() -> int:
        db.execute("DELETE FROM benefit_usage")
        db.execute("DELETE FROM usage_sales")
        total = 0
        for tid, partner_id, entries in _credited_chunks(db):
            _apply_usage(db, tid, partner_id, entries)
            total += len(entries)
        _put_meta(db, "usage_schema", USAGE_SCHEMA)
        return total

    entries = _tx(db, body)
    if entries:
        log.info("central_usage_built", entries=entries)


def _migrate_business(db: Conn) -> None:
    """A database older than the business checks: each partner's current rules become its
    first known version, and the voids already held are indexed. Entries already held
    were credited and stay so (they are not re-checked)."""

    def body() -> None:
        now = format_ts(SystemClock().now())
        for partner_id, raw in db.execute("SELECT id, rules FROM partners").fetchall():
            _remember_rules(db, partner_id, _rules_decoder.decode(raw), bytes(raw), now)
        cur = db.execute("SELECT terminal, body FROM entries ORDER BY terminal, seq")
        while rows := cur.fetchmany(FEED_CHUNK):
            for tid, raw in rows:
                try:
                    e = _entry_decoder.decode(raw)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    continue
                if e.kind == EntryKind.VOID and e.ref is not None:
                    db.execute(
                        "INSERT INTO voids (terminal, ref, seq) VALUES (?, ?, ?)"
                        " ON CONFLICT DO NOTHING",
                        (tid, e.ref, e.seq),
                    )
        _put_meta(db, "business_schema", BUSINESS_SCHEMA)

    _tx(db, body)


def _migrate_stats(db: Conn) -> None:
    """Fill the partner statistics from the entries already held (a database older than
    them), leaving out what is held or rejected. One transaction: all or nothing."""

    def body() -> int:
        db.execute("DELETE FROM stats_sales")
        db.execute("DELETE FROM stats_benefits")
        total = 0
        for _tid, partner_id, entries in _credited_chunks(db):
            _apply_stats(db, partner_id, entries)
            total += len(entries)
        _put_meta(db, "stats_schema", STATS_SCHEMA)
        return total

    entries = _tx(db, body)
    if entries:
        log.info("central_stats_built", entries=entries)


def _remember_rules(db: Conn, partner_id: str, rules: Rules, doc: bytes, now: str) -> None:
    """Keep ``rules`` as the version it names; a version served again with other content
    replaces it (and says so: a rules document must get a new version when it changes)."""
    version = rules.version_str
    row = db.execute(
        "SELECT rules FROM rules_versions WHERE partner_id = ? AND version = ?",
        (partner_id, version),
    ).fetchone()
    if row is not None and bytes(row[0]) == doc:
        return
    if row is not None:
        log.warning("central_rules_version_reused", partner=partner_id, version=version)
    db.execute(
        "INSERT INTO rules_versions (partner_id, version, rules, first_served)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (partner_id, version) DO UPDATE"
        " SET rules = excluded.rules",
        (partner_id, version, doc, now),
    )


def _tx(db: Conn, fn: Callable[[], _T]) -> _T:
    """Run ``fn`` inside BEGIN IMMEDIATE ... COMMIT; roll back on any error."""
    db.begin_write()
    try:
        result = fn()
    except BaseException:
        db.rollback()
        raise
    db.commit()
    return result


# Versioned migrations, per engine: MIGRATIONS[engine][n] takes a database at schema n
# to n + 1, applied in order at open. A new database gets the current schema from
# _SCHEMA directly (its meta 'schema' row); additive changes (a new table or index,
# IF NOT EXISTS) need no step. PostgreSQL started at schema 2.
MIGRATIONS: Final[dict[str, dict[int, Callable[[Conn], None]]]] = {
    "sqlite": {1: _migrate_1_to_2},
    "postgresql": {},
}


def _prepare(db: Conn) -> None:
    if db.kind == "sqlite":
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise CentralError(f"database cannot use WAL (journal_mode={mode})")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=10000")
    db.create_schema(_SCHEMA_ALL)
    version = _meta(db, "schema")
    while version < SCHEMA_VERSION and version in MIGRATIONS[db.kind]:
        MIGRATIONS[db.kind][version](db)
        version = _meta(db, "schema")
    if version != SCHEMA_VERSION:
        raise CentralError(f"database schema {version}, this server knows {SCHEMA_VERSION}")
    # A replaced card's balance and late entries go to its holder's current card.
    db.execute(
        "CREATE INDEX IF NOT EXISTS cards_by_holder ON cards"
        " (json_extract(body, '$.holder.id')) WHERE removed = 0"
    )
    usage = _meta_or(db, "usage_schema", 0)
    if usage > USAGE_SCHEMA:
        raise CentralError(f"database usage schema {usage}, this server knows {USAGE_SCHEMA}")
    if usage < USAGE_SCHEMA:
        _migrate_usage(db)
    business = _meta_or(db, "business_schema", 0)
    if business > BUSINESS_SCHEMA:
        raise CentralError(
            f"database business schema {business}, this server knows {BUSINESS_SCHEMA}"
        )
    if business < BUSINESS_SCHEMA:
        _migrate_business(db)
    stats_version = _meta_or(db, "stats_schema", 0)
    if stats_version > STATS_SCHEMA:
        raise CentralError(
            f"database stats schema {stats_version}, this server knows {STATS_SCHEMA}"
        )
    if stats_version < STATS_SCHEMA:
        _migrate_stats(db)


class CentralDB:
    """The server's state: terminals, received entries, cards, partners' rules."""

    def __init__(self, conn: Engine, clock: Clock) -> None:
        self._conn = conn
        self._clock = clock

    @property
    def engine(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._conn.kind

    @property
    def database(self) -> str:
        """What ``[central] database`` said: a file path or a ``postgresql://`` URL."""
        return self._conn.database

    @property
    def path(self) -> Path:
        """The SQLite file (tests and tools that read it directly)."""
        if not isinstance(self._conn, SqliteEngine):
            raise CentralError(f"database {describe(self.database)} is not a file")
        return self._conn.path

    @classmethod
    async def open(cls, database: Path | str, clock: Clock | None = None) -> CentralDB:
        """Open (creating it) the database: a SQLite file path or a ``postgresql://`` URL."""
        try:
            conn = await open_engine(database)
        except EngineError as e:
            raise CentralError(str(e)) from e
        try:
            await run_in_connection_thread(conn, _prepare)
        except database_errors() as e:
            await conn.close()
            raise CentralError(f"database {describe(str(database))} is not usable: {e}") from e
        except BaseException:
            await conn.close()
            raise
        return cls(conn, clock or SystemClock())

    async def close(self) -> None:
        await self._conn.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def clock(self) -> Clock:
        return self._clock

    def _now(self) -> str:
        return format_ts(self._clock.now())

    # --- terminals -------------------------------------------------------------------

    async def enrol(
        self, terminal_id: str, partner_id: str, token: str, public_key_b64: str | None
    ) -> None:
        """Enrol (or re-enrol) a terminal; a None key keeps the one enrolled before."""
        now, digest = self._now(), token_digest(token)

        def work(db: Conn) -> None:
            def body() -> None:
                other = db.execute(
                    "SELECT id FROM terminals WHERE token_sha256 = ? AND id != ?",
                    (digest, terminal_id),
                ).fetchone()
                if other:
                    raise CentralError(f"this token is already used by terminal {other[0]}")
                db.execute(
                    "INSERT INTO terminals (id, partner_id, token_sha256, public_key, enrolled_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                    " partner_id = excluded.partner_id, token_sha256 = excluded.token_sha256,"
                    " public_key = coalesce(excluded.public_key, terminals.public_key)",
                    (terminal_id, partner_id, digest, public_key_b64, now),
                )

            _tx(db, body)

        await run_in_connection_thread(self._conn, work)
        log.info("terminal_enrolled", terminal=terminal_id, partner=partner_id)

    async def terminal(self, terminal_id: str) -> TerminalRow | None:
        def work(db: Conn) -> TerminalRow | None:
            return _terminal_row(db.execute(_T_SELECT + " WHERE id = ?", (terminal_id,)).fetchone())

        return await run_in_connection_thread(self._conn, work)

    async def terminal_by_token(self, token: str) -> TerminalRow | None:
        digest = token_digest(token)

        def work(db: Conn) -> TerminalRow | None:
            return _terminal_row(
                db.execute(_T_SELECT + " WHERE token_sha256 = ?", (digest,)).fetchone()
            )

        return await run_in_connection_thread(self._conn, work)

    async def heads(self) -> list[TerminalRow]:
        def work(db: Conn) -> list[TerminalRow]:
            rows = db.execute(_T_SELECT + " ORDER BY id").fetchall()
            return [r for r in map(_terminal_row, rows) if r is not None]

        return await run_in_connection_thread(self._conn, work)

    async def trust_key(self, terminal_id: str, public_key_b64: str) -> str | None:
        """Trust-on-first-use: store the key if none is enrolled; return the enrolled key."""

        def work(db: Conn) -> str | None:
            def body() -> str | None:
                db.execute(
                    "UPDATE terminals SET public_key = ? WHERE id = ? AND public_key IS NULL",
                    (public_key_b64, terminal_id),
                )
                row = db.execute(
                    "SELECT public_key FROM terminals WHERE id = ?", (terminal_id,)
                ).fetchone()
                return None if row is None else row[0]

            return _tx(db, body)

        key = await run_in_connection_thread(self._conn, work)
        if key == public_key_b64:
            log.warning("terminal_key_trusted_on_first_use", terminal=terminal_id)
        return key

    async def entry_count(self, terminal_id: str) -> int:
        def work(db: Conn) -> int:
            row = db.execute(
                "SELECT count(*) FROM entries WHERE terminal = ?", (terminal_id,)
            ).fetchone()
            return int(row[0])

        return await run_in_connection_thread(self._conn, work)

    async def entries(self, terminal_id: str, after_seq: int = 0) -> list[dict[str, Any]]:
        """Received entries of a terminal, as received (raw objects)."""

        def work(db: Conn) -> list[bytes]:
            rows = db.execute(
                "SELECT body FROM entries WHERE terminal = ? AND seq > ? ORDER BY seq",
                (terminal_id, after_seq),
            ).fetchall()
            return [r[0] for r in rows]

        return [msgspec.json.decode(b) for b in await run_in_connection_thread(self._conn, work)]

    # --- uploads ---------------------------------------------------------------------

    async def append(
        self, terminal_id: str, partner_id: str, batch: VerifiedBatch
    ) -> AppendOutcome:
        """Append a verified batch if it extends the head; classify replay / gap / fork."""
        now = self._now()
        return await run_in_connection_thread(
            self._conn, _append_tx, terminal_id, partner_id, batch, now
        )

    # --- quarantine (docs/architecture.md §5.9) ---------------------------------------

    async def quarantined(
        self, status: str | None = "held", terminal: str | None = None
    ) -> list[HeldEntry]:
        """Entries in quarantine (``status`` None: every decision too), oldest first."""

        def work(db: Conn) -> list[HeldEntry]:
            sql = (
                "SELECT q.terminal, q.seq, q.partner_id, q.reason, q.detail, q.status,"
                " q.held_at, q.decided_at, q.decided_by, q.note, e.body FROM quarantine q"
                " JOIN entries e ON e.terminal = q.terminal AND e.seq = q.seq WHERE 1 = 1"
            )
            args: list[Any] = []
            if status is not None:
                sql += " AND q.status = ?"
                args.append(status)
            if terminal is not None:
                sql += " AND q.terminal = ?"
                args.append(terminal)
            rows = db.execute(sql + " ORDER BY q.held_at, q.terminal, q.seq", args).fetchall()
            return [_held_entry(r) for r in rows]

        return await run_in_connection_thread(self._conn, work)

    async def full_feeds_since(self, terminal: str, since_ts: str) -> list[str]:
        """When ``terminal`` began each full card feed at or after ``since_ts``, oldest first."""

        def work(db: Conn) -> list[str]:
            rows = db.execute(
                "SELECT at FROM feed_reads WHERE terminal = ? AND is_full = 1 AND at >= ?"
                " ORDER BY at",
                (terminal, since_ts),
            ).fetchall()
            return [str(r[0]) for r in rows]

        return await run_in_connection_thread(self._conn, work)

    async def record_feed_read(
        self,
        terminal: str,
        *,
        at: str,
        full: bool,
        since: int | None,
        version: int,
        lines: int,
        complete: bool,
    ) -> None:
        """Record one card-feed download (who read the register, how much of it)."""

        def work(db: Conn) -> None:
            db.execute(
                "INSERT INTO feed_reads (terminal, at, is_full, since, version, lines, complete)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (terminal, at, int(full), since, version, lines, int(complete)),
            )

        await run_in_connection_thread(self._conn, work)

    async def feed_reads(self, terminal: str | None = None, limit: int = 100) -> list[FeedRead]:
        """The latest card-feed downloads (of ``terminal``), newest first."""

        def work(db: Conn) -> list[FeedRead]:
            sql = "SELECT terminal, at, is_full, since, version, lines, complete FROM feed_reads"
            args: list[Any] = []
            if terminal is not None:
                sql += " WHERE terminal = ?"
                args.append(terminal)
            rows = db.execute(sql + " ORDER BY at DESC LIMIT ?", [*args, limit]).fetchall()
            return [
                FeedRead(
                    terminal=r[0],
                    at=r[1],
                    full=bool(r[2]),
                    since=r[3],
                    version=int(r[4]),
                    lines=int(r[5]),
                    complete=bool(r[6]),
                )
                for r in rows
            ]

        return await run_in_connection_thread(self._conn, work)

    async def held_seqs(self, terminal: str, limit: int = MAX_HELD_LISTED) -> list[tuple[int, str]]:
        """(seq, reason) of the terminal's entries still held, the oldest ``limit``."""

        def work(db: Conn) -> list[tuple[int, str]]:
            rows = db.execute(
                "SELECT seq, reason FROM quarantine WHERE terminal = ? AND status = 'held'"
                " ORDER BY seq LIMIT ?",
                (terminal, limit),
            ).fetchall()
            return [(int(r[0]), str(r[1])) for r in rows]

        return await run_in_connection_thread(self._conn, work)

    async def decide(
        self, terminal: str, seq: int, *, approve: bool, by: str, note: str | None = None
    ) -> HeldEntry:
        """Approve (credit the balance and the usage now) or reject a held entry.

        A void can be approved only once the sale it cancels is credited."""
        now = self._now()

        def work(db: Conn) -> HeldEntry:
            def body() -> HeldEntry:
                row = db.execute(
                    "SELECT q.status, q.partner_id, e.body FROM quarantine q JOIN entries e"
                    " ON e.terminal = q.terminal AND e.seq = q.seq"
                    " WHERE q.terminal = ? AND q.seq = ?",
                    (terminal, seq),
                ).fetchone()
                if row is None:
                    raise CentralError(f"entry {terminal}/{seq} is not in quarantine")
                if row[0] != "held":
                    raise CentralError(f"entry {terminal}/{seq} was already {row[0]}")
                e = _entry_decoder.decode(row[2])
                if approve:
                    if e.kind == EntryKind.VOID and e.ref is not None:
                        sale = db.execute(
                            "SELECT status FROM quarantine WHERE terminal = ? AND seq = ?",
                            (terminal, e.ref),
                        ).fetchone()
                        if sale is not None and sale[0] != "approved":
                            raise CentralError(
                                f"entry {terminal}/{seq} voids sale {e.ref}, which is"
                                f" {sale[0]}: decide the sale first"
                            )
                    _apply_effects(db, row[1], [e], now)
                    _apply_usage(db, terminal, row[1], [e])
                    _apply_stats(db, row[1], [e])
                db.execute(
                    "UPDATE quarantine SET status = ?, decided_at = ?, decided_by = ?, note = ?"
                    " WHERE terminal = ? AND seq = ?",
                    ("approved" if approve else "rejected", now, by, note, terminal, seq),
                )
                log.info(
                    "central_quarantine_decided",
                    terminal=terminal,
                    seq=seq,
                    approved=approve,
                    by=by,
                )
                found = db.execute(
                    "SELECT q.terminal, q.seq, q.partner_id, q.reason, q.detail, q.status,"
                    " q.held_at, q.decided_at, q.decided_by, q.note, e.body FROM quarantine q"
                    " JOIN entries e ON e.terminal = q.terminal AND e.seq = q.seq"
                    " WHERE q.terminal = ? AND q.seq = ?",
                    (terminal, seq),
                ).fetchone()
                return _held_entry(found)

            return _tx(db, body)

        return await run_in_connection_thread(self._conn, work)

    async def run(self, work: Callable[[Conn], _T]) -> _T:
        """``work(conn)`` on the database's own thread (maintenance and benchmarks)."""
        return await run_in_connection_thread(self._conn, work)

    # --- statistics ------------------------------------------------------------------

    async def partner_stats(
        self, partner_id: str, date_from: str, date_to: str
    ) -> stats.PartnerStats:
        """The partner's statistics over local days ``date_from``..``date_to`` (inclusive),
        on one snapshot (sync/central/stats.py)."""
        rules = await self.rules(partner_id)

        def work(db: Conn) -> stats.PartnerStats:
            db.begin_snapshot()
            try:
                return _stats_tx(db, partner_id, date_from, date_to, rules)
            finally:
                db.rollback()

        return await run_in_connection_thread(self._conn, work)

    # --- cards -----------------------------------------------------------------------

    async def cards_version(self) -> int:
        return await run_in_connection_thread(self._conn, _meta, "cards_version")

    async def upsert_cards(
        self,
        items: Sequence[CardRecord | CardRemoved],
        *,
        points_given: frozenset[str] = frozenset(),
    ) -> int:
        """Add, change or remove cards in one transaction; returns the new list version.

        A card's balance is replaced only when its number is in ``points_given`` (an
        import that carries balances); otherwise the server's balance is kept.
        """
        now = self._now()

        def work(db: Conn) -> int:
            def body() -> int:
                version = _bump_version(db)
                for item in items:
                    if isinstance(item, CardRemoved):
                        db.execute(
                            "UPDATE cards SET removed = 1, version = ?"
                            " WHERE number = ? AND removed = 0",
                            (version, item.number),
                        )
                        continue
                    given = item.number in points_given
                    db.execute(
                        "INSERT INTO cards (number, body, points, points_as_of, version)"
                        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (number) DO UPDATE SET"
                        " body = excluded.body, removed = 0, version = excluded.version,"
                        " points = CASE WHEN ? THEN excluded.points ELSE cards.points END,"
                        " points_as_of = CASE WHEN ? THEN excluded.points_as_of"
                        " ELSE cards.points_as_of END"
                        " WHERE cards.body IS DISTINCT FROM excluded.body OR cards.removed = 1"
                        " OR (? AND cards.points <> excluded.points)",
                        (
                            item.number,
                            card_body(item),
                            item.points if given else 0,
                            now if given else None,
                            version,
                            given,
                            given,
                            given,
                        ),
                    )
                return version

            return _tx(db, body)

        return await run_in_connection_thread(self._conn, work)

    async def compact_cards(self) -> int:
        """Forget removed cards; terminals older than now get the full list next time."""

        def work(db: Conn) -> int:
            def body() -> int:
                version = _meta(db, "cards_version")
                db.execute("DELETE FROM cards WHERE removed = 1")
                db.execute("UPDATE meta SET value = ? WHERE key = 'delta_floor'", (version,))
                return version

            return _tx(db, body)

        return await run_in_connection_thread(self._conn, work)

    async def set_card_status(self, number: str, status: CardStatus) -> bool:
        """Change a card's status (block, unblock...); False when the card is unknown."""

        def work(db: Conn) -> bool:
            def body() -> bool:
                row = db.execute(
                    "SELECT body FROM cards WHERE number = ? AND removed = 0", (number,)
                ).fetchone()
                if row is None:
                    return False
                d = msgspec.json.decode(row[0])
                if d.get("status") == status.value:
                    return True
                d["status"] = status.value
                version = _bump_version(db)
                db.execute(
                    "UPDATE cards SET body = ?, version = ? WHERE number = ?",
                    (_card_encoder.encode(d), version, number),
                )
                if status == CardStatus.REPLACED:
                    _move_balance(db, number, version, self._now())
                return True

            return _tx(db, body)

        return await run_in_connection_thread(self._conn, work)

    async def card(self, number: str) -> CardRecord | None:
        def work(db: Conn) -> bytes | None:
            row = db.execute(
                "SELECT body, points, points_as_of FROM cards WHERE number = ? AND removed = 0",
                (number,),
            ).fetchone()
            return None if row is None else _card_line(row[0], row[1], row[2])

        line = await run_in_connection_thread(self._conn, work)
        return None if line is None else msgspec.json.decode(line, type=CardRecord)

    async def card_feed(
        self, since: int | None, terminal_id: str | None = None
    ) -> AsyncGenerator[bytes, None]:
        """NDJSON chunks of the card feed: header, cards (full) or changes (delta), end.

        With ``terminal_id`` the header says up to which of that terminal's entries the
        balances count (``terminal_seq``, docs/architecture.md §5.4): its head in the
        same snapshot, since a batch changes head and balances in one transaction.
        """
        conn = await self._conn.another()  # a snapshot of its own
        try:
            header, cursor = await run_in_connection_thread(conn, _feed_start, since, terminal_id)
            yield encode_line(header)
            count = 0
            while True:
                chunk, n = await run_in_connection_thread(conn, _feed_chunk, cursor, header.full)
                if not n:
                    break
                count += n
                yield chunk
            yield encode_line(CardsEnd(end=True, count=count))
        finally:
            with contextlib.suppress(*database_errors()):
                await run_in_connection_thread(conn, _end_snapshot)
            await conn.close()

    # --- partners --------------------------------------------------------------------

    async def load_rules(self, partner_id: str, rules: Rules) -> None:
        """Store a partner's rules document (its benefits' persons_used is the base count)."""
        now = self._now()
        doc = canonical(rules)

        def work(db: Conn) -> None:
            def body() -> None:
                old = db.execute("SELECT rules FROM partners WHERE id = ?", (partner_id,))
                found = old.fetchone()
                db.execute(
                    "INSERT INTO partners (id, rules, updated_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (id) DO UPDATE SET rules = excluded.rules,"
                    " updated_at = excluded.updated_at",
                    (partner_id, doc, now),
                )
                _remember_rules(db, partner_id, rules, doc, now)
                if found is None or bytes(found[0]) != doc:
                    # Which benefits the usage feed carries may have changed: a delta from
                    # before this document could lack lines it now carries.
                    db.execute(
                        "INSERT INTO usage_floors (partner_id, floor) VALUES (?, ?)"
                        " ON CONFLICT (partner_id) DO UPDATE SET floor = excluded.floor",
                        (partner_id, _bump_usage(db)),
                    )

            _tx(db, body)

        await run_in_connection_thread(self._conn, work)

    async def rules(self, partner_id: str) -> Rules | None:
        """The partner's rules as served: persons_used = base + residents counted here."""
        return await run_in_connection_thread(self._conn, _rules_tx, partner_id)

    # --- usage across the partner's tills (contract 11.4) ---------------------------

    async def usage_version(self) -> int:
        return await run_in_connection_thread(self._conn, _meta, "usage_version")

    async def usage_feed(
        self, partner_id: str, since: int | None, terminal_id: str
    ) -> AsyncGenerator[bytes, None]:
        """NDJSON chunks of the partner's usage feed: header, lines, end.

        Full (every non-zero line) when ``since`` is absent, 0, ahead of the server or
        older than the partner's last rules change; otherwise the lines changed after
        ``since``, zeros included. Only benefits with a limit in the partner's current
        rules, and for a period limit only dates from the start of its open window.
        ``terminal_seq`` is ``terminal_id``'s head in the same snapshot.
        """
        today = local_day(self._clock.now())
        conn = await self._conn.another()  # a snapshot of its own
        try:
            header, cursor = await run_in_connection_thread(
                conn, _usage_start, partner_id, since, terminal_id, today
            )
            yield encode_line(header)
            count = 0
            while cursor is not None:
                chunk, n, done = await run_in_connection_thread(conn, _usage_chunk, cursor)
                if done:
                    break
                if n:
                    count += n
                    yield chunk
            yield encode_line(UsageEnd(end=True, count=count))
        finally:
            with contextlib.suppress(*database_errors()):
                await run_in_connection_thread(conn, _end_snapshot)
            await conn.close()

    # --- persons leases (contract 11.5) ----------------------------------------------

    async def lease(
        self, terminal_id: str, benefit_id: str, admitted: int, want: int
    ) -> LeaseOutcome:
        """Top up, keep or release ``terminal_id``'s grant of a ``max_persons`` benefit.

        Raises LeaseRefused when the partner's rules have no such benefit or it has no
        persons limit. The grant never falls below ``admitted``, is lowered only when
        ``want`` is below it, and rises only as far as the other tills' max(granted,
        admitted) and the other channels' persons (the loaded ``persons_used``) leave
        room under ``max_persons``.
        """
        now = self._now()
        out = await run_in_connection_thread(
            self._conn, _lease_tx, terminal_id, benefit_id, admitted, want, now
        )
        bound = log.bind(terminal=terminal_id, benefit=benefit_id)
        if admitted > out.held:
            bound.warning("lease_admitted_beyond_grant", admitted=admitted, held=out.held)
        if out.committed > out.max_persons:
            bound.warning(
                "lease_limit_overcommitted", committed=out.committed, max_persons=out.max_persons
            )
        return out

    async def leases(self, partner_id: str, benefit_id: str) -> dict[str, tuple[int, int]]:
        """Every till's (granted, admitted) for a partner's benefit."""

        def work(db: Conn) -> dict[str, tuple[int, int]]:
            rows = db.execute(
                "SELECT terminal, granted, admitted FROM leases"
                " WHERE partner_id = ? AND benefit_id = ?",
                (partner_id, benefit_id),
            ).fetchall()
            return {t: (int(g), int(a)) for t, g, a in rows}

        return await run_in_connection_thread(self._conn, work)

    async def partners(self) -> list[str]:
        def work(db: Conn) -> list[str]:
            return [r[0] for r in db.execute("SELECT id FROM partners ORDER BY id")]

        return await run_in_connection_thread(self._conn, work)

    async def meta(self, key: str) -> int:
        return await run_in_connection_thread(self._conn, _meta, key)

    async def set_meta(self, key: str, value: int) -> None:
        await run_in_connection_thread(self._conn, _put_meta, key, value)


# --- work run in the engine's thread -----------------------------------------------------


def _append_tx(db: Conn, tid: str, partner_id: str, b: VerifiedBatch, now: str) -> AppendOutcome:
    def body() -> AppendOutcome:
        # The terminal's row is the lock that serializes its uploads (see _lease_tx).
        row = db.execute(
            "SELECT head_seq, head_hash FROM terminals WHERE id = ?" + db.for_update,  # noqa: S608 (a fixed clause)
            (tid,),
        )
        found = row.fetchone()
        if found is None:
            raise CentralError(f"terminal {tid} is not enrolled")
        head = Head(seq=found[0], hash=found[1])
        if b.first_seq > head.seq + 1:
            return AppendOutcome(kind="gap", head=head)
        start = 0
        if b.first_seq <= head.seq:
            hi = min(b.last_seq, head.seq)
            held = db.execute(
                "SELECT seq, hash FROM entries WHERE terminal = ? AND seq BETWEEN ? AND ?"
                " ORDER BY seq",
                (tid, b.first_seq, hi),
            ).fetchall()
            for i, seq in enumerate(range(b.first_seq, hi + 1)):
                if i >= len(held) or held[i][0] != seq or held[i][1] != b.hashes[i]:
                    return AppendOutcome(kind="fork", head=head, seq=seq)
            start = hi - b.first_seq + 1
        elif b.first_prev_hash != head.hash:
            return AppendOutcome(kind="fork", head=head, seq=b.first_seq)
        if start == len(b.entries):
            replayed = _held_between(db, tid, b.first_seq, b.last_seq)
            return AppendOutcome(kind="replay", head=head, quarantined=replayed)
        idx = range(start, len(b.entries))
        db.insert_rows(
            "entries",
            ("terminal", "seq", "hash", "body", "received_at"),
            ((tid, b.entries[i].seq, b.hashes[i], b.bodies[i], now) for i in idx),
        )
        new_head = Head(seq=b.last_seq, hash=b.hashes[-1])
        db.execute(
            "UPDATE terminals SET head_seq = ?, head_hash = ?, last_upload_at = ? WHERE id = ?",
            (new_head.seq, new_head.hash, now, tid),
        )
        appended = [b.entries[i] for i in idx]
        holds = _check_business(db, tid, partner_id, appended, now)
        credited = [e for e in appended if e.seq not in holds]
        _apply_effects(db, partner_id, credited, now)
        _apply_usage(db, tid, partner_id, credited)
        _apply_stats(db, partner_id, credited)
        return AppendOutcome(
            kind="appended",
            head=new_head,
            appended=len(idx),
            quarantined=_held_between(db, tid, b.first_seq, b.last_seq),
        )

    return _tx(db, body)


def _held_entry(r: Sequence[Any]) -> HeldEntry:
    return HeldEntry(
        terminal=r[0],
        seq=int(r[1]),
        partner_id=r[2],
        reason=r[3],
        detail=r[4],
        status=r[5],
        held_at=r[6],
        decided_at=r[7],
        decided_by=r[8],
        note=r[9],
        entry=msgspec.json.decode(r[10]),
    )


class _Checker:
    """Looks up what the business checks need, once per batch: rules versions, cards,
    the sales that voids name (this batch first, then the database)."""

    def __init__(self, db: Conn, tid: str, partner_id: str) -> None:
        self._db = db
        self._tid = tid
        self._partner = partner_id
        self._rules: dict[str, Rules | None] = {}
        self._cards: dict[str, CardRecord | None] = {}
        self.batch: dict[int, Entry] = {}
        self.held: dict[int, Held] = {}
        self.voided: set[int] = set()

    def rules(self, version: str) -> Rules | None:
        if version not in self._rules:
            row = self._db.execute(
                "SELECT rules FROM rules_versions WHERE partner_id = ? AND version = ?",
                (self._partner, version),
            ).fetchone()
            self._rules[version] = None if row is None else _rules_decoder.decode(row[0])
        return self._rules[version]

    def card(self, number: str) -> CardRecord | None:
        if number not in self._cards:
            row = self._db.execute("SELECT body FROM cards WHERE number = ?", (number,)).fetchone()
            try:
                found = None if row is None else _card_record_decoder.decode(row[0])
            except (msgspec.DecodeError, msgspec.ValidationError):
                found = None
            self._cards[number] = found
        return self._cards[number]

    def sale(self, seq: int) -> Entry | None:
        if seq in self.batch:
            return self.batch[seq]
        row = self._db.execute(
            "SELECT body FROM entries WHERE terminal = ? AND seq = ?", (self._tid, seq)
        ).fetchone()
        return None if row is None else _entry_decoder.decode(row[0])

    def voided_before(self, ref: int) -> bool:
        if ref in self.voided:
            return True
        row = self._db.execute(
            "SELECT 1 FROM voids WHERE terminal = ? AND ref = ?", (self._tid, ref)
        ).fetchone()
        return row is not None

    def sale_held(self, seq: int) -> bool:
        if seq in self.batch:
            return seq in self.held
        row = self._db.execute(
            "SELECT 1 FROM quarantine WHERE terminal = ? AND seq = ? AND status != 'approved'",
            (self._tid, seq),
        ).fetchone()
        return row is not None

    def check(self, e: Entry) -> Held | None:
        if e.kind == EntryKind.SALE:
            return check_sale(e, self.rules(e.rules_version), self.card(e.card) if e.card else None)
        if e.kind == EntryKind.VOID:
            sale = None if e.ref is None else self.sale(e.ref)
            return check_void(
                e,
                sale,
                voided_before=e.ref is not None and self.voided_before(e.ref),
                sale_held=e.ref is not None and self.sale_held(e.ref),
            )
        return check_other(e)


_card_record_decoder = msgspec.json.Decoder(CardRecord)


def _check_business(
    db: Conn, tid: str, partner_id: str, entries: Sequence[Entry], now: str
) -> dict[int, Held]:
    """Re-check every new entry (docs/architecture.md §5.9); hold those that do not add up
    in quarantine and return them by seq. Records each void's sale."""
    checker = _Checker(db, tid, partner_id)
    voids: list[tuple[str, int, int]] = []
    for e in entries:
        why = checker.check(e)
        checker.batch[e.seq] = e
        if why is not None:
            checker.held[e.seq] = why
        if e.kind == EntryKind.VOID and e.ref is not None and e.ref not in checker.voided:
            checker.voided.add(e.ref)
            voids.append((tid, e.ref, e.seq))
    if voids:
        db.executemany(
            "INSERT INTO voids (terminal, ref, seq) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            voids,
        )
    if checker.held:
        db.executemany(
            "INSERT INTO quarantine (terminal, seq, partner_id, reason, detail, held_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            ((tid, seq, partner_id, h.reason, h.detail, now) for seq, h in checker.held.items()),
        )
        log.warning(
            "central_entries_quarantined",
            terminal=tid,
            count=len(checker.held),
            reasons=sorted({h.reason for h in checker.held.values()}),
        )
    return checker.held


def _held_between(db: Conn, tid: str, lo: int, hi: int) -> tuple[tuple[int, str], ...]:
    """(seq, reason) of the terminal's entries in ``[lo, hi]`` that are not credited."""
    rows = db.execute(
        "SELECT seq, reason FROM quarantine WHERE terminal = ? AND seq BETWEEN ? AND ?"
        " AND status != 'approved' ORDER BY seq",
        (tid, lo, hi),
    ).fetchall()
    return tuple((int(r[0]), str(r[1])) for r in rows)


def _current_card(db: Conn, number: str) -> str:
    """The card whose balance an entry of ``number`` credits: itself, or for a replaced
    card its holder's active card (the holder id shared by a person's cards)."""
    row = db.execute(
        "SELECT json_extract(body, '$.status'), json_extract(body, '$.holder.id') FROM cards"
        " WHERE number = ? AND removed = 0",
        (number,),
    ).fetchone()
    if row is None or row[0] != CardStatus.REPLACED.value or not row[1]:
        return number
    current = db.execute(
        "SELECT number FROM cards WHERE json_extract(body, '$.holder.id') = ? AND removed = 0"
        " AND json_extract(body, '$.status') = 'active' AND number != ? ORDER BY number LIMIT 1",
        (row[1], number),
    ).fetchone()
    return number if current is None else str(current[0])


def _move_balance(db: Conn, number: str, version: int, now: str) -> None:
    """A card was replaced: its balance moves to the holder's current card (both go into
    the next delta)."""
    target = _current_card(db, number)
    if target == number:
        return  # no current card yet: the balance stays until one is issued
    (points,) = db.execute("SELECT points FROM cards WHERE number = ?", (number,)).fetchone()
    if not points:
        return
    db.execute(
        "UPDATE cards SET points = 0, points_as_of = ?, version = ? WHERE number = ?",
        (now, version, number),
    )
    db.execute(
        "UPDATE cards SET points = points + ?, points_as_of = ?, version = ? WHERE number = ?",
        (points, now, version, target),
    )
    log.info("card_balance_moved", points=points, to_version=version)


def _apply_effects(db: Conn, partner_id: str, entries: Iterable[Entry], now: str) -> None:
    """Card balances and the benefits' distinct residents, from newly received entries.

    An entry made on a replaced card (a till that had not heard yet) credits the
    holder's current card."""
    deltas: dict[str, int] = {}
    uses: set[tuple[str, str]] = set()
    current: dict[str, str] = {}
    for e in entries:
        if e.card is None:
            continue
        if e.card not in current:
            current[e.card] = _current_card(db, e.card)
        target = current[e.card]
        deltas[target] = deltas.get(target, 0) + e.points_earned - e.points_redeemed
        if e.kind == EntryKind.SALE:
            uses.update((bid, e.card) for bid in e.benefits)
    changed = [(d, card) for card, d in deltas.items() if d]
    if changed:
        version = _bump_version(db)
        db.executemany(
            "UPDATE cards SET points = points + ?, points_as_of = ?, version = ?"
            " WHERE number = ? AND removed = 0",
            ((d, now, version, card) for d, card in changed),
        )
    if uses:
        db.executemany(
            "INSERT INTO benefit_uses (partner_id, benefit_id, card, first_seen)"
            " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            ((partner_id, bid, card, now) for bid, card in uses),
        )


def _apply_stats(db: Conn, partner_id: str, entries: Sequence[Entry]) -> None:
    """Add credited sales and voids to the partner's statistics (sync/central/stats.py)."""
    sales = stats.sales_deltas(entries)
    if sales:
        cols = ", ".join(stats.SALES_COLUMNS)
        marks = ", ".join("?" * len(stats.SALES_COLUMNS))
        adds = ", ".join(f"{c} = stats_sales.{c} + excluded.{c}" for c in stats.SALES_COLUMNS)
        db.executemany(
            f"INSERT INTO stats_sales (partner_id, date, terminal, cashier, {cols})"  # noqa: S608 (fixed columns)
            f" VALUES (?, ?, ?, ?, {marks}) ON CONFLICT (partner_id, date, terminal, cashier)"
            f" DO UPDATE SET {adds}",
            ((partner_id, *k, *v) for k, v in sales.items()),
        )
    benefits = stats.benefit_deltas(entries)
    if benefits:
        db.executemany(
            "INSERT INTO stats_benefits (partner_id, date, benefit_id, uses, quantity, points)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (partner_id, date, benefit_id) DO UPDATE"
            " SET uses = stats_benefits.uses + excluded.uses,"
            " quantity = stats_benefits.quantity + excluded.quantity,"
            " points = stats_benefits.points + excluded.points",
            ((partner_id, *k, *v) for k, v in benefits.items()),
        )


def _stats_tx(
    db: Conn, partner_id: str, date_from: str, date_to: str, rules: Rules | None
) -> stats.PartnerStats:
    span = (partner_id, date_from, date_to)
    cols = ", ".join(f"SUM({c})" for c in stats.SALES_COLUMNS)
    totals = stats.Sums()
    terminals: dict[str, stats.TerminalSums] = {}
    cashiers: dict[str, stats.CashierSums] = {}
    names = {c.id: c.name for c in rules.cashiers} if rules is not None else {}
    for tid, cashier, *row in db.execute(
        f"SELECT terminal, cashier, {cols} FROM stats_sales"  # noqa: S608 (fixed columns)
        " WHERE partner_id = ? AND date BETWEEN ? AND ? GROUP BY terminal, cashier"
        " ORDER BY terminal, cashier",
        span,
    ).fetchall():
        totals.add_row(row)
        terminals.setdefault(tid, stats.TerminalSums(terminal=tid)).add_row(row)
        if cashier not in cashiers:
            cid = cashier or None
            cashiers[cashier] = stats.CashierSums(cashier=cid, name=names.get(cashier))
        cashiers[cashier].add_row(row)
    benefit_names = {b.id: b.name for b in rules.benefits} if rules is not None else {}
    benefits = {
        bid: stats.BenefitSums(
            benefit_id=bid, name=benefit_names.get(bid), uses=int(u), quantity=int(q), points=int(p)
        )
        for bid, u, q, p in db.execute(
            "SELECT benefit_id, SUM(uses), SUM(quantity), SUM(points) FROM stats_benefits"
            " WHERE partner_id = ? AND date BETWEEN ? AND ? GROUP BY benefit_id"
            " ORDER BY benefit_id",
            span,
        ).fetchall()
    }
    for bid, persons in db.execute(
        "SELECT benefit_id, COUNT(DISTINCT holder) FROM benefit_usage"
        " WHERE partner_id = ? AND date BETWEEN ? AND ? AND qty > 0 GROUP BY benefit_id",
        span,
    ).fetchall():
        b = benefits.setdefault(bid, stats.BenefitSums(benefit_id=bid, name=benefit_names.get(bid)))
        b.persons = int(persons)
    held, rejected = stats.HeldSums(), stats.HeldSums()
    for status, raw in db.execute(
        "SELECT q.status, e.body FROM quarantine q JOIN entries e"
        " ON e.terminal = q.terminal AND e.seq = q.seq"
        " WHERE q.partner_id = ? AND q.status != 'approved'",
        (partner_id,),
    ).fetchall():
        e = _entry_decoder.decode(raw)
        if date_from <= e.local_date <= date_to:
            (held if status == "held" else rejected).add(e)
    cost = rules.point_cost_gr if rules is not None else stats.DEFAULT_POINT_COST_GR
    return stats.PartnerStats(
        partner_id=partner_id,
        date_from=date_from,
        date_to=date_to,
        point_cost_gr=cost,
        partner_cost_gr=totals.points_earned * cost,
        totals=totals,
        benefits=sorted(benefits.values(), key=lambda b: b.benefit_id),
        terminals=list(terminals.values()),
        cashiers=sorted(cashiers.values(), key=lambda c: c.cashier or ""),
        quarantined=held,
        rejected=rejected,
    )


def _bump_usage(db: Conn) -> int:
    row = db.execute(
        "UPDATE meta SET value = value + 1 WHERE key = 'usage_version' RETURNING value"
    ).fetchone()
    return int(row[0])


class _HolderOnly(msgspec.Struct, frozen=True):
    id: str | None = None


class _CardHolder(msgspec.Struct, frozen=True):
    holder: _HolderOnly = _HolderOnly()


_holder_decoder = msgspec.json.Decoder(_CardHolder)
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _is_local_date(value: str) -> bool:
    if _ISO_DATE.fullmatch(value) is None:
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _holder_of(db: Conn, card: str, cache: dict[str, str]) -> str:
    """Whom a card's uses count for: its holder id in the card table now, or its number.

    A removed card still names its holder (removal does not change who the person is).
    """
    found = cache.get(card)
    if found is not None:
        return found
    row = db.execute("SELECT body FROM cards WHERE number = ?", (card,)).fetchone()
    holder = card
    if row is not None:
        try:
            holder = _holder_decoder.decode(row[0]).holder.id or card
        except (msgspec.DecodeError, msgspec.ValidationError):
            holder = card
    cache[card] = holder
    return holder


_UsageKey = tuple[str, str, str, str]  # partner, benefit, holder, local date


def _apply_usage(db: Conn, tid: str, partner_id: str, entries: Sequence[Entry]) -> None:
    """Add newly received sales' benefit quantities per holder and date; take voids' back.

    A sale counts each benefit it names once, with ``benefit_quantities.get(b, 1)``, for
    the holder its card has now, on its ``local_date``. A void (``ref`` = the voided sale's
    seq on the same terminal) takes back, for each benefit it names, what that sale added
    (its holder, date and quantity), once. The changed rows get one new usage_version.
    """
    deltas: dict[_UsageKey, int] = {}
    holders: dict[str, str] = {}
    sales: list[list[Any]] = []  # rows for usage_sales
    by_seq: dict[int, list[list[Any]]] = {}  # this batch's sales, for its own voids
    voided: list[tuple[str, int, str]] = []
    for e in entries:
        if e.card is None or not e.benefits:
            continue
        if e.kind == EntryKind.SALE:
            if not _is_local_date(e.local_date):
                log.warning("usage_entry_without_date", terminal=tid, seq=e.seq)
                continue
            holder = _holder_of(db, e.card, holders)
            rows = by_seq[e.seq] = []
            for bid in dict.fromkeys(e.benefits):
                qty = e.benefit_quantities.get(bid, 1)
                row = [tid, e.seq, bid, partner_id, holder, e.local_date, qty, 0]
                rows.append(row)
                sales.append(row)
                key = (partner_id, bid, holder, e.local_date)
                deltas[key] = deltas.get(key, 0) + qty
        elif e.kind == EntryKind.VOID and e.ref is not None:
            named = set(e.benefits)
            if e.ref in by_seq:
                held = [r for r in by_seq[e.ref] if r[2] in named and not r[7]]
                for r in held:
                    r[7] = 1
            else:
                found = db.execute(
                    "SELECT terminal, seq, benefit_id, partner_id, holder, date, qty, voided"
                    " FROM usage_sales WHERE terminal = ? AND seq = ? AND voided = 0",
                    (tid, e.ref),
                ).fetchall()
                held = [list(r) for r in found if r[2] in named]
                voided.extend((tid, e.ref, r[2]) for r in held)
            for r in held:
                key = (r[3], r[2], r[4], r[5])
                deltas[key] = deltas.get(key, 0) - r[6]
    if sales:
        db.executemany(
            "INSERT INTO usage_sales"
            " (terminal, seq, benefit_id, partner_id, holder, date, qty, voided)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (terminal, seq, benefit_id) DO UPDATE"
            " SET partner_id = excluded.partner_id, holder = excluded.holder,"
            " date = excluded.date, qty = excluded.qty, voided = excluded.voided",
            sales,
        )
    if voided:
        db.executemany(
            "UPDATE usage_sales SET voided = 1 WHERE terminal = ? AND seq = ? AND benefit_id = ?",
            voided,
        )
    changed = [(k, d) for k, d in deltas.items() if d]
    if not changed:
        return
    version = _bump_usage(db)
    db.executemany(
        "INSERT INTO benefit_usage (partner_id, benefit_id, holder, date, qty, version)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (partner_id, benefit_id, holder, date)"
        " DO UPDATE SET qty = benefit_usage.qty + excluded.qty, version = excluded.version",
        ((*k, d, version) for k, d in changed),
    )


def _usage_filters(benefits: Iterable[Benefit], today: date) -> list[tuple[str, str]]:
    """(benefit id, first local date the feed carries) of the benefits with a limit.

    ``max_persons`` or ``uses_per_period`` without a period: every date (""). A period
    limit: from the first day of the window containing ``today`` on (later dates are in
    no closed window either). A benefit without a limit is not in the feed.
    """
    out: dict[str, str] = {}
    for b in benefits:
        if b.max_persons is not None or (b.uses_per_period is not None and b.period is None):
            first = ""
        elif b.uses_per_period is not None and b.period is not None:
            first = window_dates(b.period, today)[0].isoformat()
        else:
            continue
        out[b.id] = min(out.get(b.id, first), first)
    return sorted(out.items())


# Full: for each benefit the feed carries ((id, first date) rows of VALUES, the outer
# loop), its rows from that date on by the date index; lines with qty 0 left out.
_USAGE_FULL: Final = (
    "WITH f (benefit_id, first_date) AS (VALUES @ROWS@)"
    " SELECT u.holder, u.benefit_id, u.date, u.qty"
    " FROM f CROSS JOIN benefit_usage u INDEXED BY benefit_usage_by_date"
    " WHERE u.partner_id = ? AND u.benefit_id = f.benefit_id AND u.date >= f.first_date"
    " AND u.qty != 0"
)
# Delta: the rows changed after `since`, by the version index; zeros included (removals).
# Which of them the feed carries is decided row by row (_usage_chunk).
_USAGE_DELTA: Final = (
    "SELECT holder, benefit_id, date, qty FROM benefit_usage INDEXED BY benefit_usage_by_version"
    " WHERE partner_id = ? AND version > ? ORDER BY version"
)


@dataclass
class _UsageCursor:
    rows: Cursor
    carried: dict[str, str] | None  # delta: benefit id -> first date; full: None


def _usage_start(
    db: Conn, partner_id: str, since: int | None, terminal_id: str, today: date
) -> tuple[UsageHeader, _UsageCursor | None]:
    db.begin_snapshot()  # one snapshot for the version, the head, the rules and every line
    version = _meta(db, "usage_version")
    row = db.execute("SELECT head_seq FROM terminals WHERE id = ?", (terminal_id,)).fetchone()
    terminal_seq = 0 if row is None else int(row[0])
    floor_row = db.execute(
        "SELECT floor FROM usage_floors WHERE partner_id = ?", (partner_id,)
    ).fetchone()
    floor = 0 if floor_row is None else int(floor_row[0])
    full = since is None or since <= 0 or since < floor or since > version
    header = UsageHeader(version=version, full=full, terminal_seq=terminal_seq)
    rules_row = db.execute("SELECT rules FROM partners WHERE id = ?", (partner_id,)).fetchone()
    if rules_row is None:
        return header, None
    filters = _usage_filters(_rules_decoder.decode(rules_row[0]).benefits, today)
    if not filters:
        return header, None
    if full:
        sql = _USAGE_FULL.replace("@ROWS@", ", ".join(["(?, ?)"] * len(filters)))
        params = [*(v for f in filters for v in f), partner_id]
        return header, _UsageCursor(db.stream(sql, params), None)
    return header, _UsageCursor(db.stream(_USAGE_DELTA, (partner_id, since)), dict(filters))


def _usage_chunk(_db: Conn, cur: _UsageCursor) -> tuple[bytes, int, bool]:
    """The next lines, how many, and whether the cursor is exhausted."""
    rows = cur.rows.fetchmany(FEED_CHUNK)
    carried = cur.carried
    lines = [
        encode_line(UsageLine(holder=h, benefit=b, date=date.fromisoformat(d), qty=q))
        for h, b, d, q in rows
        if carried is None or (b in carried and d >= carried[b])
    ]
    return b"".join(lines), len(lines), not rows


def _lease_tx(
    db: Conn, tid: str, benefit_id: str, admitted: int, want: int, now: str
) -> LeaseOutcome:
    def body() -> LeaseOutcome:
        row = db.execute("SELECT partner_id FROM terminals WHERE id = ?", (tid,)).fetchone()
        if row is None:
            raise CentralError(f"terminal {tid} is not enrolled")
        pid = str(row[0])
        # The partner's row is the lock that serializes its leases (PostgreSQL: FOR UPDATE;
        # SQLite: BEGIN IMMEDIATE already did), so two tills never share one free slot.
        rules_row = db.execute(
            "SELECT rules FROM partners WHERE id = ?" + db.for_update,  # noqa: S608 (a fixed clause)
            (pid,),
        ).fetchone()
        if rules_row is None:
            raise LeaseRefused(f"no rules for partner {pid}")
        rules = _rules_decoder.decode(rules_row[0])
        benefit = next((b for b in rules.benefits if b.id == benefit_id), None)
        if benefit is None:
            raise LeaseRefused(f"partner {pid} has no benefit {benefit_id}")
        if benefit.max_persons is None:
            raise LeaseRefused(f"benefit {benefit_id} has no persons limit: it needs no lease")
        base = max(benefit.persons_used, 0)  # persons admitted through other channels
        others = int(
            db.execute(
                "SELECT coalesce(sum(CASE WHEN granted > admitted THEN granted"
                " ELSE admitted END), 0) FROM leases"
                " WHERE partner_id = ? AND benefit_id = ? AND terminal != ?",
                (pid, benefit_id, tid),
            ).fetchone()[0]
        )
        mine = db.execute(
            "SELECT granted FROM leases WHERE partner_id = ? AND benefit_id = ? AND terminal = ?",
            (pid, benefit_id, tid),
        ).fetchone()
        held = 0 if mine is None else int(mine[0])
        room = benefit.max_persons - base - others
        # Never below admitted; lowered only when asked (want < held); raised only into
        # the room left. max(room, held): a limit lowered since does not take a grant back.
        granted = max(admitted, min(want, max(room, held)))
        db.execute(
            "INSERT INTO leases (partner_id, terminal, benefit_id, granted, admitted, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (partner_id, benefit_id, terminal) DO UPDATE"
            " SET granted = excluded.granted, admitted = excluded.admitted,"
            " updated_at = excluded.updated_at",
            (pid, tid, benefit_id, granted, admitted, now),
        )
        total_admitted = int(
            db.execute(
                "SELECT coalesce(sum(admitted), 0) FROM leases"
                " WHERE partner_id = ? AND benefit_id = ?",
                (pid, benefit_id),
            ).fetchone()[0]
        )
        return LeaseOutcome(
            benefit=benefit_id,
            granted=granted,
            persons_used=base + total_admitted,
            held=held,
            max_persons=benefit.max_persons,
            committed=base + others + max(granted, admitted),
        )

    return _tx(db, body)


def _rules_tx(db: Conn, partner_id: str) -> Rules | None:
    row = db.execute("SELECT rules FROM partners WHERE id = ?", (partner_id,)).fetchone()
    if row is None:
        return None
    rules = _rules_decoder.decode(row[0])
    counts = dict(
        db.execute(
            "SELECT benefit_id, count(*) FROM benefit_uses WHERE partner_id = ?"
            " GROUP BY benefit_id",
            (partner_id,),
        ).fetchall()
    )
    if not counts:
        return rules
    benefits = tuple(
        msgspec.structs.replace(b, persons_used=b.persons_used + counts.get(b.id, 0))
        for b in rules.benefits
    )
    return msgspec.structs.replace(rules, benefits=benefits)


def _feed_start(db: Conn, since: int | None, terminal_id: str | None) -> tuple[CardsHeader, Cursor]:
    db.begin_snapshot()  # one snapshot for the header's version, the head and every line
    version = _meta(db, "cards_version")
    terminal_seq: int | None = None
    if terminal_id is not None:
        row = db.execute("SELECT head_seq FROM terminals WHERE id = ?", (terminal_id,)).fetchone()
        terminal_seq = None if row is None else int(row[0])
    floor = _meta(db, "delta_floor")
    # Full when the terminal has nothing, is ahead of us (we were restored from a
    # backup), or is older than the removals we still remember.
    full = since is None or since <= 0 or since < floor or since > version
    if full:
        cur = db.stream(
            "SELECT number, body, points, points_as_of, 0 FROM cards WHERE removed = 0"
            " ORDER BY number"
        )
    else:
        cur = db.stream(
            "SELECT number, body, points, points_as_of, removed FROM cards WHERE version > ?"
            " ORDER BY version, number",
            (since,),
        )
    return CardsHeader(version=version, full=full, terminal_seq=terminal_seq), cur


def _end_snapshot(db: Conn) -> None:
    db.rollback()


def _feed_chunk(_db: Conn, cur: Cursor, full: bool) -> tuple[bytes, int]:
    rows = cur.fetchmany(FEED_CHUNK)
    lines = [
        _removed_line(number) if removed else _card_line(body, points, as_of)
        for number, body, points, as_of, removed in rows
    ]
    return b"".join(lines), len(lines)
