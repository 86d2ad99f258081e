"""`kartapos keys show -c FILE`: print the terminal's public key for enrolment.

The key pair is made at first use in ``<state_dir>/terminal.key`` (mode 0600); only
the public half is ever printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from config.loader import load_config
from config.logging import configure_logging
from config.schema import Config
from sync.keys import KEY_FILE, KeyFileError, load_or_create_key

EXIT_OK = 0
EXIT_FAILED = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="keys_command", metavar="SUBCOMMAND", required=True)
    show = sub.add_parser(
        "show",
        help="print the public key (base64, raw Ed25519) to enrol this terminal",
        description="Print this terminal's public key for enrolment with the city server; "
        "the key is created at first use.",
    )
    show.add_argument("-c", "--config", required=True, metavar="FILE", help="kartapos.toml")
    show.add_argument("--raw", action="store_true", help="print only the key (for scripts)")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    configure_logging(level="warning", fmt="auto", stream=sys.stderr)
    return show_key(cfg, raw=args.raw)


def show_key(
    cfg: Config, *, raw: bool = False, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Print the public key (creating the key pair at first use); the exit code."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    state = Path(cfg.terminal.state_dir)
    try:
        key = load_or_create_key(state)
    except KeyFileError as e:
        err.write(f"kartapos keys: {e}\n")
        return EXIT_FAILED
    if raw:
        out.write(key.public_key_b64 + "\n")
    else:
        out.write(
            f"terminal:   {cfg.terminal.id} (partner {cfg.terminal.partner_id})\n"
            f"public key: {key.public_key_b64}\n"
            f"key file:   {state / KEY_FILE}\n"
        )
    return EXIT_OK
