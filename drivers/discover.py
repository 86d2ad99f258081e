"""What on this machine looks like a card reader (for ``kartapos doctor``).

Blocking (it opens devices and talks to pcscd): call it in a thread. Each finding has
a stable path to put in the configuration: ``/dev/pos/*`` or ``/dev/serial/by-id/*``
for serial ports, ``/dev/input/by-id/*`` for keyboard-wedge devices, and the reader
name for PC/SC.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Words in USB device names of scanners and magstripe readers (not of keyboards).
_READER_WORDS = (
    "scanner",
    "barcode",
    "bar code",
    "honeywell",
    "zebra",
    "symbol",
    "datalogic",
    "newland",
    "magtek",
    "idtech",
    "id tech",
    "msr",
    "card reader",
    "magnetic",
)


@dataclass(frozen=True)
class Found:
    """One device that could be configured as a reader."""

    kind: str  # serial | evdev | pcsc
    path: str  # what goes in [[readers]].path
    description: str
    likely_reader: bool = True


def _by_id(folder: Path) -> dict[str, str]:
    """real device path -> the stable symlink that points at it."""
    out: dict[str, str] = {}
    try:
        for link in sorted(folder.iterdir()):
            out.setdefault(os.path.realpath(link), str(link))
    except OSError:
        pass
    return out


def serial_ports(pos_dir: Path = Path("/dev/pos")) -> list[Found]:
    from serial.tools import list_ports

    stable = _by_id(Path("/dev/serial/by-id")) | _by_id(pos_dir)
    found = []
    for port in list_ports.comports():
        path = stable.get(os.path.realpath(port.device), port.device)
        desc = " ".join(x for x in (port.manufacturer, port.product, port.description) if x)
        # Legacy on-board ttyS ports are listed whether or not anything is attached.
        likely = port.vid is not None or path != port.device
        found.append(Found("serial", path, desc or port.device, likely))
    return found


def input_devices() -> list[Found]:
    import evdev
    from evdev import ecodes

    stable = _by_id(Path("/dev/input/by-id"))
    found = []
    for dev_path in evdev.list_devices():
        try:
            dev = evdev.InputDevice(dev_path)
        except OSError:
            continue
        try:
            keys = dev.capabilities().get(ecodes.EV_KEY, [])
            if ecodes.KEY_ENTER not in keys or ecodes.KEY_1 not in keys:
                continue
            name = dev.name
            vp = f"{dev.info.vendor:04x}:{dev.info.product:04x}"
            likely = any(w in name.lower() for w in _READER_WORDS)
            path = stable.get(os.path.realpath(dev_path), dev_path)
            found.append(Found("evdev", path, f"{name} ({vp})", likely))
        finally:
            dev.close()
    return found


def pcsc_readers() -> list[Found]:
    from smartcard import scard

    rc, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if rc != scard.SCARD_S_SUCCESS:
        return []
    try:
        rc, readers = scard.SCardListReaders(ctx, [])
        if rc != scard.SCARD_S_SUCCESS:
            return []
        return [Found("pcsc", r, r) for r in readers]
    finally:
        scard.SCardReleaseContext(ctx)


def discover() -> list[Found]:
    """Every serial port, keyboard-like input device and PC/SC reader found."""
    return [*serial_ports(), *input_devices(), *pcsc_readers()]
