"""The real daemon behaves as kartapos.service promises systemd it will.

Each test starts `kartapos run` the way systemd does for Type=notify: NOTIFY_SOCKET set
to a datagram socket the test owns, WATCHDOG_USEC, and WATCHDOG_PID equal to the main
pid (a shell sets it to its own pid and execs the daemon, keeping the pid). Then:
READY=1 from the main pid, the API answers, WATCHDOG=1 arrives well within
WatchdogSec, SIGTERM gives STOPPING=1 and a clean exit within TimeoutStopSec. The same
run is repeated under the kernel's MemoryDenyWriteExecute equivalent and under strace
(every system call checked against SystemCallFilter=@system-service).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.systemd.test_syscalls import expand, syscall_groups, traced_syscalls
from tests.systemd.unitfile import last, load_unit
from tests.terminal.test_sdnotify import Listener

WATCHDOG_USEC = 1_000_000
READY_WITHIN_S = 30.0  # generous: strace slows start-up several times


def _seconds(value: str | None) -> float:
    m = re.fullmatch(r"(\d+)(s|min)?", value or "")
    assert m, value
    return int(m.group(1)) * (60 if m.group(2) == "min" else 1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Run:
    ready_s: float
    daemon_pid: int
    watchdog_gaps: list[float]
    returncode: int
    log: str


def _config(tmp_path: Path, reader_tty: str) -> tuple[Path, int]:
    port = _free_port()
    dead = _free_port()  # nothing listens: the daemon keeps selling offline
    cfg = tmp_path / "kartapos.toml"
    cfg.write_text(
        textwrap.dedent(
            f"""
            [terminal]
            id = "T-0001"
            partner_id = "P-0042"
            state_dir = "state"

            [api]
            listen = "127.0.0.1:{port}"

            [[readers]]
            name = "msr"
            kind = "serial"
            path = "{reader_tty}"

            [printer]
            kind = "file"
            path = "receipts.bin"

            [sync]
            url = "http://127.0.0.1:{dead}"
            token_file = "token"
            """
        )
    )
    (tmp_path / "token").write_text("test-terminal-token\n")
    return cfg, port


def _receive(listener: Listener, until: float) -> tuple[str, int | None]:
    listener.sock.settimeout(max(until - time.monotonic(), 0.01))
    try:
        return listener.receive()
    except TimeoutError:
        return "", None


def run_like_systemd(tmp_path: Path, wrapper: list[str]) -> Run:
    """Start the daemon under ``wrapper`` as systemd would; drive it to a clean stop."""
    # A serial card reader on a pty: its driver runs under the same restrictions.
    master, slave = os.openpty()
    cfg, port = _config(tmp_path, os.ttyname(slave))
    name = f"kartapos-test-{uuid.uuid4().hex}"
    listener = Listener(b"\0" + name.encode())
    inner = ["sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh"]
    argv = [*wrapper, *inner, sys.executable, "-m", "terminal.cli", "run", "-c", str(cfg)]
    env = {**os.environ, "NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    log_path = tmp_path / "daemon.log"
    stop_within = _seconds(last(load_unit("kartapos.service"), "Service", "TimeoutStopSec"))
    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        message, pid = _receive(listener, started + READY_WITHIN_S)
        while message and not message.startswith("READY=1"):
            message, pid = _receive(listener, started + READY_WITHIN_S)
        assert message.startswith("READY=1"), f"no READY=1: {log_path.read_text()[-3000:]}"
        ready_s = time.monotonic() - started
        assert pid is not None
        daemon_pid = pid

        token = (tmp_path / "state" / "api-token").read_text().strip()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/health",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - loopback
            assert resp.status == 200

        pings: list[float] = []
        deadline = time.monotonic() + 5 * WATCHDOG_USEC / 1e6
        while len(pings) < 3 and time.monotonic() < deadline:
            message, pid = _receive(listener, deadline)
            if message == "WATCHDOG=1\n":
                assert pid == daemon_pid
                pings.append(time.monotonic())
        assert len(pings) == 3, f"watchdog pings: {len(pings)}"

        os.kill(daemon_pid, signal.SIGTERM)
        deadline = time.monotonic() + stop_within
        message = "WATCHDOG=1\n"
        while message.startswith("WATCHDOG=1"):
            message, pid = _receive(listener, deadline)
        assert message.startswith("STOPPING=1"), message
        assert pid == daemon_pid
        returncode = proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        listener.sock.close()
        os.close(slave)
        os.close(master)
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    return Run(ready_s, daemon_pid, gaps, returncode, log_path.read_text())


def test_daemon_speaks_type_notify_as_the_unit_expects(tmp_path: Path) -> None:
    unit = load_unit("kartapos.service")
    assert last(unit, "Service", "Type") == "notify"
    assert last(unit, "Service", "NotifyAccess") == "main"
    proc_run = run_like_systemd(tmp_path, [])
    assert proc_run.returncode == 0, proc_run.log[-3000:]
    # A ping later than WATCHDOG_USEC would make systemd kill and restart the till.
    assert all(gap < WATCHDOG_USEC / 1e6 for gap in proc_run.watchdog_gaps), proc_run.watchdog_gaps
    assert "Traceback" not in proc_run.log
    # TimeoutStartSec is far away; this only catches a start-up that hangs.
    assert proc_run.ready_s < _seconds(last(unit, "Service", "TimeoutStartSec")) / 2


MDWE_THEN_EXEC = textwrap.dedent(
    """
    import ctypes, os, sys
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
        sys.exit(77)
    os.execvp(sys.argv[1], sys.argv[1:])  # the rule survives execve
    """
)


def test_daemon_runs_under_memory_deny_write_execute(tmp_path: Path) -> None:
    probe = subprocess.run([sys.executable, "-c", MDWE_THEN_EXEC, "true"], timeout=30, check=False)
    if probe.returncode == 77:
        pytest.skip("not applicable here: kernel without PR_SET_MDWE (Linux >= 6.3)")
    proc_run = run_like_systemd(tmp_path, [sys.executable, "-c", MDWE_THEN_EXEC])
    assert proc_run.returncode == 0, proc_run.log[-3000:]
    assert "Traceback" not in proc_run.log


def test_daemon_system_calls_stay_inside_system_service(tmp_path: Path) -> None:
    strace, analyze = shutil.which("strace"), shutil.which("systemd-analyze")
    if strace is None or analyze is None:
        pytest.skip("needs strace and systemd-analyze (Debian packages strace, systemd)")
    summary = tmp_path / "strace.txt"
    proc_run = run_like_systemd(tmp_path, [strace, "-f", "-c", "-o", str(summary)])
    assert proc_run.returncode == 0, proc_run.log[-3000:]
    listing = subprocess.run(
        [analyze, "syscall-filter"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    allowed = expand(syscall_groups(listing), "@system-service")
    used = traced_syscalls(summary.read_text())
    assert len(used) > 20, summary.read_text()[:2000]
    assert used - allowed == set()
