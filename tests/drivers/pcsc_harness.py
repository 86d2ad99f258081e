"""A private pcscd with Debian's vsmartcard-vpcd, and a virtual contactless card.

pcscd 1.9.9 always listens on /run/pcscd/pcscd.comm, so a test run owns the one pcscd
on the machine: :class:`PcscdProcess` takes a file lock (test runs of several
checkouts wait for each other), stops a stale pcscd that an earlier test run left
behind, starts ``pcscd -f -c <private reader.conf.d>``, waits for the socket, and
stops it afterwards. :class:`VirtualCard` is the card side of vpcd's protocol: a
TCP client (connected = card on the reader) answering 2-byte big-endian
length-prefixed messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import pytest

VPCD_LIB = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
PCSCD = "/usr/sbin/pcscd"
PCSCD_SOCKET = Path("/run/pcscd/pcscd.comm")
PCSCD_PIDFILE = Path("/run/pcscd/pcscd.pid")
LOCK_FILE = Path("/tmp/kartapos-test-pcscd.lock")
# The pid of the pcscd a test run started, so a later run can stop it if it leaked.
OURS_FILE = Path("/tmp/kartapos-test-pcscd.pid")
READER_NAME = "Virtual PCD 00 00"
# A MIFARE Classic 1K ATR as PC/SC part 3 readers synthesise it.
MIFARE_ATR = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")


def pcsc_available() -> bool:
    """pcscd and the vpcd driver are installed (tests skip with a reason otherwise)."""
    return Path(PCSCD).exists() and VPCD_LIB.exists()


def free_port() -> int:
    """A TCP port that is free now, with the next one free as well (vpcd takes two)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < 65535:
            with socket.socket() as s2:
                try:
                    s2.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port pair")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return True
        except ChildProcessError:
            if not _alive(pid):
                return True
        time.sleep(0.02)
    return False


# The lock held in this process, if any: a second PcscdProcess here would wait on
# itself forever (flock locks conflict between open files of one process too).
_held: list[IO[str]] = []
LOCK_WAIT_S = 300.0


def _take_lock() -> IO[str]:
    if _held:
        raise RuntimeError(
            "a PcscdProcess is already running in this test process; stop it first "
            "(use module- or function-scoped pcscd fixtures)"
        )
    lock = LOCK_FILE.open("a+")
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                lock.close()
                raise RuntimeError(
                    f"another test run held {LOCK_FILE} for {LOCK_WAIT_S} s"
                ) from None
            time.sleep(0.1)
    _held.append(lock)
    return lock


def _release_lock(lock: IO[str]) -> None:
    fcntl.flock(lock, fcntl.LOCK_UN)
    lock.close()
    if lock in _held:
        _held.remove(lock)


