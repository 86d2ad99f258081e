"""`kartapos doctor` against real parts: a pty reader, a loopback printer, a real HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import serial
from aiohttp import web

from config.loader import load_config
from config.schema import Config
from config.version import package_version
from ledger.clock import FakeClock
from ledger.store import LedgerStore
from terminal.doctor import Check, Level, diagnose, exit_code
from tests.conftest import REPO_ROOT
from tests.drivers.pcsc_harness import (
    LOCK_FILE,
    PCSCD_SOCKET,
    PcscdProcess,
    free_port,
    pcsc_available,
)
from tests.ledger.test_store_support import sale
from tests.terminal.test_sdnotify import Listener

TERMINAL = "T-0001"
# DLE EOT n -> the status byte a healthy ESC/POS printer answers.
HEALTHY = {1: 0x16, 2: 0x12, 4: 0x12}


@dataclass
class Printer:
    """A loopback ESC/POS printer answering DLE EOT n with ``replies[n]`` (silent if absent)."""

    port: int
    replies: dict[int, int]
    queries: list[int]


@dataclass
class Server:
    """The city server's head endpoint on loopback."""

    url: str
    token: str
    head_seq: int
    requests: list[str]


@pytest.fixture
def pty_port() -> Iterator[str]:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    yield path
    os.close(slave)
    os.close(master)


@pytest.fixture
async def printer() -> AsyncIterator[Printer]:
    p = Printer(port=0, replies=dict(HEALTHY), queries=[])

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                query = await reader.readexactly(3)
                assert query[:2] == b"\x10\x04", query
                p.queries.append(query[2])
                if query[2] in p.replies:
                    writer.write(bytes([p.replies[query[2]]]))
                    await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    p.port = server.sockets[0].getsockname()[1]
    async with server:
        yield p


@pytest.fixture
async def city() -> AsyncIterator[Server]:
    srv = Server(url="", token=secrets.token_urlsafe(24), head_seq=0, requests=[])

    async def head(request: web.Request) -> web.Response:
        srv.requests.append(request.path)
        if request.headers.get("Authorization") != f"Bearer {srv.token}":
            return web.json_response({"error": "unauthorised"}, status=401)
        if request.match_info["tid"] != TERMINAL:
            return web.json_response({"error": "unknown terminal"}, status=404)
        return web.json_response({"seq": srv.head_seq, "hash": "0" * 64})

    app = web.Application()
    app.router.add_get("/pos/v1/terminals/{tid}/head", head)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    srv.url = f"http://127.0.0.1:{port}/pos"
    yield srv
    await runner.cleanup()


@dataclass
class Box:
    """A terminal's config folder: kartapos.toml, the token file and the state dir."""

    root: Path
    token: str
    api_port: int

    @property
    def config_path(self) -> Path:
        return self.root / "kartapos.toml"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    def write(self, *, readers: str, printer: str, sync_url: str) -> Config:
        self.config_path.write_text(
            f'[terminal]\nid = "{TERMINAL}"\npartner_id = "P-0042"\nstate_dir = "state"\n\n'
            f'[api]\nlisten = "127.0.0.1:{self.api_port}"\n\n'
            f"{readers}\n{printer}\n"
            f'[sync]\nurl = "{sync_url}"\ntoken_file = "token"\n',
            encoding="utf-8",
        )
        return load_config(self.config_path)


@pytest.fixture
def box(tmp_path: Path, city: Server) -> Box:
    b = Box(tmp_path, city.token, free_port())
    b.state_dir.mkdir(mode=0o700)
    token = tmp_path / "token"
    token.write_text(city.token + "\n")
    token.chmod(0o640)
    return b


def serial_reader(name: str, path: str) -> str:
    return f'[[readers]]\nname = "{name}"\nkind = "serial"\npath = "{path}"\n'


def network_printer(port: int) -> str:
    return (
        f'[printer]\nkind = "network"\nhost = "127.0.0.1"\nport = {port}\nconnect_timeout_s = 1\n'
    )


