"""`kartapos demo`: the whole system on one machine with no hardware.

A reference city server seeded with Polish sample cards and benefits, the daemon with a
pseudo-terminal magnetic-stripe reader fed by the page's "simulate swipe" buttons, and a
file printer whose receipts the page previews. Serves the cashier page on 127.0.0.1:8080.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import sys
import termios
import tty
from pathlib import Path
from typing import Any

from config.loader import config_from_dict
from config.logging import configure_logging
from config.schema import CentralConfig, CentralSection, Config, parse_listen
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


def _demo_config(state: Path, listen: str, central_url: str, reader_path: str) -> Config:
    data: dict[str, Any] = {
        "terminal": {
            "id": DEMO_TERMINAL,
            "partner_id": DEMO_PARTNER,
            "state_dir": str(state / "terminal"),
        },
        "api": {"listen": listen},
        "readers": [{"name": "msr", "kind": "serial", "path": reader_path, "baudrate": 9600}],
        "printer": {"kind": "file", "path": str(state / "receipts.bin"), "columns": 48},
        "sync": {
            "url": central_url,
            "token_file": str(state / "terminal-token"),
            "upload_interval_s": 30,
            "catalog_refresh_s": 60,
        },
        "logging": {"level": "info", "format": "console"},
    }
    return config_from_dict(data, base=state, name="<demo>")


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
            cfg = _demo_config(state, args.listen, central.url, swipes.path)
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
    except LedgerLockedError as e:
        print(f"kartapos demo: another demo or daemon uses {args.state_dir}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"kartapos demo: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
