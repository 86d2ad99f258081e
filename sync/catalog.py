"""The local catalogue: the city's card list and the partner's rules, in its own SQLite file.

A card feed (full snapshot or delta, NDJSON) is applied in ONE write transaction: a
full snapshot is built into staging tables and swapped in by rename, a delta is merged
in place; a feed without its end line, with a wrong count, with a malformed or oversize
line is rolled back whole, so the till never sees half a list. Lookups use a second,
read-only connection (WAL readers never wait for the writer), so a long snapshot load
does not slow the sale path.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import aiosqlite
import msgspec
import structlog

from config.faults import fault_point
from ledger.clock import Clock, format_ts, parse_ts
from ledger.domain import CardRecord, CardRemoved, Rules
from ledger.rules import rules_problems
from ledger.usage import Network
from sync.wire import (
    CardLineInvalid,
    CardsEnd,
    UsageLine,
    WireError,
    decode_card_line,
    decode_cards_header,
    decode_rules,
    decode_usage_header,
    decode_usage_line,
)

log = structlog.get_logger()

MAX_LINE_BYTES = 64 * 1024
_H = TypeVar("_H")
_BATCH = 5000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cards (number TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uids (uid TEXT PRIMARY KEY, number TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS uids_number ON uids (number);
-- Cards whose feed line could not be read: refused as card_data_invalid, never guessed.
CREATE TABLE IF NOT EXISTS invalid_cards (number TEXT PRIMARY KEY, reason TEXT NOT NULL)
    WITHOUT ROWID;
-- The partner's usage feed (docs/architecture.md §5.8): net quantity per holder, benefit
-- and local date through every till of the partner, up to the feed's terminal_seq.
CREATE TABLE IF NOT EXISTS usage (
    holder TEXT NOT NULL, benefit TEXT NOT NULL, day INTEGER NOT NULL, qty INTEGER NOT NULL,
    PRIMARY KEY (holder, benefit, day)
) WITHOUT ROWID;
"""

# executescript() would COMMIT first: these run one by one inside the feed's transaction.
_STAGE_SQL = (
    "DROP TABLE IF EXISTS cards_new",
    "DROP TABLE IF EXISTS uids_new",
    "CREATE TABLE cards_new (number TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE uids_new (uid TEXT PRIMARY KEY, number TEXT NOT NULL) WITHOUT ROWID",
    "DROP TABLE IF EXISTS invalid_new",
    "CREATE TABLE invalid_new (number TEXT PRIMARY KEY, reason TEXT NOT NULL) WITHOUT ROWID",
)
_SWAP_SQL = (
    "DROP TABLE cards",
    "ALTER TABLE cards_new RENAME TO cards",
    "DROP TABLE uids",
    "ALTER TABLE uids_new RENAME TO uids",
    "CREATE INDEX uids_number ON uids (number)",
    "DROP TABLE IF EXISTS invalid_cards",
    "ALTER TABLE invalid_new RENAME TO invalid_cards",
)

_card_encoder = msgspec.msgpack.Encoder()
_card_decoder = msgspec.msgpack.Decoder(CardRecord)
_rules_encoder = msgspec.json.Encoder()


class CatalogError(Exception):
    """The catalogue file cannot be opened or written."""


class FeedRejected(Exception):
    """A card feed that must not be applied; ``str()`` says why."""


@dataclass(frozen=True)
class FeedResult:
    """What became of one card feed."""

    accepted: bool
    full: bool = False
    version: int | None = None
    cards: int = 0  # card lines applied (added or changed)
    removed: int = 0  # removal lines applied
    reason: str | None = None  # why it was rejected


def _norm_uid(uid: str) -> str:
    return uid.strip().lower()


CATALOG_FILE = "catalog.sqlite"


def catalog_path(state_dir: str | Path) -> Path:
    """Where a terminal keeps the city's card list and rules: ``<state_dir>/catalog.sqlite``."""
    return Path(state_dir) / CATALOG_FILE


