"""A tiny sd_notify(3) client: tell systemd the daemon is ready, alive, or stopping.

No dependency: one AF_UNIX datagram per message to ``$NOTIFY_SOCKET`` (a path, or an
abstract socket written ``@name``). Outside systemd (``NOTIFY_SOCKET`` unset) every call
is a no-op, so the daemon runs the same in a terminal, in tests and under
``Type=notify``. Sends never block the event loop: a full socket queue drops the
message (systemd reads fast; the next watchdog ping follows anyway).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger()

# Never more than systemd's WatchdogSec/2 between pings (sd_watchdog_enabled(3)).
_WATCHDOG_SHARE = 0.5


class Notifier:
    """Send READY/WATCHDOG/STOPPING/STATUS to the service manager, or nothing without one."""

    def __init__(self, env: Mapping[str, str] | None = None, *, pid: int | None = None) -> None:
        env = os.environ if env is None else env
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self._pid = os.getpid() if pid is None else pid
        self._watchdog_usec = _watchdog_usec(env, self._pid)
        self._failing = False

    @property
    def enabled(self) -> bool:
        """True when running under a service manager that listens for notifications."""
        return self._address is not None

    def ready(self, status: str | None = None) -> bool:
        """Report start-up finished (readers, ledger and API are up)."""
        return self._send("READY=1", status)

    def watchdog(self) -> bool:
        """Pet the watchdog; call at least every ``watchdog_interval()`` seconds."""
        return self._send("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """Report that a graceful shutdown has begun."""
        return self._send("STOPPING=1", status)

    def status(self, text: str) -> bool:
        """Set the one-line status shown by `systemctl status`."""
        return self._send(None, text)

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more start-up/shutdown time (e.g. while a large ledger is checked)."""
        return self._send(f"EXTEND_TIMEOUT_USEC={max(1, round(seconds * 1_000_000))}")

    def watchdog_timeout(self) -> float | None:
        """systemd's WatchdogSec for this process in seconds, or None when not watched."""
        return None if self._watchdog_usec is None else self._watchdog_usec / 1_000_000

    def watchdog_interval(self) -> float | None:
        """How often to call ``watchdog()`` (half the timeout), or None when not watched."""
        timeout = self.watchdog_timeout()
        return None if timeout is None else timeout * _WATCHDOG_SHARE

    def _send(self, assignment: str | None, status: str | None = None) -> bool:
        if self._address is None:
            return False
        lines = [assignment] if assignment else []
        if status is not None:
            # STATUS= is one line; a newline would start a new (bogus) assignment.
            lines.append("STATUS=" + " ".join(status.split()))
        message = ("\n".join(lines) + "\n").encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL, self._address)
        except OSError as e:
            if not self._failing:
                self._failing = True
                log.warning("sd_notify failed", socket=_printable(self._address), error=str(e))
            return False
        if self._failing:
            self._failing = False
            log.info("sd_notify works again", socket=_printable(self._address))
        return True


def _socket_address(value: str) -> str | bytes | None:
    """'/run/systemd/notify' -> path; '@name' -> abstract address; '' or vsock -> None."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode("utf-8")
    if value.startswith("/"):
        return value
    if value:
        # vsock:CID:PORT (systemd >= 253, for VMs) is not used on a POS box.
        log.warning("sd_notify socket not supported, notifications off", socket=value)
    return None


def _watchdog_usec(env: Mapping[str, str], pid: int) -> int | None:
    """WATCHDOG_USEC, unless WATCHDOG_PID says the watchdog is some other process's."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    watchdog_pid = env.get("WATCHDOG_PID")
    if watchdog_pid is not None:
        try:
            if int(watchdog_pid) != pid:
                return None
        except ValueError:
            return None
    return usec


def _printable(address: str | bytes) -> str:
    return "@" + address[1:].decode("utf-8", "replace") if isinstance(address, bytes) else address
