"""Fleet night: 300 terminals (real SyncClient, own ledger, key and token each) upload to
one reference server on loopback, the nightly window compressed to a few seconds.

The same engine as tests/chaos/test_fleet.py (read its docstring for the bound), with
more entries per terminal. Figures: entries/s through the server, max and mean
concurrent uploads against the expected N*d/W and the stated bound, wall time; then the
control run where everyone starts at once (the baseline the slots are measured against).
Exit 1 when an entry is missing or doubled, or the spread night breaks the bound.

Run: .venv/bin/python -m benchmarks.bench_fleet [--terminals 300] [--entries 200]
     [--batch-size 100] [--window-s 30] [--seed 8] [--database sqlite|postgresql]

``--database postgresql`` runs the city server on a throwaway PostgreSQL of Debian's
``postgresql`` package (tests/pgserver.py; as root the cluster belongs to ``nobody``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import structlog.testing

from ledger.clock import FakeClock
from tests.chaos.test_fleet import (
    Bound,
    Fleet,
    FleetParams,
    NightFigures,
    UploadMeter,
    assert_each_entry_once,
    calibrate,
    control_night,
    fault_plan,
    open_fleet,
    run_night,
)
from tests.pgserver import PostgresServer, running_postgres
from tests.sync.central_harness import CentralHarness


def _line(label: str, value: str, budget: str = "") -> None:
    print(f"  {label:<46} {value:>14}  {budget}")


def _night(label: str, fig: NightFigures, bound: Bound | None) -> None:
    print(label)
    _line("entries uploaded", f"{fig.entries:,}")
    _line("POSTs (incl. retries)", f"{fig.posts:,}")
    _line("wall time, first slot to last upload done", f"{fig.wall_s:.2f} s")
    _line("entries/s through the server (over the wall)", f"{fig.entries_per_s:,.0f}")
    _line("mean concurrent uploads (over its POST span)", f"{fig.busy_s / fig.span_s:.2f}")
    _line("longest stall of the shared event loop", f"{fig.loop_lag_s * 1000:.0f} ms")
    if bound is None:
        _line("max concurrent uploads", f"{fig.max_in_flight}")
        return
    _line("server time per upload, alone (d)", f"{bound.d_solo_s * 1000:.1f} ms")
    _line("server time per upload, in the night (d)", f"{bound.d_night_s * 1000:.1f} ms")
    _line("expected concurrency E = N*d/W", f"{bound.expected:.2f}")
    _line(
        "max concurrent uploads",
        f"{fig.max_in_flight}",
        f"budget <= 4E+3+stall({bound.stall_term:.1f}) = {bound.limit:.1f}",
    )
    _line("faults injected", f"{sum(fig.injected.values())}", str(fig.injected or ""))


async def bench(params: FleetParams, root_dir: str | None, engine: str = "sqlite") -> int:
    clock = FakeClock(datetime(2026, 11, 21, 4, 30, tzinfo=UTC))
    ok = True
    with (
        tempfile.TemporaryDirectory(prefix="kartapos-fleet-", dir=root_dir) as d,
        structlog.testing.capture_logs(),
        running_postgres() if engine == "postgresql" else contextlib.nullcontext() as pg,
    ):

        def database() -> str | None:
            return pg.create_database("fleet") if isinstance(pg, PostgresServer) else None

        root = Path(d)
        t = time.monotonic()
        async with open_fleet(root / "terminals", params, clock) as fleet:
            build_s = time.monotonic() - t
            tids = [x.tid for x in fleet.terms]
            posts_each = math.ceil(params.entries / params.batch_size)
            print(
                f"fleet: {params.terminals} terminals x {params.entries} entries "
                f"(batches of {params.batch_size}), window {params.window} compressed to "
                f"{params.window_real_s:g} s (x{fleet.scale:,.0f}), seed {params.seed}; "
                f"state built in {build_s:.1f} s (not timed); city database: {engine}"
            )
            meter = UploadMeter()
            async with CentralHarness.start(
                root / "city", database=database(), middlewares=[meter.middleware], seed=False
            ) as city:
                await fleet.enrol_all(city)
                d_solo = await calibrate(fleet.calib, city.url, meter, params, clock)
                meter.plan = fault_plan(tids, posts_each, params.fault_share, params.seed)
                night, results = await run_night(
                    fleet.terms, city.url, meter, params, clock, fleet.starts(), fleet.scale
                )
                bound = Bound.of(night, d_solo, params)
                _night("spread by nightly_slot (with faults):", night, bound)
                ok &= _landed("spread", all(r.ok for r in results.values()))
                ok &= _landed("spread", await _exactly_once(city, fleet))
                ok &= night.injected == dict(Counter(meter.plan.values()))
                ok &= night.max_in_flight <= bound.limit

            herd, results = await control_night(
                root, fleet, params, clock, database=database(), check=False
            )
            _night("control, everyone at the same instant (baseline, no faults):", herd, None)
            failed = Counter(r.error or "?" for r in results.values() if not r.ok)
            if failed:
                # The herd is the baseline, not a promise (the budget is the spread
                # night's): a till whose upload failed tries again at its next cycle.
                _line("uploads not finished in the herd (retried next cycle)",
                      f"{sum(failed.values()):,}", str(dict(failed)))  # fmt: skip
            _line(
                "ratio max concurrent, control / spread",
                f"{herd.max_in_flight / max(1, night.max_in_flight):.1f}",
            )
    print("every entry landed exactly once, bound held" if ok else "FAILED (see above)")
    return 0 if ok else 1


async def _exactly_once(city: CentralHarness, fleet: Fleet) -> bool:
    try:
        await assert_each_entry_once(city, fleet.terms)
    except AssertionError as e:
        print(f"  server and terminal differ: {e}")
        return False
    return True


def _landed(label: str, ok: bool) -> bool:
    if not ok:
        print(f"  {label}: an upload did not finish or an entry is missing/doubled")
    return ok


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--terminals", type=int, default=300)
    p.add_argument("--entries", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--window-s", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=8)
    p.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    a = p.parse_args()
    params = FleetParams(
        terminals=a.terminals,
        entries=a.entries,
        batch_size=a.batch_size,
        window_real_s=a.window_s,
        seed=a.seed,
    )
    shm = Path("/dev/shm")  # tmpfs: other jobs' disk flushes must not pose as server load
    return asyncio.run(bench(params, str(shm) if shm.is_dir() else None, a.database))


if __name__ == "__main__":
    sys.exit(main())
