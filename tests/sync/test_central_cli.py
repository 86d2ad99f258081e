"""`kartapos central -c FILE [ACTION]` as a user runs it (real processes)."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from config.loader import load_central_config
from sync.wire import public_key_b64
from tests.pgserver import central_database

pytestmark = pytest.mark.usefixtures("central_engine")  # on SQLite and PostgreSQL


def kartapos(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "terminal.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def database(tmp_path: Path) -> str:
    """The config's database: data/central.sqlite beside it, or a PostgreSQL URL."""
    db = central_database(tmp_path / "data")
    return "data/central.sqlite" if db == str(tmp_path / "data" / "central.sqlite") else db


@pytest.fixture
def cfg(tmp_path: Path, database: str) -> Path:
    p = tmp_path / "central.toml"
    p.write_text(
        f'[central]\nlisten = "127.0.0.1:{free_port()}"\ndatabase = "{database}"\n'
        'trust_on_first_use = true\n\n[logging]\nformat = "json"\n',
        encoding="utf-8",
    )
    return p


def _one_line_error(r: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert r.returncode == code, r
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    for n in needles:
        assert n in r.stderr


def test_help_lists_every_action(tmp_path: Path) -> None:
    r = kartapos("central", "--help", cwd=tmp_path)
    assert r.returncode == 0
    for action in (
        "enrol",
        "seed-demo",
        "load-cards",
        "load-rules",
        "block-card",
        "compact-cards",
        "heads",
    ):
        assert action in r.stdout


def test_bad_config_is_one_line_exit_2(tmp_path: Path) -> None:
    _one_line_error(kartapos("central", "-c", "missing.toml", cwd=tmp_path), 2, "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text('[central]\nlisten = "127.0.0.1:8765"\nspeed = 3\n', encoding="utf-8")
    _one_line_error(kartapos("central", "-c", str(bad), "heads", cwd=tmp_path), 2, "speed")


def test_seed_enrol_and_heads(cfg: Path, tmp_path: Path) -> None:
    tok = tmp_path / "secrets" / "demo-token"
    r = kartapos("central", "-c", str(cfg), "seed-demo", "--token-file", str(tok), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "demo data loaded" in r.stdout
    assert stat.S_IMODE(tok.stat().st_mode) == 0o600
    token = tok.read_text().strip()
    assert len(token) >= 32
    assert token not in r.stdout + r.stderr
    r = kartapos("central", "-c", str(cfg), "seed-demo", cwd=tmp_path)
    assert "already" in r.stdout

    key = public_key_b64(Ed25519PrivateKey.generate())
    t2 = tmp_path / "t2-token"
    r = kartapos(
        "central", "-c", str(cfg), "enrol", "T-0002", "--partner", "P-0002",
        "--token-file", str(t2), "--public-key", key, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = kartapos("central", "-c", str(cfg), "heads", cwd=tmp_path)
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].startswith("T-0002\tP-0002\tseq 0")
    assert "key enrolled" in lines[0]
    assert lines[1].startswith("T-DEMO\tP-0001\tseq 0")
    assert "no key" in lines[1]

    r = kartapos(
        "central", "-c", str(cfg), "enrol", "T-0003", "--partner", "P-0002",
        "--token-file", str(tmp_path / "t3"), "--public-key", "bm90IGEga2V5", cwd=tmp_path,
    )  # fmt: skip
    _one_line_error(r, 2, "public key")
    # The same token for a second terminal is refused.
    r = kartapos(
        "central", "-c", str(cfg), "enrol", "T-0004", "--partner", "P-0002",
        "--token-file", str(t2), cwd=tmp_path,
    )  # fmt: skip
    _one_line_error(r, 2, "T-0002")


def test_load_cards_csv_and_json_block_and_load_rules(cfg: Path, tmp_path: Path) -> None:
    csv_file = tmp_path / "cards.csv"
    csv_file.write_text(
        "number,status,display_name,birth_date,uids,programs,points\n"
        "05-000011,active,Żaneta Ś.,1990-01-02,04a1b2c3,mieszkaniec:2030-12-31;kdr:2030-12-31,40\n"
        "05-000029,active,Jan Ł.,,,mieszkaniec:2030-12-31,\n",
        encoding="utf-8",
    )
    r = kartapos("central", "-c", str(cfg), "load-cards", str(csv_file), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "loaded 2 cards" in r.stdout
    json_file = tmp_path / "cards.json"
    json_file.write_text(
        json.dumps(
            {
                "cards": [
                    {"number": "05-000029", "removed": True},
                    {
                        "number": "05-000037",
                        "status": "blocked",
                        "holder": {"display_name": "Ola Ź."},
                        "programs": [],
                    },
                ]
            }
        ),
        encoding="utf-8",
    )
    r = kartapos("central", "-c", str(cfg), "load-cards", str(json_file), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = kartapos("central", "-c", str(cfg), "block-card", "05-000011", cwd=tmp_path)
    assert (r.returncode, r.stdout.strip()) == (0, "card 05-000011: blocked")
    _one_line_error(
        kartapos("central", "-c", str(cfg), "block-card", "05-999999", cwd=tmp_path), 2, "05-999999"
    )

    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text(
        "number,status,display_name\n05-000011,active,A\n05-000045,lost,B\n", encoding="utf-8"
    )
    _one_line_error(
        kartapos("central", "-c", str(cfg), "load-cards", str(bad_csv), cwd=tmp_path),
        2,
        "line 3",
    )
    _one_line_error(
        kartapos("central", "-c", str(cfg), "load-cards", str(tmp_path / "x.xml"), cwd=tmp_path),
        2,
    )

    rules = tmp_path / "rules.json"
    rules.write_text(
        json.dumps(
            {
                "version": "r1",
                "partner": {"name": "Piekarnia Łan", "nip": "5732846199"},
                "benefits": [{"id": "B-1", "name": "Chleb -10%", "label": "-10%"}],
            }
        ),
        encoding="utf-8",
    )
    r = kartapos("central", "-c", str(cfg), "load-rules", "P-0042", str(rules), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "1 benefits" in r.stdout
    rules.write_text('{"version": "r2", "benefits": [{"id": 5}]}', encoding="utf-8")
    _one_line_error(
        kartapos("central", "-c", str(cfg), "load-rules", "P-0042", str(rules), cwd=tmp_path), 2
    )

    import asyncio

    from sync.central import CentralDB

    async def check() -> None:
        async with await CentralDB.open(load_central_config(cfg).central.database) as db:
            z = await db.card("05-000011")
            assert z is not None
            assert (z.status.value, z.points, z.uids) == ("blocked", 40, ("04a1b2c3",))
            assert await db.card("05-000029") is None
            o = await db.card("05-000037")
            assert o is not None
            assert o.holder.display_name == "Ola Ź."
            loaded = await db.rules("P-0042")
            assert loaded is not None
            assert loaded.partner.name == "Piekarnia Łan"

    asyncio.run(check())


def test_server_process_serves_and_stops_on_sigterm(cfg: Path, tmp_path: Path) -> None:
    tok = tmp_path / "tok"
    assert kartapos("central", "-c", str(cfg), "seed-demo", "--token-file", str(tok),
                    cwd=tmp_path).returncode == 0  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "terminal.cli", "central", "-c", str(cfg)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        ready, _, _ = select.select([proc.stderr], [], [], 20)
        assert ready, "no start-up line within 20 s"
        line = proc.stderr.readline()
        assert "listening on http://127.0.0.1:" in line
        url = line.strip().rsplit(" ", 1)[1]
        req = urllib.request.Request(  # noqa: S310 - a loopback http URL
            url + "/v1/terminals/T-DEMO/head",
            headers={"Authorization": f"Bearer {tok.read_text().strip()}"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback URL
            assert json.loads(resp.read()) == {"seq": 0, "hash": "0" * 64}
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0
        assert tok.read_text().strip() not in out + err
        events = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
        assert any(e.get("event") == "central_listening" for e in events)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


CENTRAL_ACTIONS = {
    # action: what its --help must name (its arguments, or that it takes none)
    "enrol": ("TID", "--partner", "--token-file", "--public-key", "0600"),
    "seed-demo": ("--token-file", "T-DEMO"),
    "load-cards": ("FILE", ".csv", "number,status,display_name"),
    "load-rules": ("PID", "FILE", "JSON"),
    "block-card": ("NUMBER", "01-000018"),
    "unblock-card": ("NUMBER", "01-000018"),
    "compact-cards": ("no arguments",),
    "heads": ("no arguments",),
}


@pytest.mark.parametrize("action", sorted(CENTRAL_ACTIONS))
def test_every_action_has_its_own_help(action: str, tmp_path: Path) -> None:
    """Catches `central enrol --help` listing bare TID / --partner with no word on them."""
    r = kartapos("central", "-c", "central.toml", action, "--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: kartapos central -c FILE {action}"), r.stdout
    description = r.stdout.split("\n\n")[1]
    assert len(description.split()) >= 8, r.stdout  # a sentence, not just the usage
    for needle in CENTRAL_ACTIONS[action]:
        assert needle in r.stdout, (needle, r.stdout)
    arguments = r.stdout.split("\n\n", 2)[2]  # after the usage and the description
    for line in arguments.splitlines():
        stripped = line.strip()
        if stripped.startswith(("TID", "PID", "FILE", "NUMBER", "--")) and " " not in stripped:
            raise AssertionError(f"argument without help: {line!r}")
