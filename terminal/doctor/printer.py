"""Printer checks: reachable and permitted first (with the fix), then its own status.

The status itself is printer.transport's DLE EOT query, through the transport the
daemon would build; this module only words its answer for the operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os

from config.schema import PrinterSection
from printer.transport import PrinterStatus, build_transport
from terminal.doctor.access import SERVICE_USER, missing_device, owner, service_cannot_open
from terminal.doctor.readers import check_serial_port
from terminal.doctor.report import Check, Level, fail, ok, warn

# The printer's own report (printer.transport's DLE EOT reading) in operator words.
PRINTER_STATE: dict[str, tuple[Level, str]] = {
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
    level, text = PRINTER_STATE.get(status.state, (Level.WARN, status.state))
    detail = f"{where}: {text}"
    if status.detail and level is not Level.OK:
        detail += f" ({status.detail})"
    fix = None if level is Level.OK else "look at the printer (paper, cover, power, error light)"
    return Check(level, what, detail, fix)


async def reach_network_printer(printer: PrinterSection) -> Check | None:
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
        return fail(what, f"no answer from {where} within {printer.connect_timeout_s:g} s", fix)
    except OSError as e:
        return fail(what, f"cannot connect to {where}: {e.strerror or e}", fix)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


def check_file_printer(printer: PrinterSection) -> Check:
    what, path = "printer (file)", printer.path
    parent = os.path.dirname(path) or "."
    target = path if os.path.exists(path) else parent
    if not os.path.isdir(parent):
        return fail(what, f"folder {parent} does not exist", "create it or fix [printer] path")
    if not os.access(target, os.W_OK):
        return fail(what, f"{target} is not writable", "fix its owner/permissions")
    return ok(what, f"receipts are written to {path}")


def check_usb_printer(printer: PrinterSection) -> Check:
    """The device node exists and opens for writing (permissions named when not)."""
    what, path = "printer (usb)", printer.path
    if not os.path.exists(path):
        return missing_device(
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
            return fail(
                what,
                f"{path}: permission denied ({owner(st)})",
                'GROUP="lp", MODE="0660" in the udev rule; the service has SupplementaryGroups=lp',
            )
        return fail(what, f"{path}: {e.strerror}", "check the printer is on and connected")
    os.close(fd)
    if service_cannot_open(st, write=True):
        return warn(
            what,
            f"{path} opens here, but user {SERVICE_USER} cannot open it ({owner(st)})",
            'GROUP="lp", MODE="0660" in the udev rule',
        )
    return ok(what, f"{path} opens for writing ({owner(st)})")


async def check_printer(printer: PrinterSection, timeout_s: float) -> Check:
    """Reachable and permitted first (with the fix), then the printer's own status."""
    what = f"printer ({printer.kind})"
    if printer.kind == "file":
        return await asyncio.to_thread(check_file_printer, printer)
    if printer.kind == "network":
        where = f"{printer.host}:{printer.port}"
        failed = await reach_network_printer(printer)
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
