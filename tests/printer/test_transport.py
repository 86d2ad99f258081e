"""Transports: one conformance suite over a loopback TCP printer, real ptys and a file."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.schema import PrinterSection
from printer.layout import render
from printer.samples import sample_sale
from printer.transport import (
    DeviceTransport,
    FileTransport,
    NetworkTransport,
    PrinterOffline,
    PrinterStatus,
    SerialTransport,
    Transport,
    build_transport,
    parse_status,
)
from tests.printer.fake_printer import FakePrinter, Mode
from tests.printer.pty_printer import PtyPrinter

RECEIPT = render(sample_sale(), PrinterSection())
KINDS = ["network", "serial", "usb"]


@dataclass
class Rig:
    """A transport and the printer at its far end."""

    transport: Transport
    set_mode: Callable[[Mode], None]
    received: Callable[[int], asyncio.Future[bytes] | asyncio.Task[bytes]]


@pytest.fixture(params=KINDS)
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    kind: str = request.param
    if kind == "network":
        async with FakePrinter() as fake:

            def set_net(mode: Mode) -> None:
                fake.mode = mode

            async def net_received(size: int) -> bytes:
                jobs = await fake.wait_jobs(1)
                assert len(jobs[0]) >= size
                return jobs[0]

            yield Rig(
                NetworkTransport("127.0.0.1", fake.port, status_timeout=0.2),
                set_net,
                lambda n: asyncio.ensure_future(net_received(n)),
            )
        return
    pty = PtyPrinter()

    def set_pty(mode: Mode) -> None:
        pty.mode = mode

    transport: Transport = (
        SerialTransport(pty.path, 19200, status_timeout=0.2)
        if kind == "serial"
        else DeviceTransport(pty.path, status_timeout=0.2)
    )
    try:
        yield Rig(transport, set_pty, lambda n: asyncio.ensure_future(pty.wait_received(n)))
    finally:
        pty.close()


async def test_send_delivers_the_exact_bytes(rig: Rig) -> None:
    await rig.transport.send(RECEIPT)
    assert await rig.received(len(RECEIPT)) == RECEIPT


@pytest.mark.parametrize(
    ("mode", "state"),
    [
        ("online", "online"),
        ("paper_near_end", "paper_near_end"),
        ("paper_out", "paper_out"),
        ("cover_open", "cover_open"),
        ("silent", "unknown"),
    ],
)
async def test_status_follows_the_printers_answers(rig: Rig, mode: Mode, state: str) -> None:
    rig.set_mode(mode)
    assert (await rig.transport.status()).state == state


async def test_silent_printer_is_unknown_never_online(rig: Rig) -> None:
    rig.set_mode("silent")
    status = await rig.transport.status()
    assert status.state == "unknown"
    assert not status.detail.startswith("online")
    assert status.can_print  # clones that never answer still get their receipts


async def test_network_printer_switched_off() -> None:
    async with FakePrinter() as fake:
        await fake.refuse()
        t = NetworkTransport("127.0.0.1", fake.port, connect_timeout=1.0)
        with pytest.raises(PrinterOffline):
            await t.send(RECEIPT)
        assert (await t.status()).state == "offline"
        await fake.start()  # switched on again, same port
        await t.send(RECEIPT)
        assert await fake.wait_jobs(1) == [RECEIPT]


async def test_status_and_job_never_share_a_connection() -> None:
    async with FakePrinter() as fake:
        t = NetworkTransport("127.0.0.1", fake.port)
        await asyncio.gather(t.status(), t.send(RECEIPT), t.status())
        assert await fake.wait_jobs(1) == [RECEIPT]
        assert fake.status_queries == 6
        assert fake.connections == 3


@pytest.mark.parametrize("kind", ["serial", "usb"])
async def test_missing_device_is_offline(kind: str, tmp_path: Path) -> None:
    path = str(tmp_path / "ttyUSB9")
    t: Transport = SerialTransport(path, 9600) if kind == "serial" else DeviceTransport(path)
    with pytest.raises(PrinterOffline):
        await t.send(RECEIPT)
    assert (await t.status()).state == "offline"


async def test_file_transport_appends(tmp_path: Path) -> None:
    path = tmp_path / "printer.bin"
    t = FileTransport(str(path))
    await t.send(b"one")
    await t.send(b"two")
    assert path.read_bytes() == b"onetwo"
    assert (await t.status()).state == "online"
    gone = FileTransport(str(tmp_path / "no" / "such" / "dir" / "p.bin"))
    assert (await gone.status()).state == "offline"
    with pytest.raises(PrinterOffline):
        await gone.send(b"x")


def test_build_transport_per_kind(tmp_path: Path) -> None:
    assert build_transport(PrinterSection(kind="none")) is None
    assert isinstance(build_transport(PrinterSection(kind="network")), NetworkTransport)
    p = str(tmp_path / "x")
    assert isinstance(build_transport(PrinterSection(kind="serial", path=p)), SerialTransport)
    assert isinstance(build_transport(PrinterSection(kind="usb", path=p)), DeviceTransport)
    assert isinstance(build_transport(PrinterSection(kind="file", path=p)), FileTransport)


def test_parse_status_rejects_bytes_that_are_not_status() -> None:
    assert parse_status(0x00, None, None).state == "unknown"
    assert parse_status(None, None, None) == PrinterStatus("unknown", "no answer to DLE EOT")
    assert parse_status(0x12, None, None).state == "online"  # printers that answer n=1 only
    assert parse_status(0x1A, 0x52, 0x12).state == "offline"


def test_status_messages_are_polish() -> None:
    assert PrinterStatus("paper_out").message == "Brak papieru"


async def test_usb_device_transport_on_a_fifo(tmp_path: Path) -> None:
    """Any character-like special file works, not only ttys."""
    fifo = tmp_path / "lp0"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        t = DeviceTransport(str(fifo))
        await t.send(b"hello")
        assert os.read(reader, 10) == b"hello"
    finally:
        os.close(reader)


@given(
    printer=st.none() | st.integers(0, 255),
    cause=st.none() | st.integers(0, 255),
    paper=st.none() | st.integers(0, 255),
)
def test_parse_status_says_online_only_for_a_clean_answer(
    printer: int | None, cause: int | None, paper: int | None
) -> None:
    status = parse_status(printer, cause, paper)
    if status.state in ("online", "paper_near_end"):
        assert printer is not None
        assert printer & 0x93 == 0x12
        assert not printer & 0x08  # not offline
    if printer is None:
        assert status.state == "unknown"
    assert status.message  # every state has Polish text for the screen
