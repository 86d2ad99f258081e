"""`kartapos doctor -c FILE`: check config, state dir, ledger, readers, printer and server.

A plain report, one line per check: ``OK``, ``WARN`` or ``FAIL``, what was checked
(naming the key or device), what was found and, when something is wrong, how to fix
it. Exit 0 when nothing failed (warnings allowed), 1 when a check failed, 2 when the
configuration cannot be loaded. Safe to run while the daemon runs: the ledger is
opened read-only, devices are opened and closed without reading, and the terminal
token is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import grp
import os
import pwd
import sqlite3
import stat
import sys
import tempfile
import termios
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from config.loader import EXIT_BAD_CONFIG, ConfigError, load_config
from config.logging import configure_logging
from config.schema import Config, PrinterSection, ReaderSection, parse_listen
from config.version import package_version
from ledger.clock import Clock, SystemClock
from ledger.store import Head, LedgerError, LedgerStore
from printer.transport import PrinterStatus, build_transport

DEFAULT_CONFIG = "/etc/kartapos/kartapos.toml"
LEDGER_FILE = "ledger.sqlite"
API_TOKEN_FILE = "api-token"  # noqa: S105 - a file name, not a secret
# The user and groups kartapos.service runs with (systemd/kartapos.service).
SERVICE_USER = "kartapos"
SERVICE_GROUPS = ("dialout", "input", "lp")
DISK_FAIL_BYTES = 100 * 2**20
DISK_WARN_BYTES = 1024 * 2**20
EARLIEST_SANE_YEAR = 2024
EXIT_FAILED = 1


class Level(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    level: Level
    what: str
    detail: str
    fix: str | None = None

    def line(self) -> str:
        text = f"{self.level.value:<4}  {self.what}: {self.detail}"
        return f"{text}; fix: {self.fix}" if self.fix else text


def _ok(what: str, detail: str) -> Check:
    return Check(Level.OK, what, detail)


def _warn(what: str, detail: str, fix: str | None = None) -> Check:
    return Check(Level.WARN, what, detail, fix)


def _fail(what: str, detail: str, fix: str | None = None) -> Check:
    return Check(Level.FAIL, what, detail, fix)


# --- files and devices -------------------------------------------------------------


def _owner(st: os.stat_result) -> str:
    """'kartapos:dialout 0660' for a report line."""
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"{user}:{group} {stat.S_IMODE(st.st_mode):04o}"


def _service_cannot_open(st: os.stat_result, write: bool) -> bool:
    """True when kartapos.service's user and groups lack the permission bits (if it exists)."""
    try:
        user = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        return False
    gids = {user.pw_gid}
    for name in SERVICE_GROUPS:
        try:
            gids.add(grp.getgrnam(name).gr_gid)
        except KeyError:
            continue
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid == user.pw_uid:
        bits = mode >> 6
    elif st.st_gid in gids:
        bits = mode >> 3
    else:
        bits = mode
    need = 0o6 if write else 0o4
    return bits & need != need


def _missing_device(what: str, path: str, fix: str) -> Check:
    dangling = os.path.islink(path)
    detail = f"{path} is a link to a missing device" if dangling else f"{path} does not exist"
    return _fail(what, detail, fix)


_UDEV_FIX = (
    "plug it in, then check `ls -l /dev/pos/ /dev/serial/by-id/` and the udev rule "
    "(systemd/99-kartapos.rules; `udevadm info --attribute-walk --name=DEVICE`)"
)


