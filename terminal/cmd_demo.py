"""`kartapos demo`: the whole system on one machine with no hardware.

A reference city server seeded with Polish sample cards and benefits, the daemon with a
pseudo-terminal magnetic-stripe reader fed by the page's "simulate swipe" buttons, and a
file printer whose receipts the page previews. Serves the cashier page on 127.0.0.1:8080.

With ``--tills N`` (2 to 4) it runs N tills of the one demo partner in this process and
event loop: terminals T-DEMO, T-DEMO-2, …, each with its own state under
``<state-dir>/till-K/`` (the first keeps ``<state-dir>`` itself), its own reader and
page on the next port, all against the one city server, and syncing every few seconds
so a benefit used at one till is refused at the others soon after
(docs/architecture.md §5.8).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import termios
import tty
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from config.loader import ConfigError, load_config
from config.logging import configure_logging
from config.schema import CentralConfig, CentralSection, parse_listen
from ledger.pins import hash_pin
from ledger.store import LedgerLockedError
from sync.central.app import CentralServer
from sync.central.demo_data import DEMO_CASHIER_PINS, DEMO_PARTNER, DEMO_TERMINAL
from terminal.api import DemoHooks
from terminal.app import SHUTDOWN_DEADLINE_S, Daemon, dump_tasks
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


MAX_TILLS = 4
# With several tills: upload and refresh this often, so a use at one till reaches the
# others within seconds (a shop's default is sync.catalog_refresh_s = 300).
TILLS_SYNC_EVERY_S = 5


def till_count(text: str) -> int:
    """``--tills``: a whole number from 1 to MAX_TILLS (argparse names the flag)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of tills (1 to {MAX_TILLS})"
        ) from None
    if not 1 <= n <= MAX_TILLS:
        raise argparse.ArgumentTypeError(f"the demo runs 1 to {MAX_TILLS} tills, not {n}")
    return n


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        default="127.0.0.1:8080",
        help="where the cashier page is served (127.0.0.1:8080); "
        "with --tills, the first till's page, the others on the next ports",
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
    parser.add_argument(
        "--tills",
        type=till_count,
        default=1,
        metavar="N",
        help=f"how many tills of the demo partner {DEMO_PARTNER} to run, 1 to {MAX_TILLS} "
        f"(1): terminals {DEMO_TERMINAL}, {DEMO_TERMINAL}-2, …, pages on --listen's port "
        "and the next ones, state of till K in <state-dir>/till-K; with 2 or more the "
        f"tills sync with the city every {TILLS_SYNC_EVERY_S} s, so a benefit used at "
        "one till is refused at the others within seconds",
    )


DEMO_CONFIG_FILE = "kartapos-demo.toml"
# The demo till's administrator, a manager who approves points overrides and closes the
# day (docs/architecture.md §5.10). Demo only; the fixed salt keeps the config the same.
DEMO_MANAGER_PIN = "135790"
DEMO_MANAGER_HASH_SALT = b"kartapos-demo-mg"
READER_LINK = "reader-msr"


def _toml(value: object) -> str:
    # json's string escapes are valid TOML basic strings; ints are the same in both
    return json.dumps(value, ensure_ascii=False)


def demo_manager_hash() -> str:
    return hash_pin(DEMO_MANAGER_PIN, role="manager", salt=DEMO_MANAGER_HASH_SALT)


def write_demo_config(
    state: Path,
    listen: str,
    central_url: str,
    reader_path: str,
    *,
    terminal: str = DEMO_TERMINAL,
    sync_every_s: int | None = None,
) -> Path:
    """Write the config the demo runs with into its state dir; its path.

    The reader is the pty's slave, whose /dev/pts number changes with every start: the
    config names ``<state>/reader-msr``, a link this start points at it, so the file
    stays the same and ``kartapos doctor -c`` checks the very port the daemon holds.
    ``sync_every_s`` (several tills) replaces the one-till demo's upload every 30 s and
    refresh every 60 s.
    """
    upload_s, refresh_s = (30, 60) if sync_every_s is None else (sync_every_s, sync_every_s)
    link = state / READER_LINK
    tmp_link = state / (READER_LINK + ".new")
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(reader_path)
    tmp_link.replace(link)
    text = (
        "# Written by `kartapos demo` at every start: the config its daemon runs with.\n"
        "# Paths are relative to this file's folder. The reader is valid while the demo runs.\n"
        "[terminal]\n"
        f"id = {_toml(terminal)}\n"
        f"partner_id = {_toml(DEMO_PARTNER)}\n"
        'state_dir = "terminal"\n'
        f"admin_pin_hash = {_toml(demo_manager_hash())}\n\n"
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
        f"upload_interval_s = {upload_s}\n"
        f"catalog_refresh_s = {refresh_s}\n\n"
        "[logging]\n"
        'level = "info"\n'
        'format = "console"\n'
    )
    path = state / DEMO_CONFIG_FILE
    tmp = state / (DEMO_CONFIG_FILE + ".new")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


