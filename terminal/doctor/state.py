"""State checks: the state dir, its disk, the local API token and the ledger.

File names come from their owners (``ledger.store.ledger_path``,
``terminal.auth.TOKEN_FILE``); the ledger is only ever opened read-only.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from config.schema import Config
from ledger.clock import Clock
from ledger.entry import Head
from ledger.store import LedgerError, LedgerStore, ledger_info, ledger_path
from terminal.auth import TOKEN_FILE
from terminal.doctor.access import SERVICE_USER, owner
from terminal.doctor.report import Check, fail, ok, warn

DISK_FAIL_BYTES = 100 * 2**20
DISK_WARN_BYTES = 1024 * 2**20


def check_state_dir(state_dir: Path) -> Check:
    what = "state dir"
    fix_create = (
        f"systemd-tmpfiles --create kartapos.conf (or install -d -m 0700 -o {SERVICE_USER} "
        f"{state_dir}); [terminal] state_dir"
    )
    if not state_dir.exists():
        return fail(what, f"{state_dir} does not exist", fix_create)
    if not state_dir.is_dir():
        return fail(what, f"{state_dir} is not a folder", "fix [terminal] state_dir")
    st = state_dir.stat()
    try:
        with tempfile.NamedTemporaryFile(dir=state_dir, prefix=".doctor-"):
            pass
    except OSError as e:
        return fail(
            what,
            f"{state_dir} is not writable ({e.strerror}; {owner(st)})",
            f"chown -R {SERVICE_USER}:{SERVICE_USER} {state_dir}",
        )
    if stat.S_IMODE(st.st_mode) & 0o077:
        return warn(
            what,
            f"{state_dir} is open to other users ({owner(st)}): it holds the signing key",
            f"chmod 0700 {state_dir}",
        )
    return ok(what, f"{state_dir} is writable ({owner(st)})")


def format_size(n_bytes: int) -> str:
    """Say a size with no thousands separator a Polish reader could take for decimals."""
    mib = n_bytes / 2**20
    if mib < 10 * 1024:
        return f"{mib:.0f} MiB"
    return f"{mib / 1024:.1f} GiB"


def check_disk(state_dir: Path) -> Check:
    what = "disk space"
    probe = state_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    vfs = os.statvfs(probe)
    free = vfs.f_bavail * vfs.f_frsize
    detail = f"{format_size(free)} free for {probe}"
    if free < DISK_FAIL_BYTES or (vfs.f_files and vfs.f_favail < 1000):
        return fail(what, detail + " (sales need room)", "free space on that file system")
    if free < DISK_WARN_BYTES:
        return warn(what, detail, "free space soon: the ledger grows with every sale")
    return ok(what, detail)


def check_api_token(state_dir: Path) -> Check:
    what = "api token"
    path = state_dir / TOKEN_FILE
    if not path.exists():
        return ok(what, f"{path} not made yet (the daemon makes it at first start)")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return fail(what, f"{path} is readable by other users ({mode:04o})", f"chmod 0600 {path}")
    return ok(what, f"{path} is private ({mode:04o})")


async def _recorded_terminal(path: Path) -> str | None:
    """The terminal the ledger names (None when unrecorded or unreadable: the open says why)."""
    try:
        return (await ledger_info(path)).terminal
    except LedgerError:
        return None


async def check_ledger(cfg: Config, clock: Clock) -> tuple[Check, Head | None]:
    """Whose the ledger is, then the whole chain verified; the head for the sync check."""
    what = "ledger"
    path = ledger_path(cfg.terminal.state_dir)
    if not path.exists():
        return ok(what, f"{path} not made yet (the daemon makes it at first start)"), None
    recorded = await _recorded_terminal(path)
    if recorded is not None and recorded != cfg.terminal.id:
        return (
            fail(
                what,
                f"{path} belongs to terminal {recorded!r}, not {cfg.terminal.id!r}",
                "fix [terminal] id or [terminal] state_dir; never mix two terminals' ledgers",
            ),
            None,
        )
    started = clock.monotonic()
    try:
        async with await LedgerStore.open(path, terminal=cfg.terminal.id, readonly=True) as store:
            head = store.head
            problem = await store.verify()
    except LedgerError as e:
        return fail(what, str(e), "keep the file; contact support before changing anything"), None
    took = clock.monotonic() - started
    if problem is not None:
        return (
            fail(
                what,
                f"chain broken at seq {problem.seq}: {problem.reason}",
                "keep the file untouched and contact support (`kartapos ledger verify`)",
            ),
            head,
        )
    detail = (
        f"head seq {head.seq} ({head.hash[:12]}…), file checked (quick_check) and chain"
        f" verified in {took:.2f} s"
    )
    return ok(what, detail), head
