"""Contactless reads through a real pcscd with vsmartcard-vpcd and a virtual card."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from config.backoff import Backoff
from drivers.events import CardRead, ReaderState, ReadRejected
from drivers.pcsc import PcscReader, uid_from_response
from ledger.clock import FakeClock
from tests.drivers.harnesses import next_event, tap, wait_for, wait_reader_empty
from tests.drivers.pcsc_harness import READER_NAME, PcscdProcess, VirtualCard


@pytest.fixture
async def nfc(pcscd: PcscdProcess, clock: FakeClock) -> AsyncIterator[PcscReader]:
    await wait_reader_empty()
    reader = PcscReader("nfc", READER_NAME, clock, dedupe_window_s=0, backoff=Backoff(0.02, 0.2))
    async with reader:
        first = await next_event(reader.events())
        assert isinstance(first, ReaderState)
        assert first.state == "connected"
        yield reader


async def test_tap_remove_tap_again(nfc: PcscReader, pcscd: PcscdProcess) -> None:
    events = nfc.events()
    card = await tap(pcscd, bytes.fromhex("04a1b2c3d4e5f6"))
    assert card.apdus == [bytes.fromhex("ffca000000")]
    read = await next_event(events)
    assert isinstance(read, CardRead)
    assert (read.source, read.uid, read.number) == ("nfc", "04A1B2C3D4E5F6", None)
    await tap(pcscd, bytes.fromhex("04a1b2c3d4e5f6"))
    again = await next_event(events)
    assert isinstance(again, CardRead)
    assert again.uid == "04A1B2C3D4E5F6"


async def test_random_uid_of_a_phone_is_not_an_identity(
    nfc: PcscReader, pcscd: PcscdProcess
) -> None:
    events = nfc.events()
    await tap(pcscd, bytes.fromhex("08123456"))
    assert await next_event(events) == ReadRejected(
        reader="nfc", source="nfc", reason="not_an_identity"
    )


async def test_card_removed_mid_apdu_gives_no_read_and_the_next_tap_works(
    nfc: PcscReader, pcscd: PcscdProcess
) -> None:
    events = nfc.events()
    gone = await tap(pcscd, bytes.fromhex("04000001"), vanish_on_apdu=True)
    assert gone.apdus  # the reader did ask, and got no answer
    await tap(pcscd, bytes.fromhex("04000002"))
    read = await next_event(events)
    # Nothing was delivered for the vanished card: the next event is the second card.
    assert isinstance(read, CardRead)
    assert read.uid == "04000002"
    assert nfc.state.state == "connected"


async def test_card_on_the_reader_at_start_is_read(pcscd: PcscdProcess, clock: FakeClock) -> None:
    card = VirtualCard(pcscd.port, bytes.fromhex("04777777"))
    async with card:
        await wait_for(card_present)
        reader = PcscReader("nfc", READER_NAME, clock, dedupe_window_s=0)
        async with reader:
            events = reader.events()
            got = [await next_event(events) for _ in range(2)]
    assert isinstance(got[1], CardRead)
    assert got[1].uid == "04777777"
    # pcscd polls presence: let it see the card gone before the next test taps one.
    await wait_reader_empty()


def card_present() -> bool:
    from smartcard import scard

    rc, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    try:
        rc, res = scard.SCardGetStatusChange(ctx, 0, [(READER_NAME, scard.SCARD_STATE_UNAWARE)])
        return rc == scard.SCARD_S_SUCCESS and bool(res[0][1] & scard.SCARD_STATE_PRESENT)
    finally:
        scard.SCardReleaseContext(ctx)


async def test_pcscd_restart_mid_session(nfc: PcscReader, pcscd: PcscdProcess) -> None:
    events = nfc.events()
    await tap(pcscd, bytes.fromhex("04000010"))
    assert isinstance(await next_event(events), CardRead)
    await asyncio.to_thread(pcscd.restart)
    states: list[str] = []
    while len(states) < 2:
        ev = await next_event(events)
        assert isinstance(ev, ReaderState)
        states.append(ev.state)
    assert states == ["error", "connected"]
    await tap(pcscd, bytes.fromhex("04000011"))
    read = await next_event(events)
    assert isinstance(read, CardRead)
    assert read.uid == "04000011"


async def test_reader_gone_and_back_while_pcscd_runs(nfc: PcscReader, pcscd: PcscdProcess) -> None:
    events = nfc.events()
    pcscd.with_reader = False
    try:
        await asyncio.to_thread(pcscd.restart)
        states = [await next_event(events) for _ in range(2)]
        assert [s.state for s in states if isinstance(s, ReaderState)] == ["error", "disconnected"]
        assert isinstance(states[1], ReaderState)
        assert states[1].detail == f"no reader matching {READER_NAME!r}"
    finally:
        pcscd.with_reader = True
        await asyncio.to_thread(pcscd.restart)
    back = [await next_event(events) for _ in range(2)]
    assert [s.state for s in back if isinstance(s, ReaderState)] == ["error", "connected"]
    await tap(pcscd, bytes.fromhex("04000020"))
    read = await next_event(events)
    assert isinstance(read, CardRead)
    assert read.uid == "04000020"


async def test_no_matching_reader_is_disconnected(pcscd: PcscdProcess, clock: FakeClock) -> None:
    reader = PcscReader("nfc", "ACR122U", clock)
    async with reader:
        ev = await next_event(reader.events())
    assert isinstance(ev, ReaderState)
    assert ev.state == "disconnected"
    assert ev.detail == "no reader matching 'ACR122U'"


async def test_close_is_prompt_thanks_to_scard_cancel(nfc: PcscReader) -> None:
    await asyncio.sleep(0.05)  # let the thread settle into SCardGetStatusChange
    t0 = time.monotonic()
    await nfc.__aexit__(None, None, None)
    # Without SCardCancel the thread would sit out its 1 s wait.
    assert time.monotonic() - t0 < 0.5


def test_uid_from_response() -> None:
    assert uid_from_response([0x04, 0xA1, 0x90, 0x00]) == b"\x04\xa1"
    assert uid_from_response([0x90, 0x00]) is None
    assert uid_from_response([0x04, 0x6A, 0x82]) is None
    assert uid_from_response([]) is None