@dataclass(frozen=True)
class Till:
    """One demo till: its terminal id, the folder of its config and state, its page."""

    number: int
    terminal: str
    folder: Path
    listen: str


def plan_tills(state: Path, listen: str, n: int) -> list[Till]:
    """Till 1 is today's demo (``state`` itself, ``listen``); till K is T-DEMO-K in
    ``state/till-K`` on the K-1th port after ``listen``'s. ValueError past port 65535."""
    host, port = parse_listen(listen)
    shown = f"[{host}]" if ":" in host else host
    out = []
    for k in range(1, n + 1):
        if port + k - 1 > 65535:
            raise ValueError(f"till {k} would need port {port + k - 1}, above 65535")
        out.append(
            Till(
                number=k,
                terminal=DEMO_TERMINAL if k == 1 else f"{DEMO_TERMINAL}-{k}",
                folder=state if k == 1 else state / f"till-{k}",
                listen=listen if k == 1 else f"{shown}:{port + k - 1}",
            )
        )
    return out


def _terminal_token(folder: Path) -> str:
    """The till's enrolment token in ``folder/terminal-token`` (made once)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    token_file = folder / "terminal-token"
    if not token_file.exists():
        token_file.write_text(secrets.token_urlsafe(32) + "\n")
        token_file.chmod(0o600)
    return token_file.read_text().strip()


def _prepare(args: argparse.Namespace) -> tuple[Path, str]:
    """The state dir and the demo terminal's token (made once)."""
    state: Path = args.state_dir.resolve()
    if args.fresh and state.exists():
        shutil.rmtree(state)
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    return state, _terminal_token(state)


async def _demo(args: argparse.Namespace, state: Path, token: str) -> int:
    tills = plan_tills(state, args.listen, args.tills)
    several = len(tills) > 1
    central_cfg = CentralConfig(
        central=CentralSection(
            listen=args.central,
            database=str(state / "central.sqlite"),
            trust_on_first_use=True,
            seed_demo=True,
        )
    )
    with contextlib.ExitStack() as ptys:
        swipes = []
        for _ in tills:
            sw = PtySwipes()
            ptys.callback(sw.close)
            swipes.append(sw)
        async with CentralServer(central_cfg) as central, contextlib.AsyncExitStack() as stack:
            daemons: list[Daemon] = []
            configs: list[Path] = []
            for till, sw in zip(tills, swipes, strict=True):
                till_token = token if till.number == 1 else _terminal_token(till.folder)
                await central.db.enrol(till.terminal, DEMO_PARTNER, till_token, None)
                cfg_path = write_demo_config(
                    till.folder,
                    till.listen,
                    central.url,
                    sw.path,
                    terminal=till.terminal,
                    sync_every_s=TILLS_SYNC_EVERY_S if several else None,
                )
                cfg = load_config(cfg_path)
                daemon = await stack.enter_async_context(Daemon(cfg, demo=sw))
                result = await daemon.sync.cycle()
                if not result.ok:
                    which = f" ({till.terminal})" if several else ""
                    print(
                        f"kartapos demo: the first sync with the demo city server failed{which}",
                        file=sys.stderr,
                    )
                daemons.append(daemon)
                configs.append(cfg_path)

            if not several:
                cfg_path = configs[0]

                def ready(_: Daemon) -> None:
                    pins = ", ".join(f"{n}: {p}" for n, p in DEMO_CASHIER_PINS.items())
                    print(
                        f"\n  Karta Mieszkańca — demo terminala {DEMO_TERMINAL}\n"
                        f"  Strona kasjera:  http://{args.listen}/\n"
                        f"  PIN kasjera (tylko demo): {pins}\n"
                        f"  PIN kierownika (tylko demo): Administrator: {DEMO_MANAGER_PIN}\n"
                        f"  Serwer miasta:   {central.url}\n"
                        f"  Wydruki:         {state / 'receipts.bin'} (podgląd na stronie)\n"
                        f"  Config:          {cfg_path}\n"
                        f"                   (kartapos doctor -c {cfg_path})\n"
                        f"  Zatrzymanie:     Ctrl+C\n",
                        flush=True,
                    )

                await daemons[0].serve(on_ready=ready)
            else:

                def all_ready() -> None:
                    print(tills_banner(tills, configs, central.url), flush=True)

                await serve_tills(daemons, all_ready)
    return 0


