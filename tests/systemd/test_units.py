"""The systemd units, udev rules, sysusers and tmpfiles snippets, checked by systemd's own tools."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from config.schema import SyncSection
from tests.systemd.unitfile import (
    SYSTEMD_DIR,
    last,
    load_unit,
    parse_udev_rules,
    parse_unit,
)

UNITS = ("kartapos.service", "kartapos-sync.service", "kartapos-sync.timer")
INSTALLED_BIN = "/usr/bin/kartapos"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        package = "udev" if name == "udevadm" else "systemd"
        pytest.fail(
            f"{name} is not installed (Debian package {package}; .ci/sysdeps.sh installs it)"
        )
    return path


@pytest.fixture
def unit_dir(tmp_path: Path) -> Path:
    """Copies of the units whose ExecStart= points at an executable that exists here."""
    fake_bin = tmp_path / "bin" / "kartapos"
    fake_bin.parent.mkdir()
    fake_bin.write_text("#!/bin/sh\nexit 0\n")
    fake_bin.chmod(0o755)
    out = tmp_path / "units"
    out.mkdir()
    for name in UNITS:
        text = (SYSTEMD_DIR / name).read_text(encoding="utf-8")
        if name.endswith(".service"):
            assert INSTALLED_BIN in text, f"{name}: ExecStart no longer uses {INSTALLED_BIN}"
        (out / name).write_text(text.replace(INSTALLED_BIN, str(fake_bin)), encoding="utf-8")
    return out


def _verify(unit_dir: Path, names: tuple[str, ...]) -> list[str]:
    """Run systemd-analyze verify; return every line it printed about these units."""
    proc = subprocess.run(
        [_tool("systemd-analyze"), "verify", "--man=no", *(str(unit_dir / n) for n in names)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = (proc.stdout + proc.stderr).splitlines()
    ours = [line for line in out if str(unit_dir) in line or any(n in line for n in names)]
    if proc.returncode != 0:
        ours.append(f"exit status {proc.returncode}: {proc.stderr.strip()}")
    return ours


def test_systemd_analyze_verify_is_silent_about_our_units(unit_dir: Path) -> None:
    assert _verify(unit_dir, UNITS) == []


def test_verify_harness_reports_a_misspelt_directive(unit_dir: Path) -> None:
    # The harness above must be able to fail: verify exits 0 on unknown keys, so
    # only the warning it prints reveals a typo such as this one.
    service = unit_dir / "kartapos.service"
    service.write_text(
        service.read_text().replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"),
    )
    problems = _verify(unit_dir, ("kartapos.service",))
    assert any("NoNewPrivilege" in p for p in problems), problems


def test_daemon_unit_keeps_its_promises() -> None:
    unit = load_unit("kartapos.service")
    svc = unit["Service"]
    assert last(unit, "Service", "Type") == "notify"
    assert last(unit, "Service", "NotifyAccess") == "main"
    assert last(unit, "Service", "WatchdogSec") == "30"
    assert last(unit, "Service", "Restart") == "always"
    assert last(unit, "Service", "RestartSec")
    assert last(unit, "Service", "TimeoutStopSec")
    assert last(unit, "Unit", "StartLimitIntervalSec") == "0"
    assert last(unit, "Service", "ExecStart") == (
        f"{INSTALLED_BIN} run -c /etc/kartapos/kartapos.toml"
    )
    assert last(unit, "Service", "User") == "kartapos"
    assert last(unit, "Service", "StateDirectory") == "kartapos"
    assert last(unit, "Service", "StateDirectoryMode") == "0700"
    assert set(" ".join(svc["SupplementaryGroups"]).split()) == {"dialout", "input", "lp"}
    # A private /dev would hide every reader and the printer.
    assert last(unit, "Service", "PrivateDevices") in (None, "no", "false")
    assert last(unit, "Service", "PrivateUsers") in (None, "no", "false")
    assert last(unit, "Service", "DynamicUser") in (None, "no", "false")
    assert last(unit, "Service", "DevicePolicy") == "closed"
    allowed = {v.split()[0]: v.split()[1] for v in svc["DeviceAllow"]}
    for device_class in ("char-ttyS", "char-ttyUSB", "char-ttyACM", "char-input", "char-usb"):
        assert allowed.get(device_class) == "rw", device_class
    families = set(" ".join(svc["RestrictAddressFamilies"]).split())
    assert families == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}
    for key, value in {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes",
        "SystemCallFilter": "@system-service",
    }.items():
        assert last(unit, "Service", key) == value, key
    assert last(unit, "Install", "WantedBy") == "multi-user.target"


def test_every_device_class_has_its_driver_loaded_at_boot() -> None:
    # DeviceAllow=char-X is dropped silently when X's module is not yet loaded.
    drivers = {"char-ttyUSB": "usbserial", "char-ttyACM": "cdc_acm", "char-usb": "usblp"}
    modules = {
        line.strip()
        for line in (SYSTEMD_DIR / "kartapos-modules.conf").read_text().splitlines()
        if line.strip() and not line.startswith(("#", ";"))
    }
    unit = load_unit("kartapos.service")
    allowed = {v.split()[0] for v in unit["Service"]["DeviceAllow"]}
    for device_class, module in drivers.items():
        if device_class in allowed:
            assert module in modules, f"{device_class} needs {module} in kartapos-modules.conf"
    assert "systemd-modules-load.service" in " ".join(unit["Unit"]["After"])


def test_sync_unit_runs_one_cycle_as_the_service_user() -> None:
    unit = load_unit("kartapos-sync.service")
    assert last(unit, "Service", "Type") == "oneshot"
    assert last(unit, "Service", "ExecStart") == (
        f"{INSTALLED_BIN} sync -c /etc/kartapos/kartapos.toml"
    )
    assert last(unit, "Service", "User") == "kartapos"
    assert last(unit, "Service", "StateDirectory") == "kartapos"
    assert "Install" not in unit, "the timer starts it; the service itself is not enabled"


def _timespan_s(text: str) -> float:
    out = subprocess.run(
        [_tool("systemd-analyze"), "timespan", text],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    m = re.search(r"μs:\s*(\d+)", out)
    assert m, out
    return int(m.group(1)) / 1e6


@pytest.mark.parametrize("base", ["2026-01-15 12:00 UTC", "2026-07-15 12:00 UTC"])
def test_sync_timer_fires_inside_the_nightly_window_in_winter_and_summer(base: str) -> None:
    unit = load_unit("kartapos-sync.timer")
    assert last(unit, "Timer", "Persistent") == "true"
    assert last(unit, "Timer", "FixedRandomDelay") == "true"
    on_calendar = last(unit, "Timer", "OnCalendar")
    assert on_calendar is not None
    out = subprocess.run(
        [_tool("systemd-analyze"), "calendar", f"--base-time={base}", on_calendar],
        capture_output=True, text=True, timeout=30, check=True, env={**os.environ, "TZ": "UTC"},
    ).stdout  # fmt: skip
    m = re.search(r"Next elapse: \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", out)
    assert m, out
    first = datetime.fromisoformat(m.group(1) + "+00:00").astimezone(ZoneInfo("Europe/Warsaw"))
    delay = _timespan_s(last(unit, "Timer", "RandomizedDelaySec") or "0")
    start_h, _, end_h = SyncSection().nightly_window.partition("-")
    window_start = first.replace(hour=int(start_h[:2]), minute=int(start_h[3:]))
    window_end = first.replace(hour=int(end_h[:2]), minute=int(end_h[3:]))
    assert first == window_start
    assert (window_end - window_start).total_seconds() == delay
    assert delay > 0, "without a random delay every box would call at the same second"


@pytest.mark.parametrize("name", ["kartapos.service", "kartapos-sync.service"])
def test_exposure_score_stays_low(unit_dir: Path, name: str) -> None:
    # systemd-analyze security rates the sandbox 0 (locked) .. 10 (wide open); the
    # threshold is in tenths. A dropped hardening line raises the score and fails this.
    proc = subprocess.run(
        [_tool("systemd-analyze"), "security", "--offline=yes", "--threshold=20",
         str(unit_dir / name)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d)", proc.stdout + proc.stderr)
    assert proc.returncode == 0, score.group(0) if score else proc.stderr


def test_sysusers_and_tmpfiles_create_the_user_and_private_directories(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr/lib/sysusers.d").mkdir(parents=True)
    (root / "usr/lib/tmpfiles.d").mkdir(parents=True)
    (root / "var/lib").mkdir(parents=True)
    (root / "etc").mkdir()
    shutil.copy(SYSTEMD_DIR / "kartapos.sysusers", root / "usr/lib/sysusers.d/kartapos.conf")
    shutil.copy(SYSTEMD_DIR / "kartapos.tmpfiles", root / "usr/lib/tmpfiles.d/kartapos.conf")
    for tool in ("systemd-sysusers", "systemd-tmpfiles"):
        args = [_tool(tool), f"--root={root}"] + (["--create"] if tool.endswith("tmpfiles") else [])
        proc = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        assert "ignoring" not in proc.stderr.lower(), proc.stderr
    users = {
        f[0]: f
        for f in (line.split(":") for line in (root / "etc/passwd").read_text().splitlines())
    }
    groups = {
        f[0]: f for f in (line.split(":") for line in (root / "etc/group").read_text().splitlines())
    }
    kartapos = users["kartapos"]
    assert int(kartapos[2]) < 1000, "a system user"
    assert kartapos[6] == "/usr/sbin/nologin"
    for group in ("dialout", "input", "lp"):
        assert "kartapos" in groups[group][3].split(","), group
    uid, gid = int(kartapos[2]), int(groups["kartapos"][2])
    etc = (root / "etc/kartapos").stat()
    assert (stat.S_IMODE(etc.st_mode), etc.st_uid, etc.st_gid) == (0o750, 0, gid)
    state = (root / "var/lib/kartapos").stat()
    assert (stat.S_IMODE(state.st_mode), state.st_uid, state.st_gid) == (0o700, uid, gid)


def test_udev_rules_give_stable_names_with_the_services_groups() -> None:
    rules, problems = parse_udev_rules((SYSTEMD_DIR / "99-kartapos.rules").read_text())
    assert problems == []
    symlinks = {v for rule in rules for k, _, _, v in rule if k == "SYMLINK"}
    assert {"pos/msr", "pos/scanner", "pos/printer"} <= symlinks
    service_groups = set(
        " ".join(load_unit("kartapos.service")["Service"]["SupplementaryGroups"]).split()
    )
    for rule in rules:
        keys = {k for k, _, _, _ in rule}
        assert {"GROUP", "MODE"} <= keys, rule
        for k, _, _, v in rule:
            if k == "GROUP":
                assert v in service_groups, f"group {v} is not one the service has"
            if k == "MODE":
                assert int(v, 8) & 0o007 == 0, "devices must not be world-accessible"
        if any(k == "SUBSYSTEM" and v == "input" for k, _, _, v in rule):
            # Scanners must never type into the desktop or a kiosk browser.
            assert ("ENV", "LIBINPUT_IGNORE_DEVICE", "=", "1") in rule


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('SUBSYSTEM=="tty", SYMLINK+="pos/msr", GROUP="dialout", MODE="660x"', "not octal"),
        ('SUBSYSTEM="tty", SYMLINK+="pos/msr"', "cannot be assigned"),
        ('SUBSYSTEM=="tty" SYMLINK+="pos/msr"', "expected ','"),
        ('ATTRS=="0403", SYMLINK+="pos/msr"', "needs {}"),
        ('SYMLINK+="pos/msr"', "every device"),
    ],
)
def test_udev_rule_checker_catches_broken_rules(line: str, problem: str) -> None:
    _, problems = parse_udev_rules(line + "\n")
    assert any(problem in p for p in problems), problems


def test_udevadm_verify_accepts_the_rules(tmp_path: Path) -> None:
    udevadm = _tool("udevadm")
    helptext = subprocess.run(
        [udevadm, "--help"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    if not re.search(r"^\s+verify\b", helptext, re.MULTILINE):
        pytest.skip(
            "not applicable here: udevadm verify needs systemd >= 254 (the checks above still ran)"
        )
    rules = tmp_path / "99-kartapos.rules"
    shutil.copy(SYSTEMD_DIR / "99-kartapos.rules", rules)
    proc = subprocess.run(
        [udevadm, "verify", str(rules)], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_unit_parser_keeps_repeated_keys() -> None:
    unit = parse_unit(
        "[Service]\nDeviceAllow=a rw\n# c\nDeviceAllow=b r\nType=simple\nType=notify\n"
    )
    assert unit["Service"]["DeviceAllow"] == ["a rw", "b r"]
    assert last(unit, "Service", "Type") == "notify"
