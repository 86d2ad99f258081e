"""`kartapos demo`: the whole system on one machine with no hardware.

A reference city server seeded with Polish sample cards and benefits, the daemon with a
pseudo-terminal magnetic-stripe reader fed by the page's "simulate swipe" buttons, and a
file printer whose receipts the page previews. Serves the cashier page on 127.0.0.1:8080.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import sys
import termios
import tty
from pathlib import Path

from config.loader import ConfigError, load_config
from config.logging import configure_logging
from config.schema import CentralConfig, CentralSection, parse_listen
from ledger.store import LedgerLockedError
from sync.central.app import CentralServer
from sync.central.demo_data import DEMO_CASHIER_PINS, DEMO_PARTNER, DEMO_TERMINAL
from terminal.api import DemoHooks
from terminal.app import Daemon
from terminal.errors import Refused


def luhn_complete(prefix: str) -> str:
    """A Luhn-valid number from a prefix (a made-up test PAN, never a real card)."""
    digits = [int(c) for c in prefix + "0"]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return prefix + str((10 - total % 10) % 10)


def _track2(number: str) -> bytes:
    return f";{number.replace('-', '')}=49121010000000000000?\r".encode()


# The page's swipe buttons: key -> (label, what the reader receives).
def demo_swipes() -> dict[str, tuple[str, str, bytes]]:
    pan = luhn_complete("4" + "0" * 14)  # made up at run time; Luhn-valid on purpose
    return {
        "resident": ("Mieszkanka (aktywna)", "01-000018", _track2("01-000018")),
        "senior": ("Senior", "01-000026", _track2("01-000026")),
        "kdr": ("Karta Dużej Rodziny", "01-000034", _track2("01-000034")),
        "blocked": ("Karta zastrzeżona", "01-000042", _track2("01-000042")),
        "expired": ("Wygasły pakiet", "01-000059", _track2("01-000059")),
        "replaced": ("Karta zastąpiona duplikatem", "01-000067", _track2("01-000067")),
        "unknown": ("Nieznana karta", "01-999998", _track2("01-999998")),
        "payment": (
            "Karta płatnicza (pomyłka)",
            "karta bankowa",
            f"%B{pan}^KOWALSKI/JAN^29121010000000000000?;{pan}=29121010000000000000?\r".encode(),
        ),
        "garbled": ("Nieczytelny odczyt", "błąd odczytu", b";E?\r"),
    }


class PtySwipes(DemoHooks):
    """Writes swipes into the master side of the pseudo-terminal the reader listens on."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        attrs = termios.tcgetattr(self._slave)
        termios.tcsetattr(self._slave, termios.TCSANOW, attrs)
        self.path = os.ttyname(self._slave)
        self._swipes = demo_swipes()

    def cards(self) -> list[dict[str, str]]:
        return [
            {"key": k, "label": label, "description": desc}
            for k, (label, desc, _) in self._swipes.items()
        ]

    async def swipe(self, key: str) -> None:
        item = self._swipes.get(key)
        if item is None:
            raise Refused("not_found")
        os.write(self.master, item[2])

    def close(self) -> None:
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        default="127.0.0.1:8080",
        help="where the cashier page is served (127.0.0.1:8080)",
    )
    parser.add_argument(
        "--central",
        default="127.0.0.1:8765",
        help="where the demo city server listens (127.0.0.1:8765)",
    )
    parser.add_argument(
        "--state-dir",
        default="demo-state",
        type=Path,
        help="folder for the demo's databases, receipts and keys (./demo-state)",
    )
    parser.add_argument(
        "--fresh", action="store_true", help="start from empty databases (deletes --state-dir)"
    )


DEMO_CONFIG_FILE = "kartapos-demo.toml"
READER_LINK = "reader-msr"


def _toml(value: object) -> str:
    # json's string escapes are valid TOML basic strings; ints are the same in both
    return json.dumps(value, ensure_ascii=False)


