"""The wheel holds the whole program: built, installed non-editable into a fresh venv, run.

Every other test runs on the editable install, which sees the source tree whatever the
wheel contains; sync/central was once missing from the wheel and nothing noticed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

from config.version import package_version
from tests.conftest import REPO_ROOT
from tests.e2e.harness import Process, free_port, wait_for

pytestmark = pytest.mark.slow

PACKAGES = ("config", "drivers", "ledger", "printer", "sync", "terminal")
NOT_SOURCE = (".git", ".venv", "build", "dist", "*.egg-info", "*cache*", "test-artifacts", "demo-*")


@dataclass(frozen=True)
class Installed:
    wheel: Path
    build_log: str
    venv: Path
    workdir: Path

    def run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a program of the fresh venv outside the source tree (nothing leaks in)."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        return subprocess.run(
            [str(self.venv / "bin" / argv[0]), *argv[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.workdir,
            env=env,
            check=False,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    top = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools reuses ./build/lib, which can hold files removed since.
    source = top / "source"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    # Without PYTHONDONTWRITEBYTECODE, which only makes setuptools warn that it skips .pyc.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(top), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (wheel,) = top.glob("kartapos-*.whl")
    venv = top / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "install", "--quiet", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    workdir = top / "elsewhere"
    workdir.mkdir()
    return Installed(wheel, build.stdout + build.stderr, venv, workdir)


def _wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        return set(z.namelist())


def _source_files() -> Iterator[PurePosixPath]:
    for package in PACKAGES:
        for path in (REPO_ROOT / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                yield PurePosixPath(path.relative_to(REPO_ROOT).as_posix())


def test_the_build_prints_no_warning(installed: Installed) -> None:
    # pip's own notes about this machine's find-links folders are not the build's.
    lines = [
        line
        for line in installed.build_log.splitlines()
        if ("warn" in line.lower() or "deprecat" in line.lower())
        and not line.startswith("WARNING: Location ")
    ]
    assert lines == []


def test_the_wheel_holds_every_package_and_data_file(installed: Installed) -> None:
    names = _wheel_names(installed.wheel)
    in_wheel = {str(PurePosixPath(n).parent) for n in names if n.endswith("/__init__.py")}
    in_tree = {str(p.parent) for p in _source_files() if p.name == "__init__.py"}
    assert "sync/central" in in_tree
    assert in_wheel == in_tree
    # Every file of the package folders: code, the web page, openapi, example configs.
    missing = {str(p) for p in _source_files()} - names
    assert missing == set()
    assert not {n for n in names if n.startswith(("tests/", "benchmarks/"))}
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_the_installed_metadata_names_an_spdx_licence(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as z:
        (meta,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        text = z.read(meta).decode()
    assert "License-Expression: MIT" in text.splitlines()


def test_the_installed_command_runs_from_the_fresh_venv(installed: Installed) -> None:
    version = installed.run("kartapos", "--version")
    assert (version.returncode, version.stdout) == (0, f"kartapos {package_version()}\n")
    for command in ("demo", "central", "run", "sync", "doctor", "ledger"):
        helped = installed.run("kartapos", command, "--help")
        assert helped.returncode == 0, f"{command}: {helped.stderr}"
        assert helped.stdout.startswith(f"usage: kartapos {command}"), helped.stdout


def test_every_module_imports_from_the_installed_copy(installed: Installed) -> None:
    script = (
        "import importlib, pkgutil, sys\n"
        f"for top in {PACKAGES!r}:\n"
        "    pkg = importlib.import_module(top)\n"
        "    assert pkg.__file__.startswith(sys.prefix), pkg.__file__\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, top + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "        print(m.name)\n"
    )
    done = installed.run("python", "-I", "-c", script, timeout=120)
    assert done.returncode == 0, done.stderr
    imported = set(done.stdout.split())
    expected = {
        ".".join(p.with_suffix("").parts).removesuffix(".__init__")
        for p in _source_files()
        if p.suffix == ".py"
    } - set(PACKAGES)
    assert imported == expected


def test_the_installed_demo_serves_the_cashier_page(installed: Installed) -> None:
    listen = f"127.0.0.1:{free_port()}"
    demo = Process(
        "demo",
        [
            str(installed.venv / "bin/kartapos"),
            "demo",
            "--listen",
            listen,
            "--central",
            f"127.0.0.1:{free_port()}",
            "--state-dir",
            str(installed.workdir / "demo-state"),
        ],
        installed.workdir / "demo.log",
        installed.workdir,
    )
    demo.start()

    def fetch(path: str) -> bytes:
        with urllib.request.urlopen(f"http://{listen}{path}", timeout=5) as resp:
            assert resp.status == 200
            body: bytes = resp.read()
            return body

    def page_served() -> bytes | None:
        demo.check_alive()
        return fetch("/")

    try:
        index = wait_for("the installed demo's page", page_served, timeout=60)
        assert index == (REPO_ROOT / "terminal/web/index.html").read_bytes()
        web = sorted((REPO_ROOT / "terminal/web").glob("*.[jcs]*"))
        assert len(web) > 5
        for path in web:
            assert fetch(f"/web/{path.name}") == path.read_bytes(), path.name
    finally:
        demo.kill()
