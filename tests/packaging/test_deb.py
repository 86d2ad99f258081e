"""The Debian package (`make deb`): its contents, lintian, and a real install.

The .deb is built once per session. The install tests run in a throwaway Debian root made
with `debootstrap --variant=minbase` (cached as a tarball in /var/cache/kartapos-tests/):
apt installs the package there from the same mirror the host uses, so a missing Depends:
fails the install; then the installed daemon (as user kartapos) makes a sale against the
reference city server on loopback, an upgrade keeps the edited conffile, and remove/purge
keep the ledger and the token. The tests run in file order on the same root.

Needs root and these Debian packages (the failures name them): dpkg-dev, binutils,
python3-venv (the build); lintian, debootstrap, debian-archive-keyring (the tests).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.e2e.harness import KARTAPOS, Process, free_port, wait_for

REPO = Path(__file__).resolve().parents[2]
DEB_DIR = REPO / "packaging" / "deb"
LOCK = DEB_DIR / "requirements.lock"
SUITE = "bookworm"
VARIANT = "minbase"
CACHE = Path("/var/cache/kartapos-tests")
# Fast to build and to unpack; `make deb` defaults to xz.
COMPRESSION = os.environ.get("KARTAPOS_DEB_COMPRESSION", "gzip")
CHROOT_ENV = [
    "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG=C.UTF-8",
    "DEBIAN_FRONTEND=noninteractive",
]
TERMINAL, PARTNER, CARD = "T-DEMO", "P-0001", "01-000018"  # the demo data's

EXPECTED: dict[str, str] = {  # path in the package -> `dpkg -c` mode string
    "./opt/kartapos/bin/kartapos": "-rwxr-xr-x",
    "./opt/kartapos/bin/python": "lrwxrwxrwx",
    "./opt/kartapos/pyvenv.cfg": "-rw-r--r--",
    "./usr/bin/kartapos": "lrwxrwxrwx",
    "./lib/systemd/system/kartapos.service": "-rw-r--r--",
    "./lib/systemd/system/kartapos-sync.service": "-rw-r--r--",
    "./lib/systemd/system/kartapos-sync.timer": "-rw-r--r--",
    "./usr/lib/sysusers.d/kartapos.conf": "-rw-r--r--",
    "./usr/lib/tmpfiles.d/kartapos.conf": "-rw-r--r--",
    "./lib/udev/rules.d/99-kartapos.rules": "-rw-r--r--",
    "./usr/lib/modules-load.d/kartapos.conf": "-rw-r--r--",
    "./etc/kartapos/": "drwxr-x---",
    "./etc/kartapos/kartapos.toml": "-rw-r--r--",
    "./usr/share/doc/kartapos/copyright": "-rw-r--r--",
    "./usr/share/doc/kartapos/changelog.gz": "-rw-r--r--",
    "./usr/share/man/man1/kartapos.1.gz": "-rw-r--r--",
    "./usr/share/lintian/overrides/kartapos": "-rw-r--r--",
}


def need(tool: str, package: str) -> str:
    """The tool's path; a failure (never a skip: CI counts a skip as a failure) naming
    the Debian package that provides it."""
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is missing: apt-get install {package} (add it to .ci/sysdeps.sh)")
    return path


def run(argv: list[str], *, timeout: float = 600, **kw: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, text=True, capture_output=True, timeout=timeout, check=False, **kw)
    assert done.returncode == 0, f"{argv} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


class Timer:
    """Prints how long each step took (the module should stay within ~5 minutes)."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> Timer:
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *_exc: object) -> None:
        print(f"[deb timing] {self.what}: {time.monotonic() - self.t0:.1f} s", file=sys.stderr)


# --- the lock file (fast: no build) -------------------------------------------------------


def read_lock() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in LOCK.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.+!-]+)", line.strip())
        assert m, f"requirements.lock: {line!r} is not name==version"
        pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def test_lock_pins_every_runtime_dependency_within_its_specifier() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = read_lock()
    for text in project["dependencies"]:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"sys_platform": "linux"}):
            continue  # not for a Linux box
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in {LOCK.name}: run packaging/deb/lock.py"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{LOCK.name} pins {name}=={pins[name]}, outside {req.specifier}"
        )
    # Nothing more, nothing less: the lock is the closure of the runtime dependencies (as
    # the dev venv's metadata names them), so no test extra or stale pin is in it.
    closure = runtime_closure(project["dependencies"])
    assert set(pins) - closure == set(), f"not needed at run time: {set(pins) - closure}"
    assert closure - set(pins) == set(), f"missing from the lock: {closure - set(pins)}"