def write_demo_config(state: Path, listen: str, central_url: str, reader_path: str) -> Path:
    """Write the config the demo runs with into its state dir; its path.

    The reader is the pty's slave, whose /dev/pts number changes with every start: the
    config names ``<state>/reader-msr``, a link this start points at it, so the file
    stays the same and ``kartapos doctor -c`` checks the very port the daemon holds.
    """
    link = state / READER_LINK
    tmp_link = state / (READER_LINK + ".new")
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(reader_path)
    tmp_link.replace(link)
    text = (
        "# Written by `kartapos demo` at every start: the config its daemon runs with.\n"
        "# Paths are relative to this file's folder. The reader is valid while the demo runs.\n"
        "[terminal]\n"
        f"id = {_toml(DEMO_TERMINAL)}\n"
        f"partner_id = {_toml(DEMO_PARTNER)}\n"
        'state_dir = "terminal"\n\n'
        "[api]\n"
        f"listen = {_toml(listen)}\n\n"
        "[[readers]]\n"
        'name = "msr"\n'
        'kind = "serial"\n'
        f"path = {_toml(READER_LINK)}\n"
        "baudrate = 9600\n\n"
        "[printer]\n"
        'kind = "file"\n'
        'path = "receipts.bin"\n'
        "columns = 48\n\n"
        "[sync]\n"
        f"url = {_toml(central_url)}\n"
        'token_file = "terminal-token"\n'
        "upload_interval_s = 30\n"
        "catalog_refresh_s = 60\n\n"
        "[logging]\n"
        'level = "info"\n'
        'format = "console"\n'
    )
    path = state / DEMO_CONFIG_FILE
    tmp = state / (DEMO_CONFIG_FILE + ".new")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def _prepare(args: argparse.Namespace) -> tuple[Path, str]:
    """The state dir and the demo terminal's token (made once)."""
    state: Path = args.state_dir.resolve()
    if args.fresh and state.exists():
        shutil.rmtree(state)
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    token_file = state / "terminal-token"
    if not token_file.exists():
        token_file.write_text(secrets.token_urlsafe(32) + "\n")
        token_file.chmod(0o600)
    return state, token_file.read_text().strip()


async def _demo(args: argparse.Namespace, state: Path, token: str) -> int:
    central_cfg = CentralConfig(
        central=CentralSection(
            listen=args.central,
            database=str(state / "central.sqlite"),
            trust_on_first_use=True,
            seed_demo=True,
        )
    )
    swipes = PtySwipes()
    try:
        async with CentralServer(central_cfg) as central:
            await central.db.enrol(DEMO_TERMINAL, DEMO_PARTNER, token, None)
            cfg_path = write_demo_config(state, args.listen, central.url, swipes.path)
            cfg = load_config(cfg_path)
            async with Daemon(cfg, demo=swipes) as daemon:
                result = await daemon.sync.cycle()
                if not result.ok:
                    print(
                        "kartapos demo: the first sync with the demo city server failed",
                        file=sys.stderr,
                    )

                def ready(_: Daemon) -> None:
                    pins = ", ".join(f"{n}: {p}" for n, p in DEMO_CASHIER_PINS.items())
                    print(
                        f"\n  Karta Mieszkańca — demo terminala {DEMO_TERMINAL}\n"
                        f"  Strona kasjera:  http://{args.listen}/\n"
                        f"  PIN kasjera (tylko demo): {pins}\n"
                        f"  Serwer miasta:   {central.url}\n"
                        f"  Paragony:        {state / 'receipts.bin'} (podgląd na stronie)\n"
                        f"  Config:          {cfg_path}\n"
                        f"                   (kartapos doctor -c {cfg_path})\n"
                        f"  Zatrzymanie:     Ctrl+C\n",
                        flush=True,
                    )

                await daemon.serve(on_ready=ready)
    finally:
        swipes.close()
    return 0


def run(args: argparse.Namespace) -> int:
    configure_logging("info", "console", stream=sys.stderr)
    try:
        parse_listen(args.listen)
        parse_listen(args.central)
    except ValueError as e:
        print(f"kartapos demo: --listen/--central: {e}", file=sys.stderr)
        return 2
    try:
        state, token = _prepare(args)
        return asyncio.run(_demo(args, state, token))
    except ConfigError as e:
        print(f"kartapos demo: the demo's own config is refused: {e}", file=sys.stderr)
        return 2
    except LedgerLockedError as e:
        print(f"kartapos demo: another demo or daemon uses {args.state_dir}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"kartapos demo: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
