"""`kartapos ledger verify` and the dispatcher's behaviour (exit codes, one-line errors)."""

from __future__ import annotations

import asyncio
import os
import pty
import select
import signal
import subprocess
import sys
import time
import tomllib
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

import terminal.cli as cli
from config.loader import ConfigError
from ledger.store import LedgerStore
from terminal.cli import main
from terminal.cmd_ledger import PROGRESS_MIN_ENTRIES
from tests.conftest import REPO_ROOT
from tests.ledger.test_store_support import bulk_fill, raw, sale, untamper_guard

KARTAPOS = [sys.executable, "-m", "terminal.cli"]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """main() configures structlog for the process with the (captured) stderr: undo it."""
    yield
    structlog.reset_defaults()


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    p = tmp_path / "kartapos.toml"
    p.write_text(
        '[terminal]\nid = "T-0001"\npartner_id = "P-0042"\nstate_dir = "state"\n',
        encoding="utf-8",
    )
    return p


def _ledger(conf: Path) -> Path:
    return conf.parent / "state" / "ledger.sqlite"


def _make_ledger(conf: Path, n: int) -> str:
    async def go() -> str:
        async with await LedgerStore.open(_ledger(conf), terminal="T-0001") as store:
            for i in range(n):
                await store.append(sale(i))
            return store.head.hash

    return asyncio.run(go())


def test_verify_ok_names_count_and_head(conf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    head = _make_ledger(conf, 7)
    capsys.readouterr()
    assert main(["ledger", "verify", "-c", str(conf)]) == 0
    out, err = capsys.readouterr()
    assert out == f"OK: 7 entries, head seq 7 hash {head}\n"
    assert err == ""  # no progress, no logs when stderr is not a terminal


def test_verify_names_the_first_bad_seq_and_exits_1(
    conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _make_ledger(conf, 6)
    untamper_guard(_ledger(conf))
    with raw(_ledger(conf)) as db:
        db.execute(
            "UPDATE entries SET body = CAST(replace(CAST(body AS TEXT), "
            "'\"amount_gr\":1003', '\"amount_gr\":9003') AS BLOB) WHERE seq = 4"
        )
        db.execute(
            "UPDATE entries SET body = CAST(replace(CAST(body AS TEXT), "
            "'\"amount_gr\":1004', '\"amount_gr\":9004') AS BLOB) WHERE seq = 5"
        )
    capsys.readouterr()
    assert main(["ledger", "verify", "-c", str(conf)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAILED: ")
    assert "entry seq 4: hash does not match the entry's content" in out


def test_missing_ledger_exits_2_naming_the_file(
    conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ledger", "verify", "-c", str(conf)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert str(_ledger(conf)) in err
    assert not _ledger(conf).exists()  # verifying never creates a ledger


def test_damaged_ledger_file_exits_2_naming_it(
    conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _ledger(conf).parent.mkdir(parents=True)
    _ledger(conf).write_bytes(b"SQLite format 3\x00" + b"\x13" * 8000)
    assert main(["ledger", "verify", "-c", str(conf)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert str(_ledger(conf)) in err
    assert "Traceback" not in err


def test_verify_runs_beside_a_writing_daemon(
    conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The writer holds the lock and keeps appending; verify reads without it."""
    _make_ledger(conf, 1)
    rfd, wfd = os.pipe()
    child = REPO_ROOT / "tests" / "ledger" / "crash_child.py"
    proc = subprocess.Popen(
        [sys.executable, str(child), str(_ledger(conf)), str(wfd), "0", "-1", "0"],
        pass_fds=(wfd,),
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    os.close(wfd)
    try:
        seen = b""
        deadline = time.monotonic() + 20
        while seen.count(b"\n") < 50:
            assert time.monotonic() < deadline, "writer did not start appending"
            if select.select([rfd], [], [], 1)[0]:
                seen += os.read(rfd, 65536)
        capsys.readouterr()
        assert main(["ledger", "verify", "-c", str(conf)]) == 0
        assert capsys.readouterr().out.startswith("OK: ")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        os.close(rfd)


def _run_with_stderr_on_a_pty(argv: list[str]) -> tuple[int, str, str]:
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave, cwd=REPO_ROOT)
    os.close(slave)
    err = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if select.select([master], [], [], 1)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed its side
                break
            if not chunk:
                break
            err += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, out.decode(), err.decode()


def test_progress_is_shown_on_a_terminal_for_large_ledgers(conf: Path) -> None:
    _make_ledger(conf, 1)
    bulk_fill(_ledger(conf), PROGRESS_MIN_ENTRIES + 5_000)
    rc, out, err = _run_with_stderr_on_a_pty([*KARTAPOS, "ledger", "verify", "-c", str(conf)])
    total = PROGRESS_MIN_ENTRIES + 5_001
    assert rc == 0, err
    assert out.startswith(f"OK: {total} entries, head seq {total} ")
    assert "\rverifying: " in err
    assert f"{total}/{total} entries (100%)" in err
    # Not a terminal: no progress noise.
    piped = subprocess.run(
        [*KARTAPOS, "ledger", "verify", "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert piped.returncode == 0
    assert piped.stderr == ""


def test_installed_command_gives_one_line_errors_without_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    done = subprocess.run(
        [*KARTAPOS, "ledger", "verify", "-c", str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 2
    assert done.stderr == f"kartapos ledger: {missing}: file not found\n"
    assert done.stdout == ""


def test_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    # The metadata pip wrote, not a copy in the code: pyproject.toml is the one home.
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert capsys.readouterr().out == f"kartapos {project['version']}\n"


def test_usage_errors_exit_2() -> None:
    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["ledger"])  # the subcommand is required
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["ledger", "verify"])  # -c is required
    assert info.value.code == 2


def test_dispatcher_turns_config_error_into_one_line_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = types.ModuleType("terminal.cmd_fakeconf")

    def add_arguments(parser: object) -> None:
        return None

    def run(args: object) -> int:
        raise ConfigError("/etc/kartapos/k.toml", "printer.port", "expected int <= 65535")

    fake.add_arguments = add_arguments  # type: ignore[attr-defined]
    fake.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "terminal.cmd_fakeconf", fake)
    monkeypatch.setitem(cli.COMMANDS, "fakeconf", ("terminal.cmd_fakeconf", "test"))
    assert main(["fakeconf"]) == 2
    assert (
        capsys.readouterr().err
        == "kartapos fakeconf: /etc/kartapos/k.toml: printer.port: expected int <= 65535\n"
    )


def test_dispatcher_says_plainly_when_a_command_is_not_built(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(cli.COMMANDS, "future", ("terminal.cmd_future_xyz", "not yet"))
    assert main(["future"]) == 1
    assert "not built yet" in capsys.readouterr().err


def test_damaged_pages_exit_2_with_one_clean_line(conf: Path) -> None:
    """quick_check and the chain walk run side by side: whichever trips first, the
    other is stopped and the user sees one line (no stray task errors)."""
    _make_ledger(conf, 300)
    data = bytearray(_ledger(conf).read_bytes())
    page = 4096
    for off in range(3 * page, len(data) - page, page):
        data[off : off + 64] = b"\xa5" * 64
    _ledger(conf).write_bytes(bytes(data))
    done = subprocess.run(
        [*KARTAPOS, "ledger", "verify", "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 2, done
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"kartapos ledger verify: ledger {_ledger(conf)}")