def by_what(checks: list[Check]) -> dict[str, Check]:
    return {c.what: c for c in checks}


async def fill_ledger(state_dir: Path, n: int, terminal: str = TERMINAL) -> None:
    async with await LedgerStore.open(state_dir / "ledger.sqlite", terminal=terminal) as store:
        for i in range(1, n + 1):
            await store.append(sale(i))


async def test_healthy_box_reports_ok_everywhere(
    box: Box, city: Server, printer: Printer, pty_port: str, clock: FakeClock
) -> None:
    await fill_ledger(box.state_dir, 5)
    city.head_seq = 3
    cfg = box.write(
        readers=serial_reader("msr", pty_port),
        printer=network_printer(printer.port),
        sync_url=city.url,
    )
    checks = await diagnose(cfg, clock=clock, timeout_s=3)
    lines = [c.line() for c in checks]
    found = by_what(checks)
    assert found["daemon"].level is Level.WARN
    assert "not running" in found["daemon"].detail
    assert [c.level for c in checks if c.what != "daemon"] == [Level.OK] * (len(checks) - 1), lines
    assert pty_port in found["reader msr (serial)"].detail
    assert "online, paper present" in found["printer (network)"].detail
    assert printer.queries == [1, 2, 4]
    assert "head seq 5" in found["ledger"].detail
    assert "3 of 5 entries acknowledged, 2 to upload" in found["sync server"].detail
    assert city.requests == [f"/pos/v1/terminals/{TERMINAL}/head"]
    assert "2026-11-18 12:00 CET" in found["time zone"].detail
    assert exit_code(checks) == 0
    assert all(city.token not in line for line in lines)


async def test_missing_reader_device_fails_naming_reader_and_path(
    box: Box, city: Server, printer: Printer, pty_port: str, clock: FakeClock
) -> None:
    gone = "/dev/pos/msr-not-plugged"
    cfg = box.write(
        readers=serial_reader("msr", gone)
        + serial_reader("scanner", pty_port)
        + '[[readers]]\nname = "wedge"\nkind = "evdev"\n'
        + 'path = "/dev/input/by-id/usb-gone-event-kbd"\n',
        printer=network_printer(printer.port),
        sync_url=city.url,
    )
    checks = await diagnose(cfg, clock=clock, timeout_s=3)
    found = by_what(checks)
    msr = found["reader msr (serial)"]
    assert msr.level is Level.FAIL
    assert f"{gone} does not exist" in msr.line()
    assert msr.fix
    assert "udev" in msr.fix
    assert found["reader scanner (serial)"].level is Level.OK
    wedge = found["reader wedge (evdev)"]
    assert wedge.level is Level.FAIL
    assert "usb-gone-event-kbd does not exist" in wedge.detail
    assert exit_code(checks) == 1


async def test_dangling_udev_link_is_named_as_such(
    box: Box, city: Server, tmp_path: Path, clock: FakeClock
) -> None:
    link = tmp_path / "msr"
    link.symlink_to(tmp_path / "ttyUSB9")
    cfg = box.write(readers=serial_reader("msr", str(link)), printer="", sync_url=city.url)
    msr = by_what(await diagnose(cfg, clock=clock))["reader msr (serial)"]
    assert msr.level is Level.FAIL
    assert "link to a missing device" in msr.detail


async def test_serial_port_held_by_the_daemon_is_a_warning(
    box: Box, city: Server, pty_port: str, clock: FakeClock
) -> None:
    # The daemon opens its ports exclusively; doctor must say "in use", not "broken".
    cfg = box.write(readers=serial_reader("msr", pty_port), printer="", sync_url=city.url)
    with serial.Serial(pty_port, 9600, exclusive=True):
        msr = by_what(await diagnose(cfg, clock=clock))["reader msr (serial)"]
    assert msr.level is Level.WARN
    assert "in use" in msr.detail


