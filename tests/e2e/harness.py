"""The whole till as real processes, for browser tests.

`Stack` starts, in a temporary folder:
- the reference city server (`kartapos central -c FILE`), seeded with the demo data and
  with terminal T-DEMO enrolled under a token file,
- a loopback ESC/POS network printer (`python -m tests.printer.fake_printer`) that appends
  every job's bytes to a file,
- a pseudo-terminal whose slave side is the daemon's serial magnetic-stripe reader,
- the daemon (`kartapos run -c FILE`), which may be killed and started again.

Nothing is mocked: the page talks to the daemon, the daemon to the city server, the
reader and the printer, exactly as on a shop's box.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import termios
import time
import tty
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from ledger.pins import hash_pin

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
KARTAPOS = str(VENV_BIN / "kartapos")
ARTIFACTS = REPO / "test-artifacts" / "e2e"

TERMINAL_ID = "T-DEMO"
PARTNER_ID = "P-0001"
CASHIER_PIN = "1234"  # the demo data's published PIN for "Kasia" (demo only)
CASHIER_NAME = "Kasia"
# The terminal's own administrator (config `admin_pin_hash`), a manager: approves points
# overrides and closes the day (docs/architecture.md §5.10). Test stack only.
MANAGER_NAME = "Administrator"
MANAGER_PIN = "135790"
RESIDENT_CARD = "01-000018"
SENIOR_CARD = "01-000026"
BLOCKED_CARD = "01-000042"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

T = TypeVar("T")


class StackError(RuntimeError):
    """A part of the stack did not come up; the message carries its log tail."""


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(
    what: str, probe: Callable[[], T | None], *, timeout: float, interval: float = 0.05
) -> T:
    """Call ``probe`` until it returns something other than None; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
        except Exception as e:  # the thing is not up yet: try again until the deadline
            last_error = e
            value = None
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise StackError(f"{what}: not within {timeout:.0f} s (last error: {last_error!r})")
        time.sleep(interval)


def luhn_pan(prefix: str) -> str:
    """A Luhn-valid made-up number (never a real card) built at test time."""
    digits = [int(c) for c in prefix + "0"]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return prefix + str((10 - total % 10) % 10)


def swipe_bytes(number: str) -> bytes:
    """What a serial magnetic-stripe reader sends for a city card (track 2)."""
    return f";{number.replace('-', '')}?\r".encode()


