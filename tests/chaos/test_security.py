"""Security cases against the real processes (issue 8): tampering, forgery, access, logs."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.entry import Entry
from sync.wire import UploadBatch, encode, sign_batch
from terminal.cmd_demo import luhn_complete
from tests.e2e.harness import KARTAPOS, TERMINAL_ID, Stack, StackError, running_stack

CARDS = ["01-000018", "01-000026", "01-000034"]


def _request(
    url: str, *, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 - loopback http
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def _sell(stack: Stack, n: int) -> None:
    for i in range(n):
        stack.api(
            "POST",
            "/api/v1/sales",
            {"id": str(uuid.uuid4()), "card": CARDS[i % 3], "amount_gr": 1000 + i},
        )


def _server_head(stack: Stack) -> dict[str, Any]:
    token = stack.token_file.read_text().strip()
    _, head = _request(
        f"http://127.0.0.1:{stack.central_port}/v1/terminals/{TERMINAL_ID}/head",
        headers={"Authorization": f"Bearer {token}"},
    )
    return head  # type: ignore[no-any-return]


def test_a_tampered_ledger_is_caught_by_verify_and_refused_by_the_server(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        _sell(stack, 2)
        stack.api("POST", "/api/v1/sync")
        assert _server_head(stack)["seq"] == 2
        _sell(stack, 3)
        stack.daemon.stop()

        db = sqlite3.connect(stack.state_dir / "ledger.sqlite")
        triggers = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='trigger'")]
        for t in triggers:
            db.execute(f"DROP TRIGGER {t}")
        body = db.execute("SELECT body FROM entries WHERE seq = 4").fetchone()[0]
        text = body.decode() if isinstance(body, bytes) else body
        tampered = re.sub(r'"amount_gr":(\d+)', r'"amount_gr":999999', text, count=1)
        assert tampered != text
        db.execute(
            "UPDATE entries SET body = ? WHERE seq = 4",
            (tampered.encode() if isinstance(body, bytes) else tampered,),
        )
        db.commit()
        db.close()

        verify = subprocess.run(
            [KARTAPOS, "ledger", "verify", "-c", str(stack.root / "terminal.toml")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert verify.returncode == 1
        assert "seq 4" in verify.stdout + verify.stderr

        # The writer checks the chain of the last entries before it appends after them
        # (docs/architecture.md §5.7): it refuses to start, naming the entry, rather
        # than chain new sales onto one the city will never accept.
        with pytest.raises(StackError, match="damaged at seq 4"):
            stack.start_daemon()
        head = _server_head(stack)
        assert head["seq"] == 2, "nothing after the tampered entry may be stored"


def test_a_forged_signature_is_refused(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        _sell(stack, 2)
        stack.api("POST", "/api/v1/sync")  # the server learns the terminal's key
        typed = msgspec.convert(stack.ledger(), list[Entry])
        impostor = Ed25519PrivateKey.generate()
        sig, pub = sign_batch(impostor, TERMINAL_ID, typed)
        token = stack.token_file.read_text().strip()
        url = f"http://127.0.0.1:{stack.central_port}/v1/terminals/{TERMINAL_ID}/entries"
        status, _ = _request(
            url,
            method="POST",
            body=encode(UploadBatch(entries=typed, signature=sig, public_key=pub)),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        assert status == 422
        status2, _ = _request(
            url,
            method="POST",
            body=encode(UploadBatch(entries=typed, signature=sig, public_key=pub)),
            headers={"Content-Type": "application/json"},
        )
        assert status2 == 401
        assert _server_head(stack)["seq"] == 2


def test_api_refuses_without_token_or_from_a_foreign_origin(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        base = f"http://127.0.0.1:{stack.api_port}/api/v1"
        sale = {"id": str(uuid.uuid4()), "card": CARDS[0], "amount_gr": 100}
        s1, e1 = _request(
            base + "/sales", method="POST", body=sale, headers={"Content-Type": "application/json"}
        )
        assert (s1, e1["error"]["code"]) == (401, "unauthorized")
        s2, e2 = _request(
            base + "/sales",
            method="POST",
            body=sale,
            headers={
                "Authorization": f"Bearer {stack.api_token()}",
                "Origin": "http://shop.example",
                "Content-Type": "application/json",
            },
        )
        assert (s2, e2["error"]["code"]) == (403, "origin_refused")
        assert stack.api("GET", "/api/v1/health")["ledger"]["head_seq"] == 0


def test_logs_hold_no_card_number_token_or_pin(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        base = f"http://127.0.0.1:{stack.api_port}/api/v1"
        for pin in ("9731", "1234"):
            _request(
                base + "/session",
                method="POST",
                body={"pin": pin},
                headers={"Content-Type": "application/json"},
            )
        _sell(stack, 3)
        for c in CARDS:
            stack.swipe(c)
        stack.api("POST", "/api/v1/sync")
        # Made up here, Luhn-valid on purpose: it must be refused as a bank card.
        pan = luhn_complete("473915739157391")
        stack.pty.write(f"%B{pan}^KOWALSKI/JAN^2912?\r".encode())
        stack.swipe(CARDS[0])
        stack.wait_printed(b"Transakcja", timeout=20)
        stack.daemon.stop()
        logs = stack.daemon.log.read_text() + stack.central.log.read_text()
        assert "card_read" in logs or "sale" in logs, "the logs were captured"
        assert not re.search(r"(?<![0-9A-Za-z*-])\d{2}-\d{6,7}(?![0-9A-Za-z-])", logs)
        assert pan not in logs
        assert pan[-8:] not in logs
        for secret in (stack.api_token(), stack.token_file.read_text().strip()):
            assert secret not in logs
        assert not re.search(r"pin\W{0,6}(9731|1234)", logs, re.IGNORECASE)