async def test_a_regular_file_is_not_a_serial_port(
    box: Box, city: Server, tmp_path: Path, clock: FakeClock
) -> None:
    # A plain file, and a character device that is no tty (termios refuses it).
    not_a_tty = tmp_path / "notatty"
    not_a_tty.write_text("")
    for path in (str(not_a_tty), "/dev/null"):
        cfg = box.write(readers=serial_reader("msr", path), printer="", sync_url=city.url)
        msr = by_what(await diagnose(cfg, clock=clock))["reader msr (serial)"]
        assert msr.level is Level.FAIL
        assert f"{path} is not a serial port" in msr.detail


async def test_evdev_reader_on_a_non_input_device_fails(
    box: Box, city: Server, pty_port: str, clock: FakeClock
) -> None:
    cfg = box.write(
        readers=f'[[readers]]\nname = "wedge"\nkind = "evdev"\npath = "{pty_port}"\n',
        printer="",
        sync_url=city.url,
    )
    wedge = by_what(await diagnose(cfg, clock=clock))["reader wedge (evdev)"]
    assert wedge.level is Level.FAIL
    assert "not a usable input device" in wedge.detail


@pytest.mark.parametrize(
    ("replies", "level", "text"),
    [
        ({**HEALTHY, 4: 0x72}, Level.WARN, "paper out"),
        ({**HEALTHY, 1: 0x1E}, Level.WARN, "reports offline"),
        ({**HEALTHY, 4: 0x1E}, Level.WARN, "paper low"),
        ({**HEALTHY, 2: 0x16}, Level.WARN, "cover open"),
        ({1: 0xFF}, Level.WARN, "state unknown"),
        ({}, Level.WARN, "state unknown"),
    ],
)
async def test_printer_states_from_dle_eot(
    box: Box,
    city: Server,
    printer: Printer,
    clock: FakeClock,
    replies: dict[int, int],
    level: Level,
    text: str,
) -> None:
    printer.replies = replies
    cfg = box.write(readers="", printer=network_printer(printer.port), sync_url=city.url)
    check = by_what(await diagnose(cfg, clock=clock, timeout_s=1))["printer (network)"]
    assert (check.level, text in check.detail) == (level, True), check.line()


async def test_printer_nobody_listening_fails(box: Box, city: Server, clock: FakeClock) -> None:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connection refused
        cfg = box.write(readers="", printer=network_printer(port), sync_url=city.url)
        check = by_what(await diagnose(cfg, clock=clock))["printer (network)"]
    assert check.level is Level.FAIL
    assert f"127.0.0.1:{port}" in check.detail


async def test_usb_and_file_printers(
    box: Box, city: Server, tmp_path: Path, clock: FakeClock
) -> None:
    cfg = box.write(
        readers="", printer='[printer]\nkind = "usb"\npath = "/dev/usb/lp7"\n', sync_url=city.url
    )
    usb = by_what(await diagnose(cfg, clock=clock))["printer (usb)"]
    assert usb.level is Level.FAIL
    assert "/dev/usb/lp7 does not exist" in usb.detail
    cfg = box.write(
        readers="",
        printer='[printer]\nkind = "file"\npath = "out/receipts.bin"\n',
        sync_url=city.url,
    )
    file_check = by_what(await diagnose(cfg, clock=clock))["printer (file)"]
    assert file_check.level is Level.FAIL
    assert f"{tmp_path / 'out'} does not exist" in file_check.detail
    (tmp_path / "out").mkdir()
    file_check = by_what(await diagnose(cfg, clock=clock))["printer (file)"]
    assert file_check.level is Level.OK


async def test_wrong_token_is_refused_and_never_printed(
    box: Box, city: Server, clock: FakeClock
) -> None:
    wrong = secrets.token_urlsafe(24)
    (box.root / "token").write_text(wrong)
    cfg = box.write(readers="", printer="", sync_url=city.url)
    checks = await diagnose(cfg, clock=clock)
    sync = by_what(checks)["sync server"]
    assert sync.level is Level.FAIL
    assert "refused the terminal token (HTTP 401)" in sync.detail
    assert all(wrong not in c.line() and city.token not in c.line() for c in checks)