def check_serial_port(what: str, path: str, baudrate: int, group: str = "dialout") -> Check:
    """Open and close a serial port the way the daemon does (exclusive), reading nothing."""
    import serial

    if not os.path.exists(path):
        return _missing_device(what, path, _UDEV_FIX)
    st = os.stat(path)
    not_a_port = _fail(what, f"{path} is not a serial port", f"check the path in {what}")
    if not stat.S_ISCHR(st.st_mode):
        return not_a_port
    try:
        port = serial.Serial(path, baudrate, timeout=0, exclusive=True)
    except serial.SerialException as e:
        if isinstance(e.__context__, termios.error):
            return not_a_port  # a character device, but no tty (termios refused it)
        code = e.errno if isinstance(e.errno, int) else None
        if code == errno.EAGAIN:
            return _warn(
                what,
                f"{path} is in use by another process (the running kartapos daemon?)",
                "none if the daemon runs; otherwise find the holder with `fuser -v " + path + "`",
            )
        if code in (errno.EACCES, errno.EPERM):
            return _fail(
                what,
                f"{path}: permission denied ({_owner(st)})",
                f"give the device group {group} with MODE=0660 in the udev rule and run the "
                f"service with SupplementaryGroups={group}",
            )
        if code in (errno.ENOTTY, errno.EINVAL):
            return not_a_port
        reason = os.strerror(code) if code else "cannot open"
        return _fail(what, f"{path}: {reason}", _UDEV_FIX)
    except OSError as e:
        return _fail(what, f"{path}: {e.strerror or 'cannot open'}", _UDEV_FIX)
    port.close()
    if _service_cannot_open(st, write=True):
        return _warn(
            what,
            f"{path} opens here, but user {SERVICE_USER} cannot open it ({_owner(st)})",
            f'GROUP="{group}", MODE="0660" in the udev rule',
        )
    return _ok(what, f"{path} opens at {baudrate} baud ({_owner(st)})")


def check_evdev(what: str, spec: str) -> Check:
    """Open the input device by path or name, report its name, close it (no grab)."""
    from drivers.errors import DeviceError
    from drivers.evdev_reader import open_input_device

    fix = (
        "check `ls -l /dev/input/by-id/` and the reader's path (a by-id path, a name or vvvv:pppp)"
    )
    if spec.startswith("/") and not os.path.exists(spec):
        return _missing_device(what, spec, fix)
    try:
        dev = open_input_device(spec)
    except DeviceError as e:
        if e.errno in (errno.EACCES, errno.EPERM):
            return _fail(
                what,
                f"{spec}: permission denied",
                "the user needs group input (the service has SupplementaryGroups=input)",
            )
        if e.errno == errno.ENODEV:
            return _fail(what, f"no input device matches {spec!r}", fix)
        return _fail(
            what, f"{spec} is not a usable input device ({os.strerror(e.errno or 0)})", fix
        )
    try:
        name = str(getattr(dev, "name", "?"))
    finally:
        dev.close()
    if spec.startswith("/") and _service_cannot_open(os.stat(spec), write=False):
        return _warn(
            what,
            f"{spec} ({name}) opens here, but user {SERVICE_USER} cannot open it",
            'GROUP="input", MODE="0660" in the udev rule',
        )
    return _ok(what, f"{spec} opens: {name!r}")


def check_pcsc(what: str, match: str) -> Check:
    """pcscd answers, and one of its readers' names contains ``match``."""
    from smartcard import scard

    rc, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if rc != scard.SCARD_S_SUCCESS:
        return _fail(
            what,
            f"pcscd is not reachable ({scard.SCardGetErrorMessage(rc).strip()})",
            "apt install pcscd && systemctl enable --now pcscd.socket",
        )
    try:
        rc, readers = scard.SCardListReaders(context, [])
    finally:
        scard.SCardReleaseContext(context)
    if rc == scard.SCARD_E_NO_READERS_AVAILABLE:
        readers = []
    elif rc != scard.SCARD_S_SUCCESS:
        return _fail(
            what, f"pcscd error listing readers ({scard.SCardGetErrorMessage(rc).strip()})"
        )
    found = [r for r in readers if match in r]
    if found:
        return _ok(what, f"pcscd sees {found[0]!r}")
    seen = ", ".join(repr(r) for r in readers) or "no readers at all"
    return _fail(
        what,
        f"no PC/SC reader matching {match!r} (pcscd sees: {seen})",
        "plug the reader in (`pcsc_scan` lists readers) or correct the reader's path",
    )


def check_reader(reader: ReaderSection) -> Check:
    what = f"reader {reader.name} ({reader.kind})"
    if reader.kind == "serial":
        return check_serial_port(what, reader.path, reader.baudrate)
    if reader.kind == "evdev":
        return check_evdev(what, reader.path)
    return check_pcsc(what, reader.path)


