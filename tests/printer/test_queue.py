"""The durable print queue against a loopback printer, including real SIGKILLed owners."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from config.schema import PrinterSection
from ledger.clock import FakeClock
from printer import texts
from printer.layout import render
from printer.queue import PrintQueue
from printer.samples import sample_day_close, sample_sale, sample_void
from printer.transport import NetworkTransport, PrinterStatus, PrinterWriteError, Transport
from tests.conftest import REPO_ROOT
from tests.printer.escpos_decode import decode
from tests.printer.fake_printer import FakePrinter

pytestmark = pytest.mark.timeout(60)


def section(port: int, **kw: object) -> PrinterSection:
    return PrinterSection(kind="network", port=port, **kw)  # type: ignore[arg-type]


def is_copy(job: bytes) -> bool:
    lines = [x.strip() for x in decode(job).text_lines]
    return lines[0] == texts.COPY and lines[-1] == texts.COPY


@contextlib.asynccontextmanager
async def running(
    path: Path,
    transport: Transport | None,
    printer: PrinterSection,
    clock: FakeClock,
) -> AsyncIterator[PrintQueue]:
    queue = await PrintQueue.open(
        path,
        transport=transport,
        printer=printer,
        clock=clock,
        retry_initial_s=0.02,
        retry_max_s=0.1,
        idle_poll_s=0.1,
    )
    try:
        async with asyncio.TaskGroup() as tg:
            worker = tg.create_task(queue.run())
            try:
                yield queue
            finally:
                worker.cancel()
    finally:
        await queue.close()


async def settle(fake: FakePrinter, queue: PrintQueue) -> None:
    """Let the worker finish whatever it would still do (nothing queued or printing)."""
    async with asyncio.timeout(5):
        while await queue.jobs(state="queued") or await queue.jobs(state="printing"):
            await fake.wait_status_queries(fake.status_queries + 1)


async def test_printed_once_and_quickly(state_dir: Path, clock: FakeClock) -> None:
    async with FakePrinter() as fake:
        t = NetworkTransport("127.0.0.1", fake.port)
        async with running(state_dir / "print.sqlite", t, section(fake.port), clock) as q:
            job = await q.enqueue(sample_sale())
            assert await q.wait(job, 5) == "printed"
            assert q.status().state == "online"
        jobs = await fake.wait_jobs(1)
    assert len(jobs) == 1
    assert not is_copy(jobs[0])
    assert "                Karta Mieszkańca" in decode(jobs[0]).text_lines


async def test_printer_down_during_sale_then_back(state_dir: Path, clock: FakeClock) -> None:
    async with FakePrinter() as fake:
        await fake.refuse()
        t = NetworkTransport("127.0.0.1", fake.port, connect_timeout=0.5)
        printer = section(fake.port, sale_wait_s=0.3)
        async with running(state_dir / "print.sqlite", t, printer, clock) as q:
            job = await q.enqueue(sample_sale())
            loop = asyncio.get_running_loop()
            started = loop.time()
            # The sale waits no longer than sale_wait_s, then answers "queued".
            assert await q.wait(job, printer.sale_wait_s) == "queued"
            assert loop.time() - started < printer.sale_wait_s + 0.2
            assert q.status().state == "offline"
            await fake.start()
            assert await q.wait(job, 5) == "printed"
            assert q.status().state == "online"
            # The same original again (e.g. the daemon's catch-up after a restart): no-op.
            assert await q.enqueue(sample_sale()) == job
            await settle(fake, q)
        assert len(fake.jobs) == 1
        assert not is_copy(fake.jobs[0])


async def test_paper_out_shows_and_job_waits(state_dir: Path, clock: FakeClock) -> None:
    seen: list[str] = []
    async with FakePrinter("paper_out") as fake:
        t = NetworkTransport("127.0.0.1", fake.port, status_timeout=0.3)
        async with running(state_dir / "print.sqlite", t, section(fake.port), clock) as q:
            q.subscribe(lambda s: seen.append(s.state))
            job = await q.enqueue(sample_sale())
            await fake.wait_status_queries(9)  # several rounds of asking, nothing sent
            assert q.status() == PrinterStatus("paper_out", "paper roll end")
            assert q.status().message == "Brak papieru"
            assert await q.wait(job, 0.05) == "queued"
            assert fake.jobs == []
            fake.mode = "online"
            assert await q.wait(job, 5) == "printed"
        assert len(fake.jobs) == 1
    assert seen[-2:] == ["paper_out", "online"]


async def test_cover_open_then_closed(state_dir: Path, clock: FakeClock) -> None:
    async with FakePrinter("cover_open") as fake:
        t = NetworkTransport("127.0.0.1", fake.port, status_timeout=0.3)
        async with running(state_dir / "print.sqlite", t, section(fake.port), clock) as q:
            job = await q.enqueue(sample_void())
            await fake.wait_status_queries(6)
            assert q.status().state == "cover_open"
            fake.mode = "paper_near_end"  # still prints
            assert await q.wait(job, 5) == "printed"
            assert q.status().state == "paper_near_end"


async def test_silent_printer_still_prints_and_status_is_unknown(
    state_dir: Path, clock: FakeClock
) -> None:
    async with FakePrinter("silent") as fake:
        t = NetworkTransport("127.0.0.1", fake.port, status_timeout=0.1)
        async with running(state_dir / "print.sqlite", t, section(fake.port), clock) as q:
            job = await q.enqueue(sample_sale())
            assert await q.wait(job, 5) == "printed"
            assert q.status().state == "unknown"


async def test_reprint_says_kopia_and_originals_stay_single(
    state_dir: Path, clock: FakeClock
) -> None:
    async with FakePrinter() as fake:
        t = NetworkTransport("127.0.0.1", fake.port)
        async with running(state_dir / "print.sqlite", t, section(fake.port), clock) as q:
            first = await q.enqueue(sample_sale())
            again = await q.enqueue(sample_sale())
            copy = await q.enqueue(sample_sale(), copy=True)
            assert first == again
            assert copy != first
            assert await q.wait(copy, 5) == "printed"
            assert await q.last_original_seq() == 12
            z = await q.enqueue(sample_day_close())
            assert await q.wait(z, 5) == "printed"
            assert await q.last_original_seq() == 14
            jobs = await q.jobs()
        printed = await fake.wait_jobs(3)
    assert [is_copy(j) for j in printed] == [False, True, False]
    assert [j.reprint for j in jobs] == [False, True, False]


async def test_drawer_kick_only_while_fresh(state_dir: Path, clock: FakeClock) -> None:
    async with FakePrinter() as fake:
        t = NetworkTransport("127.0.0.1", fake.port, connect_timeout=0.5)
        printer = section(fake.port, cash_drawer=True)
        async with running(state_dir / "print.sqlite", t, printer, clock) as q:
            fresh = await q.enqueue(sample_sale(1), drawer=True)
            assert await q.wait(fresh, 5) == "printed"
            await fake.refuse()
            stale = await q.enqueue(sample_sale(2), drawer=True)
            assert await q.wait(stale, 0.2) == "queued"
            clock.advance(10.5)  # the printer comes back after the kick expired
            await fake.start()
            assert await q.wait(stale, 5) == "printed"
        jobs = await fake.wait_jobs(2)
    assert decode(jobs[0]).kicks == 1
    assert decode(jobs[1]).kicks == 0


async def test_drawer_not_kicked_when_not_configured(state_dir: Path, clock: FakeClock) -> None:
    async with FakePrinter() as fake:
        t = NetworkTransport("127.0.0.1", fake.port)
        async with running(state_dir / "print.sqlite", t, section(fake.port), clock) as q:
            job = await q.enqueue(sample_sale(), drawer=True)
            assert await q.wait(job, 5) == "printed"
        assert decode((await fake.wait_jobs(1))[0]).kicks == 0


class BreaksOnce:
    """The first send breaks off half-way (cable pulled mid-job), later ones go through."""

    def __init__(self, inner: NetworkTransport) -> None:
        self.inner = inner
        self.broke = False

    async def send(self, data: bytes) -> None:
        if not self.broke:
            self.broke = True
            await self.inner.send(data[: len(data) // 2])
            raise PrinterWriteError("connection reset mid-job")
        await self.inner.send(data)

    async def status(self) -> PrinterStatus:
        return await self.inner.status()


async def test_job_broken_off_half_way_reprints_as_copy(state_dir: Path, clock: FakeClock) -> None:
    async with FakePrinter() as fake:
        t = BreaksOnce(NetworkTransport("127.0.0.1", fake.port))
        async with running(state_dir / "print.sqlite", t, section(fake.port), clock) as q:
            job = await q.enqueue(sample_sale())
            assert await q.wait(job, 5) == "printed"
        jobs = await fake.wait_jobs(2)
    assert is_copy(jobs[1])
    assert len(jobs[0]) < len(jobs[1])  # the broken-off half was the original


async def test_unprintable_job_fails_and_does_not_block_the_queue(
    state_dir: Path, clock: FakeClock
) -> None:
    async with FakePrinter() as fake:
        t = NetworkTransport("127.0.0.1", fake.port)
        bad = section(fake.port, profile="No-Such-Printer")
        async with running(state_dir / "print.sqlite", t, bad, clock) as q:
            job = await q.enqueue(sample_sale())
            assert await q.wait(job, 5) == "failed"
            (info,) = await q.jobs()
            assert info.last_error is not None
            assert "No-Such-Printer" in info.last_error


async def test_no_printer_configured_keeps_jobs(state_dir: Path, clock: FakeClock) -> None:
    async with running(state_dir / "print.sqlite", None, PrinterSection(), clock) as q:
        job = await q.enqueue(sample_sale())
        assert await q.wait(job, 0.2) == "queued"
        assert q.status().state == "offline"


async def test_job_data_survives_reopen(state_dir: Path, clock: FakeClock) -> None:
    path = state_dir / "print.sqlite"
    async with running(path, None, PrinterSection(), clock) as q:
        job = await q.enqueue(sample_sale())
    async with FakePrinter() as fake:
        t = NetworkTransport("127.0.0.1", fake.port)
        async with running(path, t, section(fake.port), clock) as q:
            assert await q.wait(job, 5) == "printed"
        (printed,) = await fake.wait_jobs(1)
    assert printed == render(sample_sale(), section(fake.port))


async def test_prune_keeps_last_original_seq(state_dir: Path, clock: FakeClock) -> None:
    async with FakePrinter() as fake:
        t = NetworkTransport("127.0.0.1", fake.port)
        async with running(state_dir / "print.sqlite", t, section(fake.port), clock) as q:
            job = await q.enqueue(sample_sale())
            assert await q.wait(job, 5) == "printed"
            clock.advance(91 * 86400)
            assert await q.prune(90) == 1
            assert await q.jobs() == []
            assert await q.last_original_seq() == 12


# --- real crashes: a child process owns the queue and is SIGKILLed ----------------------


async def child(db: Path, port: int, mode: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.printer.queue_child",
        str(db),
        str(port),
        mode,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )


async def read_line(proc: asyncio.subprocess.Process, within: float = 20.0) -> str:
    assert proc.stdout is not None
    async with asyncio.timeout(within):
        return (await proc.stdout.readline()).decode().strip()


async def test_sigkill_between_enqueue_and_print_prints_once_after_restart(
    state_dir: Path,
) -> None:
    db = state_dir / "print.sqlite"
    async with FakePrinter() as fake:
        await fake.refuse()
        proc = await child(db, fake.port, "enqueue")
        try:
            assert (await read_line(proc)).startswith("ENQUEUED")
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        assert proc.returncode == -signal.SIGKILL
        await fake.start()
        proc = await child(db, fake.port, "run")
        assert (await read_line(proc)).startswith("PRINTED")
        assert await proc.wait() == 0
        assert len(fake.jobs) == 1
        assert not is_copy(fake.jobs[0])


async def test_sigkill_mid_job_second_print_says_kopia(state_dir: Path) -> None:
    db = state_dir / "print.sqlite"
    async with FakePrinter() as fake:
        proc = await child(db, fake.port, "crash")
        async with asyncio.timeout(20):
            assert await proc.wait() == -signal.SIGKILL
        (first,) = await fake.wait_jobs(1)
        assert not is_copy(first)
        proc = await child(db, fake.port, "run")
        assert (await read_line(proc)).startswith("PRINTED")
        assert await proc.wait() == 0
        jobs = await fake.wait_jobs(2)
    assert len(jobs) == 2
    assert is_copy(jobs[1])
    body = decode(jobs[1]).text_lines[1:-1]
    assert body == decode(first).text_lines


def test_receipt_json_in_the_queue_is_the_data(state_dir: Path) -> None:
    data = sample_sale()
    assert msgspec.json.decode(msgspec.json.encode(data))["entry"]["seq"] == 12


async def test_original_state_reports_the_entrys_own_receipt(
    state_dir: Path, clock: FakeClock
) -> None:
    async with FakePrinter() as fake:
        await fake.refuse()
        t = NetworkTransport("127.0.0.1", fake.port, connect_timeout=0.5)
        async with running(state_dir / "print.sqlite", t, section(fake.port), clock) as q:
            assert await q.original_state(12) is None
            job = await q.enqueue(sample_sale())
            assert await q.original_state(12) == "queued"
            await fake.start()
            assert await q.wait(job, 5) == "printed"
            await q.enqueue(sample_sale(), copy=True)  # a reprint does not change it
            assert await q.original_state(12) == "printed"
            assert await q.original_state(12, "void") is None


async def test_a_failing_status_listener_does_not_stop_printing(
    state_dir: Path, clock: FakeClock
) -> None:
    def broken(status: PrinterStatus) -> None:
        raise RuntimeError("screen gone")

    seen: list[str] = []
    async with FakePrinter() as fake:
        t = NetworkTransport("127.0.0.1", fake.port)
        async with running(state_dir / "print.sqlite", t, section(fake.port), clock) as q:
            q.subscribe(broken)
            unsubscribe = q.subscribe(lambda s: seen.append(s.state))
            job = await q.enqueue(sample_sale())
            assert await q.wait(job, 5) == "printed"
            unsubscribe()
            fake.mode = "cover_open"
            await fake.wait_status_queries(fake.status_queries + 6)
            assert q.status().state == "cover_open"
    assert "cover_open" not in seen


async def test_every_enqueue_wakes_an_idle_worker(state_dir: Path, clock: FakeClock) -> None:
    """With a long idle poll, a lost wake-up would leave a receipt waiting for it."""
    async with FakePrinter() as fake:
        t = NetworkTransport("127.0.0.1", fake.port)
        queue = await PrintQueue.open(
            state_dir / "print.sqlite",
            transport=t,
            printer=section(fake.port),
            clock=clock,
            idle_poll_s=60.0,
        )
        try:
            async with asyncio.TaskGroup() as tg:
                worker = tg.create_task(queue.run())
                for seq in range(1, 31):
                    job = await queue.enqueue(sample_sale(seq))
                    assert await queue.wait(job, 5) == "printed"
                worker.cancel()
        finally:
            await queue.close()
        assert len(await fake.wait_jobs(30)) == 30


async def test_silent_printer_back_from_offline_is_not_shown_offline(
    state_dir: Path, clock: FakeClock
) -> None:
    async with FakePrinter("silent") as fake:
        t = NetworkTransport("127.0.0.1", fake.port, connect_timeout=0.5, status_timeout=0.1)
        async with running(state_dir / "print.sqlite", t, section(fake.port), clock) as q:
            first = await q.enqueue(sample_sale(1))
            assert await q.wait(first, 5) == "printed"
            await fake.refuse()
            second = await q.enqueue(sample_sale(2))
            assert await q.wait(second, 0.3) == "queued"
            assert q.status().state == "offline"
            await fake.start()
            assert await q.wait(second, 5) == "printed"
            assert q.status().state == "unknown"
