"""The evdev device layer: grab, add_reader on a real fd, ENODEV, reopen, device lookup."""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator

import pytest
from evdev import ecodes as e

from config.schema import CardsSection, ReaderSection
from drivers.errors import DeviceError
from drivers.evdev_reader import EvdevReader, _matches, open_input_device
from drivers.events import CardRead, ReaderState, ReadRejected
from drivers.factory import build_reader
from ledger.clock import FakeClock
from tests.drivers.harnesses import EvdevHarness, next_event, wait_for
from tests.drivers.helpers import make_pan


@pytest.fixture
async def wedge(clock: FakeClock) -> AsyncIterator[EvdevHarness]:
    h = EvdevHarness(clock)
    async with h.evdev:
        ev = await next_event(h.evdev.events())
        assert isinstance(ev, ReaderState)
        assert ev.state == "connected"
        yield h
    h.close()


async def test_device_is_grabbed(wedge: EvdevHarness) -> None:
    assert wedge.device is not None
    assert wedge.device.grabbed


async def test_scan_qr_and_swipe_on_one_wedge(wedge: EvdevHarness) -> None:
    assert wedge.device is not None
    events = wedge.evdev.events()
    wedge.device.push(wedge.typer.type("01000018"))
    wedge.device.push(wedge.typer.type("%E?;01000019?"))
    wedge.device.push(wedge.typer.type("KM1:01-000020:1:AAAA"))
    got = [await next_event(events) for _ in range(3)]
    assert [(type(g).__name__, getattr(g, "source", None)) for g in got] == [
        ("CardRead", "barcode"),
        ("CardRead", "msr"),
        ("ReadRejected", "qr"),
    ]


async def test_scan_without_enter_ends_after_the_inter_key_timeout(wedge: EvdevHarness) -> None:
    assert wedge.device is not None
    events = wedge.evdev.events()
    wedge.device.push(wedge.typer.type("01000018", end=None))
    read = await next_event(events)  # delivered by the reader's own timer
    assert isinstance(read, CardRead)
    assert read.number == "01-000018"


async def test_syn_dropped_scan_is_refused_as_incomplete(wedge: EvdevHarness) -> None:
    assert wedge.device is not None
    events = wedge.evdev.events()
    t = wedge.typer
    wedge.device.push(t.type("0100", end=None) + t.dropped() + t.type("0018"))
    assert await next_event(events) == ReadRejected(
        reader="scanner", source="barcode", reason="incomplete"
    )


async def test_keyboard_msr_payment_card_is_refused(wedge: EvdevHarness) -> None:
    assert wedge.device is not None
    events = wedge.evdev.events()
    pan = make_pan(11)
    wedge.device.push(wedge.typer.type(f"%B{pan}^DOE/J^2812?;{pan}=2812?"))
    assert await next_event(events) == ReadRejected(
        reader="scanner", source="msr", reason="payment_card"
    )


async def test_enodev_closes_and_reopens(wedge: EvdevHarness) -> None:
    events = wedge.evdev.events()
    old = wedge.device
    assert old is not None
    await wedge.unplug()
    gone = await next_event(events)
    assert isinstance(gone, ReaderState)
    assert gone.state == "disconnected"
    assert gone.detail == "/dev/input/by-id/usb-Test_Scanner-event-kbd: No such device"
    assert old.closed
    opens = wedge.opens
    await wait_for(lambda: wedge.opens >= opens + 3)  # retrying, with backoff
    assert wedge.evdev.state.state == "disconnected"
    await wedge.replug()
    back = await next_event(events)
    assert isinstance(back, ReaderState)
    assert back.state == "connected"
    assert wedge.device is not old
    assert wedge.device is not None
    assert wedge.device.grabbed


def test_open_input_device_errors_are_translated() -> None:
    with pytest.raises(DeviceError) as err:
        open_input_device("/dev/input/by-id/usb-Nothing-event-kbd")
    assert err.value.errno == errno.ENOENT
    with pytest.raises(DeviceError) as err2:
        open_input_device("Zebra DS2208 that is not here")
    assert err2.value.errno == errno.ENODEV


def test_match_by_name_or_vendor_product() -> None:
    assert _matches("Honeywell Imaging Scanner", 0x0C2E, 0x0B61, "honeywell")
    assert _matches("Honeywell Imaging Scanner", 0x0C2E, 0x0B61, "0c2e:0b61")
    assert not _matches("Honeywell Imaging Scanner", 0x0C2E, 0x0B61, "0c2e:0b62")
    assert not _matches("AT keyboard", 1, 1, "scanner")


async def test_build_reader_makes_an_evdev_reader(clock: FakeClock) -> None:
    section = ReaderSection(name="qr", kind="evdev", path="/dev/input/by-id/x", layout="pl")
    reader = build_reader(section, CardsSection(), clock)
    assert isinstance(reader, EvdevReader)
    assert reader.wedge.keymap.name == "pl"
    assert reader.wedge.timeout_s == pytest.approx(0.08)
    async with reader:
        ev = await next_event(reader.events())
    assert isinstance(ev, ReaderState)
    assert ev.state == "disconnected"
    assert ev.detail is not None
    assert ev.detail.startswith("/dev/input/by-id/x")


def test_end_keys_cover_keypad_enter_and_tab() -> None:
    from drivers.keymap import END_KEYS

    assert {e.KEY_ENTER, e.KEY_KPENTER, e.KEY_TAB} <= END_KEYS


class _Info:
    vendor, product = 0x0C2E, 0x0B61


class _Dev:
    def __init__(self, path: str) -> None:
        if path == "/dev/input/event0":
            raise PermissionError(errno.EACCES, "Permission denied")
        self.path = path
        self.name = {"/dev/input/event1": "AT keyboard"}.get(path, "Honeywell Scanner")
        self.info = _Info()
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_lookup_by_name_skips_unreadable_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    import evdev

    paths = ["/dev/input/event0", "/dev/input/event1", "/dev/input/event2"]
    monkeypatch.setattr(evdev, "list_devices", lambda: paths)
    monkeypatch.setattr(evdev, "InputDevice", _Dev)
    dev = open_input_device("honeywell")
    assert isinstance(dev, _Dev)
    assert dev.path == "/dev/input/event2"
    assert open_input_device("0c2e:0b61") is not None
    with pytest.raises(DeviceError) as err:
        open_input_device("zebra")
    # Nothing matched and one device could not be read: the likely cause is permissions.
    assert err.value.errno == errno.EACCES