def found_on_system(readers: tuple[ReaderSection, ...]) -> list[Check]:
    """What looks like a reader on this machine, and which configured reader uses it."""
    from drivers.discover import discover

    def configured_as(kind: str, path: str) -> str | None:
        for r in readers:
            if r.kind != kind:
                continue
            if kind == "pcsc" and r.path in path:
                return r.name
            if kind != "pcsc" and os.path.realpath(r.path) == os.path.realpath(path):
                return r.name
        return None

    checks = []
    for f in discover():
        name = configured_as(f.kind, f.path)
        if name is None and not f.likely_reader:
            continue  # on-board serial ports and ordinary keyboards
        use = f"configured as {name}" if name else "not configured"
        label = f.path if f.description == f.path else f"{f.path} ({f.description})"
        checks.append(_ok(f"found {f.kind}", f"{label}, {use}"))
    if not checks:
        checks.append(_ok("found", "no reader-like devices on this system"))
    return checks


# --- printer -------------------------------------------------------------------------

# The printer's own report (printer.transport's DLE EOT reading) in operator words.
_PRINTER_STATE: dict[str, tuple[Level, str]] = {
    "online": (Level.OK, "online, paper present"),
    "paper_near_end": (Level.WARN, "paper low"),
    "paper_out": (Level.WARN, "paper out"),
    "cover_open": (Level.WARN, "cover open"),
    "offline": (Level.WARN, "printer reports offline or an error"),
    "unknown": (
        Level.WARN,
        "state unknown: no status reply (the daemon may hold the connection, "
        "or the printer does not answer DLE EOT)",
    ),
}


def printer_status_check(what: str, where: str, status: PrinterStatus) -> Check:
    level, text = _PRINTER_STATE.get(status.state, (Level.WARN, status.state))
    detail = f"{where}: {text}"
    if status.detail and level is not Level.OK:
        detail += f" ({status.detail})"
    fix = None if level is Level.OK else "look at the printer (paper, cover, power, error light)"
    return Check(level, what, detail, fix)


async def _reach_network_printer(printer: PrinterSection) -> Check | None:
    """A FAIL naming host:port when nothing accepts a TCP connection there."""
    what, where = "printer (network)", f"{printer.host}:{printer.port}"
    fix = (
        "check the printer is on and its IP (print its self-test page), the cable, "
        "and [printer] host/port"
    )
    try:
        async with asyncio.timeout(printer.connect_timeout_s):
            _, writer = await asyncio.open_connection(printer.host, printer.port)
    except TimeoutError:
        return _fail(what, f"no answer from {where} within {printer.connect_timeout_s:g} s", fix)
    except OSError as e:
        return _fail(what, f"cannot connect to {where}: {e.strerror or e}", fix)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


def check_file_printer(printer: PrinterSection) -> Check:
    what, path = "printer (file)", printer.path
    parent = os.path.dirname(path) or "."
    target = path if os.path.exists(path) else parent
    if not os.path.isdir(parent):
        return _fail(what, f"folder {parent} does not exist", "create it or fix [printer] path")
    if not os.access(target, os.W_OK):
        return _fail(what, f"{target} is not writable", "fix its owner/permissions")
    return _ok(what, f"receipts are written to {path}")


def check_usb_printer(printer: PrinterSection) -> Check:
    """The device node exists and opens for writing (permissions named when not)."""
    what, path = "printer (usb)", printer.path
    if not os.path.exists(path):
        return _missing_device(
            what,
            path,
            "switch the printer on and plug it in; `ls -l /dev/usb/` and the udev rule "
            "(systemd/99-kartapos.rules)",
        )
    st = os.stat(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EPERM):
            return _fail(
                what,
                f"{path}: permission denied ({_owner(st)})",
                'GROUP="lp", MODE="0660" in the udev rule; the service has SupplementaryGroups=lp',
            )
        return _fail(what, f"{path}: {e.strerror}", "check the printer is on and connected")
    os.close(fd)
    if _service_cannot_open(st, write=True):
        return _warn(
            what,
            f"{path} opens here, but user {SERVICE_USER} cannot open it ({_owner(st)})",
            'GROUP="lp", MODE="0660" in the udev rule',
        )
    return _ok(what, f"{path} opens for writing ({_owner(st)})")