async def test_missing_token_file_and_unreachable_server(
    box: Box, city: Server, clock: FakeClock
) -> None:
    (box.root / "token").unlink()
    cfg = box.write(readers="", printer="", sync_url=city.url)
    sync = by_what(await diagnose(cfg, clock=clock))["sync server"]
    assert sync.level is Level.FAIL
    assert "token file" in sync.detail
    assert "does not exist" in sync.detail
    (box.root / "token").write_text(city.token)
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
        cfg = box.write(readers="", printer="", sync_url=dead)
        sync = by_what(await diagnose(cfg, clock=clock, timeout_s=2))["sync server"]
    assert sync.level is Level.FAIL
    assert "cannot reach" in sync.detail


async def test_server_ahead_of_the_local_ledger_fails(
    box: Box, city: Server, clock: FakeClock
) -> None:
    # A replaced state dir or a wrong terminal id: the server holds more than the box.
    await fill_ledger(box.state_dir, 2)
    city.head_seq = 7
    cfg = box.write(readers="", printer="", sync_url=city.url)
    sync = by_what(await diagnose(cfg, clock=clock))["sync server"]
    assert sync.level is Level.FAIL
    assert "seq 7" in sync.detail
    assert "ends at 2" in sync.detail


async def test_world_readable_token_warns(box: Box, city: Server, clock: FakeClock) -> None:
    (box.root / "token").chmod(0o644)
    cfg = box.write(readers="", printer="", sync_url=city.url)
    sync = by_what(await diagnose(cfg, clock=clock))["sync server"]
    assert sync.level is Level.WARN
    assert sync.fix == f"chmod 0640 {box.root / 'token'}"


async def test_tampered_ledger_fails_naming_the_seq(
    box: Box, city: Server, clock: FakeClock
) -> None:
    await fill_ledger(box.state_dir, 4)
    db = sqlite3.connect(box.state_dir / "ledger.sqlite", isolation_level=None)
    try:
        db.execute("DROP TRIGGER entries_no_update")
        db.execute("UPDATE entries SET hash = ? WHERE seq = 3", ("ab" * 32,))
    finally:
        db.close()
    cfg = box.write(readers="", printer="", sync_url=city.url)
    ledger = by_what(await diagnose(cfg, clock=clock))["ledger"]
    assert ledger.level is Level.FAIL
    assert "seq 3" in ledger.detail


async def test_another_terminals_ledger_fails(box: Box, city: Server, clock: FakeClock) -> None:
    await fill_ledger(box.state_dir, 1, terminal="T-9999")
    cfg = box.write(readers="", printer="", sync_url=city.url)
    ledger = by_what(await diagnose(cfg, clock=clock))["ledger"]
    assert ledger.level is Level.FAIL
    assert "'T-9999'" in ledger.detail


async def test_state_dir_missing_or_open_to_others(
    box: Box, city: Server, clock: FakeClock
) -> None:
    cfg = box.write(readers="", printer="", sync_url=city.url)
    box.state_dir.chmod(0o755)
    state = by_what(await diagnose(cfg, clock=clock))["state dir"]
    assert state.level is Level.WARN
    assert state.fix == f"chmod 0700 {box.state_dir}"
    box.state_dir.rmdir()
    checks = by_what(await diagnose(cfg, clock=clock))
    assert checks["state dir"].level is Level.FAIL
    assert checks["disk space"].level is Level.OK


async def test_world_readable_api_token_fails(box: Box, city: Server, clock: FakeClock) -> None:
    token = box.state_dir / "api-token"
    token.write_text(secrets.token_hex(16))
    token.chmod(0o644)
    cfg = box.write(readers="", printer="", sync_url=city.url)
    api = by_what(await diagnose(cfg, clock=clock))["api token"]
    assert api.level is Level.FAIL
    assert api.fix == f"chmod 0600 {token}"


