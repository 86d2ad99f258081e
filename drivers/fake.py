"""An in-memory reader shipped as API, for tests and the demo.

It runs the same decoders as the real transports: bytes go through the serial framer
and the swipe/barcode/QR decoders, key events through the wedge decoder, UIDs through
the contactless checks. ``unplug()``/``plug()`` simulate the cable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import Self

from evdev import InputEvent

from drivers.base import ReaderCore
from drivers.classify import TextDecoder
from drivers.deliver import deliver_frame, deliver_scan, deliver_text, deliver_uid
from drivers.events import ReaderEvent, ReaderState
from drivers.framing import SerialFramer
from drivers.keymap import LAYOUTS
from drivers.wedge import WedgeDecoder
from ledger.clock import Clock


class FakeReader:
    """A reader driven by method calls; input pushed while unplugged is lost, as on a cable."""

    def __init__(
        self,
        name: str,
        decoder: TextDecoder,
        clock: Clock,
        *,
        kind: str = "fake",
        dedupe_window_s: float = 1.5,
        layout: str = "us",
        inter_key_timeout_s: float = 0.08,
        plugged: bool = True,
        prefix: str = "",
        suffix: str = "",
    ) -> None:
        self.name = name
        self.kind = kind
        self.decoder = decoder
        self.core = ReaderCore(name, kind, clock, dedupe_window_s)
        self.framer = SerialFramer(prefix, suffix)
        self.wedge = WedgeDecoder(
            LAYOUTS[layout], inter_key_timeout_s, prefix=prefix, suffix=suffix
        )
        self._plugged_at_start = plugged
        self._plugged = False
        self._prefix, self._suffix = prefix, suffix

    @property
    def state(self) -> ReaderState:
        return self.core.state

    def events(self) -> AsyncIterator[ReaderEvent]:
        return self.core.events()

    async def __aenter__(self) -> Self:
        if self._plugged_at_start:
            self.plug()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.core.close()

    @property
    def plugged(self) -> bool:
        return self._plugged

    def plug(self) -> None:
        self._plugged = True
        self.core.set_state("connected")

    def unplug(self) -> None:
        """The cable is pulled: half-read input is dropped."""
        self._plugged = False
        self.framer = SerialFramer(self._prefix, self._suffix)
        self.wedge.expire()
        self.core.set_state("disconnected", "unplugged")

    def push_bytes(self, data: bytes) -> None:
        """Bytes as a serial reader sends them."""
        if self._plugged:
            for frame in self.framer.feed(data):
                deliver_frame(self.core, self.decoder, frame)

    def silence(self) -> None:
        """The inter-byte / inter-key timeout passed."""
        frame = self.framer.expire()
        if frame is not None:
            deliver_frame(self.core, self.decoder, frame)
        scan = self.wedge.expire()
        if scan is not None:
            deliver_scan(self.core, self.decoder, scan)

    def push_keys(self, events: Iterable[InputEvent]) -> None:
        """Key events as a keyboard-wedge device sends them."""
        if self._plugged:
            for ev in events:
                for scan in self.wedge.feed(ev):
                    deliver_scan(self.core, self.decoder, scan)

    def push_text(self, text: str) -> None:
        """A whole framed read (what a scanner sends between terminators)."""
        if self._plugged:
            deliver_text(self.core, self.decoder, text)

    def push_uid(self, uid: bytes) -> None:
        """A contactless card tapped."""
        if self._plugged:
            deliver_uid(self.core, uid)
