"""`kartapos central -c FILE quarantine|reads` as a city operator runs them (real processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.clock import SystemClock, local_date
from tests.ledger.test_rules_support import Till
from tests.sync.central_harness import CentralHarness
from tests.sync.test_central_business import ANNA, CARDS, NOON, RULES, reseal
from tests.sync.test_central_cli import cfg, database, kartapos

pytestmark = pytest.mark.usefixtures("central_engine")  # on SQLite and PostgreSQL

__all__ = ["cfg", "database"]  # fixtures used here


async def test_an_operator_lists_approves_and_rejects_held_entries(
    tmp_path: Path, cfg: Path, database: str
) -> None:
    from ledger.rules import SaleRequest

    assert local_date(SystemClock().now()) == NOON.date()
    till = Till()
    for points in (500, 600):
        e = till.sell(CARDS[ANNA], RULES, SaleRequest(amount_gr=1000), NOON)
        reseal(till, e, points_earned=points)
    db_at = database if "://" in database else str(tmp_path / database)
    async with CentralHarness.start(tmp_path, database=db_at) as h:
        async with h.session() as http:
            body = h.batch_body(till.entries)
            async with http.post("/v1/terminals/T-0001/entries", data=body) as r:
                assert r.status == 200
            async with http.get("/v1/cards") as r:
                await r.read()
        before = (await h.db.card(ANNA)).points  # type: ignore[union-attr]
    listed = kartapos("central", "-c", str(cfg), "quarantine", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("T-0001\tseq 1\theld\tpurchase_points_mismatch")
    assert "punkty za zakup nie wynikają z kwoty i zasad" in lines[0]
    bare = kartapos("central", "-c", str(cfg), "quarantine", "approve", "T-0001", cwd=tmp_path)
    assert bare.returncode == 2
    assert "needs TID SEQ --by NAME" in bare.stderr
    ok = kartapos("central", "-c", str(cfg), "quarantine", "approve", "T-0001", "1",
                  "--by", "Ewa", "--note", "promocja", cwd=tmp_path)  # fmt: skip
    assert (ok.returncode, ok.stdout.strip()) == (0, "T-0001 seq 1: approved by Ewa (credited)")
    no = kartapos("central", "-c", str(cfg), "quarantine", "reject", "T-0001", "2",
                  "--by", "Ewa", cwd=tmp_path)  # fmt: skip
    assert no.returncode == 0, no.stderr
    again = kartapos("central", "-c", str(cfg), "quarantine", "reject", "T-0001", "1",
                     "--by", "Ewa", cwd=tmp_path)  # fmt: skip
    assert again.returncode == 2
    assert "already approved" in again.stderr
    assert kartapos("central", "-c", str(cfg), "quarantine", "list", cwd=tmp_path).stdout == (
        "no entries held\n"
    )
    every = kartapos("central", "-c", str(cfg), "quarantine", "list", "--all", cwd=tmp_path)
    assert [x.split("\t")[2] for x in every.stdout.splitlines()] == ["approved", "rejected"]
    reads = kartapos("central", "-c", str(cfg), "reads", cwd=tmp_path)
    assert reads.returncode == 0, reads.stderr
    [read] = reads.stdout.splitlines()
    assert "\tT-0001\tfull\t" in read
    assert read.endswith("\t60 lines")
    async with CentralHarness.start(tmp_path, database=db_at, seed=False) as h:
        assert (await h.db.card(ANNA)).points == before + 500  # type: ignore[union-attr]
