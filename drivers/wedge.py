"""Keyboard-wedge key events to scanned text (pure: the device layer feeds it).

A scan ends on Enter, keypad Enter, Tab, or an inter-key timeout. ``SYN_DROPPED``
means the kernel lost events: the whole scan is discarded, including what follows
the drop up to the scan's end, so a scan with missing characters is never used.
Key repeats are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from evdev import InputEvent
from evdev import ecodes as e

from drivers.errors import DecodeError
from drivers.keymap import (
    ALTGR_KEY,
    CAPSLOCK_KEY,
    END_KEYS,
    IGNORED_KEYS,
    SHIFT_KEYS,
    KeyMap,
)

KEY_UP, KEY_DOWN, KEY_HOLD = 0, 1, 2
MAX_SCAN_CHARS = 512
# A timed-out fragment this short is a stray key press, not a scan: dropped silently.
MIN_TIMED_OUT_CHARS = 4


class WedgeError(DecodeError):
    """A scan that was discarded (events lost, unknown keys, too long)."""


@dataclass(frozen=True)
class Scan:
    """One finished scan: its text, or the reason it was discarded."""

    text: str | None
    error: WedgeError | None = None


class WedgeDecoder:
    """Feed evdev events; collect finished scans."""

    def __init__(
        self, keymap: KeyMap, inter_key_timeout_s: float, *, prefix: str = "", suffix: str = ""
    ) -> None:
        self.keymap = keymap
        self.timeout_s = inter_key_timeout_s
        # Characters some scanners are set up to add around each scan.
        self.prefix = prefix
        self.suffix = suffix
        self._chars: list[str] = []
        self._shift: set[int] = set()
        self._altgr = False
        self._caps = False
        self._dropped = False  # events lost in this scan
        self._garbled = False
        self._syncing = False  # after SYN_DROPPED, until the next SYN_REPORT
        self._last_key_at: float | None = None

    @property
    def pending(self) -> bool:
        """A scan has started and not ended yet."""
        return bool(self._chars) or self._dropped or self._garbled

    def _finish(self, *, timed_out: bool) -> Scan | None:
        chars, dropped, garbled = self._chars, self._dropped, self._garbled
        self._chars, self._dropped, self._garbled = [], False, False
        self._last_key_at = None
        if dropped:
            return Scan(None, WedgeError("incomplete"))
        if garbled:
            return Scan(None, WedgeError("garbled"))
        if not chars or (timed_out and len(chars) < MIN_TIMED_OUT_CHARS):
            return None
        text = "".join(chars)
        if self.prefix and text.startswith(self.prefix):
            text = text[len(self.prefix) :]
        if self.suffix and text.endswith(self.suffix):
            text = text[: -len(self.suffix)]
        return Scan(text) if text else None

    def expire(self) -> Scan | None:
        """The inter-key timeout passed with no key: end the pending scan."""
        if not self.pending:
            return None
        return self._finish(timed_out=True)

    def feed(self, ev: InputEvent) -> list[Scan]:
        """Process one event; return the scans it finished (usually none)."""
        out: list[Scan] = []
        if ev.type == e.EV_SYN:
            if ev.code == e.SYN_DROPPED:
                self._syncing = True
                self._dropped = True
                # Held modifiers may have been released while events were lost.
                self._shift.clear()
                self._altgr = False
            elif ev.code == e.SYN_REPORT:
                self._syncing = False
            return out
        if ev.type != e.EV_KEY or self._syncing:
            return out
        code, value = ev.code, ev.value
        if code in SHIFT_KEYS:
            if value == KEY_UP:
                self._shift.discard(code)
            else:
                self._shift.add(code)
            return out
        if code == ALTGR_KEY:
            self._altgr = value != KEY_UP
            return out
        if value != KEY_DOWN:  # releases and auto-repeats type nothing
            return out
        if code == CAPSLOCK_KEY:
            self._caps = not self._caps
            return out
        if code in IGNORED_KEYS:
            return out
        now = ev.timestamp()
        if self._last_key_at is not None and now - self._last_key_at > self.timeout_s:
            done = self._finish(timed_out=True)
            if done is not None:
                out.append(done)
        if code in END_KEYS:
            done = self._finish(timed_out=False)
            if done is not None:
                out.append(done)
            return out
        self._last_key_at = now
        ch = self.keymap.char(code, shift=bool(self._shift), caps=self._caps, altgr=self._altgr)
        if ch is None or len(self._chars) >= MAX_SCAN_CHARS:
            self._garbled = True
        else:
            self._chars.append(ch)
        return out
