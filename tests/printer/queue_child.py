"""A process that owns a print queue, so tests can SIGKILL it at chosen moments.

usage: python -m tests.printer.queue_child DB PORT MODE
  enqueue  queue the sample sale, say "ENQUEUED <id>", then run the worker
  crash    queue the sample sale and run; SIGKILL itself right after its bytes were sent
  run      run the worker until the sample sale's job is printed, say "PRINTED <id>", exit
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

import structlog

from config.schema import PrinterSection
from ledger.clock import FakeClock
from printer.queue import PrintQueue
from printer.samples import sample_sale
from printer.transport import NetworkTransport, PrinterStatus


class CrashAfterSend:
    """Delivers the job for real, then dies before the queue can mark it printed."""

    def __init__(self, inner: NetworkTransport) -> None:
        self.inner = inner

    async def send(self, data: bytes) -> None:
        await self.inner.send(data)
        os.kill(os.getpid(), signal.SIGKILL)

    async def status(self) -> PrinterStatus:
        return await self.inner.status()


async def main(db: Path, port: int, mode: str) -> int:
    clock = FakeClock(datetime(2026, 11, 18, 11, 0, tzinfo=UTC))
    net = NetworkTransport("127.0.0.1", port, connect_timeout=1.0, status_timeout=0.3)
    transport = CrashAfterSend(net) if mode == "crash" else net
    printer = PrinterSection(kind="network", port=port)
    async with await PrintQueue.open(
        db,
        transport=transport,
        printer=printer,
        clock=clock,
        retry_initial_s=0.05,
        retry_max_s=0.2,
    ) as queue:
        job = await queue.enqueue(sample_sale())
        if mode == "enqueue":
            print(f"ENQUEUED {job}", flush=True)
        async with asyncio.TaskGroup() as tg:
            worker = tg.create_task(queue.run())
            while await queue.wait(job, 30.0) != "printed":
                pass
            print(f"PRINTED {job}", flush=True)
            worker.cancel()
    return 0


if __name__ == "__main__":
    # stdout is the protocol with the test; logs go to stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    sys.exit(asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3])))
