"""Admin operations of the reference city server: enrol terminals, load cards and rules.

They work on the database file directly (safe while the server runs: WAL, one
transaction each) and raise ``AdminError`` with a one-line message for bad input.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path
from typing import Any

import msgspec

from ledger.cards import DEFAULT_FORMAT, CardNumberError
from ledger.domain import CardRecord, CardRemoved, CardStatus, Holder, Program, Rules
from sync.central.db import CentralDB, CentralError, FeedRead, HeldEntry, TerminalRow
from sync.central.demo_data import DEMO_PARTNER, DEMO_TERMINAL, seed_demo_into
from sync.central.stats import PartnerStats, RangeError, report_range
from sync.wire import load_public_key

MIN_TOKEN_LENGTH = 16


class AdminError(Exception):
    """Bad admin input; ``str()`` is the one-line message (file, line, reason)."""


CardItems = tuple[list[CardRecord | CardRemoved], frozenset[str]]


def _check_number(number: str, where: str) -> None:
    try:
        if DEFAULT_FORMAT.normalise(number) != number:
            raise CardNumberError("not in printed form")
    except CardNumberError:
        raise AdminError(f"{where}: {number!r} is not a card number like 01-000018") from None


def _card_from_obj(obj: Any, where: str) -> tuple[CardRecord | CardRemoved, bool]:
    if not isinstance(obj, dict):
        raise AdminError(f"{where}: a card must be a JSON object")
    try:
        item: CardRecord | CardRemoved
        if obj.get("removed") is True:
            item = msgspec.convert(obj, CardRemoved)
        else:
            item = msgspec.convert(obj, CardRecord)
    except msgspec.ValidationError as e:
        raise AdminError(f"{where}: {e}") from None
    _check_number(item.number, where)
    return item, "points" in obj


def parse_cards_json(text: str, name: str) -> CardItems:
    """A JSON array of cards (feed line shapes), or ``{"cards": [...]}``."""
    try:
        data = msgspec.json.decode(text)
    except msgspec.DecodeError as e:
        raise AdminError(f"{name}: not valid JSON: {e}") from None
    if isinstance(data, dict) and isinstance(data.get("cards"), list):
        data = data["cards"]
    if not isinstance(data, list):
        raise AdminError(f'{name}: expected a list of cards or {{"cards": [...]}}')
    items: list[CardRecord | CardRemoved] = []
    given: set[str] = set()
    for i, obj in enumerate(data):
        item, has_points = _card_from_obj(obj, f"{name}: card #{i + 1}")
        items.append(item)
        if has_points:
            given.add(item.number)
    return items, frozenset(given)


CSV_COLUMNS = ("number", "status", "display_name", "birth_date", "uids", "programs", "points")


def parse_cards_csv(text: str, name: str) -> CardItems:
    """CSV with a header: number,status,display_name[,birth_date,uids,programs,points].

    ``uids``: hex UIDs separated by spaces or ';'. ``programs``: ``code:YYYY-MM-DD``
    separated by spaces or ';'. ``status`` ``removed`` drops the card from the list.
    An empty ``points`` keeps the server's balance.
    """
    reader = csv.DictReader(io.StringIO(text))
    cols = set(reader.fieldnames or ())
    missing = {"number", "status", "display_name"} - cols
    if missing:
        raise AdminError(f"{name}: missing CSV column(s): {', '.join(sorted(missing))}")
    unknown = cols - set(CSV_COLUMNS)
    if unknown:
        raise AdminError(f"{name}: unknown CSV column(s): {', '.join(sorted(unknown))}")
    items: list[CardRecord | CardRemoved] = []
    given: set[str] = set()
    for row in reader:
        where = f"{name}: line {reader.line_num}"
        number = (row.get("number") or "").strip()
        _check_number(number, where)
        status_text = (row.get("status") or "").strip()
        if status_text == "removed":
            items.append(CardRemoved(number=number, removed=True))
            continue
        try:
            status = CardStatus(status_text)
            birth = (row.get("birth_date") or "").strip()
            programs = []
            for part in (row.get("programs") or "").replace(";", " ").split():
                code, _, valid_to = part.partition(":")
                programs.append(Program(code=code, valid_to=date.fromisoformat(valid_to)))
            points_text = (row.get("points") or "").strip()
            uids = tuple(u.lower() for u in (row.get("uids") or "").replace(";", " ").split())
            for u in uids:
                bytes.fromhex(u)
            card = CardRecord(
                number=number,
                status=status,
                holder=Holder(
                    display_name=(row.get("display_name") or "").strip(),
                    birth_date=date.fromisoformat(birth) if birth else None,
                ),
                uids=uids,
                programs=tuple(programs),
                points=int(points_text) if points_text else 0,
            )
        except ValueError as e:
            raise AdminError(f"{where}: {e}") from None
        items.append(card)
        if points_text:
            given.add(number)
    return items, frozenset(given)


def parse_cards_file(path: Path) -> CardItems:
    """Cards from a .json or .csv file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise AdminError(f"{path}: cannot read: {e}") from None
    if path.suffix.lower() == ".csv":
        return parse_cards_csv(text, str(path))
    if path.suffix.lower() == ".json":
        return parse_cards_json(text, str(path))
    raise AdminError(f"{path}: cards file must end in .json or .csv")


