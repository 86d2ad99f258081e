"""`kartapos doctor`'s checks: config, state dir, ledger, readers, printer and server.

:func:`diagnose` runs every check for a configuration and returns the report in order,
one :class:`Check` per line; :func:`exit_code` is 1 when a check failed. Each area is
its own module (``clock``, ``state``, ``city``, ``readers``, ``printer``) and asks the
module that owns a fact rather than knowing it again. Safe to run while the daemon
runs: the ledger is opened read-only, devices are opened and closed without reading,
and the terminal token is never printed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from config.schema import Config, ReaderSection
from ledger.clock import Clock
from ledger.entry import Head
from terminal.doctor.cashiers import cached_rules, check_cashiers
from terminal.doctor.city import check_daemon, check_sync
from terminal.doctor.clock import check_clock, check_timezone
from terminal.doctor.printer import check_printer
from terminal.doctor.readers import (
    check_reader,
    found_on_system,
    reader_label,
    reader_states,
    with_live_state,
)
from terminal.doctor.report import Check, Level, exit_code, fail, warn
from terminal.doctor.state import check_api_token, check_disk, check_ledger, check_state_dir

__all__ = ["Check", "Level", "diagnose", "exit_code"]


async def _guarded(what: str, timeout_s: float, work: Awaitable[Check]) -> Check:
    """Run one check; a hang or an unexpected error becomes a FAIL line, never a traceback."""
    try:
        async with asyncio.timeout(timeout_s):
            return await work
    except TimeoutError:
        return fail(what, f"no result within {timeout_s:g} s")
    except Exception as e:
        return fail(what, f"check crashed: {type(e).__name__}: {e}")


async def _found(readers: tuple[ReaderSection, ...], timeout_s: float) -> list[Check]:
    try:
        async with asyncio.timeout(timeout_s):
            return await asyncio.to_thread(found_on_system, readers)
    except TimeoutError:
        return [warn("found", f"looking for devices took over {timeout_s:g} s")]
    except Exception as e:
        return [warn("found", f"could not list devices: {type(e).__name__}: {e}")]


def _in_thread(fn: Callable[..., Check], *args: object) -> Awaitable[Check]:
    return asyncio.to_thread(fn, *args)


async def diagnose(cfg: Config, *, clock: Clock, timeout_s: float = 5.0) -> list[Check]:
    """Every check for this configuration, in report order."""
    state_dir = Path(cfg.terminal.state_dir)
    checks = [
        check_clock(clock),
        check_timezone(cfg, clock),
        await asyncio.to_thread(check_state_dir, state_dir),
        await asyncio.to_thread(check_disk, state_dir),
        await asyncio.to_thread(check_api_token, state_dir),
    ]
    rules = await asyncio.to_thread(cached_rules, state_dir)
    checks.append(check_cashiers(rules, cfg.terminal.admin_pin_hash))
    ledger_timeout = max(timeout_s, 60.0)  # a year of sales verifies in well under that
    head: Head | None = None
    try:
        async with asyncio.timeout(ledger_timeout):
            ledger, head = await check_ledger(cfg, clock)
    except TimeoutError:
        ledger = fail("ledger", f"no result within {ledger_timeout:g} s")
    except Exception as e:
        ledger = fail("ledger", f"check crashed: {type(e).__name__}: {e}")
    checks.append(ledger)

    daemon, health = await check_daemon(cfg, timeout_s)
    checks.append(daemon)
    live = reader_states(health)

    work: list[tuple[str, Awaitable[Check]]] = [
        (reader_label(r), _in_thread(check_reader, r)) for r in cfg.readers
    ]
    printer = cfg.printer
    if printer.kind != "none":
        work.append((f"printer ({printer.kind})", check_printer(printer, timeout_s)))
    work.append(("sync server", check_sync(cfg, head, timeout_s, clock)))
    async with asyncio.TaskGroup() as tg:
        # A backstop only: every check has its own, shorter timeouts inside.
        backstop = 2 * timeout_s + cfg.printer.connect_timeout_s + 2
        tasks = [tg.create_task(_guarded(what, backstop, w)) for what, w in work]
        found = tg.create_task(_found(cfg.readers, backstop))
    if not cfg.readers:
        checks.append(warn("readers", "none configured", "add [[readers]] to the config"))
    for reader, task in zip(cfg.readers, tasks, strict=False):
        checks.append(with_live_state(task.result(), live.get(reader.name)))
    checks.extend(found.result())
    checks.extend(t.result() for t in tasks[len(cfg.readers) :])
    if printer.kind == "none":
        checks.append(warn("printer", "none configured: no receipts are printed", "[printer] kind"))
    return checks