class PcscdProcess:
    """The machine's pcscd, run by a test with a vpcd reader on ``port``."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.confdir = workdir / "reader.conf.d"
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None
        self.log_path = workdir / "pcscd.log"
        # False: the next start() runs pcscd with no reader at all (a reader unplugged).
        self.with_reader = True

    def _write_conf(self) -> None:
        self.confdir.mkdir(parents=True, exist_ok=True)
        conf = self.confdir / "vpcd"
        if not self.with_reader:
            conf.unlink(missing_ok=True)
            return
        conf.write_text(
            'FRIENDLYNAME "Virtual PCD"\n'
            f"DEVICENAME /dev/null:0x{self.port:04X}\n"
            f"LIBPATH {VPCD_LIB}\n"
            f"CHANNELID 0x{self.port:04X}\n"
        )

    def _stop_stale(self) -> None:
        if OURS_FILE.exists():
            with contextlib.suppress(ValueError, OSError):
                pid = int(OURS_FILE.read_text().strip())
                if _alive(pid) and "pcscd" in Path(f"/proc/{pid}/cmdline").read_text():
                    os.kill(pid, signal.SIGTERM)
                    if not _wait_gone(pid, 5):
                        os.kill(pid, signal.SIGKILL)
                        _wait_gone(pid, 5)
            OURS_FILE.unlink(missing_ok=True)
        if PCSCD_PIDFILE.exists():
            with contextlib.suppress(ValueError, OSError):
                pid = int(PCSCD_PIDFILE.read_text().strip())
                if _alive(pid):
                    raise RuntimeError(
                        f"a pcscd not started by the tests runs (pid {pid}); stop it first"
                    )
        PCSCD_SOCKET.unlink(missing_ok=True)

    def start(self, timeout: float = 10.0) -> None:
        """Start pcscd and wait until its socket accepts connections."""
        if self._lock is None:
            self._lock = _take_lock()
            self._stop_stale()
        self._write_conf()
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [PCSCD, "-f", "-c", str(self.confdir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        OURS_FILE.write_text(str(self._proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"pcscd exited with {self._proc.returncode}: {self.log_tail()}")
            if PCSCD_SOCKET.exists() and (not self.with_reader or self._vpcd_listening()):
                return
            time.sleep(0.02)
        raise RuntimeError(f"pcscd did not come up in {timeout} s: {self.log_tail()}")

    def _vpcd_listening(self) -> bool:
        """pcscd lists the virtual reader (probing vpcd's port would look like a card)."""
        from smartcard import scard

        rc, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if rc != scard.SCARD_S_SUCCESS:
            return False
        try:
            rc, readers = scard.SCardListReaders(ctx, [])
            return rc == scard.SCARD_S_SUCCESS and READER_NAME in readers
        finally:
            scard.SCardReleaseContext(ctx)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """Stop pcscd (SIGTERM, then SIGKILL) and wait for it."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        OURS_FILE.unlink(missing_ok=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._lock is not None:
            _release_lock(self._lock)
            self._lock = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class VirtualCard:
    """A contactless card for vpcd: ``async with card:`` is the card lying on the reader.

    Answers ``FF CA 00 00 00`` with its UID. ``vanish_on_apdu`` makes the card leave the
    field when the first APDU arrives, before answering (a card pulled away mid-read).
    """

    def __init__(
        self,
        port: int,
        uid: bytes,
        *,
        atr: bytes = MIFARE_ATR,
        vanish_on_apdu: bool = False,
        host: str = "127.0.0.1",
    ) -> None:
        self.port = port
        self.uid = uid
        self.atr = atr
        self.vanish_on_apdu = vanish_on_apdu
        self.host = host
        self.apdus: list[bytes] = []
        self.powered = False
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
                break
            except OSError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.05)
        self._writer = writer
        self._task = asyncio.create_task(self._serve(reader, writer))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
            self._writer = None

    def answer(self, apdu: bytes) -> bytes:
        if apdu[:4] == b"\xff\xca\x00\x00":
            return self.uid + b"\x90\x00"
        return b"\x6a\x82"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (size,) = struct.unpack(">H", await reader.readexactly(2))
                msg = await reader.readexactly(size)
                if size == 1:
                    if msg[0] == 0:
                        self.powered = False
                    elif msg[0] in (1, 2):
                        self.powered = True
                    elif msg[0] == 4:
                        writer.write(struct.pack(">H", len(self.atr)) + self.atr)
                        await writer.drain()
                    continue
                self.apdus.append(msg)
                if self.vanish_on_apdu:
                    writer.close()
                    return
                reply = self.answer(msg)
                writer.write(struct.pack(">H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return


@pytest.fixture(scope="module")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PcscdProcess]:
    """This run's pcscd with a vpcd reader, for one test module.

    Module scope: the pcscd and its lock are released after each module, so other
    modules that start their own pcscd never wait on this one. Other test areas use it
    with ``from tests.drivers.pcsc_harness import pcscd`` in their conftest.
    """
    if not pcsc_available():
        pytest.skip(
            "pcscd or vsmartcard-vpcd is not installed (apt-get install pcscd vsmartcard-vpcd)"
        )
    with PcscdProcess(Path(tmp_path_factory.mktemp("pcscd"))) as proc:
        yield proc
