"""Print queue: enqueue of a committed entry's receipt -> its bytes at a loopback 9100 printer.

The printer's share of the sale budget (POST /api/v1/sales -> receipt delivered, p99 <=
25 ms): durable enqueue (synchronous=FULL), worker wake-up, DLE EOT status round trips,
render, the job's own connection and the durable state changes. Information, no budget
of its own.

Run: .venv/bin/python -m benchmarks.bench_printer_queue [--n 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

import msgspec
import structlog

from config.schema import PrinterSection
from ledger.clock import SystemClock
from printer.queue import PrintQueue
from printer.samples import sample_sale
from printer.transport import NetworkTransport
from tests.printer.fake_printer import FakePrinter


async def run(n: int) -> list[float]:
    loop = asyncio.get_running_loop()
    base = sample_sale()
    times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with FakePrinter() as fake:
            transport = NetworkTransport("127.0.0.1", fake.port)
            printer = PrinterSection(kind="network", port=fake.port)
            queue = await PrintQueue.open(
                Path(tmp) / "print.sqlite",
                transport=transport,
                printer=printer,
                clock=SystemClock(),
            )
            try:
                async with asyncio.TaskGroup() as tg:
                    worker = tg.create_task(queue.run())
                    for i in range(n + 20):
                        entry = msgspec.structs.replace(base.entry, seq=i + 1)
                        data = msgspec.structs.replace(base, entry=entry)
                        start = loop.time()
                        await queue.enqueue(data)
                        await fake.wait_jobs(i + 1)
                        if i >= 20:
                            times.append((loop.time() - start) * 1000)
                    worker.cancel()
            finally:
                await queue.close()
    return sorted(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    times = asyncio.run(run(args.n))
    p50, p99 = statistics.median(times), times[int(len(times) * 0.99) - 1]
    print(
        f"enqueue -> receipt bytes at a loopback 9100 printer: p50 {p50:.2f} ms, "
        f"p99 {p99:.2f} ms (information; the whole sale path has p99 <= 25 ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
