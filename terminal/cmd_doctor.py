"""`kartapos doctor -c FILE`: check config, state dir, ledger, readers, printer and server.

A plain report, one line per check: ``OK``, ``WARN`` or ``FAIL``, what was checked
(naming the key or device), what was found and, when something is wrong, how to fix
it. Exit 0 when nothing failed (warnings allowed), 1 when a check failed, 2 when the
configuration cannot be loaded. The checks themselves are :mod:`terminal.doctor`'s;
this module parses the arguments, prints the report and returns the exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from config.loader import EXIT_BAD_CONFIG, ConfigError, load_config
from config.logging import configure_logging
from config.version import package_version
from ledger.clock import SystemClock
from terminal.doctor import Level, diagnose, exit_code
from terminal.doctor.report import fail, ok

DEFAULT_CONFIG = "/etc/kartapos/kartapos.toml"


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 600 seconds")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=DEFAULT_CONFIG,
        help=f"the terminal's configuration (default {DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_positive_seconds,
        default=5.0,
        help="how long each device or server check may take (default 5)",
    )
    parser.epilog = (
        "Prints one line per check: OK, WARN or FAIL, what was checked and how to fix it. "
        "Exit 0 when nothing failed (warnings allowed), 1 when a check failed, 2 when the "
        "configuration cannot be loaded."
    )


def run(args: argparse.Namespace) -> int:
    config_path = Path(args.config)
    try:
        cfg = load_config(config_path)
    except ConfigError as e:
        print(fail("config", str(e), "correct the file and run `kartapos doctor` again").line())
        return EXIT_BAD_CONFIG
    # The report owns stdout; library log lines (if any) go to stderr.
    configure_logging("warning", "console", stream=sys.stderr)
    started = time.monotonic()
    checks = [
        ok("version", f"kartapos {package_version()}"),
        ok("config", f"{config_path} loads (terminal {cfg.terminal.id})"),
    ]
    checks += asyncio.run(diagnose(cfg, clock=SystemClock(), timeout_s=args.timeout))
    for c in checks:
        print(c.line())
    counts = {level: sum(c.level is level for c in checks) for level in Level}
    print(
        f"-- {counts[Level.FAIL]} failed, {counts[Level.WARN]} warnings, {counts[Level.OK]} ok "
        f"({time.monotonic() - started:.1f} s)",
        file=sys.stdout,
    )
    return exit_code(checks)