async def check_printer(printer: PrinterSection, timeout_s: float) -> Check:
    """Reachable and permitted first (with the fix), then the printer's own status."""
    what = f"printer ({printer.kind})"
    if printer.kind == "file":
        return await asyncio.to_thread(check_file_printer, printer)
    if printer.kind == "network":
        where = f"{printer.host}:{printer.port}"
        failed = await _reach_network_printer(printer)
        if failed is not None:
            return failed
    else:
        where = printer.path
        if printer.kind == "serial":
            opened = await asyncio.to_thread(
                check_serial_port, what, printer.path, printer.baudrate
            )
        else:
            opened = await asyncio.to_thread(check_usb_printer, printer)
        if opened.level is not Level.OK:
            return opened
    transport = build_transport(printer, status_timeout=min(timeout_s, 1.0))
    assert transport is not None  # kind "none" never gets here
    return printer_status_check(what, where, await transport.status())


# --- state dir, disk, ledger -----------------------------------------------------------


def check_state_dir(state_dir: Path) -> Check:
    what = "state dir"
    fix_create = (
        f"systemd-tmpfiles --create kartapos.conf (or install -d -m 0700 -o {SERVICE_USER} "
        f"{state_dir}); [terminal] state_dir"
    )
    if not state_dir.exists():
        return _fail(what, f"{state_dir} does not exist", fix_create)
    if not state_dir.is_dir():
        return _fail(what, f"{state_dir} is not a folder", "fix [terminal] state_dir")
    st = state_dir.stat()
    try:
        with tempfile.NamedTemporaryFile(dir=state_dir, prefix=".doctor-"):
            pass
    except OSError as e:
        return _fail(
            what,
            f"{state_dir} is not writable ({e.strerror}; {_owner(st)})",
            f"chown -R {SERVICE_USER}:{SERVICE_USER} {state_dir}",
        )
    if stat.S_IMODE(st.st_mode) & 0o077:
        return _warn(
            what,
            f"{state_dir} is open to other users ({_owner(st)}): it holds the signing key",
            f"chmod 0700 {state_dir}",
        )
    return _ok(what, f"{state_dir} is writable ({_owner(st)})")


def check_disk(state_dir: Path) -> Check:
    what = "disk space"
    probe = state_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    vfs = os.statvfs(probe)
    free = vfs.f_bavail * vfs.f_frsize
    detail = f"{free / 2**20:,.0f} MiB free for {probe}"
    if free < DISK_FAIL_BYTES or (vfs.f_files and vfs.f_favail < 1000):
        return _fail(what, detail + " (sales need room)", "free space on that file system")
    if free < DISK_WARN_BYTES:
        return _warn(what, detail, "free space soon: the ledger grows with every sale")
    return _ok(what, detail)


def check_api_token(state_dir: Path) -> Check:
    what = "api token"
    path = state_dir / API_TOKEN_FILE
    if not path.exists():
        return _ok(what, f"{path} not made yet (the daemon makes it at first start)")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return _fail(what, f"{path} is readable by other users ({mode:04o})", f"chmod 0600 {path}")
    return _ok(what, f"{path} is private ({mode:04o})")


def _ledger_terminal(path: Path) -> str | None:
    """The terminal id recorded in the ledger (None when not recorded or unreadable)."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key='terminal'").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


async def check_ledger(cfg: Config, clock: Clock) -> tuple[Check, Head | None]:
    what = "ledger"
    path = Path(cfg.terminal.state_dir) / LEDGER_FILE
    if not path.exists():
        return _ok(what, f"{path} not made yet (the daemon makes it at first start)"), None
    owner = await asyncio.to_thread(_ledger_terminal, path)
    if owner is not None and owner != cfg.terminal.id:
        return (
            _fail(
                what,
                f"{path} belongs to terminal {owner!r}, not {cfg.terminal.id!r}",
                "fix [terminal] id or [terminal] state_dir; never mix two terminals' ledgers",
            ),
            None,
        )
    started = clock.monotonic()
    try:
        async with await LedgerStore.open(path, terminal=cfg.terminal.id, readonly=True) as store:
            head = store.head
            problem = await store.verify()
    except LedgerError as e:
        return _fail(what, str(e), "keep the file; contact support before changing anything"), None
    took = clock.monotonic() - started
    if problem is not None:
        return (
            _fail(
                what,
                f"chain broken at seq {problem.seq}: {problem.reason}",
                "keep the file untouched and contact support (`kartapos ledger verify`)",
            ),
            head,
        )
    detail = f"head seq {head.seq} ({head.hash[:12]}…), chain verified in {took:.2f} s"
    return _ok(what, detail), head


# --- sync server -----------------------------------------------------------------------


def _read_token(path: Path) -> tuple[str, int]:
    """The token (stripped) and the file's permission bits."""
    return path.read_text(encoding="utf-8").strip(), stat.S_IMODE(path.stat().st_mode)


