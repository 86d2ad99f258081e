"""Build dist/kartapos_<version>_<arch>.deb (`make deb`).

    python3 packaging/deb/build.py [--out DIR] [--work DIR]
    KARTAPOS_DEB_COMPRESSION=xz|gzip|zstd|none   (default xz; tests use a fast one)

The package carries a self-contained virtualenv in /opt/kartapos made with Debian's own
python3.11 (a POS box has no other Python) from the project wheel plus the pinned
runtime dependencies in requirements.lock, and the systemd/udev/sysusers/tmpfiles files
from systemd/. The venv is built in a staging folder; everything that would carry that
folder's path (console-script shebangs, pyvenv.cfg, activate scripts, direct_url.json,
.pyc) is rewritten or left out, and the build fails if the path is still in any file.
Bytecode is compiled by postinst on the box instead (see postinst).

Standard library only: it runs under the dev venv's python or Debian's.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SYSTEMD = REPO / "systemd"
PACKAGE = "kartapos"
PREFIX = "/opt/kartapos"
# The interpreter the venv runs on, resolved (python3 -> python3.11) so the venv keeps
# working with the exact ABI its C extensions were built for even if the default python3
# of a later release moves on.
DEBIAN_PYTHON = Path(os.path.realpath("/usr/bin/python3"))
COMPRESSIONS = ("xz", "gzip", "zstd", "none")

# Files from the source tree: (source, path in the package, mode).
PAYLOAD: list[tuple[Path, str, int]] = [
    (SYSTEMD / "kartapos.service", "lib/systemd/system/kartapos.service", 0o644),
    (SYSTEMD / "kartapos-sync.service", "lib/systemd/system/kartapos-sync.service", 0o644),
    (SYSTEMD / "kartapos-sync.timer", "lib/systemd/system/kartapos-sync.timer", 0o644),
    (SYSTEMD / "kartapos.sysusers", "usr/lib/sysusers.d/kartapos.conf", 0o644),
    (SYSTEMD / "kartapos.tmpfiles", "usr/lib/tmpfiles.d/kartapos.conf", 0o644),
    # /lib, not /usr/lib: bookworm's udev and lintian's udev check look there.
    (SYSTEMD / "99-kartapos.rules", "lib/udev/rules.d/99-kartapos.rules", 0o644),
    (SYSTEMD / "kartapos-modules.conf", "usr/lib/modules-load.d/kartapos.conf", 0o644),
    (REPO / "config/examples/shop.toml", "etc/kartapos/kartapos.toml", 0o644),
    (HERE / "copyright", "usr/share/doc/kartapos/copyright", 0o644),
    (HERE / "lintian-overrides", "usr/share/lintian/overrides/kartapos", 0o644),
]
CONFFILES = ["/etc/kartapos/kartapos.toml"]
MAINTAINER_SCRIPTS = ["postinst", "prerm", "postrm"]

# Run-time packages no ELF file names as NEEDED, so dpkg-shlibdeps (and ldd) cannot find
# them: systemd-sysusers/systemd-tmpfiles in postinst; libpcsclite.so.1, which pyscard's
# _scard dlopen()s; libudev.so.1, which pyudev loads with ctypes.
EXTRA_DEPENDS = ["systemd", "libpcsclite1", "libudev1"]


class BuildError(RuntimeError):
    pass


def run(
    argv: list[str | Path], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command, failing the build with its output when it fails."""
    argv_s = [str(a) for a in argv]
    done = subprocess.run(argv_s, text=True, capture_output=True, check=False, env=env, cwd=cwd)
    if done.returncode != 0:
        raise BuildError(
            f"{' '.join(argv_s)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )
    return done


def project_version() -> str:
    version: str = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    return version


def check_changelog(version: str) -> None:
    """The Debian changelog's top entry must be this version (lintian reads it)."""
    first = (HERE / "changelog").read_text().splitlines()[0]
    m = re.match(rf"{PACKAGE} \(([^)]+)\)", first)
    if not m or m.group(1) != version:
        raise BuildError(
            f"packaging/deb/changelog starts with {first!r}, but pyproject's version is "
            f"{version}: add a changelog entry for {version}"
        )


# --- the virtualenv ---------------------------------------------------------------------


def copy_source(dest: Path) -> Path:
    """The working tree without caches and venvs: the wheel is built there, so the real
    tree gets no build/ or egg-info from this (another build may be running in it)."""
    ignore = shutil.ignore_patterns(
        ".git", ".venv", "dist", "build", "*.egg-info", "__pycache__", ".*_cache",
        ".hypothesis", "test-artifacts", "demo-state",
    )  # fmt: skip
    shutil.copytree(REPO, dest, ignore=ignore, symlinks=True)
    return dest


def deb_pip_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kartapos-deb-pip"


def build_venv(stage: Path, work: Path) -> Path:
    venv = stage / PREFIX.lstrip("/")
    env = {
        **os.environ,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        # pip's wheel cache is keyed by "cp311", not by interpreter: the shared one holds
        # evdev/pyscard wheels built by the dev venv's pyenv python, linked with its
        # RUNPATH. Extensions built here must be built by Debian's python, so they get
        # a cache of their own.
        "PIP_CACHE_DIR": str(deb_pip_cache()),
    }
    run([DEBIAN_PYTHON, "-m", "venv", venv], env=env)
    py = venv / "bin" / "python"
    pip: list[str | Path] = [py, "-m", "pip", "--no-input"]
    # The project wheel: pure Python, from a copy of the tree.
    src = copy_source(work / "src")
    run([*pip, "wheel", "--quiet", "--no-deps", "-w", work / "wheels", src], env=env)
    (wheel,) = (work / "wheels").glob("kartapos-*.whl")
    # Exactly the locked versions, nothing resolved now; no .pyc (they would embed the
    # staging path).
    common = ["install", "--quiet", "--no-compile", "--no-deps"]
    run([*pip, *common, "-r", HERE / "requirements.lock"], env=env)
    run([*pip, *common, wheel], env=env)
    run([*pip, "check"], env=env)  # the lock is complete and consistent
    return venv


def write_manpage(venv: Path, dest: Path, version: str) -> None:
    """kartapos(1) from `kartapos --help`, so the command has a manual page."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "COLUMNS": "80"}
    code = "import sys; sys.argv[0] = 'kartapos'; from terminal.cli import main; main()"
    helptext = run([venv / "bin" / "python", "-c", code, "--help"], env=env).stdout

    def roff(line: str) -> str:
        line = line.replace("\\", "\\e")
        return "\\&" + line if line.startswith((".", "'")) else line

    page = "\n".join(
        [
            f'.TH KARTAPOS 1 "" "kartapos {version}" "User Commands"',
            ".SH NAME",
            "kartapos \\- POS terminal daemon for city resident-card programmes",
            ".SH SYNOPSIS",
            ".B kartapos",
            "\\fICOMMAND\\fR [\\fIoptions\\fR]",
            ".SH DESCRIPTION",
            "Output of \\fBkartapos \\-\\-help\\fR; every command has its own \\fB\\-\\-help\\fR.",
            ".PP",
            ".nf",
            *(roff(line) for line in helptext.rstrip().splitlines()),
            ".fi",
            ".SH FILES",
            ".TP",
            ".I /etc/kartapos/kartapos.toml",
            "the configuration",
            ".TP",
            ".I /etc/kartapos/token",
            "the terminal token from the city (0640 root:kartapos)",
            ".TP",
            ".I /var/lib/kartapos",
            "the ledger, the card catalogue, the signing key and the API token",
            ".SH SEE ALSO",
            "\\fBsystemctl\\fR(1), \\fBjournalctl\\fR(1)",
            "",
        ]
    )
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(gzip.compress(page.encode(), compresslevel=9, mtime=0))


def strip_staging_paths(venv: Path, stage: Path) -> None:
    """Make the staged venv look as if it had been built in /opt/kartapos."""
    staged = str(venv).encode()
    run([venv / "bin" / "python", "-m", "pip", "uninstall", "--quiet", "--yes", "pip"])
    bindir = venv / "bin"
    for script in bindir.iterdir():
        # activate* would need the path rewritten in four shells' syntax; a daemon's
        # venv is never activated, so they go.
        if script.name.startswith(("activate", "Activate")):
            script.unlink()
            continue
        if script.is_symlink() or not script.is_file():
            continue
        data = script.read_bytes()
        # pip writes '#!/bin/sh\n'''exec' <python> "$0" "$@"\n' '''' for a long path.
        long_form = rb"\A#!/bin/sh\n'''exec' %s/bin/python \"\$0\" \"\$@\"\n' '''\n"
        data = re.sub(
            long_form % re.escape(staged),
            b"#!" + PREFIX.encode() + b"/bin/python\n",
            data,
        )
        script.write_bytes(data.replace(staged, PREFIX.encode()))
    cfg = venv / "pyvenv.cfg"
    cfg.write_text(
        "".join(
            line
            for line in cfg.read_text().splitlines(keepends=True)
            if not line.startswith("command")  # `command = python -m venv <staging path>`
        )
    )
    # PEP 610 file:// URLs of the wheels in the work folder (only `pip freeze` reads it).
    for direct_url in venv.glob("lib/python3*/site-packages/*.dist-info/direct_url.json"):
        direct_url.unlink()
        record = direct_url.parent / "RECORD"
        record.write_text(
            "".join(
                line
                for line in record.read_text().splitlines(keepends=True)
                if "/direct_url.json," not in line
            )
        )
    for cache in list(venv.rglob("__pycache__")):
        shutil.rmtree(cache)


def strip_elves(venv: Path) -> None:
    """Strip extension modules built here from sdists (evdev, pyscard) as dh_strip would.
    Wheel-bundled libraries are left alone: they are stripped already, and strip can
    break the libraries auditwheel patched with patchelf."""
    for so in venv.rglob("*.so*"):
        if so.is_symlink() or not so.is_file() or ".libs" in so.parent.name:
            continue
        if ".symtab" in run(["readelf", "-S", "--wide", so]).stdout:
            run(
                [
                    "strip",
                    "--strip-unneeded",
                    "--remove-section=.comment",
                    "--remove-section=.note",
                    so,
                ]
            )


def find_path_leaks(root: Path, needles: list[bytes]) -> list[str]:
    """Files under ``root`` whose bytes contain any of ``needles`` (symlink targets too)."""
    leaks = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            data = os.readlink(path).encode()
        elif path.is_file():
            data = path.read_bytes()
        else:
            continue
        if any(n in data for n in needles):
            leaks.append(str(path.relative_to(root)))
    return leaks


# --- dependencies -----------------------------------------------------------------------


def shlib_depends(stage: Path, work: Path) -> list[str]:
    """Debian packages (with minimum versions) every ELF file in the package links to.

    dpkg-shlibdeps maps each NEEDED library to its package and the symbol versions used
    to a minimum version (what ldd + dpkg -S give, plus the versions). Libraries a wheel
    bundles (pillow.libs etc.) are found through their RPATH inside the package and need
    no Depends."""
    elves = []
    for path in stage.rglob("*"):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as f:
                if f.read(4) == b"\x7fELF":
                    elves.append(path)
    # dpkg-shlibdeps wants a debian/control in its working folder.
    src = work / "shlibdeps"
    (src / "debian").mkdir(parents=True, exist_ok=True)
    (src / "debian/control").write_text(
        f"Source: {PACKAGE}\n\nPackage: {PACKAGE}\nArchitecture: any\n"
    )
    bundled = sorted({str(p.parent) for p in elves if p.parent.name.endswith(".libs")})
    out = run(
        [
            "dpkg-shlibdeps",
            "-O",
            "--ignore-missing-info",
            *(f"-l{d}" for d in bundled),
            "-e",
            *elves,
        ],
        cwd=src,
    ).stdout
    m = re.search(r"^shlibs:Depends=(.*)$", out, re.M)
    return [d.strip() for d in m.group(1).split(",")] if m else []


def python_depends() -> str:
    """The exact interpreter the venv links to, at least the version it was built with.

    The binary is python3.11-minimal's, but the venv needs the whole standard library
    (asyncio, sqlite3, ssl), which is what python3.11 depends on."""
    name = DEBIAN_PYTHON.name  # python3.11
    owner = run(["dpkg", "-S", str(DEBIAN_PYTHON)]).stdout.split(":")[0]
    if owner not in (name, f"{name}-minimal"):
        raise BuildError(f"{DEBIAN_PYTHON} belongs to {owner}, not to Debian's {name}")
    version = run(["dpkg-query", "-W", "-f=${Version}", name]).stdout
    return f"{name} (>= {version.split('-')[0]})"


def merge_depends(depends: list[str]) -> str:
    """One entry per package, in a stable order (the first, most specific, wins)."""
    seen: dict[str, str] = {}
    for d in depends:
        seen.setdefault(d.split()[0], d)
    return ", ".join(seen[k] for k in sorted(seen))


# --- the package ------------------------------------------------------------------------


def normalise_modes(stage: Path) -> None:
    """0755 folders, 0644 files; executable only the venv's bin/ (pip and wheels vary:
    fonts and metadata come 0755, library modules with a #! line 0644)."""
    bindir = stage / PREFIX.lstrip("/") / "bin"
    for path in stage.rglob("*"):
        if path.is_symlink():
            continue
        if path.is_dir():
            path.chmod(0o755)
        else:
            path.chmod(0o755 if path.parent == bindir else 0o644)


def installed_size_kib(stage: Path) -> int:
    """As dpkg-gencontrol counts: each file in KiB rounded up, each other entry 1 KiB."""
    total = 0
    for path in stage.rglob("*"):
        if path.is_relative_to(stage / "DEBIAN"):
            continue
        if path.is_file() and not path.is_symlink():
            total += (path.stat().st_size + 1023) // 1024
        else:
            total += 1
    return total


def write_control(stage: Path, version: str, arch: str, depends: str) -> None:
    debian = stage / "DEBIAN"
    debian.mkdir(mode=0o755)
    control = (HERE / "control.in").read_text()
    for key, value in {
        "VERSION": version,
        "ARCH": arch,
        "INSTALLED_SIZE": str(installed_size_kib(stage)),
        "DEPENDS": depends,
    }.items():
        control = control.replace(f"@{key}@", value)
    if re.search(r"@[A-Z_]+@", control):
        raise BuildError(f"control.in has an unfilled placeholder:\n{control}")
    (debian / "control").write_text(control)
    (debian / "conffiles").write_text("".join(f"{c}\n" for c in CONFFILES))
    for name in MAINTAINER_SCRIPTS:
        shutil.copyfile(HERE / name, debian / name)
        (debian / name).chmod(0o755)
    # md5sums of every shipped file but the conffiles (dpkg tracks those itself).
    lines = []
    for path in sorted(stage.rglob("*")):
        rel = path.relative_to(stage)
        if rel.parts[0] == "DEBIAN" or path.is_symlink() or not path.is_file():
            continue
        if f"/{rel}" in CONFFILES:
            continue
        lines.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {rel}\n")  # noqa: S324
    (debian / "md5sums").write_text("".join(lines))
    for name in ("control", "conffiles", "md5sums"):
        (debian / name).chmod(0o644)


# What the build runs, and the Debian package each comes from.
TOOLS = {
    "dpkg-deb": "dpkg",
    "dpkg-shlibdeps": "dpkg-dev",
    "readelf": "binutils",
    "strip": "binutils",
}


def check_tools() -> None:
    missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})
    if not DEBIAN_PYTHON.exists():
        missing.append("python3")
    # python3 -m venv needs ensurepip, which Debian ships apart; Python.h builds evdev/pyscard.
    if not Path(f"/usr/lib/{DEBIAN_PYTHON.name}/ensurepip").is_dir():
        missing.append("python3-venv")
    if not Path(f"/usr/include/{DEBIAN_PYTHON.name}/Python.h").exists():
        missing.append("python3-dev")
    if missing:
        raise BuildError(f"missing tools: apt-get install {' '.join(missing)}")