def runtime_closure(dependencies: list[str]) -> set[str]:
    """Every distribution the runtime dependencies pull in, transitively, no extras."""
    seen: set[str] = set()
    todo = [Requirement(d) for d in dependencies]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        todo += [Requirement(r) for r in metadata.requires(req.name) or []]
    return seen


# --- the build ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    deb: Path
    work: Path  # the build folder: its path must not appear in the package
    version: str


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    for tool, package in [
        ("dpkg-deb", "dpkg"),
        ("dpkg-shlibdeps", "dpkg-dev"),
        ("readelf", "binutils"),
        ("strip", "binutils"),
    ]:
        need(tool, package)
    if not Path("/usr/lib/python3.11/ensurepip").is_dir():
        pytest.fail("Debian's python3 cannot make a venv: apt-get install python3-venv")
    base = tmp_path_factory.mktemp("deb")
    env = {**os.environ, "KARTAPOS_DEB_COMPRESSION": COMPRESSION}
    with Timer(f"build .deb ({COMPRESSION})"):
        done = run(
            [
                sys.executable,
                str(DEB_DIR / "build.py"),
                "--out",
                str(base / "out"),
                "--work",
                str(base / "work"),
            ],
            env=env,
        )
    deb = Path(done.stdout.strip().splitlines()[-1])
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    assert deb.name == f"kartapos_{version}_{arch}.deb"
    return Built(deb=deb, work=base / "work", version=version)


def listing(deb: Path) -> dict[str, tuple[str, str]]:
    """`dpkg -c`: path -> (mode string, symlink target or "")."""
    out: dict[str, tuple[str, str]] = {}
    for line in run(["dpkg-deb", "-c", str(deb)]).stdout.splitlines():
        fields = line.split(None, 5)
        mode, name = fields[0], fields[5]
        target = ""
        if " -> " in name:
            name, target = name.split(" -> ", 1)
        out[name] = (mode, target)
    return out


@pytest.mark.slow
def test_package_lists_every_file_with_its_mode(built: Built) -> None:
    files = listing(built.deb)
    print(f"[deb] {built.deb.name}: {len(files)} entries, {built.deb.stat().st_size} bytes")
    for path, mode in EXPECTED.items():
        assert path in files, f"{path} is not in the package"
        assert files[path][0] == mode, f"{path}: {files[path][0]}, expected {mode}"
    assert files["./usr/bin/kartapos"][1] == "/opt/kartapos/bin/kartapos"
    assert not [p for p in files if p.startswith("./usr/local")]
    # pip puts nothing outside the venv.
    outside = {p for p in files if not p.startswith("./opt/")} - set(EXPECTED)
    allowed_dirs = {p for p in outside if p.endswith("/")}
    assert outside == allowed_dirs, f"unexpected files: {sorted(outside - allowed_dirs)}"
    # No bytecode is shipped (postinst compiles it), no pip, no activate scripts.
    assert not [p for p in files if "__pycache__" in p or p.endswith(".pyc")]
    assert not [p for p in files if re.search(r"/bin/(pip|activate)", p)]

    info = run(["dpkg-deb", "-f", str(built.deb)]).stdout
    depends = re.search(r"^Depends: (.*)$", info, re.M)
    assert depends, info
    names = {d.split()[0] for d in depends.group(1).split(", ")}
    assert {"python3.11", "libpcsclite1", "systemd", "libudev1"} <= names, names
    assert "Recommends: pcscd" in info
    assert re.search(r"^Installed-Size: \d+$", info, re.M)


@pytest.mark.slow
def test_conffile_and_maintainer_scripts(built: Built, tmp_path: Path) -> None:
    control = tmp_path / "DEBIAN"
    run(["dpkg-deb", "-e", str(built.deb), str(control)])
    assert (control / "conffiles").read_text().split() == ["/etc/kartapos/kartapos.toml"]
    for name in ("postinst", "prerm", "postrm"):
        script = control / name
        assert script.stat().st_mode & 0o777 == 0o755
        text = script.read_text()
        assert text.startswith("#!/bin/sh\n")
        assert "\nset -e\n" in text
        run(["sh", "-n", str(script)])
        # Never enable or start the till (the next-steps message only names the command).
        command = r"^\s*(systemctl|deb-systemd-invoke|deb-systemd-helper)\s+(enable|start)\b"
        assert not re.search(command, text, re.M), name
    assert "rm -rf /var/lib/kartapos" not in (control / "postrm").read_text()