async def check_sync(cfg: Config, local: Head | None, timeout_s: float) -> Check:
    what = "sync server"
    token_path = Path(cfg.sync.token_file)
    token_fix = (
        f"put the terminal token from the city in {token_path} "
        f"(chown root:{SERVICE_USER}, chmod 0640); [sync] token_file"
    )
    try:
        token, mode = await asyncio.to_thread(_read_token, token_path)
    except FileNotFoundError:
        return _fail(what, f"token file {token_path} does not exist", token_fix)
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not text"
        return _fail(what, f"token file {token_path}: {reason}", token_fix)
    if not token:
        return _fail(what, f"token file {token_path} is empty", token_fix)
    url = f"{cfg.sync.url.rstrip('/')}/v1/terminals/{cfg.terminal.id}/head"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
            session.get(url, headers={"Authorization": f"Bearer {token}"}) as resp,
        ):
            status = resp.status
            body = await resp.json(content_type=None) if status == 200 else None
    except TimeoutError:
        return _fail(
            what,
            f"no answer from {url} within {timeout_s:g} s",
            "check the network and [sync] url (the till keeps selling offline meanwhile)",
        )
    except (aiohttp.ClientError, ValueError) as e:
        return _fail(
            what,
            f"cannot reach {url}: {type(e).__name__}: {e}",
            "check the network, DNS and [sync] url (the till keeps selling offline meanwhile)",
        )
    if status in (401, 403):
        return _fail(
            what,
            f"{url}: the server refused the terminal token (HTTP {status})",
            f"check that {token_path} holds the token issued for terminal {cfg.terminal.id}",
        )
    if status == 404:
        return _fail(
            what,
            f"{url}: not found (HTTP 404)",
            f"check [sync] url and that the city registered terminal {cfg.terminal.id}",
        )
    if status != 200:
        return _fail(what, f"{url}: HTTP {status}", "try again later; ask the city if it persists")
    seq = body.get("seq") if isinstance(body, dict) else None
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        return _fail(what, f"{url}: the reply is not a head ({{seq, hash}})", "check [sync] url")
    result = _ok(what, f"{cfg.sync.url} answers; it holds entries up to seq {seq}")
    if local is not None:
        if seq > local.seq:
            return _fail(
                what,
                f"the server holds seq {seq} but this box's ledger ends at {local.seq}",
                "wrong [terminal] id/state_dir, or the ledger was replaced: contact support",
            )
        result = _ok(
            what,
            f"{cfg.sync.url} answers; {seq} of {local.seq} entries acknowledged, "
            f"{local.seq - seq} to upload",
        )
    if mode & 0o004:
        return _warn(
            what,
            result.detail + f"; but {token_path} is readable by everyone",
            f"chmod 0640 {token_path}",
        )
    return result


# --- the running daemon ------------------------------------------------------------------