def parse_rules_file(path: Path) -> Rules:
    """A partner's rules document (the shape of GET /v1/partners/{pid}/rules)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise AdminError(f"{path}: cannot read: {e}") from None
    try:
        return msgspec.json.decode(data, type=Rules)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise AdminError(f"{path}: not a rules document: {e}") from None


def check_enrolment(terminal_id: str, token: str, public_key_b64: str | None) -> None:
    if not terminal_id.strip():
        raise AdminError("terminal id is empty")
    if len(token) < MIN_TOKEN_LENGTH or token != token.strip():
        raise AdminError(f"token must be at least {MIN_TOKEN_LENGTH} characters, no spaces")
    if public_key_b64 is not None:
        try:
            load_public_key(public_key_b64)
        except ValueError as e:
            raise AdminError(str(e)) from None


async def _open(db_path: Path | str) -> CentralDB:
    try:
        return await CentralDB.open(db_path)
    except CentralError as e:
        raise AdminError(str(e)) from None


async def enrol(
    db_path: Path | str,
    terminal_id: str,
    partner_id: str,
    token: str,
    public_key_b64: str | None,
) -> None:
    """Enrol a terminal for a partner with its bearer token and (optionally) its key."""
    check_enrolment(terminal_id, token, public_key_b64)
    async with await _open(db_path) as db:
        try:
            await db.enrol(terminal_id, partner_id, token, public_key_b64)
        except CentralError as e:
            raise AdminError(str(e)) from None


async def seed_demo(db_path: Path | str, *, terminal_token: str | None = None) -> bool:
    """Load the demo data (idempotent); with a token, also enrol T-DEMO for P-0001.

    T-DEMO's key is then learnt on first upload when ``trust_on_first_use`` is set.
    Returns False when the data was already there.
    """
    if terminal_token is not None:
        check_enrolment(DEMO_TERMINAL, terminal_token, None)
    async with await _open(db_path) as db:
        seeded = await seed_demo_into(db)
        if terminal_token is not None:
            try:
                await db.enrol(DEMO_TERMINAL, DEMO_PARTNER, terminal_token, None)
            except CentralError as e:
                raise AdminError(str(e)) from None
        return seeded


async def load_cards(db_path: Path | str, file: Path) -> tuple[int, int]:
    """Load cards from JSON/CSV; returns (cards in the file, new card list version)."""
    items, given = parse_cards_file(file)
    async with await _open(db_path) as db:
        version = await db.upsert_cards(items, points_given=given)
    return len(items), version


async def load_rules(db_path: Path | str, partner_id: str, file: Path) -> Rules:
    """Store a partner's rules document from a JSON file."""
    rules = parse_rules_file(file)
    async with await _open(db_path) as db:
        await db.load_rules(partner_id, rules)
    return rules


async def set_card_status(db_path: Path | str, number: str, status: CardStatus) -> None:
    """Block (or unblock) a card; the next card feed delta carries it."""
    _check_number(number, "card")
    async with await _open(db_path) as db:
        if not await db.set_card_status(number, status):
            raise AdminError(f"card {number} is not on the card list")


async def compact_cards(db_path: Path | str) -> int:
    """Drop removed cards for good; returns the version older deltas are refused below."""
    async with await _open(db_path) as db:
        return await db.compact_cards()


async def list_heads(db_path: Path | str) -> list[TerminalRow]:
    async with await _open(db_path) as db:
        return await db.heads()


async def quarantine_list(db_path: Path | str, *, every: bool = False) -> list[HeldEntry]:
    """Entries held in quarantine (``every``: decided ones too), oldest first."""
    async with await _open(db_path) as db:
        return await db.quarantined(None if every else "held")


async def quarantine_decide(
    db_path: Path | str,
    terminal_id: str,
    seq: int,
    *,
    approve: bool,
    by: str,
    note: str | None,
) -> HeldEntry:
    """Approve (credit now) or reject a held entry; an AdminError names why not."""
    async with await _open(db_path) as db:
        try:
            return await db.decide(terminal_id, seq, approve=approve, by=by, note=note)
        except CentralError as e:
            raise AdminError(str(e)) from None


async def feed_reads(
    db_path: Path | str, terminal_id: str | None = None, limit: int = 100
) -> list[FeedRead]:
    """The latest card-feed downloads (of one terminal), newest first."""
    async with await _open(db_path) as db:
        return await db.feed_reads(terminal_id, limit)


async def partner_stats(
    db_path: Path | str, partner_id: str, date_from: str, date_to: str
) -> PartnerStats:
    """A partner's statistics over local days ``date_from``..``date_to``; an AdminError
    for a bad range or a partner the city does not know (no rules, no terminals)."""
    try:
        date_from, date_to = report_range(date_from, date_to)
    except RangeError as e:
        raise AdminError(str(e)) from None
    async with await _open(db_path) as db:
        known = set(await db.partners()) | {t.partner_id for t in await db.heads()}
        if partner_id not in known:
            raise AdminError(f"partner {partner_id} has no rules and no terminals here")
        return await db.partner_stats(partner_id, date_from, date_to)
