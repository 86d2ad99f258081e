"""`kartapos demo --tills 2`: two tills of the demo partner in one process, one city server.

What the README's "Two tills" promises (docs/architecture.md §5.8): Anna's breakfast
(B-104, once a day) sold at till 1 is refused at till 2 within seconds, because the demo
tills sync every few seconds; SIGTERM stops both cleanly and both ledgers verify.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from sync.central.demo_data import demo_number
from terminal.cmd_demo import MAX_TILLS, TILLS_SYNC_EVERY_S, Till, plan_tills, write_demo_config
from tests.e2e.harness import KARTAPOS, Process, StackError, free_port, wait_for

ANNA = demo_number(1)  # 340 points: B-104 needs a balance above 200
BREAKFAST = "B-104"  # once a day
SYNC_REACHES_THE_OTHER_TILL_S = 30.0


def free_pair() -> int:
    """A loopback port that is free, and so is the next one (the second till's page)."""
    for _ in range(100):
        port = free_port()
        if port >= 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two free loopback ports in a row")


@dataclass
class DemoTill:
    """One of the demo's tills as a client of its local API sees it."""

    terminal: str
    port: int
    folder: Path  # where its config is; its daemon's state is folder/terminal

    @property
    def config(self) -> Path:
        return self.folder / "kartapos-demo.toml"

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """The local API with the till's bearer token: (status, JSON body)."""
        token = (self.folder / "terminal" / "api-token").read_text().strip()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v1{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - loopback http
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def sell(self, card: str, benefit: str) -> tuple[int, Any]:
        body = {"id": str(uuid.uuid4()), "card": card, "amount_gr": 2000, "benefit_ids": [benefit]}
        return self.call("POST", "/sales", body)

    def benefit_reason(self, card: str, benefit: str) -> str | None:
        status, view = self.call("POST", "/cards/resolve", {"input": card})
        assert status == 200, view
        by_id = {b["id"]: b for b in view["benefits"]}
        reason: str | None = by_id[benefit].get("reason")
        return reason


@dataclass
class TwoTills:
    demo: Process
    first: DemoTill
    second: DemoTill


@pytest.fixture
def two_tills(tmp_path: Path) -> Iterator[TwoTills]:
    port = free_pair()
    central = free_port()
    while central in (port, port + 1):
        central = free_port()
    state = tmp_path / "demo-state"
    demo = Process(
        "demo",
        [
            KARTAPOS,
            "demo",
            "--tills",
            "2",
            "--listen",
            f"127.0.0.1:{port}",
            "--central",
            f"127.0.0.1:{central}",
            "--state-dir",
            str(state),
        ],
        tmp_path / "demo.log",
        tmp_path,
    )
    first = DemoTill("T-DEMO", port, state)
    second = DemoTill("T-DEMO-2", port + 1, state / "till-2")
    demo.start()

    def serving(till: DemoTill) -> bool | None:
        demo.check_alive()
        status, health = till.call("GET", "/health")
        # the first sync ran before the page was served: the card list is there
        loaded = status == 200 and health.get("sync", {}).get("cards_age_s") is not None
        return True if loaded else None

    try:
        for till in (first, second):
            try:
                wait_for(f"{till.terminal} /api/v1/health", partial(serving, till), timeout=40)
            except StackError as e:
                raise StackError(f"{e}\n--- demo log ---\n{demo.tail()}") from None
        yield TwoTills(demo, first, second)
    finally:
        demo.kill()


def test_breakfast_at_one_till_is_refused_at_the_other_within_seconds(
    two_tills: TwoTills,
) -> None:
    demo, a, b = two_tills.demo, two_tills.first, two_tills.second
    banner = wait_for(
        "the banner",
        lambda: text if "Zatrzymanie" in (text := demo.log.read_text()) else None,
        timeout=10,
    )
    assert f"Kasa 1: http://127.0.0.1:{a.port}/  terminal T-DEMO\n" in banner, banner
    assert f"Kasa 2: http://127.0.0.1:{b.port}/  terminal T-DEMO-2\n" in banner, banner
    assert f"co {TILLS_SYNC_EVERY_S} s" in banner, banner
    for till in (a, b):  # two terminals of the one partner
        status, state = till.call("GET", "/state")
        assert status == 200, state
        assert state["terminal"] == {"id": till.terminal, "partner_id": "P-0001"}, state
        assert state["partner"]["name"] == "Kawiarnia Pod Żółwiem", state
    assert b.benefit_reason(ANNA, BREAKFAST) is None  # free at both tills before the sale

    status, body = a.sell(ANNA, BREAKFAST)
    assert status == 201, body

    def refused_at_b() -> bool | None:
        demo.check_alive()
        return True if b.benefit_reason(ANNA, BREAKFAST) == "period_limit_reached" else None

    try:
        wait_for(
            "B-104 used at till 1 shows at till 2",
            refused_at_b,
            timeout=SYNC_REACHES_THE_OTHER_TILL_S,
        )
    except StackError as e:
        raise StackError(f"{e}\n--- demo log ---\n{demo.tail()}") from None
    status, body = b.sell(ANNA, BREAKFAST)
    assert status == 422, body
    err = body["error"]
    assert (err["code"], err["reason"], err["benefit"]) == (
        "benefit_unavailable",
        "period_limit_reached",
        BREAKFAST,
    ), body

    assert demo.proc is not None
    demo.proc.send_signal(signal.SIGTERM)
    assert demo.proc.wait(timeout=30) == 0, demo.tail()
    for till in (a, b):
        verified = subprocess.run(
            [KARTAPOS, "ledger", "verify", "-c", str(till.config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert verified.returncode == 0, (till.terminal, verified.stdout + verified.stderr)


@pytest.mark.parametrize("tills", ["0", "9", "two"])
def test_a_number_of_tills_out_of_range_is_refused_naming_the_flag(
    tmp_path: Path, tills: str
) -> None:
    state = tmp_path / "demo-state"
    r = subprocess.run(
        [KARTAPOS, "demo", "--tills", tills, "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert "argument --tills:" in r.stderr, r.stderr
    assert f"1 to {MAX_TILLS}" in r.stderr, r.stderr
    assert not state.exists()  # refused before anything was made


def test_one_till_is_todays_demo_and_more_take_the_next_ports(tmp_path: Path) -> None:
    assert plan_tills(tmp_path, "127.0.0.1:8080", 1) == [
        Till(number=1, terminal="T-DEMO", folder=tmp_path, listen="127.0.0.1:8080")
    ]
    assert [(t.terminal, t.folder, t.listen) for t in plan_tills(tmp_path, "[::1]:9000", 3)] == [
        ("T-DEMO", tmp_path, "[::1]:9000"),
        ("T-DEMO-2", tmp_path / "till-2", "[::1]:9001"),
        ("T-DEMO-3", tmp_path / "till-3", "[::1]:9002"),
    ]
    with pytest.raises(ValueError, match="65536"):
        plan_tills(tmp_path, "127.0.0.1:65535", 2)
    one = write_demo_config(tmp_path, "127.0.0.1:8080", "http://127.0.0.1:8765", "/dev/null")
    text = one.read_text()
    assert 'id = "T-DEMO"\n' in text
    assert "upload_interval_s = 30\ncatalog_refresh_s = 60\n" in text  # as before --tills
    (tmp_path / "till-2").mkdir()
    two = write_demo_config(
        tmp_path / "till-2",
        "127.0.0.1:8081",
        "http://127.0.0.1:8765",
        "/dev/null",
        terminal="T-DEMO-2",
        sync_every_s=TILLS_SYNC_EVERY_S,
    )
    text = two.read_text()
    assert 'id = "T-DEMO-2"\n' in text
    assert f"upload_interval_s = {TILLS_SYNC_EVERY_S}\n" in text
    assert f"catalog_refresh_s = {TILLS_SYNC_EVERY_S}\n" in text
