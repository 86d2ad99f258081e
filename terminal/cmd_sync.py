"""`kartapos sync -c FILE`: one upload + catalogue refresh now, with progress and a summary.

If the daemon runs (its API answers at ``api.listen`` with the token from
``<state_dir>/api-token``), it is asked to sync (POST /api/v1/sync): it is the one
writer of the catalogue and of the sync state. Otherwise the cycle runs here, the
ledger opened read-only. Exit 0 only when the server acknowledged the whole ledger
and the catalogue refresh succeeded; 1 otherwise; 2 for a bad config.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from config.loader import EXIT_BAD_CONFIG, load_config
from config.logging import configure_logging
from config.schema import Config, parse_listen
from ledger.clock import SystemClock
from ledger.store import LedgerError, LedgerStore, ledger_path, writer_running
from sync.catalog import Catalog, CatalogError, catalog_path
from sync.client import SyncClient, SyncEvent
from sync.keys import KeyFileError, load_or_create_key

EXIT_OK = 0
EXIT_FAILED = 1
API_TOKEN_FILE = "api-token"  # noqa: S105 - a file name, not a secret
_BAR_WIDTH = 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", required=True, metavar="FILE", help="kartapos.toml")
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="do not ask a running daemon; sync from this process (the daemon must be stopped)",
    )
    parser.add_argument(
        "--clear-fork-alarm",
        action="store_true",
        help="after the city resolved a ledger fork: allow uploads again (standalone only)",
    )


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    configure_logging(level="warning", fmt="auto", stream=sys.stderr)
    return asyncio.run(sync_once(cfg, standalone=args.standalone, clear_fork=args.clear_fork_alarm))


async def sync_once(
    cfg: Config,
    *,
    standalone: bool = False,
    clear_fork: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
    max_attempts: int = 5,
) -> int:
    """Run (or ask the daemon for) one sync cycle; print the outcome; the exit code."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    if not standalone and not clear_fork:
        outcome = await _ask_daemon(cfg, err)
        if outcome is not None:
            return _summarise(outcome, out)
    elif writer_running(ledger_path(Path(cfg.terminal.state_dir))):
        flag = "--clear-fork-alarm" if clear_fork else "--standalone"
        err.write(
            f"kartapos sync: {flag} needs the daemon stopped, and it is running (it holds "
            f"the ledger {ledger_path(Path(cfg.terminal.state_dir))}): stop it first "
            "(systemctl stop kartapos), or run `kartapos sync` without it to ask the daemon\n"
        )
        return EXIT_BAD_CONFIG
    try:
        outcome = await _run_here(cfg, clear_fork, err, max_attempts)
    except _Refused as e:
        err.write(f"kartapos sync: {e}\n")
        return e.code
    return _summarise(outcome, out)


class _Refused(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


# --- through the daemon -----------------------------------------------------------------


async def _ask_daemon(cfg: Config, err: TextIO) -> dict[str, Any] | None:
    """The daemon's sync outcome, or None when no daemon answers."""
    token_path = Path(cfg.terminal.state_dir) / API_TOKEN_FILE
    try:
        token = token_path.read_text(encoding="utf-8").strip()
    except OSError:
        return None  # no daemon ever ran with this state dir (or it is not ours to read)
    host, port = parse_listen(cfg.api.listen)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/api/v1/sync"
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=3)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.post(url, headers={"Authorization": f"Bearer {token}"}) as resp,
        ):
            if resp.status != 200:
                text = (await resp.text())[:300]
                raise _daemon_refused(resp.status, text)
            body: Any = await resp.json()
    except aiohttp.ClientConnectorError:
        return None  # nobody listens: run here
    except (aiohttp.ClientError, TimeoutError, ValueError) as e:
        err.write(f"kartapos sync: the daemon at {url} failed to answer: {e!r}\n")
        return {"ok": False, "error": "daemon"}
    except _Refused as e:
        err.write(f"kartapos sync: {e}\n")
        return {"ok": False, "error": "daemon"}
    err.write(f"kartapos sync: the running daemon ({url}) did the sync\n")
    return body if isinstance(body, dict) else {"ok": False, "error": "daemon"}


def _daemon_refused(status: int, text: str) -> _Refused:
    return _Refused(f"the daemon refused the sync request: HTTP {status} {text}")


