"""`kartapos doctor`'s cashier line: who can log in and who can approve (§5.10)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from ledger.clock import FakeClock
from ledger.domain import Cashier, Rules
from ledger.pins import hash_pin, hash_pin_pbkdf2
from sync.catalog import Catalog, catalog_path
from terminal.doctor.cashiers import cached_rules, check_cashiers
from terminal.doctor.report import Level

KASIA = Cashier(id="K1", name="Kasia", pin_hash=hash_pin("1234"))
OLD = Cashier(id="K2", name="Tomek", pin_hash=hash_pin_pbkdf2("5678", iterations=1000))
MARTA = Cashier(id="M1", name="Marta", pin_hash=hash_pin("246810", role="manager"), role="manager")
BROKEN = Cashier(id="K9", name="Zły", pin_hash="md5$abc")


def rules(*cashiers: Cashier) -> Rules:
    return Rules(version="1", cashiers=cashiers)


def test_a_till_with_a_manager_is_ok_and_names_older_hashes() -> None:
    c = check_cashiers(rules(KASIA, OLD, MARTA), None)
    assert c.level is Level.OK
    assert c.detail == "3 can log in, managers: M1; older PBKDF2 hashes: K2"


def test_no_manager_is_a_warning_unless_the_terminal_has_its_administrator() -> None:
    c = check_cashiers(rules(KASIA), None)
    assert c.level is Level.WARN
    assert "nobody may change a benefit's points or close the day" in c.detail
    assert c.fix is not None
    assert "admin_pin_hash" in c.fix
    with_admin = check_cashiers(rules(KASIA), hash_pin("135790", role="manager"))
    assert (with_admin.level, with_admin.detail) == (Level.OK, "1 can log in, managers: admin")


def test_a_hash_no_pin_can_match_is_named() -> None:
    c = check_cashiers(rules(KASIA, MARTA, BROKEN), None)
    assert c.level is Level.WARN
    assert c.detail.endswith("no PIN can match the hash of: K9")
    bad_admin = check_cashiers(rules(KASIA, MARTA), "plain-1234")
    assert bad_admin.level is Level.FAIL
    assert "admin_pin_hash" in bad_admin.detail


def test_no_rules_yet_is_not_a_problem_of_a_new_box(tmp_path: Path) -> None:
    assert cached_rules(tmp_path) is None
    assert check_cashiers(None, None).level is Level.OK


async def test_the_rules_are_read_from_the_daemons_catalogue(tmp_path: Path) -> None:
    cat = await Catalog.open(catalog_path(tmp_path), FakeClock(datetime.now(UTC)))
    try:
        await cat.set_rules(rules(KASIA, MARTA), etag=None)
    finally:
        await cat.close()
    found = cached_rules(tmp_path)
    assert found is not None
    assert [c.id for c in found.cashiers] == ["K1", "M1"]
