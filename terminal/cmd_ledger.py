"""`kartapos ledger verify -c FILE`: check the whole hash chain of this terminal's ledger.

Exit 0 when every entry verifies, 1 naming the first bad seq and why, 2 for a bad
config or a ledger file that is missing, unreadable or damaged. Opens the ledger
read-only without the writer lock, so it runs beside the daemon.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from config.loader import EXIT_BAD_CONFIG, load_config
from config.logging import configure_logging
from ledger.entry import ChainError
from ledger.store import LedgerError, LedgerStore, ledger_path

EXIT_OK = 0
EXIT_CHAIN_BROKEN = 1
# A progress line is worth it only for ledgers that take a noticeable time.
PROGRESS_MIN_ENTRIES = 20_000
_PROGRESS_EVERY_S = 0.2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="ledger_command", metavar="SUBCOMMAND", required=True)
    verify = sub.add_parser(
        "verify",
        help="verify the whole hash chain; exit 0, or 1 naming the first bad seq",
        description="Verify every entry of the terminal's ledger (read-only; safe while "
        "the daemon runs). Exit 0: all entries verify; 1: the first bad seq is named; "
        "2: bad config or a missing/damaged ledger file.",
    )
    verify.add_argument("-c", "--config", required=True, metavar="FILE", help="kartapos.toml")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    configure_logging(level="warning", fmt="auto", stream=sys.stderr)
    return asyncio.run(verify_ledger(ledger_path(cfg.terminal.state_dir), cfg.terminal.id))


def _progress_printer(err: TextIO) -> Callable[[int, int], None]:
    last = 0.0

    def show(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if total < PROGRESS_MIN_ENTRIES or (now - last < _PROGRESS_EVERY_S and done < total):
            return
        last = now
        pct = 100 * done // max(total, 1)
        err.write(f"\rverifying: {done}/{total} entries ({pct}%)")
        err.flush()

    return show


async def _check_both(
    store: LedgerStore, progress: Callable[[int, int], None] | None
) -> ChainError | None:
    """SQLite's page check and the chain walk side by side (two cores); if one fails
    the other is cancelled, and the first failure is raised as itself."""
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(store.check_integrity())
            chain = tg.create_task(store.verify(progress))
    except BaseExceptionGroup as group:
        first = group.exceptions[0]
        if isinstance(first, LedgerError):
            raise first from None
        raise
    return chain.result()


async def verify_ledger(
    path: Path,
    terminal: str,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Verify the ledger at ``path``; print the outcome; return the exit code."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    progress = _progress_printer(err) if err.isatty() else None
    result: ChainError | None
    try:
        store = await LedgerStore.open(
            path, terminal=terminal, readonly=True, integrity_check=False
        )
        async with store:
            result = await _check_both(store, progress)
            head = await store.refresh_head()
            count = await store.count()
    except LedgerError as e:
        if progress is not None:
            err.write("\n")
        err.write(f"kartapos ledger verify: {e}\n")
        return EXIT_BAD_CONFIG
    if progress is not None:
        err.write("\n")
    if result is not None:
        out.write(f"FAILED: {path}: entry seq {result.seq}: {result.reason}\n")
        return EXIT_CHAIN_BROKEN
    out.write(f"OK: {count} entries, head seq {head.seq} hash {head.hash}\n")
    return EXIT_OK