@pytest.mark.slow
def test_no_file_carries_the_build_folder(built: Built, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    run(["dpkg-deb", "-R", str(built.deb), str(tree)])
    needles = [str(built.work).encode(), str(built.work.resolve()).encode()]
    leaks = []
    for path in tree.rglob("*"):
        data = os.readlink(path).encode() if path.is_symlink() else b""
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
        if any(n in data for n in needles):
            leaks.append(str(path.relative_to(tree)))
    assert not leaks, f"the build folder {built.work} is in: {leaks[:20]}"
    shebang = (tree / "opt/kartapos/bin/kartapos").read_text().splitlines()[0]
    assert shebang == "#!/opt/kartapos/bin/python"
    assert "command" not in (tree / "opt/kartapos/pyvenv.cfg").read_text()
    with gzip.open(tree / "usr/share/man/man1/kartapos.1.gz", "rt") as man:
        assert "kartapos \\- " in man.read()


@pytest.mark.slow
def test_lintian_reports_no_error_or_warning(built: Built) -> None:
    lintian = need("lintian", "lintian")
    with Timer("lintian"):
        done = subprocess.run(
            [lintian, "--tag-display-limit", "0", str(built.deb)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    tags = [line for line in done.stdout.splitlines() if re.match(r"[EW]: ", line)]
    assert not tags, "lintian:\n" + "\n".join(tags)
    # Exit status 0 means no tag at error level (informational ones are fine).
    assert done.returncode == 0, done.stdout + done.stderr


# --- a throwaway bookworm root ------------------------------------------------------------


def host_mirror(suite: str = SUITE) -> str:
    """The Debian mirror the host's apt uses for ``suite``: read at run time, so no host
    name is written in the repository."""
    for sources in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", sources.read_text()):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, value = line.split(":", 1)
                fields[key.strip().lower()] = value.strip()
            if (
                "deb" in fields.get("types", "").split()
                and suite in fields.get("suites", "").split()
                and fields.get("enabled", "yes") != "no"
            ):
                return fields["uris"].split()[0]
    sources_list = Path("/etc/apt/sources.list")
    if sources_list.exists():
        for line in sources_list.read_text().splitlines():
            m = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
            if m and m.group(2) == suite:
                return m.group(1)
    pytest.fail(f"no apt source for {suite} on this host to debootstrap from")


def debootstrap_tarball(mirror: str) -> Path:
    """A minbase root of the suite, made once per machine and reused."""
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    tarball = CACHE / f"debootstrap-{SUITE}-{VARIANT}-{arch}.tar"
    if tarball.exists():
        return tarball
    debootstrap = need("debootstrap", "debootstrap")
    if not Path("/usr/share/keyrings/debian-archive-keyring.gpg").exists():
        pytest.fail("debootstrap cannot check the archive: apt-get install debian-archive-keyring")
    CACHE.mkdir(parents=True, exist_ok=True)
    root = CACHE / f"build-{os.getpid()}"
    try:
        with Timer("debootstrap (not cached yet)"):
            run([debootstrap, f"--variant={VARIANT}", SUITE, str(root), mirror], timeout=1200)
        partial = tarball.with_suffix(".partial")
        run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."])
        partial.rename(tarball)  # atomic: a half-written tarball is never used
    finally:
        unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)
    return tarball


def mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return points


def unmount_under(root: Path) -> None:
    for point in sorted(mounts_under(root), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, timeout=60)


@dataclass(frozen=True)
class Root:
    path: Path

    def run(
        self, *argv: str, user: str | None = None, timeout: float = 600, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        cmd = ["chroot", *([f"--userspec={user}:{user}"] if user else []), str(self.path)]
        done = subprocess.run(
            [*cmd, "env", "-i", *CHROOT_ENV, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,  # any prompt would fail instead of hanging
        )
        if check:
            assert done.returncode == 0, f"{argv} -> {done.returncode}\n{done.stdout}{done.stderr}"
        return done

    def __truediv__(self, path: str) -> Path:
        return self.path / path.lstrip("/")

    def ids(self, db: str, name: str) -> list[str]:
        """The /etc/passwd or /etc/group line of ``name`` inside the root, split."""
        for line in (self / f"/etc/{db}").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == name:
                return fields
        raise AssertionError(f"{name} is not in the root's /etc/{db}")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Root]:
    if os.geteuid() != 0:
        pytest.fail("the install tests need root (chroot, mount)")
    need("chroot", "coreutils")
    need("mount", "mount")
    mirror = host_mirror()
    tarball = debootstrap_tarball(mirror)
    path = tmp_path_factory.mktemp("root")
    try:
        with Timer("unpack cached root"):
            run(["tar", "-C", str(path), "--numeric-owner", "-xpf", str(tarball)])
        shutil.copyfile("/etc/resolv.conf", path / "etc/resolv.conf")
        (path / "etc/apt/sources.list").write_text(f"deb {mirror} {SUITE} main\n")
        # Downloaded .debs survive between runs: apt fetches each one once per machine.
        archives = CACHE / f"apt-archives-{SUITE}"
        (archives / "partial").mkdir(parents=True, exist_ok=True)
        for argv in (
            ["mount", "-t", "proc", "proc", str(path / "proc")],
            ["mount", "-t", "sysfs", "sysfs", str(path / "sys")],
            ["mount", "--bind", "/dev", str(path / "dev")],
            ["mount", "--bind", "/dev/pts", str(path / "dev/pts")],
            ["mount", "--bind", str(archives), str(path / "var/cache/apt/archives")],
        ):
            run(argv)
        yield Root(path)
    finally:
        unmount_under(path)
        left = mounts_under(path)
        assert not left, f"still mounted after teardown: {left}"


@pytest.fixture(scope="module")
def installed(root: Root, built: Built) -> Root:
    """kartapos installed with apt, as an installer would: only Depends: come with it."""
    shutil.copyfile(built.deb, root / f"/tmp/{built.deb.name}")
    with Timer("apt-get update + install in the root"):
        root.run("apt-get", "update", "-qq")
        done = root.run(
            "apt-get", "install", "-y", "-q", "--no-install-recommends", f"/tmp/{built.deb.name}"
        )
    assert "kartapos is installed but not enabled" in done.stdout, done.stdout
    return root


def mode_owner(root: Root, path: str) -> tuple[int, str, str]:
    st = (root / path).stat()
    users = {int(f[2]): f[0] for f in (_split(root, "passwd"))}
    groups = {int(f[2]): f[0] for f in (_split(root, "group"))}
    return st.st_mode & 0o7777, users[st.st_uid], groups[st.st_gid]


def _split(root: Root, db: str) -> list[list[str]]:
    return [line.split(":") for line in (root / f"/etc/{db}").read_text().splitlines() if line]


# --- installed ----------------------------------------------------------------------------


@pytest.mark.slow
def test_install_makes_the_user_and_the_folders(installed: Root) -> None:
    user = installed.ids("passwd", "kartapos")
    assert int(user[2]) < 1000, f"kartapos is not a system user: {user}"
    assert user[5] == "/var/lib/kartapos", user
    assert user[6] == "/usr/sbin/nologin", user
    for group in ("dialout", "input", "lp"):
        members = installed.ids("group", group)[3].split(",")
        assert "kartapos" in members, f"kartapos is not in group {group}"
    assert mode_owner(installed, "/var/lib/kartapos") == (0o700, "kartapos", "kartapos")
    assert mode_owner(installed, "/etc/kartapos") == (0o750, "root", "kartapos")
    assert (installed / "/usr/bin/kartapos").is_symlink()
    # postinst compiled the venv, with the installed paths in the bytecode.
    pyc = installed / "/opt/kartapos/lib/python3.11/site-packages/terminal/__pycache__"
    compiled = next(pyc.glob("cli.cpython-311.pyc")).read_bytes()
    assert b"/opt/kartapos/lib/python3.11/site-packages/terminal/cli.py" in compiled


@pytest.mark.slow
def test_installed_command_runs(installed: Root, built: Built) -> None:
    out = installed.run("/usr/bin/kartapos", "--version", user="kartapos").stdout
    assert out.strip() == f"kartapos {built.version}"


@pytest.mark.slow
def test_token_gets_its_mode_from_postinst(installed: Root) -> None:
    token = installed / "/etc/kartapos/token"
    token.write_text("not-a-real-token\n")
    token.chmod(0o600)
    # Re-running postinst is what an upgrade does; it must be idempotent, too.
    installed.run("/var/lib/dpkg/info/kartapos.postinst", "configure", "0.0")
    assert mode_owner(installed, "/etc/kartapos/token") == (0o640, "root", "kartapos")


def http_json(url: str, token: str, body: Any = None) -> Any:
    req = urllib.request.Request(  # noqa: S310 - loopback http
        url,
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - loopback http
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:  # say why, not only the status
        raise AssertionError(f"{req.method} {url}: {e.code} {e.read()[:500]!r}") from None


@contextlib.contextmanager
def city_server(folder: Path) -> Iterator[tuple[str, str]]:
    """The reference city server from the dev venv, on loopback (shared with the root):
    (url, T-DEMO's token)."""
    port = free_port()
    cfg = folder / "central.toml"
    cfg.write_text(
        f'[central]\nlisten = "127.0.0.1:{port}"\ndatabase = "{folder / "central.sqlite"}"\n'
        "trust_on_first_use = true\n"
    )
    token_file = folder / "token"
    run([KARTAPOS, "central", "-c", str(cfg), "seed-demo", "--token-file", str(token_file)])
    server = Process("city server", [KARTAPOS, "central", "-c", str(cfg)], folder / "c.log", folder)
    server.start()
    url, token = f"http://127.0.0.1:{port}", token_file.read_text().strip()
    try:
        head = f"{url}/v1/terminals/{TERMINAL}/head"
        wait_for("city server", lambda: http_json(head, token), timeout=30)
        yield url, token
    finally:
        server.stop()


@pytest.mark.slow
def test_installed_daemon_makes_a_sale_as_kartapos(installed: Root, tmp_path: Path) -> None:
    api_port = free_port()
    with city_server(tmp_path) as (city, token):
        (installed / "/etc/kartapos/token").write_text(token + "\n")
        installed.run("systemd-tmpfiles", "--create", "kartapos.conf")
        # No real readers; receipts go to a file in the state dir.
        (installed / "/etc/kartapos/kartapos.toml").write_text(
            f'[terminal]\nid = "{TERMINAL}"\npartner_id = "{PARTNER}"\n'
            'state_dir = "/var/lib/kartapos"\n'
            f'[api]\nlisten = "127.0.0.1:{api_port}"\n'
            '[printer]\nkind = "file"\npath = "/var/lib/kartapos/receipts.bin"\n'
            f'[sync]\nurl = "{city}"\ntoken_file = "/etc/kartapos/token"\n'
            '[logging]\nformat = "json"\n'
        )
        # What kartapos.service gives it: CacheDirectory=, the environment, UMask=0077.
        cache = installed / "/var/cache/kartapos"
        cache.mkdir(mode=0o700, exist_ok=True)
        uid, gid = (int(x) for x in installed.ids("passwd", "kartapos")[2:4])
        os.chown(cache, uid, gid)
        log = tmp_path / "daemon.log"
        argv = [
            "chroot", "--userspec=kartapos:kartapos", str(installed.path), "env", "-i",
            *CHROOT_ENV, "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1",
            "ESCPOS_CAPABILITIES_PICKLE_DIR=/var/cache/kartapos",
            "/usr/bin/kartapos", "run", "-c", "/etc/kartapos/kartapos.toml",
        ]  # fmt: skip
        with Timer("daemon: start, sale, sync, stop"), log.open("wb") as out:
            # chroot and env exec: this pid is the daemon's, so SIGTERM reaches it.
            t0 = time.monotonic()
            daemon = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, umask=0o077
            )
            try:
                api = f"http://127.0.0.1:{api_port}/api/v1"
                api_token = installed / "/var/lib/kartapos/api-token"

                def ready() -> bool | None:
                    assert daemon.poll() is None, log.read_text()
                    token = api_token.read_text().strip()
                    health = http_json(f"{api}/health", token)
                    cards = health["sync"].get("cards_age_s") is not None
                    # The rules (partner, cashiers) come with the first sync, too.
                    rules = http_json(f"{api}/state", token).get("partner") is not None
                    return True if cards and rules else None

                wait_for("installed daemon's health", ready, timeout=60)
                print(f"[deb timing] daemon ready after {time.monotonic() - t0:.1f} s")
                sale = http_json(
                    f"{api}/sales",
                    api_token.read_text().strip(),
                    {"id": str(uuid.uuid4()), "card": CARD, "amount_gr": 1234},
                )
                seq = int(sale["entry"]["seq"])
                # Upload now, as the cashier page's "sync" button does (the daemon would
                # otherwise upload within [sync] upload_interval_s, 60 s).
                http_json(f"{api}/sync", api_token.read_text().strip(), {})
                head = f"{city}/v1/terminals/{TERMINAL}/head"
                wait_for(
                    f"city server's head at seq {seq}",
                    lambda: True if http_json(head, token)["seq"] >= seq else None,
                    timeout=60,
                )
                print(f"[deb timing] sale uploaded after {time.monotonic() - t0:.1f} s")
                daemon.terminate()
                assert daemon.wait(timeout=30) == 0, log.read_text()
            finally:
                if daemon.poll() is None:
                    daemon.kill()
                    daemon.wait(timeout=10)
    assert (installed / "/var/lib/kartapos/ledger.sqlite").exists()
    assert (installed / "/var/lib/kartapos/receipts.bin").stat().st_size > 0


def repack(deb: Path, version: str, out: Path) -> Path:
    """The same package with another version, quickly (no compression)."""
    tree = out / "tree"
    run(["dpkg-deb", "-R", str(deb), str(tree)])
    control = tree / "DEBIAN/control"
    text = re.sub(r"^Version: .*$", f"Version: {version}", control.read_text(), flags=re.M)
    control.write_text(text)
    new = out / f"kartapos_{version}.deb"
    run(["dpkg-deb", "--root-owner-group", "-Znone", "--build", str(tree), str(new)])
    return new


@pytest.mark.slow
def test_upgrade_keeps_the_changed_conffile(installed: Root, built: Built, tmp_path: Path) -> None:
    conffile = installed / "/etc/kartapos/kartapos.toml"
    conffile.write_text(conffile.read_text() + "# edited on this box\n")
    before = conffile.read_bytes()
    newer = repack(built.deb, f"{built.version}+test1", tmp_path)
    shutil.copyfile(newer, installed / f"/tmp/{newer.name}")
    with Timer("upgrade"):
        done = installed.run("dpkg", "-i", f"/tmp/{newer.name}")
    assert conffile.read_bytes() == before
    left = [p.name for p in (installed / "/etc/kartapos").iterdir() if ".dpkg-" in p.name]
    assert not left, f"dpkg left {left}:\n{done.stdout}"
    status = installed.run("dpkg-query", "-W", "-f=${Version} ${Status}", "kartapos").stdout
    assert status == f"{built.version}+test1 install ok installed"
    assert mode_owner(installed, "/etc/kartapos") == (0o750, "root", "kartapos")


def digest_tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_remove_and_purge_keep_the_ledger_and_the_token(installed: Root) -> None:
    state = installed / "/var/lib/kartapos"
    if not (state / "ledger.sqlite").exists():  # the sale test did not run
        (state / "ledger.sqlite").write_bytes(b"stand-in ledger")
    token = installed / "/etc/kartapos/token"
    if not token.exists():
        token.write_text("not-a-real-token\n")
    kept, token_before = digest_tree(state), token.read_bytes()

    removed = installed.run("dpkg", "-r", "kartapos")
    assert "/var/lib/kartapos (the ledger" in removed.stdout, removed.stdout
    assert not (installed / "/opt/kartapos").exists()
    assert not (installed / "/usr/bin/kartapos").is_symlink()
    assert digest_tree(state) == kept

    purged = installed.run("dpkg", "-P", "kartapos")
    assert "/var/lib/kartapos (the ledger" in purged.stdout, purged.stdout
    assert "/etc/kartapos/token was kept" in purged.stdout, purged.stdout
    assert digest_tree(state) == kept
    assert token.read_bytes() == token_before
    assert not (installed / "/etc/kartapos/kartapos.toml").exists()  # the conffile goes
    assert installed.ids("passwd", "kartapos")  # the ledger's owner stays
    # What an installer finds after a purge (shown with -s; the closing note quotes it).
    left = [
        str(p.relative_to(installed / "/"))
        for top in ("etc/kartapos", "var/lib/kartapos", "opt/kartapos", "usr/bin/kartapos")
        for p in [installed / "/" / top, *sorted((installed / "/" / top).rglob("*"))]
        if p.exists() or p.is_symlink()
    ]
    print("after purge:", *left, sep="\n  ")