async def test_clock_reset_to_2001_fails(box: Box, city: Server) -> None:
    # A dead RTC battery: the box boots in the past.
    cfg = box.write(readers="", printer="", sync_url=city.url)
    clock = FakeClock(datetime(2001, 1, 1, 0, 0, tzinfo=UTC))
    check = by_what(await diagnose(cfg, clock=clock))["clock"]
    assert check.level is Level.FAIL
    assert "2001-01-01" in check.detail


@pytest.fixture
def pcscd(tmp_path: Path) -> Iterator[PcscdProcess]:
    if not pcsc_available():
        pytest.skip("pcscd or vsmartcard-vpcd is not installed")
    with PcscdProcess(tmp_path / "pcscd") as proc:
        yield proc


async def test_pcsc_reader_found_or_named_when_missing(
    box: Box, city: Server, clock: FakeClock, pcscd: PcscdProcess
) -> None:
    cfg = box.write(
        readers='[[readers]]\nname = "nfc"\nkind = "pcsc"\npath = "PCD 00 00"\n'
        '[[readers]]\nname = "acr"\nkind = "pcsc"\npath = "ACR122"\n',
        printer="",
        sync_url=city.url,
    )
    all_checks = await diagnose(cfg, clock=clock)
    found = by_what(all_checks)
    assert found["reader nfc (pcsc)"].level is Level.OK
    assert "Virtual PCD 00 00" in found["reader nfc (pcsc)"].detail
    acr = found["reader acr (pcsc)"]
    assert acr.level is Level.FAIL
    assert "no PC/SC reader matching 'ACR122'" in acr.detail
    assert "Virtual PCD 00 00" in acr.detail
    found_lines = [c.detail for c in all_checks if c.what == "found pcsc"]
    assert "Virtual PCD 00 00, configured as nfc" in found_lines
    assert "Virtual PCD 00 01, not configured" in found_lines


async def test_pcscd_not_running_fails(box: Box, city: Server, clock: FakeClock) -> None:
    if not pcsc_available():
        pytest.skip("pcscd is not installed")
    # Hold the test pcscd lock so no other test run starts one meanwhile; never wait
    # for it (a pcscd fixture of this very process may hold it).
    with LOCK_FILE.open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pytest.skip("a test pcscd is running now")
        if PCSCD_SOCKET.exists():
            with contextlib.closing(socket.socket(socket.AF_UNIX)) as s:
                try:
                    s.connect(str(PCSCD_SOCKET))
                    pytest.skip("a pcscd not started by these tests is running")
                except OSError:
                    pass
        cfg = box.write(
            readers='[[readers]]\nname = "nfc"\nkind = "pcsc"\npath = "ACR122"\n',
            printer="",
            sync_url=city.url,
        )
        nfc = by_what(await diagnose(cfg, clock=clock))["reader nfc (pcsc)"]
    assert nfc.level is Level.FAIL
    assert "pcscd is not reachable" in nfc.detail


def _doctor(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "terminal.cli", "doctor", "-c", str(config), "--timeout", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        check=False,
    )


