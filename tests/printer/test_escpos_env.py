"""The escpos profile cache folder is chosen before escpos is imported, and kept warm."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from printer.escpos_env import ENV, prepare_escpos_cache
from tests.conftest import REPO_ROOT


def test_existing_setting_is_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV, str(tmp_path))
    assert prepare_escpos_cache() == tmp_path


def test_state_dir_is_preferred(monkeypatch: pytest.MonkeyPatch, state_dir: Path) -> None:
    monkeypatch.delenv(ENV, raising=False)
    folder = prepare_escpos_cache(state_dir)
    assert folder == state_dir / "cache" / "escpos"
    assert os.environ[ENV] == str(folder)


def test_unwritable_home_falls_back(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("")
    monkeypatch.setenv("HOME", str(blocker))
    folder = prepare_escpos_cache()
    assert folder is not None
    assert folder.is_dir()


START_UP_THEN_LAYOUT = (
    "from printer.escpos_env import prepare_escpos_cache\n"
    "prepare_escpos_cache()\n"
    "import printer.layout\n"
)


def test_importing_layout_fills_the_cache(tmp_path: Path) -> None:
    """A fresh interpreter: the start-up call, then printer.layout, leaves the pickles behind."""
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    env.pop(ENV, None)
    subprocess.run([sys.executable, "-c", START_UP_THEN_LAYOUT], env=env, cwd=REPO_ROOT, check=True)
    assert list((tmp_path / "kartapos" / "escpos").glob("*.capabilities.pickle"))


def test_importing_layout_leaves_the_environment_alone() -> None:
    env = dict(os.environ)
    env.pop(ENV, None)
    probe = f"import os, printer.layout; assert {ENV!r} not in os.environ, os.environ[{ENV!r}]"
    subprocess.run([sys.executable, "-c", probe], env=env, cwd=REPO_ROOT, check=True)


def test_start_up_runs_before_escpos_is_imported() -> None:
    """The entry point and the daemon's modules do not import escpos themselves.

    terminal.app.Daemon calls prepare_escpos_cache(state_dir) as it starts, and only then
    opens the print queue (which imports printer.layout, hence escpos). Importing escpos
    any earlier would parse its profiles into a fresh temp folder on every start.
    """
    modules = ["terminal.cli", "terminal.app", "terminal.cmd_run", "terminal.cmd_demo"]
    probe = (
        f"import sys\nfor m in {modules!r}:\n    __import__(m)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'escpos')\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, check=True)


async def test_fake_printer_runs_as_a_process_for_e2e_tests() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.printer.fake_printer",
        "--port",
        "0",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(20):
            line = (await proc.stdout.readline()).decode()
        port = int(line.rsplit(":", 1)[1])
        from printer.transport import NetworkTransport

        assert (await NetworkTransport("127.0.0.1", port).status()).state == "online"
    finally:
        proc.terminate()
        await proc.wait()


def test_a_configured_folder_that_is_missing_is_made(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """escpos fails to import when its pickle folder does not exist."""
    folder = tmp_path / "not" / "yet"
    monkeypatch.setenv(ENV, str(folder))
    assert prepare_escpos_cache() == folder
    assert folder.is_dir()