class Catalog:
    """Cards and rules as the city last sent them, with the age of each part."""

    def __init__(
        self,
        path: Path,
        clock: Clock,
        writer: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        *,
        max_line_bytes: int,
    ) -> None:
        self.path = path
        self._clock = clock
        self._w = writer
        self._r = reader
        self._max_line = max_line_bytes
        self.rules: Rules | None = None
        self.rules_etag: str | None = None
        self._rules_reported: str | None = None  # the rules version whose problems were logged
        self.cards_version: int | None = None
        self._cards_refreshed_at: datetime | None = None
        self.rules_refreshed_at: datetime | None = None
        self._meta: dict[str, str] = {}
        # One writer transaction at a time on the write connection.
        self._write_lock = asyncio.Lock()

    # --- life cycle ---------------------------------------------------------------------

    @classmethod
    async def open(
        cls, path: Path, clock: Clock, *, max_line_bytes: int = MAX_LINE_BYTES
    ) -> Catalog:
        """Open (creating) the catalogue file; reads the cached rules and versions."""
        path = Path(path)
        writer: aiosqlite.Connection | None = None
        reader: aiosqlite.Connection | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = await aiosqlite.connect(path, isolation_level=None)
            await writer.execute("PRAGMA journal_mode=WAL")
            # A cache of the city's data: a lost last refresh is fetched again, but the
            # file must never be corrupt (WAL + NORMAL guarantees that).
            await writer.execute("PRAGMA synchronous=NORMAL")
            await writer.execute("PRAGMA busy_timeout=5000")
            # A full list passes through the WAL (~300 MB for 1M cards): give it back after.
            await writer.execute("PRAGMA journal_size_limit=67108864")
            await writer.executescript(_SCHEMA)
            reader = await aiosqlite.connect(f"file:{path}?mode=ro", uri=True)
            await reader.execute("PRAGMA query_only=1")
            # Point lookups of a few pages each: SQLite's 2 MB default per connection only
            # fills with pages of cards long gone, and stays in the daemon's RSS.
            await reader.execute("PRAGMA cache_size=-512")
            await writer.execute("PRAGMA cache_size=-1024")
            rows = await writer.execute_fetchall("SELECT key, value FROM meta")
        except (sqlite3.Error, OSError) as e:
            for conn in (reader, writer):
                if conn is not None:
                    await conn.close()
            raise CatalogError(f"{path}: cannot open the catalogue: {e}") from None
        cat = cls(path, clock, writer, reader, max_line_bytes=max_line_bytes)
        cat._load_meta({str(k): str(v) for k, v in rows})
        return cat

    def _load_meta(self, meta: dict[str, str]) -> None:
        self._meta = dict(meta)
        if "cards_version" in meta:
            self.cards_version = int(meta["cards_version"])
        if "cards_refreshed_at" in meta:
            self._cards_refreshed_at = parse_ts(meta["cards_refreshed_at"])
        if "rules_refreshed_at" in meta:
            self.rules_refreshed_at = parse_ts(meta["rules_refreshed_at"])
        self.rules_etag = meta.get("rules_etag")
        if "rules" in meta:
            try:
                self.rules = decode_rules(meta["rules"])
                self._report_rules_problems(self.rules)
            except WireError as e:
                # Unreadable cache: behave as never fetched; the next refresh fetches it.
                log.error("catalog_rules_unreadable", reason=str(e))
                self.rules_etag = None

    async def close(self) -> None:
        """Close both connections."""
        await self._r.close()
        await self._w.close()

    async def __aenter__(self) -> Catalog:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- reads --------------------------------------------------------------------------

    async def is_invalid(self, number: str) -> bool:
        """The city sent this card in a line that could not be read (card_data_invalid)."""
        rows = await self._r.execute_fetchall(
            "SELECT 1 FROM invalid_cards WHERE number = ?", (number,)
        )
        return bool(rows)

    async def lookup(self, number: str) -> CardRecord | None:
        """The card with this (normalised) number, or None."""
        rows = await self._r.execute_fetchall("SELECT data FROM cards WHERE number = ?", (number,))
        for (data,) in rows:
            rec: CardRecord = _card_decoder.decode(data)
            return rec
        return None

    async def by_uid(self, uid_hex: str) -> CardRecord | None:
        """The card carrying this contactless UID (hex, any case), or None."""
        rows = await self._r.execute_fetchall(
            "SELECT c.data FROM uids u JOIN cards c ON c.number = u.number WHERE u.uid = ?",
            (_norm_uid(uid_hex),),
        )
        for (data,) in rows:
            rec: CardRecord = _card_decoder.decode(data)
            return rec
        return None

    async def card_count(self) -> int:
        """How many cards the catalogue holds."""
        rows = list(await self._r.execute_fetchall("SELECT count(*) FROM cards"))
        return int(rows[0][0])

    def cards_age_s(self) -> float | None:
        """Seconds since the last successful card-list refresh (None: never)."""
        if self._cards_refreshed_at is None:
            return None
        # A wall clock stepped backwards must not make the list look fresher than new.
        return max(0.0, (self._clock.now() - self._cards_refreshed_at).total_seconds())

    @property
    def cards_refreshed_at(self) -> datetime | None:
        return self._cards_refreshed_at

    def rules_age_s(self) -> float | None:
        """Seconds since the rules were last confirmed by the server (None: never)."""
        if self.rules_refreshed_at is None:
            return None
        return max(0.0, (self._clock.now() - self.rules_refreshed_at).total_seconds())

    # --- small persistent state (sync client bookkeeping) --------------------------------

    @property
    def terminal_seq(self) -> int | None:
        """The highest ``terminal_seq`` a card feed applied here carried (None: none did).

        Every card's balance includes this terminal's entries up to it: a card whose
        points an entry changed is in the next delta (docs/architecture.md §5.4).
        """
        value = self._meta.get("cards_terminal_seq")
        return None if value is None else int(value)

    @property
    def points_floor(self) -> int | None:
        """The card list's balances include this till's entries up to this seq: the
        feed's ``terminal_seq``, or for a feed that does not say, what the city had
        acknowledged before it was fetched (the older ``points_as_of`` rule counts no
        entry the city held then, given clocks that agree). None: no feed yet."""
        value = self._meta.get("cards_included_seq")
        return None if value is None else int(value)

    def get_state(self, key: str) -> str | None:
        """A value the sync client keeps here (acked head, alarms), cached in memory."""
        return self._meta.get(f"state.{key}")

    async def set_state(self, values: dict[str, str | None]) -> None:
        """Store several state values in one transaction (None deletes)."""
        await self._write_meta({f"state.{k}": v for k, v in values.items()})

    async def _write_meta(self, values: dict[str, str | None]) -> None:
        async with self._write_lock:
            await self._write_meta_locked(values)

    async def _write_meta_locked(self, values: dict[str, str | None]) -> None:
        try:
            await self._w.execute("BEGIN IMMEDIATE")
            try:
                await self._put_meta(values)
                await self._w.execute("COMMIT")
            except BaseException:
                await self._w.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise CatalogError(f"{self.path}: cannot write: {e}") from None
        self._apply_meta(values)

    async def _put_meta(self, values: dict[str, str | None]) -> None:
        sets = [(k, v) for k, v in values.items() if v is not None]
        dels = [(k,) for k, v in values.items() if v is None]
        if sets:
            await self._w.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", sets
            )
        if dels:
            await self._w.executemany("DELETE FROM meta WHERE key = ?", dels)

    def _apply_meta(self, values: dict[str, str | None]) -> None:
        for k, v in values.items():
            if v is None:
                self._meta.pop(k, None)
            else:
                self._meta[k] = v

    # --- the partner's usage feed and this till's leases (docs/architecture.md §5.8) ----

    @property
    def usage_version(self) -> int | None:
        value = self._meta.get("usage_version")
        return None if value is None else int(value)

    @property
    def usage_terminal_seq(self) -> int | None:
        """The usage feed applied includes this till's entries up to this seq (None: no feed)."""
        value = self._meta.get("usage_terminal_seq")
        return None if value is None else int(value)

    def leases(self) -> dict[str, int]:
        """benefit -> persons the city lets this till admit (cumulative grant)."""
        text = self._meta.get("leases")
        if not text:
            return {}
        out: dict[str, int] = msgspec.json.decode(text, type=dict[str, int])
        return out

    async def set_lease(self, benefit: str, granted: int) -> None:
        """Keep a grant durably before the till admits anyone within it."""
        leases = {**self.leases(), benefit: granted}
        await self._write_meta({"leases": msgspec.json.encode(leases).decode("ascii")})

    async def network_for(self, holder: str) -> Network:
        """The feed's lines for one holder, with the feed's terminal_seq and the leases."""
        seen = self.usage_terminal_seq
        grants = self.leases()
        if seen is None:
            return Network(grants=grants)
        rows = await self._r.execute_fetchall(
            "SELECT benefit, day, qty FROM usage WHERE holder = ?", (holder,)
        )
        lines: dict[str, list[tuple[int, int]]] = {}
        for benefit, day, qty in rows:
            lines.setdefault(str(benefit), []).append((int(day), int(qty)))
        return Network(
            terminal_seq=seen, lines={b: tuple(v) for b, v in lines.items()}, grants=grants
        )

    async def usage_lines(self) -> int:
        rows = await self._r.execute_fetchall("SELECT count(*) FROM usage")
        return int(next(iter(rows))[0])

    async def apply_usage_feed(self, lines: AsyncIterator[bytes]) -> FeedResult:
        """Apply one usage feed whole (a full one replaces every line, a delta merges; qty
        0 removes), or reject it whole and keep the previous one."""
        full = False
        version: int | None = None
        try:
            header = await self._header(lines, decode_usage_header, "usage feed")
            full, version = header.full, header.version
            meta: dict[str, str | None] = {
                "usage_version": str(header.version),
                "usage_terminal_seq": str(header.terminal_seq),
                "usage_refreshed_at": format_ts(self._clock.now()),
            }
            async with self._write_lock:
                n = await self._apply_usage_locked(lines, header.full, meta)
        except FeedRejected as e:
            log.error("usage_feed_rejected", reason=str(e), full=full, version=version)
            return FeedResult(accepted=False, full=full, version=version, reason=str(e))
        log.info("usage_feed_applied", full=full, version=version, lines=n)
        return FeedResult(accepted=True, full=full, version=version, cards=n)

    async def _apply_usage_locked(
        self, lines: AsyncIterator[bytes], full: bool, meta: dict[str, str | None]
    ) -> int:
        w = self._w
        try:
            await w.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise CatalogError(f"{self.path}: cannot write: {e}") from None
        try:
            if full:
                await w.execute("DELETE FROM usage")
            n, seen, end = 1, 0, None
            batch: list[UsageLine] = []
            async for line in lines:
                n += 1
                self._check_size(line, n)
                if end is not None:
                    raise FeedRejected(f"line {n}: data after the end line")
                try:
                    item = decode_usage_line(line)
                except WireError as e:
                    raise FeedRejected(f"line {n}: {e}") from None
                if isinstance(item, CardsEnd):
                    end = item
                    continue
                seen += 1
                batch.append(item)
                if len(batch) >= _BATCH:
                    await self._flush_usage(batch)
                    batch = []
            if end is None:
                raise FeedRejected(f"no end line after line {n} (truncated usage feed)")
            if end.count != seen:
                raise FeedRejected(f"end line counts {end.count} lines, feed carried {seen}")
            await self._flush_usage(batch)
            await self._put_meta(meta)  # lines and their terminal_seq: one transaction
            await w.execute("COMMIT")
        except BaseException as e:
            try:
                await w.execute("ROLLBACK")
            except sqlite3.Error:
                log.exception("catalog_rollback_failed")
            if isinstance(e, sqlite3.Error):
                raise CatalogError(f"{self.path}: cannot apply the usage feed: {e}") from None
            raise
        self._apply_meta(meta)
        return seen

    async def _flush_usage(self, batch: list[UsageLine]) -> None:
        if not batch:
            return
        keep = [(u.holder, u.benefit, u.date.toordinal(), u.qty) for u in batch if u.qty]
        gone = [(u.holder, u.benefit, u.date.toordinal()) for u in batch if not u.qty]
        if gone:
            await self._w.executemany(
                "DELETE FROM usage WHERE holder = ? AND benefit = ? AND day = ?", gone
            )
        if keep:
            await self._w.executemany(
                "INSERT OR REPLACE INTO usage (holder, benefit, day, qty) VALUES (?, ?, ?, ?)",
                keep,
            )

    # --- rules --------------------------------------------------------------------------

    async def set_rules(self, rules: Rules, etag: str | None) -> None:
        """Keep the partner's rules (and the ETag they came with)."""
        now = format_ts(self._clock.now())
        text = _rules_encoder.encode(rules).decode("utf-8")
        await self._write_meta({"rules": text, "rules_etag": etag, "rules_refreshed_at": now})
        self.rules, self.rules_etag = rules, etag
        self.rules_refreshed_at = parse_ts(now)
        self._report_rules_problems(rules)

    def _report_rules_problems(self, rules: Rules) -> None:
        """Log what is wrong with a rules document once per version (the contract's 11.1)."""
        if self._rules_reported == rules.version_str:
            return
        self._rules_reported = rules.version_str
        problems = rules_problems(rules)
        if problems:
            log.warning("rules_problems", version=rules.version_str, problems=problems)

    async def rules_unchanged(self) -> None:
        """Record that the server confirmed the cached rules (304 Not Modified)."""
        now = format_ts(self._clock.now())
        await self._write_meta({"rules_refreshed_at": now})
        self.rules_refreshed_at = parse_ts(now)

    # --- the card feed ------------------------------------------------------------------

    async def apply_feed(
        self, lines: AsyncIterator[bytes], *, acked_seq: int | None = None
    ) -> FeedResult:
        """Apply one NDJSON card feed whole, or reject it whole and keep the old list.

        ``acked_seq``: the city held this till's entries up to it before the feed was
        asked for; with a feed that does not say its ``terminal_seq`` it is what the
        balances are taken to include (``points_floor``).
        """
        full = False
        version: int | None = None
        try:
            header = await self._header(lines, decode_cards_header, "feed")
            full, version = header.full, header.version
            async with self._write_lock:
                cards, removed = await self._apply_locked(
                    lines,
                    full=full,
                    version=version,
                    terminal_seq=header.terminal_seq,
                    included=header.terminal_seq if header.terminal_seq is not None else acked_seq,
                )
        except FeedRejected as e:
            log.error(
                "card_feed_rejected",
                reason=str(e),
                full=full,
                version=version,
                kept_version=self.cards_version,
            )
            return FeedResult(accepted=False, full=full, version=version, reason=str(e))
        log.info("card_feed_applied", full=full, version=version, cards=cards, removed=removed)
        return FeedResult(accepted=True, full=full, version=version, cards=cards, removed=removed)

    async def _header(
        self, lines: AsyncIterator[bytes], decode: Callable[[bytes], _H], what: str
    ) -> _H:
        """A feed's first line through its decoder, or FeedRejected saying why not."""
        first = await anext(lines, None)
        if first is None:
            raise FeedRejected(f"empty {what} (no header line)")
        self._check_size(first, 1)
        try:
            return decode(first)
        except WireError as e:
            raise FeedRejected(f"line 1: {e}") from None

    def _check_size(self, line: bytes, n: int) -> None:
        if len(line) > self._max_line:
            raise FeedRejected(f"line {n}: longer than {self._max_line} bytes")

    async def _apply_locked(
        self,
        lines: AsyncIterator[bytes],
        *,
        full: bool,
        version: int,
        terminal_seq: int | None,
        included: int | None,
    ) -> tuple[int, int]:
        w = self._w
        now = format_ts(self._clock.now())
        meta: dict[str, str | None] = {"cards_version": str(version), "cards_refreshed_at": now}
        if terminal_seq is not None and (
            self.terminal_seq is None or terminal_seq > self.terminal_seq
        ):
            meta["cards_terminal_seq"] = str(terminal_seq)
        if included is not None and (self.points_floor is None or included > self.points_floor):
            meta["cards_included_seq"] = str(included)
        try:
            await w.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise CatalogError(f"{self.path}: cannot write: {e}") from None
        try:
            if full:
                for sql in _STAGE_SQL:
                    await w.execute(sql)
            cards, removed = await self._stream(lines, full=full, terminal_seq=terminal_seq)
            fault_point("mid_catalog_swap")
            if full:
                for sql in _SWAP_SQL:
                    await w.execute(sql)
            await self._put_meta(meta)
            await w.execute("COMMIT")
        except BaseException as e:
            try:
                await w.execute("ROLLBACK")
            except sqlite3.Error:
                log.exception("catalog_rollback_failed")
            if isinstance(e, sqlite3.Error):
                raise CatalogError(f"{self.path}: cannot apply the card feed: {e}") from None
            raise
        self._apply_meta(meta)
        self.cards_version = version
        self._cards_refreshed_at = parse_ts(now)
        return cards, removed

    async def _stream(
        self, lines: AsyncIterator[bytes], *, full: bool, terminal_seq: int | None
    ) -> tuple[int, int]:
        pending: dict[str, CardRecord | CardLineInvalid | None] = {}
        seen = applied = removed = 0
        n = 1
        end: CardsEnd | None = None
        max_line = self._max_line
        async for line in lines:
            n += 1
            if len(line) > max_line:
                self._check_size(line, n)
            if end is not None:
                raise FeedRejected(f"line {n}: data after the end line")
            try:
                item = decode_card_line(line)
            except WireError as e:
                raise FeedRejected(f"line {n}: {e}") from None
            if isinstance(item, CardsEnd):
                end = item
                continue
            seen += 1
            if isinstance(item, CardLineInvalid):
                log.warning("card_line_invalid", line=n, card=item.number, reason=item.reason)
                if item.number is not None:
                    pending[item.number] = item
                continue
            if isinstance(item, CardRemoved):
                removed += 1
                pending[item.number] = None
            else:
                applied += 1
                if item.points_seq != terminal_seq:
                    item = msgspec.structs.replace(item, points_seq=terminal_seq)
                pending[item.number] = item
            if len(pending) >= _BATCH:
                # Written before decoding on: overlapping the two was measured to cost
                # 15-40 % more CPU (GIL hand-offs with the sqlite thread), for no gain.
                await self._flush(pending, full=full)
                pending = {}
        if end is None:
            raise FeedRejected(f"no end line after line {n} (truncated feed)")
        if end.count != seen:
            raise FeedRejected(f"end line counts {end.count} cards, feed carried {seen}")
        if pending:
            await self._flush(pending, full=full)
        return applied, removed

    async def _flush(
        self, pending: dict[str, CardRecord | CardLineInvalid | None], *, full: bool
    ) -> None:
        cards_t, uids_t, invalid_t = (
            ("cards_new", "uids_new", "invalid_new") if full else ("cards", "uids", "invalid_cards")
        )
        good = {num: r for num, r in pending.items() if isinstance(r, CardRecord)}
        upserts = [(num, _card_encoder.encode(r)) for num, r in good.items()]
        uid_rows = _uid_rows(good.values())
        bad = [
            (num, r.reason[:500]) for num, r in pending.items() if isinstance(r, CardLineInvalid)
        ]
        if not full:
            # Drop every old UID of a changed or removed card before writing the new ones.
            await self._w.executemany(
                "DELETE FROM uids WHERE number = ?", [(num,) for num in pending]
            )
            # An unreadable line replaces the card: its old record may say it is active.
            gone = [(num,) for num, r in pending.items() if not isinstance(r, CardRecord)]
            if gone:
                await self._w.executemany("DELETE FROM cards WHERE number = ?", gone)
            await self._w.executemany(
                "DELETE FROM invalid_cards WHERE number = ?", [(num,) for num in pending]
            )
        if bad:
            await self._w.executemany(
                f"INSERT OR REPLACE INTO {invalid_t} (number, reason) VALUES (?, ?)",  # noqa: S608
                bad,
            )
        if upserts:
            await self._w.executemany(
                f"INSERT OR REPLACE INTO {cards_t} (number, data) VALUES (?, ?)",  # noqa: S608
                upserts,
            )
        if uid_rows:
            await self._w.executemany(
                f"INSERT OR REPLACE INTO {uids_t} (uid, number) VALUES (?, ?)",  # noqa: S608
                uid_rows,
            )


def _uid_rows(records: Iterable[CardRecord]) -> list[tuple[str, str]]:
    return [(u.strip().lower(), r.number) for r in records for u in r.uids]


def card_line(record: CardRecord | CardRemoved | Any) -> bytes:
    """One NDJSON feed line for a card (tests, benchmarks, the demo)."""
    return msgspec.json.encode(record) + b"\n"
