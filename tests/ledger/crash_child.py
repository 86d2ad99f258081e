"""Child of test_crash: append in a loop, report each entry only after append returned.

argv: LEDGER_PATH REPORT_FD RUN PREV_RUN PREV_REPORTED
Writes "seq hash sale_id\\n" to REPORT_FD (one os.write per line) for every append
that returned. First re-sends the previous run's requests around where it was killed
(a client retrying after a crash): those must come back, never doubled.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import structlog

from ledger.entry import Draft
from ledger.store import LedgerStore

APPENDERS = 6


def draft(run: int, j: int) -> Draft:
    return Draft(
        ts="2026-11-18T11:00:00.000Z",
        local_date="2026-11-18",
        kind="sale",
        card=f"01-{j % 1000:06d}",
        amount_gr=100 + j,
        points_earned=j % 5,
        rules_version="r-1",
        sale_id=f"run{run}-{j}",
    )


async def main(path: Path, fd: int, run: int, prev_run: int, prev_reported: int) -> None:
    async with await LedgerStore.open(path, terminal="T-0001") as store:

        async def report(d: Draft) -> None:
            r = await store.append(d)
            os.write(fd, f"{r.entry.seq} {r.entry.hash} {d.sale_id}\n".encode())

        if prev_run >= 0:
            lo = max(0, prev_reported - 3 * APPENDERS)
            async with asyncio.TaskGroup() as tg:
                for j in range(lo, prev_reported + 3 * APPENDERS):
                    tg.create_task(report(draft(prev_run, j)))

        async def appender(k: int) -> None:
            j = k
            while True:
                await report(draft(run, j))
                j += APPENDERS

        async with asyncio.TaskGroup() as tg:
            for k in range(APPENDERS):
                tg.create_task(appender(k))


if __name__ == "__main__":
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    p, fd_s, run_s, prev_s, prev_rep_s = sys.argv[1:6]
    asyncio.run(main(Path(p), int(fd_s), int(run_s), int(prev_s), int(prev_rep_s)))