def build(out: Path, work: Path, compression: str) -> Path:
    check_tools()
    if compression not in COMPRESSIONS:
        raise BuildError(f"compression {compression!r}: one of {', '.join(COMPRESSIONS)}")
    version = project_version()
    check_changelog(version)
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    for leftover in ("stage", "src", "wheels", "shlibdeps"):  # of an earlier build in --work
        shutil.rmtree(work / leftover, ignore_errors=True)
    stage = work / "stage"
    stage.mkdir(parents=True)
    stage.chmod(0o755)

    venv = build_venv(stage, work)
    write_manpage(venv, stage / "usr/share/man/man1/kartapos.1.gz", version)
    strip_staging_paths(venv, stage)
    strip_elves(venv)

    for source, dest, mode in PAYLOAD:
        target = stage / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        target.chmod(mode)
    doc = stage / "usr/share/doc" / PACKAGE
    # A native package (no Debian revision): its Debian changelog is changelog.gz.
    (doc / "changelog.gz").write_bytes(
        gzip.compress((HERE / "changelog").read_bytes(), compresslevel=9, mtime=0)
    )
    (stage / "usr/bin").mkdir(parents=True, exist_ok=True)
    (stage / "usr/bin/kartapos").symlink_to(f"{PREFIX}/bin/kartapos")
    normalise_modes(stage)
    (stage / "etc/kartapos").chmod(0o750)  # as tmpfiles makes it; never wider on upgrade

    leaks = find_path_leaks(stage, [str(stage).encode(), str(work).encode()])
    if leaks:
        raise BuildError("the staging path is still in: " + ", ".join(leaks[:20]))

    depends = merge_depends([python_depends(), *shlib_depends(stage, work), *EXTRA_DEPENDS])
    write_control(stage, version, arch, depends)

    out.mkdir(parents=True, exist_ok=True)
    deb = out / f"{PACKAGE}_{version}_{arch}.deb"
    run(["dpkg-deb", "--root-owner-group", f"-Z{compression}", "--build", stage, deb])
    return deb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="where the .deb goes")
    parser.add_argument("--work", type=Path, help="build folder (default: a temporary one)")
    args = parser.parse_args()
    compression = os.environ.get("KARTAPOS_DEB_COMPRESSION", "xz")
    try:
        if args.work:
            args.work.mkdir(parents=True, exist_ok=True)
            deb = build(args.out.resolve(), args.work.resolve(), compression)
        else:
            with tempfile.TemporaryDirectory(prefix="kartapos-deb-") as tmp:
                deb = build(args.out.resolve(), Path(tmp), compression)
    except BuildError as e:
        print(f"make deb: {e}", file=sys.stderr)
        return 1
    print(deb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
