"""Reader checks: each configured device opens, what looks like a reader, the live state.

Devices are opened and closed the way the daemon opens them, reading nothing, so the
checks are safe while the daemon runs (a port it holds exclusively is "in use").
"""

from __future__ import annotations

import errno
import os
import stat
import termios

from config.schema import ReaderSection
from terminal.doctor.access import SERVICE_USER, missing_device, owner, service_cannot_open
from terminal.doctor.report import Check, Level, fail, ok, warn
from terminal.views import Health

UDEV_FIX = (
    "plug it in, then check `ls -l /dev/pos/ /dev/serial/by-id/` and the udev rule "
    "(systemd/99-kartapos.rules; `udevadm info --attribute-walk --name=DEVICE`)"
)


def check_serial_port(what: str, path: str, baudrate: int, group: str = "dialout") -> Check:
    """Open and close a serial port the way the daemon does (exclusive), reading nothing."""
    import serial

    if not os.path.exists(path):
        return missing_device(what, path, UDEV_FIX)
    st = os.stat(path)
    not_a_port = fail(what, f"{path} is not a serial port", f"check the path in {what}")
    if not stat.S_ISCHR(st.st_mode):
        return not_a_port
    try:
        port = serial.Serial(path, baudrate, timeout=0, exclusive=True)
    except serial.SerialException as e:
        if isinstance(e.__context__, termios.error):
            return not_a_port  # a character device, but no tty (termios refused it)
        code = e.errno if isinstance(e.errno, int) else None
        if code == errno.EAGAIN:
            return warn(
                what,
                f"{path} is in use by another process (the running kartapos daemon?)",
                "none if the daemon runs; otherwise find the holder with `fuser -v " + path + "`",
            )
        if code in (errno.EACCES, errno.EPERM):
            return fail(
                what,
                f"{path}: permission denied ({owner(st)})",
                f"give the device group {group} with MODE=0660 in the udev rule and run the "
                f"service with SupplementaryGroups={group}",
            )
        if code in (errno.ENOTTY, errno.EINVAL):
            return not_a_port
        reason = os.strerror(code) if code else "cannot open"
        return fail(what, f"{path}: {reason}", UDEV_FIX)
    except OSError as e:
        return fail(what, f"{path}: {e.strerror or 'cannot open'}", UDEV_FIX)
    port.close()
    if service_cannot_open(st, write=True):
        return warn(
            what,
            f"{path} opens here, but user {SERVICE_USER} cannot open it ({owner(st)})",
            f'GROUP="{group}", MODE="0660" in the udev rule',
        )
    return ok(what, f"{path} opens at {baudrate} baud ({owner(st)})")


def check_evdev(what: str, spec: str) -> Check:
    """Open the input device by path or name, report its name, close it (no grab)."""
    from drivers.errors import DeviceError
    from drivers.evdev_reader import open_input_device

    fix = (
        "check `ls -l /dev/input/by-id/` and the reader's path (a by-id path, a name or vvvv:pppp)"
    )
    if spec.startswith("/") and not os.path.exists(spec):
        return missing_device(what, spec, fix)
    try:
        dev = open_input_device(spec)
    except DeviceError as e:
        if e.errno in (errno.EACCES, errno.EPERM):
            return fail(
                what,
                f"{spec}: permission denied",
                "the user needs group input (the service has SupplementaryGroups=input)",
            )
        if e.errno == errno.ENODEV:
            return fail(what, f"no input device matches {spec!r}", fix)
        return fail(what, f"{spec} is not a usable input device ({os.strerror(e.errno or 0)})", fix)
    try:
        name = str(getattr(dev, "name", "?"))
    finally:
        dev.close()
    if spec.startswith("/") and service_cannot_open(os.stat(spec), write=False):
        return warn(
            what,
            f"{spec} ({name}) opens here, but user {SERVICE_USER} cannot open it",
            'GROUP="input", MODE="0660" in the udev rule',
        )
    return ok(what, f"{spec} opens: {name!r}")


def check_pcsc(what: str, match: str) -> Check:
    """pcscd answers, and one of its readers' names contains ``match``."""
    from smartcard import scard

    rc, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if rc != scard.SCARD_S_SUCCESS:
        return fail(
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
        return fail(what, f"pcscd error listing readers ({scard.SCardGetErrorMessage(rc).strip()})")
    found = [r for r in readers if match in r]
    if found:
        return ok(what, f"pcscd sees {found[0]!r}")
    seen = ", ".join(repr(r) for r in readers) or "no readers at all"
    return fail(
        what,
        f"no PC/SC reader matching {match!r} (pcscd sees: {seen})",
        "plug the reader in (`pcsc_scan` lists readers) or correct the reader's path",
    )


def reader_label(reader: ReaderSection) -> str:
    """How the report names a configured reader: 'reader msr (serial)'."""
    return f"reader {reader.name} ({reader.kind})"


def check_reader(reader: ReaderSection) -> Check:
    what = reader_label(reader)
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
        checks.append(ok(f"found {f.kind}", f"{label}, {use}"))
    if not checks:
        checks.append(ok("found", "no reader-like devices on this system"))
    return checks


# --- the running daemon's view -------------------------------------------------------


def reader_states(health: Health | None) -> dict[str, str]:
    """Each reader's state as the running daemon reports it (empty when none runs)."""
    if health is None:
        return {}
    return {r.name: r.state for r in health.readers}


def with_live_state(check: Check, state: str | None) -> Check:
    """Add the daemon's view of a reader; a port it holds and reports connected is fine."""
    if state is None:
        return check
    if check.level is Level.WARN and "in use" in check.detail and state == "connected":
        return ok(check.what, f"held by the running daemon, which reports it {state}")
    return Check(
        check.level, check.what, f"{check.detail}; the daemon reports it {state}", check.fix
    )
