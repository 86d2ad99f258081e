"""`kartapos run -c FILE`: the terminal daemon in the foreground (systemd Type=notify)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from config.loader import EXIT_BAD_CONFIG, load_config
from config.logging import configure_logging
from config.schema import Config
from ledger.clock import clock_from_env
from ledger.store import LedgerError, LedgerLockedError
from terminal.app import Daemon


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", required=True, metavar="FILE", help="the terminal's TOML configuration"
    )


async def serve(cfg: Config) -> None:
    async with Daemon(cfg, clock=clock_from_env(dict(os.environ))) as daemon:
        await daemon.serve()


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    configure_logging(cfg.logging.level, cfg.logging.format)
    return run_daemon(cfg, args.config)


def run_daemon(cfg: Config, source: str) -> int:
    """Run the daemon; operational failures become one clear line and an exit code."""
    try:
        asyncio.run(serve(cfg))
    except LedgerLockedError as e:
        print(f"kartapos run: {e}", file=sys.stderr)
        return 1
    except LedgerError as e:
        print(f"kartapos run: ledger: {e}", file=sys.stderr)
        return 1
    except PermissionError as e:
        print(f"kartapos run: {source}: terminal.state_dir: {e}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except OSError as e:
        print(
            f"kartapos run: {source}: api.listen {cfg.api.listen}: {e.strerror or e}",
            file=sys.stderr,
        )
        return 1
    return 0