def tills_banner(tills: list[Till], configs: list[Path], central_url: str) -> str:
    """What ``--tills N`` prints once every till serves its page (Polish, as the page)."""
    pins = ", ".join(f"{n}: {p}" for n, p in DEMO_CASHIER_PINS.items())
    pad = " " * 23  # under the values
    lines = [
        "",
        f"  Karta Mieszkańca — demo: {len(tills)} kasy partnera {DEMO_PARTNER}",
        *(f"  Kasa {t.number}: http://{t.listen}/  terminal {t.terminal}" for t in tills),
        f"  PIN kasjera (tylko demo): {pins}",
        f"  PIN kierownika (tylko demo): Administrator: {DEMO_MANAGER_PIN}",
        f"  Serwer miasta:       {central_url}",
        f"  Synchronizacja:      co {TILLS_SYNC_EVERY_S} s — benefit użyty na jednej kasie "
        "widać na pozostałych po kilku sekundach",
        "  Wydruki:             "
        + ", ".join(str(t.folder / "receipts.bin") for t in tills)
        + " (podgląd na stronie)",
        f"  Config:              {configs[0]}",
        *(f"{pad}{c}" for c in configs[1:]),
        f"{pad}(kartapos doctor -c CONFIG)",
        "  Zatrzymanie:         Ctrl+C",
        "",
    ]
    return "\n".join(lines)


def _stuck_shutdown() -> None:
    print("kartapos demo: the tills did not stop in time", file=sys.stderr, flush=True)
    dump_tasks()
    os._exit(1)


async def serve_tills(daemons: list[Daemon], on_ready: Callable[[], None]) -> None:
    """Serve every till in this event loop until SIGTERM/SIGINT, or until one of them
    ends (its error is raised once all the others stopped); ``on_ready`` once all serve.

    One set of signal handlers stops them all (each daemon's own would replace the
    previous till's), with the daemon's shutdown deadline.
    """
    loop = asyncio.get_running_loop()
    waiting = len(daemons)
    deadline: list[asyncio.TimerHandle] = []

    def one_ready(_: Daemon) -> None:
        nonlocal waiting
        waiting -= 1
        if waiting == 0:
            on_ready()

    def stop_all() -> None:
        for d in daemons:
            d.stop()
        if not deadline:
            deadline.append(loop.call_later(SHUTDOWN_DEADLINE_S, _stuck_shutdown))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_all)
    loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
    tasks = [
        loop.create_task(
            d.serve(on_ready=one_ready, install_signals=False), name=f"till-{d.cfg.terminal.id}"
        )
        for d in daemons
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        stop_all()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
            loop.remove_signal_handler(sig)
        for t in tasks:
            t.cancel()
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


def run(args: argparse.Namespace) -> int:
    configure_logging("info", "console", stream=sys.stderr)
    try:
        parse_listen(args.listen)
        parse_listen(args.central)
    except ValueError as e:
        print(f"kartapos demo: --listen/--central: {e}", file=sys.stderr)
        return 2
    if args.tills > 1:
        try:
            pages = [t.listen for t in plan_tills(Path(), args.listen, args.tills)]
        except ValueError as e:
            print(f"kartapos demo: --listen/--tills: {e}", file=sys.stderr)
            return 2
        if parse_listen(args.central) in [parse_listen(p) for p in pages]:
            print(
                f"kartapos demo: --central {args.central} is the address of a till's page "
                f"({', '.join(pages)}): give it another port",
                file=sys.stderr,
            )
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