class Process:
    """A child process whose output goes to a log file under the stack's folder."""

    def __init__(self, name: str, argv: list[str], log: Path, cwd: Path) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        self._cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ)
        # The escpos profile cache keeps the daemon's start under its budget.
        env.setdefault("ESCPOS_CAPABILITIES_PICKLE_DIR", str(self._cwd / "escpos-cache"))
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self._cwd,
                env=env,
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        if not self.running:
            raise StackError(f"{self.name} exited early:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.proc = None

    def stop(self) -> None:
        """SIGTERM (graceful), SIGKILL if it does not go within 10 s."""
        self.kill(signal.SIGTERM)


class Pty:
    """A pseudo-terminal: the daemon reads the slave as its serial reader."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        attrs = termios.tcgetattr(self._slave)
        termios.tcsetattr(self._slave, termios.TCSANOW, attrs)
        self.path = os.ttyname(self._slave)

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class Stack:
    """City server + printer + pty reader + daemon, in ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_dir = root / "state"
        self.token_file = root / "terminal-token"
        self.receipts = root / "printer-out.bin"
        self.central_port = free_port()
        self.api_port = free_port()
        self.printer_port = 0
        self.pty = Pty()
        self.central = Process(
            "city server",
            [KARTAPOS, "central", "-c", str(root / "central.toml")],
            root / "central.log",
            root,
        )
        self.printer: Process | None = None
        self.daemon = Process(
            "daemon",
            [KARTAPOS, "run", "-c", str(root / "terminal.toml")],
            root / "daemon.log",
            root,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/"

    # --- start ------------------------------------------------------------------------

    def start(self) -> None:
        (self.root / "escpos-cache").mkdir(exist_ok=True)
        self._start_central()
        self._start_printer()
        self._write_terminal_config()
        self.start_daemon()

    def _start_central(self) -> None:
        (self.root / "central.toml").write_text(
            "[central]\n"
            f'listen = "127.0.0.1:{self.central_port}"\n'
            f'database = "{self.root / "central.sqlite"}"\n'
            "trust_on_first_use = true\n"
            "[logging]\n"
            'format = "json"\n'
        )
        seeded = subprocess.run(
            [
                KARTAPOS,
                "central",
                "-c",
                str(self.root / "central.toml"),
                "seed-demo",
                "--token-file",
                str(self.token_file),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.root,
        )
        if seeded.returncode != 0:
            raise StackError(f"seed-demo failed: {seeded.stdout}{seeded.stderr}")
        self.central.start()
        head_url = f"http://127.0.0.1:{self.central_port}/v1/terminals/{TERMINAL_ID}/head"
        token = self.token_file.read_text().strip()

        def central_up() -> bool | None:
            self.central.check_alive()
            req = urllib.request.Request(head_url, headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req, timeout=2) as resp:  # noqa: S310 - loopback http
                return True if resp.status == 200 else None

        wait_for("city server", central_up, timeout=30)

    def _start_printer(self, mode: str = "online") -> None:
        port = self.printer_port or free_port()
        self.printer = Process(
            "printer",
            [
                sys.executable,
                "-m",
                "tests.printer.fake_printer",
                "--port",
                str(port),
                "--out",
                str(self.receipts),
                "--mode",
                mode,
            ],
            self.root / "printer.log",
            REPO,
        )
        self.printer.start()
        self.printer_port = port

        def printer_up() -> bool | None:
            assert self.printer is not None
            self.printer.check_alive()
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True

        wait_for("loopback printer", printer_up, timeout=20)

    def restart_printer(self, mode: str) -> None:
        """Switch the printer off and on again on the same port, answering as ``mode``."""
        if self.printer is not None:
            self.printer.kill()
        self._start_printer(mode)

    def _write_terminal_config(self) -> None:
        (self.root / "terminal.toml").write_text(
            "[terminal]\n"
            f'id = "{TERMINAL_ID}"\n'
            f'partner_id = "{PARTNER_ID}"\n'
            f'state_dir = "{self.state_dir}"\n'
            f'admin_pin_hash = "{hash_pin(MANAGER_PIN, role="manager")}"\n'
            "[api]\n"
            f'listen = "127.0.0.1:{self.api_port}"\n'
            "[[readers]]\n"
            'name = "msr"\n'
            'kind = "serial"\n'
            f'path = "{self.pty.path}"\n'
            "[printer]\n"
            'kind = "network"\n'
            'host = "127.0.0.1"\n'
            f"port = {self.printer_port}\n"
            "[sync]\n"
            f'url = "http://127.0.0.1:{self.central_port}"\n'
            f'token_file = "{self.token_file}"\n'
            "[logging]\n"
            'format = "json"\n'
        )

    def start_daemon(self, timeout: float = 30) -> dict[str, Any]:
        """Start the daemon and wait until its API answers with the card list loaded."""
        self.daemon.start()

        def ready() -> dict[str, Any] | None:
            self.daemon.check_alive()
            health = self.api("GET", "/api/v1/health")
            readers_up = all(r.get("state") == "connected" for r in health.get("readers", []))
            cards = health.get("sync", {}).get("cards_age_s") is not None
            # Rules carry the cashiers: without them nobody can log in yet.
            rules = self.api("GET", "/api/v1/state").get("partner") is not None
            return health if readers_up and cards and rules else None

        try:
            return wait_for("daemon /api/v1/health", ready, timeout=timeout)
        except StackError as e:
            raise StackError(f"{e}\n--- daemon log ---\n{self.daemon.tail()}") from None

    # --- use --------------------------------------------------------------------------

    def api_token(self) -> str:
        return (self.state_dir / "api-token").read_text().strip()

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call the local API with the bearer token (as a test's own client)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}{path}",
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.api_token()}",
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - loopback http
            return json.loads(resp.read() or b"null")

    def ledger(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.api("GET", "/api/v1/ledger?after=0&limit=1000")[
            "entries"
        ]
        return entries

    def swipe(self, number: str) -> None:
        self.pty.write(swipe_bytes(number))

    def printed(self) -> bytes:
        try:
            return self.receipts.read_bytes()
        except FileNotFoundError:
            return b""

    def wait_printed(self, needle: bytes, *, after: int = 0, timeout: float = 10) -> bytes:
        """Wait until the printer received ``needle`` (past byte offset ``after``)."""

        def found() -> bytes | None:
            out = self.printed()
            return out if needle in out[after:] else None

        return wait_for(f"printer output containing {needle!r}", found, timeout=timeout)

    def kill_daemon(self) -> None:
        """kill -9: no shutdown code runs."""
        self.daemon.kill(signal.SIGKILL)

    def stop(self) -> None:
        # The folder is thrown away: no need to wait for a graceful stop (other tests
        # check SIGTERM); kill -9 is also what the ledger must survive anyway.
        self.daemon.kill(signal.SIGKILL)
        if self.printer is not None:
            self.printer.kill()
        self.central.stop()
        self.pty.close()


@contextlib.contextmanager
def running_stack(root: Path) -> Iterator[Stack]:
    stack = Stack(root)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def logs_of(stack: Stack) -> str:
    """Every part's log tail, for a failing test's report."""
    parts = [stack.daemon, stack.central] + ([stack.printer] if stack.printer else [])
    return "\n".join(f"--- {p.name} ---\n{p.tail()}" for p in parts)
