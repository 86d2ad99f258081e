"""Serial byte stream to framed reads (pure; the transport feeds it and runs the timer).

A frame ends at CR, LF, ETX or the configured suffix. Readers that send no terminator
end a swipe with the ``?`` end sentinel: such a frame is complete when the line goes
quiet. Silence after anything else is half a swipe: discarded, never half-used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drivers.classify import TextSource, classify
from drivers.events import RejectReason

STX, ETX = 0x02, 0x03
TERMINATORS = frozenset({0x0D, 0x0A, ETX})
MAX_FRAME_BYTES = 1024
_SPECIAL = re.compile(rb"[\x02\x03\r\n]")


@dataclass(frozen=True)
class Frame:
    """A complete read (``text``) or a discarded one (``error``)."""

    text: str | None
    error: RejectReason | None = None
    source: TextSource = "msr"  # for a discarded frame: what its first bytes looked like


class SerialFramer:
    """Split bytes into frames; call :meth:`expire` after the inter-byte timeout."""

    def __init__(self, prefix: str = "", suffix: str = "") -> None:
        self._prefix = prefix.encode("latin-1")
        self._suffix = suffix.encode("latin-1")
        self._buf = bytearray()
        self._overflow = False

    @property
    def pending(self) -> bool:
        return bool(self._buf) or self._overflow

    def _discard(self, reason: RejectReason) -> Frame:
        source = classify(bytes(self._buf[:4]).decode("latin-1"))
        self._buf.clear()
        self._overflow = False
        return Frame(None, reason, source)

    def _take(self) -> Frame | None:
        raw, overflow = bytes(self._buf), self._overflow
        self._buf.clear()
        self._overflow = False
        if overflow:
            return Frame(None, "garbled", classify(raw[:4].decode("latin-1")))
        if self._prefix and raw.startswith(self._prefix):
            raw = raw[len(self._prefix) :]
        raw = raw.strip(b"\r\n")
        if not raw:
            return None
        # latin-1 maps every byte; decoders refuse what is not printable ASCII.
        return Frame(raw.decode("latin-1"))

    def _extend(self, chunk: bytes) -> None:
        room = MAX_FRAME_BYTES - len(self._buf)
        if len(chunk) > room:
            self._overflow = True
            chunk = chunk[: max(room, 0)]
        self._buf += chunk

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return the frames they complete (usually none or one)."""
        if self._suffix:
            return self.feed_bytewise(data)
        out: list[Frame] = []
        pos = 0
        for m in _SPECIAL.finditer(data):
            self._extend(data[pos : m.start()])
            pos = m.end()
            if data[m.start()] == STX:
                if self.pending:
                    out.append(self._discard("incomplete"))
                continue
            frame = self._take()
            if frame is not None:
                out.append(frame)
        self._extend(data[pos:])
        return out

    def feed_bytewise(self, data: bytes) -> list[Frame]:
        """:meth:`feed` one byte at a time (needed for a multi-byte suffix)."""
        out: list[Frame] = []
        for b in data:
            if b == STX:
                # A new frame starts: whatever came before it never ended.
                if self.pending:
                    out.append(self._discard("incomplete"))
                continue
            if b in TERMINATORS:
                frame = self._take()
                if frame is not None:
                    out.append(frame)
                continue
            if len(self._buf) >= MAX_FRAME_BYTES:
                self._overflow = True
                continue
            self._buf.append(b)
            if self._suffix and self._buf.endswith(self._suffix):
                del self._buf[-len(self._suffix) :]
                frame = self._take()
                if frame is not None:
                    out.append(frame)
        return out

    def expire(self) -> Frame | None:
        """The line went quiet: a swipe ending in ``?`` is complete, anything else is not."""
        if not self.pending:
            return None
        if not self._overflow and self._buf.endswith(b"?"):
            return self._take()
        return self._discard("incomplete")