def _loopback(host: str) -> str:
    """Where to reach a daemon listening on ``host`` (a wildcard means this machine)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104


async def check_daemon(cfg: Config, timeout_s: float) -> tuple[Check, dict[str, Any] | None]:
    """The daemon's own view (GET /api/v1/health), when it runs: readers' live state."""
    what = "daemon"
    host, port = parse_listen(cfg.api.listen)
    host = _loopback(host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/api/v1/health"
    token_path = Path(cfg.terminal.state_dir) / API_TOKEN_FILE
    try:
        token, _ = await asyncio.to_thread(_read_token, token_path)
    except (OSError, UnicodeDecodeError):
        token = ""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
            session.get(url, headers={"Authorization": f"Bearer {token}"}) as resp,
        ):
            status = resp.status
            body = await resp.json(content_type=None) if status == 200 else None
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return (
            _warn(
                what,
                f"not running (nothing answers at {cfg.api.listen}); the checks here opened "
                "the devices directly",
                "systemctl enable --now kartapos; logs: journalctl -u kartapos",
            ),
            None,
        )
    if status != 200 or not isinstance(body, dict):
        return (
            _warn(
                what,
                f"something answers at {cfg.api.listen} but not as kartapos (HTTP {status})",
                f"check [api] listen and {token_path}",
            ),
            None,
        )
    readers = body.get("readers") or []
    states = ", ".join(f"{r.get('name')}={r.get('state')}" for r in readers if isinstance(r, dict))
    printer = body.get("printer")
    printer = printer if isinstance(printer, dict) else {}
    sync = body.get("sync")
    sync = sync if isinstance(sync, dict) else {}
    detail = (
        f"running at {cfg.api.listen}, status {body.get('status')}; readers: {states or 'none'}; "
        f"printer: {printer.get('state')}; entries to upload: {sync.get('pending_entries')}"
    )
    level = Level.OK if body.get("status") == "ok" else Level.WARN
    return Check(level, what, detail), body


def _reader_states(health: dict[str, Any] | None) -> dict[str, str]:
    if health is None:
        return {}
    return {
        str(r.get("name")): str(r.get("state"))
        for r in health.get("readers") or []
        if isinstance(r, dict)
    }


# --- time --------------------------------------------------------------------------------


def _system_zone() -> str:
    try:
        link = os.readlink("/etc/localtime")
    except OSError:
        return os.environ.get("TZ") or "unknown"
    marker = "zoneinfo/"
    return link.split(marker, 1)[1] if marker in link else link


def check_timezone(cfg: Config, clock: Clock) -> Check:
    zone = ZoneInfo(cfg.terminal.timezone)
    local = clock.now().astimezone(zone)
    return _ok(
        "time zone",
        f"{cfg.terminal.timezone}: local time {local:%Y-%m-%d %H:%M %Z} "
        f"(the box's own zone: {_system_zone()}, not used for receipts)",
    )


def check_clock(clock: Clock) -> Check:
    now = clock.now()
    if now.year < EARLIEST_SANE_YEAR:
        return _fail(
            "clock",
            f"the clock says {now:%Y-%m-%d %H:%M} UTC: sales would carry that date",
            "set the time and keep it synchronised: timedatectl set-ntp true (replace the "
            "RTC battery if it resets at power loss)",
        )
    return _ok("clock", f"{now:%Y-%m-%d %H:%M:%S} UTC")


# --- the report -------------------------------------------------------------------------


async def _guarded(what: str, timeout_s: float, work: Awaitable[Check]) -> Check:
    """Run one check; a hang or an unexpected error becomes a FAIL line, never a traceback."""
    try:
        async with asyncio.timeout(timeout_s):
            return await work
    except TimeoutError:
        return _fail(what, f"no result within {timeout_s:g} s")
    except Exception as e:
        return _fail(what, f"check crashed: {type(e).__name__}: {e}")


async def _found(readers: tuple[ReaderSection, ...], timeout_s: float) -> list[Check]:
    try:
        async with asyncio.timeout(timeout_s):
            return await asyncio.to_thread(found_on_system, readers)
    except TimeoutError:
        return [_warn("found", f"looking for devices took over {timeout_s:g} s")]
    except Exception as e:
        return [_warn("found", f"could not list devices: {type(e).__name__}: {e}")]


def _in_thread(fn: Callable[..., Check], *args: object) -> Awaitable[Check]:
    return asyncio.to_thread(fn, *args)


async def diagnose(cfg: Config, *, clock: Clock, timeout_s: float = 5.0) -> list[Check]:
    """Every check for this configuration, in report order."""
    state_dir = Path(cfg.terminal.state_dir)
    checks = [
        check_clock(clock),
        check_timezone(cfg, clock),
        await asyncio.to_thread(check_state_dir, state_dir),
        await asyncio.to_thread(check_disk, state_dir),
        await asyncio.to_thread(check_api_token, state_dir),
    ]
    ledger_timeout = max(timeout_s, 60.0)  # a year of sales verifies in well under that
    head: Head | None = None
    try:
        async with asyncio.timeout(ledger_timeout):
            ledger, head = await check_ledger(cfg, clock)
    except TimeoutError:
        ledger = _fail("ledger", f"no result within {ledger_timeout:g} s")
    except Exception as e:
        ledger = _fail("ledger", f"check crashed: {type(e).__name__}: {e}")
    checks.append(ledger)

    daemon, health = await check_daemon(cfg, timeout_s)
    checks.append(daemon)
    live = _reader_states(health)

    work: list[tuple[str, Awaitable[Check]]] = [
        (f"reader {r.name} ({r.kind})", _in_thread(check_reader, r)) for r in cfg.readers
    ]
    printer = cfg.printer
    if printer.kind != "none":
        work.append((f"printer ({printer.kind})", check_printer(printer, timeout_s)))
    work.append(("sync server", check_sync(cfg, head, timeout_s)))
    async with asyncio.TaskGroup() as tg:
        # A backstop only: every check has its own, shorter timeouts inside.
        backstop = 2 * timeout_s + cfg.printer.connect_timeout_s + 2
        tasks = [tg.create_task(_guarded(what, backstop, w)) for what, w in work]
        found = tg.create_task(_found(cfg.readers, backstop))
    if not cfg.readers:
        checks.append(_warn("readers", "none configured", "add [[readers]] to the config"))
    for reader, task in zip(cfg.readers, tasks, strict=False):
        checks.append(_with_live_state(task.result(), live.get(reader.name)))
    checks.extend(found.result())
    checks.extend(t.result() for t in tasks[len(cfg.readers) :])
    if printer.kind == "none":
        checks.append(
            _warn("printer", "none configured: no receipts are printed", "[printer] kind")
        )
    return checks


def _with_live_state(check: Check, state: str | None) -> Check:
    """Add the daemon's view of a reader; a port it holds and reports connected is fine."""
    if state is None:
        return check
    if check.level is Level.WARN and "in use" in check.detail and state == "connected":
        return _ok(check.what, f"held by the running daemon, which reports it {state}")
    return Check(
        check.level, check.what, f"{check.detail}; the daemon reports it {state}", check.fix
    )


