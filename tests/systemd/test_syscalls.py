"""SystemCallFilter=@system-service allows every system call the daemon's libraries make.

Without systemd as PID 1 the filter cannot be applied here, so the test traces the
same library workload as the MDWE test with strace and checks each system call it
made against the @system-service set as this systemd version defines it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.systemd.test_mdwe import EXERCISE
from tests.systemd.unitfile import last, load_unit


def syscall_groups(text: str) -> dict[str, list[str]]:
    """Parse `systemd-analyze syscall-filter` output: group -> members (calls or @groups)."""
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.split()[0], [])
        elif current is not None and line.startswith("    ") and not line.strip().startswith("#"):
            current.append(line.strip())
        elif not line.strip():
            current = None
    return groups


def expand(groups: dict[str, list[str]], name: str, seen: set[str] | None = None) -> set[str]:
    seen = set() if seen is None else seen
    calls: set[str] = set()
    for member in groups[name]:
        if member.startswith("@"):
            if member not in seen:
                seen.add(member)
                calls |= expand(groups, member, seen)
        else:
            calls.add(member)
    return calls


def traced_syscalls(summary: str) -> set[str]:
    """System call names from an `strace -c` summary table."""
    names = set()
    for line in summary.splitlines():
        m = re.match(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+\d+\s+(?:\d+\s+)?([a-z0-9_]+)$", line)
        if m and m.group(1) != "total":
            names.add(m.group(1))
    return names


def test_summary_parser_reads_strace_tables() -> None:
    table = (
        "% time     seconds  usecs/call     calls    errors syscall\n"
        "------ ----------- ----------- --------- --------- ----------------\n"
        " 31.81    0.001540           0      1585        93 newfstatat\n"
        "  0.00    0.000000           0         1           rseq\n"
        "------ ----------- ----------- --------- --------- ----------------\n"
        "100.00    0.004842           1      4131       339 total\n"
    )
    assert traced_syscalls(table) == {"newfstatat", "rseq"}


def test_daemon_libraries_stay_inside_system_service_filter(tmp_path: Path) -> None:
    strace = shutil.which("strace")
    analyze = shutil.which("systemd-analyze")
    if strace is None or analyze is None:
        pytest.skip("needs strace and systemd-analyze (Debian packages strace, systemd)")
    unit = load_unit("kartapos.service")
    assert last(unit, "Service", "SystemCallFilter") == "@system-service"
    listing = subprocess.run(
        [analyze, "syscall-filter"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    allowed = expand(syscall_groups(listing), "@system-service")
    assert {"read", "write", "openat", "ioctl", "flock"} <= allowed, "parsing went wrong"

    summary = tmp_path / "strace.txt"
    proc = subprocess.run(
        [strace, "-f", "-c", "-o", str(summary), sys.executable, "-c", EXERCISE],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if proc.returncode != 0 and "ptrace" in proc.stderr:
        pytest.skip(f"strace cannot trace here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "EXERCISED" in proc.stdout
    used = traced_syscalls(summary.read_text())
    assert len(used) > 20, "strace summary not parsed"
    assert used - allowed == set()