# --- in this process --------------------------------------------------------------------


async def _run_here(
    cfg: Config, clear_fork: bool, err: TextIO, max_attempts: int
) -> dict[str, Any]:
    state = Path(cfg.terminal.state_dir)
    clock = SystemClock()
    try:
        key = load_or_create_key(state)
    except KeyFileError as e:
        raise _Refused(str(e)) from None
    try:
        store = await LedgerStore.open(ledger_path(state), terminal=cfg.terminal.id, readonly=True)
    except LedgerError as e:
        raise _Refused(str(e)) from None
    try:
        try:
            catalog = await Catalog.open(catalog_path(state), clock)
        except CatalogError as e:
            raise _Refused(str(e)) from None
        try:
            progress = _Progress(err)
            client = SyncClient(
                cfg, store, catalog, key, clock, on_event=progress, max_attempts=max_attempts
            )
            try:
                if clear_fork:
                    await client.clear_fork_alarm()
                    err.write("kartapos sync: fork alarm cleared\n")
                result = await client.cycle()
            finally:
                await client.close()
                progress.finish()
        finally:
            await catalog.close()
    finally:
        await store.close()
    if result.upload.error == "token" or result.refresh.error == "token":
        raise _Refused(f"{cfg.sync.token_file}: {result.upload.message}", EXIT_BAD_CONFIG)
    return result.to_dict()


class _Progress:
    """A progress bar on a terminal, plain lines otherwise."""

    def __init__(self, err: TextIO) -> None:
        self._err = err
        self._tty = err.isatty()
        self._drawn = False
        self._last_plain = -1

    def __call__(self, ev: SyncEvent) -> None:
        if ev.kind not in ("upload_started", "upload_progress", "upload_done"):
            return
        if ev.kind == "upload_started" and not self._tty:
            return  # what the server holds is known only after its first answer
        total = max(ev.local_seq, 1)
        done = min(ev.acked_seq, ev.local_seq)
        if self._tty:
            filled = _BAR_WIDTH * done // total
            bar = "#" * filled + "." * (_BAR_WIDTH - filled)
            self._err.write(f"\rupload [{bar}] {done}/{ev.local_seq}")
            self._err.flush()
            self._drawn = True
        elif ev.kind != "upload_progress" or done * 10 // total != self._last_plain:
            self._last_plain = done * 10 // total
            self._err.write(f"upload: server holds {done} of {ev.local_seq} entries\n")

    def finish(self) -> None:
        if self._drawn:
            self._err.write("\n")
            self._drawn = False


# --- the summary ------------------------------------------------------------------------


def _summarise(outcome: dict[str, Any], out: TextIO) -> int:
    up: dict[str, Any] = outcome.get("upload") or {}
    ref: dict[str, Any] = outcome.get("refresh") or {}
    if up:
        line = (
            f"upload: {up.get('sent', 0)} entries sent; acknowledged up to seq "
            f"{up.get('acked_seq', 0)} of {up.get('local_seq', 0)}"
        )
        if up.get("ok"):
            line += " - all acknowledged"
        else:
            line += f" - NOT all acknowledged ({up.get('error')}: {up.get('message', '')})"
        out.write(line + "\n")
    if ref:
        cards = ref.get("cards") or {}
        if cards.get("accepted"):
            kind = "full list" if cards.get("full") else "changes"
            out.write(
                f"cards: {kind} version {cards.get('version')} applied "
                f"({cards.get('cards', 0)} cards, {cards.get('removed', 0)} removed)\n"
            )
        elif cards:
            out.write(f"cards: feed REJECTED, old list kept ({cards.get('reason')})\n")
        if ref.get("ok") or ref.get("rules_version"):
            what = "updated" if ref.get("rules_changed") else "unchanged"
            out.write(f"rules: {what} (version {ref.get('rules_version')})\n")
        if not ref.get("ok"):
            out.write(f"refresh: FAILED ({ref.get('error')}: {ref.get('message', '')})\n")
    ok = bool(outcome.get("ok"))
    out.write("sync: OK\n" if ok else "sync: FAILED\n")
    return EXIT_OK if ok else EXIT_FAILED


__all__ = ["add_arguments", "run", "sync_once"]