def exit_code(checks: list[Check]) -> int:
    return EXIT_FAILED if any(c.level is Level.FAIL for c in checks) else 0


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 600 seconds")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=DEFAULT_CONFIG,
        help=f"the terminal's configuration (default {DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_positive_seconds,
        default=5.0,
        help="how long each device or server check may take (default 5)",
    )
    parser.epilog = (
        "Prints one line per check: OK, WARN or FAIL, what was checked and how to fix it. "
        "Exit 0 when nothing failed (warnings allowed), 1 when a check failed, 2 when the "
        "configuration cannot be loaded."
    )


def run(args: argparse.Namespace) -> int:
    config_path = Path(args.config)
    try:
        cfg = load_config(config_path)
    except ConfigError as e:
        print(_fail("config", str(e), "correct the file and run `kartapos doctor` again").line())
        return EXIT_BAD_CONFIG
    # The report owns stdout; library log lines (if any) go to stderr.
    configure_logging("warning", "console", stream=sys.stderr)
    started = time.monotonic()
    checks = [
        _ok("version", f"kartapos {package_version()}"),
        _ok("config", f"{config_path} loads (terminal {cfg.terminal.id})"),
    ]
    checks += asyncio.run(diagnose(cfg, clock=SystemClock(), timeout_s=args.timeout))
    for c in checks:
        print(c.line())
    counts = {level: sum(c.level is level for c in checks) for level in Level}
    print(
        f"-- {counts[Level.FAIL]} failed, {counts[Level.WARN]} warnings, {counts[Level.OK]} ok "
        f"({time.monotonic() - started:.1f} s)",
        file=sys.stdout,
    )
    return exit_code(checks)