async def test_cli_exit_codes_and_plain_report(box: Box, city: Server, printer: Printer) -> None:
    box.write(
        readers=serial_reader("msr", "/dev/pos/msr-missing"),
        printer=network_printer(printer.port),
        sync_url=city.url,
    )
    proc = await asyncio.to_thread(_doctor, box.config_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"OK    version: kartapos {package_version()}"
    assert lines[1].startswith("OK    config:")
    assert any(
        line.startswith("FAIL  reader msr (serial): /dev/pos/msr-missing does not exist")
        for line in lines
    ), lines
    assert lines[-1].startswith("-- 1 failed,")
    assert all(line.startswith(("OK  ", "WARN", "FAIL", "-- ")) for line in lines), lines
    assert "Traceback" not in proc.stdout + proc.stderr
    assert city.token not in proc.stdout + proc.stderr

    box.config_path.write_text(box.config_path.read_text() + "\n[printer]\nkind = 3\n")
    proc = await asyncio.to_thread(_doctor, box.config_path)
    assert proc.returncode == 2
    assert proc.stdout.startswith(f"FAIL  config: {box.config_path}")
    assert "Traceback" not in proc.stdout + proc.stderr


async def test_cli_all_ok_exits_zero(
    box: Box, city: Server, printer: Printer, pty_port: str
) -> None:
    box.write(
        readers=serial_reader("msr", pty_port),
        printer=network_printer(printer.port),
        sync_url=city.url,
    )
    proc = await asyncio.to_thread(_doctor, box.config_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "-- 0 failed, 1 warnings" in proc.stdout
    assert "WARN  daemon: not running" in proc.stdout


async def test_serial_printer_on_a_pty_answers_status(
    box: Box, city: Server, clock: FakeClock
) -> None:
    # The pty's master side plays the printer: it answers each DLE EOT n it reads.
    master, slave = os.openpty()
    loop = asyncio.get_running_loop()
    pending = bytearray()

    def answer() -> None:
        pending.extend(os.read(master, 64))
        while len(pending) >= 3:
            n = pending[2]
            del pending[:3]
            os.write(master, bytes([{**HEALTHY, 4: 0x1E}[n]]))

    loop.add_reader(master, answer)
    try:
        path = os.ttyname(slave)
        cfg = box.write(
            readers="",
            printer=f'[printer]\nkind = "serial"\npath = "{path}"\n',
            sync_url=city.url,
        )
        check = by_what(await diagnose(cfg, clock=clock, timeout_s=2))["printer (serial)"]
    finally:
        loop.remove_reader(master)
        os.close(slave)
        os.close(master)
    assert check.level is Level.WARN
    assert check.detail == f"{path}: paper low"


async def test_running_daemon_gives_live_reader_state(
    box: Box, city: Server, pty_port: str, clock: FakeClock
) -> None:
    # With the daemon holding the serial port, "in use" is the healthy answer.
    cfg = box.write(readers=serial_reader("msr", pty_port), printer="", sync_url=city.url)
    name = f"kartapos-doctor-{uuid.uuid4().hex}"
    listener = Listener(b"\0" + name.encode())
    log = (box.root / "daemon.log").open("wb")
    daemon = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "terminal.cli", "run", "-c", str(box.config_path)),
        env={**os.environ, "NOTIFY_SOCKET": "@" + name},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        message, _ = await asyncio.to_thread(listener.receive)
        assert message.startswith("READY=1"), (box.root / "daemon.log").read_text()[-2000:]
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            found = by_what(await diagnose(cfg, clock=clock, timeout_s=3))
            if "msr=connected" in found["daemon"].detail:
                break
            assert asyncio.get_running_loop().time() < deadline, found["daemon"].line()
            await asyncio.sleep(0.1)
        assert found["daemon"].detail.startswith(f"running at 127.0.0.1:{box.api_port}")
        msr = found["reader msr (serial)"]
        assert msr.level is Level.OK, msr.line()
        assert msr.detail == "held by the running daemon, which reports it connected"
        assert found["ledger"].level is Level.OK
    finally:
        daemon.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            await daemon.wait()
        log.close()
        listener.sock.close()
    assert daemon.returncode == 0


def test_disk_sizes_carry_no_thousands_comma(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Catches '80,570 MiB', which a Polish reader takes for 80.57 MiB."""
    from terminal.doctor import state as doctor_state

    assert doctor_state.format_size(512 * 2**20) == "512 MiB"
    assert doctor_state.format_size(80570 * 2**20) == "78.7 GiB"
    real = os.statvfs(tmp_path)

    class _Vfs:
        f_bavail = 80570 * 2**20 // real.f_frsize
        f_frsize = real.f_frsize
        f_files = real.f_files
        f_favail = real.f_favail

    monkeypatch.setattr(os, "statvfs", lambda _path: _Vfs())
    disk = doctor_state.check_disk(tmp_path)
    assert disk.level is Level.OK
    assert disk.detail == f"78.7 GiB free for {tmp_path}"
    assert "," not in disk.detail
