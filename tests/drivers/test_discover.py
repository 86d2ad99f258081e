"""Discovery for `kartapos doctor`: stable paths, PC/SC readers from a real pcscd."""

from __future__ import annotations

import os
from pathlib import Path

from drivers.discover import Found, _by_id, discover, input_devices, pcsc_readers, serial_ports
from tests.drivers.pcsc_harness import READER_NAME, PcscdProcess


def test_stable_symlinks_are_preferred(tmp_path: Path) -> None:
    (tmp_path / "msr").symlink_to("/dev/ttyS0")
    (tmp_path / "scanner").symlink_to("/dev/ttyUSB7")
    assert _by_id(tmp_path) == {
        os.path.realpath("/dev/ttyS0"): str(tmp_path / "msr"),
        os.path.realpath("/dev/ttyUSB7"): str(tmp_path / "scanner"),
    }
    assert _by_id(tmp_path / "missing") == {}


def test_serial_ports_use_the_pos_symlink(tmp_path: Path) -> None:
    ports = serial_ports(tmp_path)
    assert all(p.kind == "serial" for p in ports)
    if any(p.path == "/dev/ttyS0" for p in ports):
        (tmp_path / "msr").symlink_to("/dev/ttyS0")
        again = serial_ports(tmp_path)
        assert str(tmp_path / "msr") in [p.path for p in again]
        assert "/dev/ttyS0" not in [p.path for p in again]


def test_pcsc_readers_from_the_running_pcscd(pcscd: PcscdProcess) -> None:
    found = pcsc_readers()
    assert Found("pcsc", READER_NAME, READER_NAME) in found


def test_discover_lists_every_kind_without_raising(pcscd: PcscdProcess) -> None:
    found = discover()
    assert {f.kind for f in found} >= {"pcsc"}
    assert all(f.path for f in found)
    assert isinstance(input_devices(), list)
