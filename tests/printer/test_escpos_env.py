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


def test_importing_layout_fills_the_cache(tmp_path: Path) -> None:
    """A fresh interpreter importing printer.layout leaves the pickled profiles behind."""
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    env.pop(ENV, None)
    subprocess.run(
        [sys.executable, "-c", "import printer.layout"], env=env, cwd=REPO_ROOT, check=True
    )
    assert list((tmp_path / "kartapos" / "escpos").glob("*.capabilities.pickle"))


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
