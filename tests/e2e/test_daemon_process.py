"""The daemon as a real process: kill -9 mid-sale, restart, a second instance, bad config.

What must hold (docs/architecture.md §7): no acknowledged sale is missing, none is doubled, the
chain verifies, every committed sale gets exactly one original receipt (a job cut off by
the crash prints again only as KOPIA), and retries with the same id never double a sale.
"""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from tests.chaos.harness import receipts_in
from tests.e2e.harness import KARTAPOS, RESIDENT_CARD, Stack, logs_of, running_stack, wait_for

CARDS = ["01-000018", "01-000026", "01-000034", "01-000075"]


def post_sale(stack: Stack, body: dict[str, Any]) -> int | None:
    """POST a sale; the HTTP status, or None when the connection broke (daemon killed)."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{stack.api_port}/api/v1/sales",
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Authorization": f"Bearer {stack.api_token()}",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def originals_and_copies(printed: bytes) -> tuple[Counter[int], Counter[int]]:
    """Per transaction number: how many original receipts, how many marked KOPIA."""
    originals: Counter[int] = Counter()
    copies: Counter[int] = Counter()
    for seq, copy in receipts_in(printed):
        (copies if copy else originals)[seq] += 1
    return originals, copies


def test_kill_9_mid_sales_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        bodies = [
            {"id": str(uuid.uuid4()), "card": CARDS[i % len(CARDS)], "amount_gr": 1000 + i}
            for i in range(120)
        ]
        acked: dict[str, int] = {}
        lock = threading.Lock()
        started = threading.Event()

        def client(chunk: list[dict[str, Any]]) -> None:
            for b in chunk:
                started.set()
                status = post_sale(stack, b)
                if status in (200, 201):
                    with lock:
                        acked[b["id"]] = status

        threads = [threading.Thread(target=client, args=(bodies[k::4],)) for k in range(4)]
        for t in threads:
            t.start()
        started.wait(10)
        wait_for("some sales", lambda: True if len(acked) >= 20 else None, timeout=30)
        stack.kill_daemon()
        for t in threads:
            t.join(30)
        assert 20 <= len(acked) < len(bodies), "the kill must land mid-run"

        stack.start_daemon()
        # The page retries what it never heard back about, with the same id.
        for b in bodies:
            if b["id"] not in acked:
                status = post_sale(stack, b)
                assert status in (200, 201), (status, logs_of(stack))
        entries = stack.ledger()
        sale_ids = [e["sale_id"] for e in entries if e["kind"] == "sale"]
        assert len(sale_ids) == len(set(sale_ids)), "a sale was doubled"
        assert set(sale_ids) == {b["id"] for b in bodies}, "an acknowledged sale is missing"
        assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))

        verify = subprocess.run(
            [KARTAPOS, "ledger", "verify", "-c", str(stack.root / "terminal.toml")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr

        seqs = {e["seq"] for e in entries}

        def all_printed() -> tuple[Counter[int], Counter[int]] | None:
            originals, copies = originals_and_copies(stack.printed())
            return (originals, copies) if seqs <= set(originals) | set(copies) else None

        originals, copies = wait_for("every receipt", all_printed, timeout=60)
        assert max(originals.values()) == 1, "an entry got two original receipts"
        # A job the crash cut off mid-print comes again only as KOPIA.
        assert set(copies) <= seqs


def test_a_second_instance_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        second = subprocess.run(
            [KARTAPOS, "run", "-c", str(stack.root / "terminal.toml")],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 1
        assert "ledger" in second.stderr.lower()
        assert "Traceback" not in second.stderr
        assert stack.api("GET", "/api/v1/health")["ledger"]["head_seq"] == 0


def test_bad_config_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[terminal]\nid = "T-1"\npartner_id = "P-1"\n[printer]\nport = 70000\n')
    out = subprocess.run(
        [KARTAPOS, "run", "-c", str(cfg)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0
    assert "printer.port" in out.stderr
    assert str(cfg) in out.stderr


def test_sigterm_finishes_and_resumes_cleanly(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        assert (
            post_sale(stack, {"id": str(uuid.uuid4()), "card": RESIDENT_CARD, "amount_gr": 500})
            == 201
        )
        proc = stack.daemon.proc
        assert proc is not None
        stack.daemon.stop()  # SIGTERM
        assert proc.returncode == 0, stack.daemon.tail()
        stack.start_daemon()
        assert stack.api("GET", "/api/v1/health")["ledger"]["head_seq"] == 1


def test_sigterm_with_a_screen_connected_exits_promptly(tmp_path: Path) -> None:
    import socket
    import time

    with running_stack(tmp_path) as stack:
        # A bare WebSocket handshake: the events stream stays open as the page keeps it.
        sock = socket.create_connection(("127.0.0.1", stack.api_port), timeout=5)
        sock.sendall(
            (
                "GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {stack.api_token()}\r\n\r\n"
            ).encode()
        )
        assert b"101" in sock.recv(4096).split(b"\r\n", 1)[0]
        proc = stack.daemon.proc
        assert proc is not None
        t0 = time.monotonic()
        proc.terminate()
        rc = proc.wait(timeout=20)
        took = time.monotonic() - t0
        sock.close()
        assert rc == 0, stack.daemon.tail()
        assert took < 5, f"SIGTERM took {took:.1f} s with a screen connected"
