"""`kartapos` — the one command line entry point (docs/architecture.md §5.1, CONTRACT).

Each command lives in its own module ``terminal.cmd_<name>`` exposing
``add_arguments(parser)`` and ``run(args) -> int``; modules are imported only when
their command runs, so `kartapos --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from config.loader import EXIT_BAD_CONFIG, ConfigError
from config.version import package_version

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("terminal.cmd_run", "run the terminal daemon in the foreground (systemd Type=notify)"),
    "demo": (
        "terminal.cmd_demo",
        "everything on one machine, simulated hardware, page on 127.0.0.1:8080",
    ),
    "central": ("terminal.cmd_central", "run the reference city server"),
    "sync": (
        "terminal.cmd_sync",
        "one upload + download cycle now; exit 0 when all was acked",
    ),
    "ledger": ("terminal.cmd_ledger", "ledger tools: `ledger verify` checks the whole hash chain"),
    "doctor": ("terminal.cmd_doctor", "check config, state dir, readers, printer and server"),
    "keys": ("terminal.cmd_keys", "the terminal's signing key: `keys show` prints the public key"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported (for its own arguments)."""
    parser = argparse.ArgumentParser(
        prog="kartapos",
        description="Point-of-sale terminal for the city resident card (Karta Mieszkańca).",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"kartapos {package_version()}",
        help="print the installed version and exit",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=None)
        if name != command:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:
                raise
            continue
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The first word that names a command (options before it take no values)."""
    return next((a for a in argv if a in COMMANDS), None)


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(words))
    args = parser.parse_args(words)
    module = args._module
    if module is None:
        print(f"kartapos {args.command}: not built yet in this version", file=sys.stderr)
        return 1
    try:
        rc: int = module.run(args)
    except ConfigError as e:
        print(f"kartapos {args.command}: {e}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except KeyboardInterrupt:
        return 130
    return rc


if __name__ == "__main__":
    sys.exit(main())
