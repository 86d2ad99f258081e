"""terminal.sdnotify against a real AF_UNIX datagram socket, as systemd listens on one."""

from __future__ import annotations

import os
import socket
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from terminal.sdnotify import Notifier

RECV_TIMEOUT_S = 5.0


class Listener:
    """The service manager's side: a bound datagram socket reading with credentials."""

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(address)
        self.sock.settimeout(RECV_TIMEOUT_S)

    def receive(self) -> tuple[str, int | None]:
        """One notification and the sender's pid as the kernel reports it."""
        data, ancdata, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = None
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid, _uid, _gid = struct.unpack("3i", payload[:12])
        return data.decode("utf-8"), pid

    def pending(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(4096, socket.MSG_PEEK)
        except BlockingIOError:
            return False
        finally:
            self.sock.settimeout(RECV_TIMEOUT_S)
        return True


@pytest.fixture
def path_listener(tmp_path: Path) -> Iterator[tuple[Listener, str]]:
    address = str(tmp_path / "notify")
    listener = Listener(address)
    yield listener, address
    listener.sock.close()


@pytest.fixture
def abstract_listener() -> Iterator[tuple[Listener, str]]:
    name = f"kartapos-test-{uuid.uuid4().hex}"
    listener = Listener(b"\0" + name.encode())
    yield listener, "@" + name
    listener.sock.close()


def test_without_notify_socket_everything_is_a_quiet_no_op() -> None:
    n = Notifier({})
    assert not n.enabled
    assert (n.ready(), n.watchdog(), n.stopping(), n.status("x")) == (False,) * 4
    assert n.watchdog_interval() is None


def test_ready_watchdog_stopping_reach_a_path_socket(path_listener: tuple[Listener, str]) -> None:
    listener, address = path_listener
    n = Notifier({"NOTIFY_SOCKET": address})
    assert n.enabled
    assert n.ready()
    assert listener.receive()[0] == "READY=1\n"
    assert n.watchdog()
    assert listener.receive()[0] == "WATCHDOG=1\n"
    assert n.stopping("kończę pracę")
    assert listener.receive()[0] == "STOPPING=1\nSTATUS=kończę pracę\n"
    assert n.extend_timeout(2.5)
    assert listener.receive()[0] == "EXTEND_TIMEOUT_USEC=2500000\n"


def test_abstract_namespace_socket(abstract_listener: tuple[Listener, str]) -> None:
    listener, address = abstract_listener
    n = Notifier({"NOTIFY_SOCKET": address})
    assert n.ready("czytniki: 3, drukarka: gotowa")
    assert listener.receive()[0] == "READY=1\nSTATUS=czytniki: 3, drukarka: gotowa\n"


def test_kernel_reports_our_pid_so_notify_access_main_accepts_it(
    path_listener: tuple[Listener, str],
) -> None:
    # systemd drops a NotifyAccess=main message whose sender pid is not the main pid.
    listener, address = path_listener
    assert Notifier({"NOTIFY_SOCKET": address}).watchdog()
    _, pid = listener.receive()
    assert pid == os.getpid()


def test_status_newlines_cannot_inject_assignments(path_listener: tuple[Listener, str]) -> None:
    listener, address = path_listener
    assert Notifier({"NOTIFY_SOCKET": address}).status("drukarka:\nREADY=1 brak papieru")
    assert listener.receive()[0] == "STATUS=drukarka: READY=1 brak papieru\n"


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=200))
def test_any_status_text_is_exactly_one_status_line(text: str) -> None:
    name = f"kartapos-test-{uuid.uuid4().hex}"
    listener = Listener(b"\0" + name.encode())
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).ready(text)
        message, _ = listener.receive()
    finally:
        listener.sock.close()
    lines = message.split("\n")
    assert lines[0] == "READY=1"
    assert lines[1].startswith("STATUS=")
    assert lines[2:] == [""]


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "{pid}"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # someone else's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_sec(
    env: dict[str, str], interval: float | None
) -> None:
    env = {k: v.format(pid=os.getpid()) for k, v in env.items()}
    n = Notifier({"NOTIFY_SOCKET": "/nonexistent", **env})
    assert n.watchdog_interval() == interval
    if interval is not None:
        assert n.watchdog_timeout() == interval * 2


def test_missing_listener_is_logged_once_and_recovery_once(tmp_path: Path) -> None:
    address = str(tmp_path / "notify")
    n = Notifier({"NOTIFY_SOCKET": address})
    with structlog.testing.capture_logs() as logs:
        assert not n.watchdog()
        assert not n.watchdog()
        listener = Listener(address)
        try:
            assert n.watchdog()
            assert n.watchdog()
            assert listener.receive()[0] == "WATCHDOG=1\n"
        finally:
            listener.sock.close()
    events = [(e["log_level"], e["event"]) for e in logs]
    assert events == [("warning", "sd_notify failed"), ("info", "sd_notify works again")]


def test_a_listener_that_stops_reading_never_blocks_the_sender(
    path_listener: tuple[Listener, str],
) -> None:
    # A blocking send would hang here (and pytest-timeout would fail the test).
    listener, address = path_listener
    n = Notifier({"NOTIFY_SOCKET": address})
    results = [n.watchdog() for _ in range(5000)]
    assert results[0]
    assert not all(results), "the queue never filled: the test proved nothing"
    assert listener.pending()


def test_uses_the_process_environment_by_default(
    monkeypatch: pytest.MonkeyPatch, abstract_listener: tuple[Listener, str]
) -> None:
    listener, address = abstract_listener
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.setenv("WATCHDOG_USEC", "8000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    n = Notifier()
    assert n.watchdog_interval() == 4.0
    assert n.ready()
    assert listener.receive()[0] == "READY=1\n"
