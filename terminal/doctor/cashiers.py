"""The doctor's cashier check: who can log in, and who can approve (docs/architecture.md §5.10).

The cashiers come with the partner's rules, cached in the catalogue; the terminal's own
administrator is a manager from the config. Only hashes are stored, so a manager's PIN
length is enforced where the hash is made and at login; this reports what a hash can
say: a hash no PIN can match, the older PBKDF2 form, and a till without any manager
(where nobody may change a benefit's points or close the day).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from ledger.domain import Cashier, Rules
from ledger.pins import hash_problem
from sync.catalog import catalog_path
from sync.wire import WireError, decode_rules
from terminal.doctor.report import Check, fail, ok, warn

WHAT = "cashiers"


def cached_rules(state_dir: Path) -> Rules | None:
    """The rules the daemon last fetched (read-only), or None when there are none yet."""
    path = catalog_path(state_dir)
    if not path.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'rules'").fetchone()
    except sqlite3.Error:
        return None  # the catalogue check is the sync's; here: no rules known
    if row is None:
        return None
    try:
        return decode_rules(str(row[0]))
    except WireError:
        return None


def check_cashiers(rules: Rules | None, admin_pin_hash: str | None) -> Check:
    """One line: how many can log in and approve, or what stops them."""
    if admin_pin_hash is not None and (why := hash_problem(admin_pin_hash)):
        return fail(
            WHAT,
            f"[terminal] admin_pin_hash cannot be checked: {why}",
            "make it with ledger.pins.hash_pin(pin, role='manager') (README)",
        )
    listed: Sequence[Cashier] = rules.cashiers if rules is not None else ()
    if rules is None:
        return ok(WHAT, "no partner rules yet: the cashiers come with them at the first sync")
    broken = [c.id for c in listed if hash_problem(c.pin_hash)]
    usable = [c for c in listed if c.id not in broken]
    managers = [c.id for c in usable if c.role == "manager"]
    if admin_pin_hash is not None and not any(c.id == "admin" for c in listed):
        managers.append("admin")
    older = [c.id for c in usable if c.pin_hash.startswith("pbkdf2_sha256$")]
    detail = f"{len(usable)} can log in, managers: {', '.join(managers) or 'none'}"
    if older:
        detail += f"; older PBKDF2 hashes: {', '.join(older)}"
    if broken:
        return warn(
            WHAT,
            f"{detail}; no PIN can match the hash of: {', '.join(broken)}",
            "the city corrects those cashiers' pin_hash in the partner's rules",
        )
    if not managers:
        return warn(
            WHAT,
            f"{detail}: nobody may change a benefit's points or close the day",
            'give a cashier "role": "manager" in the partner\'s rules, or set '
            "[terminal] admin_pin_hash",
        )
    return ok(WHAT, detail)
