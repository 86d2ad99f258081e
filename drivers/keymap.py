"""Key codes to characters for keyboard-wedge scanners (evdev has no keymap built in).

Layouts: ``us`` and ``pl`` (Polish programmer's: US plus AltGr letters ą ć ę ł ń ó ś ź ż).
Keypad keys give their digits whatever NumLock says: a scanner sending keypad codes
means digits.
"""

from __future__ import annotations

from dataclasses import dataclass

from evdev import ecodes as e

# code -> (plain, shifted)
_US: dict[int, tuple[str, str]] = {
    e.KEY_1: ("1", "!"),
    e.KEY_2: ("2", "@"),
    e.KEY_3: ("3", "#"),
    e.KEY_4: ("4", "$"),
    e.KEY_5: ("5", "%"),
    e.KEY_6: ("6", "^"),
    e.KEY_7: ("7", "&"),
    e.KEY_8: ("8", "*"),
    e.KEY_9: ("9", "("),
    e.KEY_0: ("0", ")"),
    e.KEY_MINUS: ("-", "_"),
    e.KEY_EQUAL: ("=", "+"),
    e.KEY_LEFTBRACE: ("[", "{"),
    e.KEY_RIGHTBRACE: ("]", "}"),
    e.KEY_SEMICOLON: (";", ":"),
    e.KEY_APOSTROPHE: ("'", '"'),
    e.KEY_GRAVE: ("`", "~"),
    e.KEY_BACKSLASH: ("\\", "|"),
    e.KEY_102ND: ("\\", "|"),
    e.KEY_COMMA: (",", "<"),
    e.KEY_DOT: (".", ">"),
    e.KEY_SLASH: ("/", "?"),
    e.KEY_SPACE: (" ", " "),
}
for _name in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
    _US[getattr(e, f"KEY_{_name}")] = (_name.lower(), _name)

KEYPAD: dict[int, str] = {
    e.KEY_KP0: "0",
    e.KEY_KP1: "1",
    e.KEY_KP2: "2",
    e.KEY_KP3: "3",
    e.KEY_KP4: "4",
    e.KEY_KP5: "5",
    e.KEY_KP6: "6",
    e.KEY_KP7: "7",
    e.KEY_KP8: "8",
    e.KEY_KP9: "9",
    e.KEY_KPDOT: ".",
    e.KEY_KPMINUS: "-",
    e.KEY_KPPLUS: "+",
    e.KEY_KPASTERISK: "*",
    e.KEY_KPSLASH: "/",
    e.KEY_KPEQUAL: "=",
}

# Polish programmer's layout: AltGr + letter -> (plain, shifted).
_PL_ALTGR: dict[int, tuple[str, str]] = {
    e.KEY_A: ("ą", "Ą"),
    e.KEY_C: ("ć", "Ć"),
    e.KEY_E: ("ę", "Ę"),
    e.KEY_L: ("ł", "Ł"),
    e.KEY_N: ("ń", "Ń"),
    e.KEY_O: ("ó", "Ó"),
    e.KEY_S: ("ś", "Ś"),
    e.KEY_X: ("ź", "Ź"),
    e.KEY_Z: ("ż", "Ż"),
}

SHIFT_KEYS = frozenset({e.KEY_LEFTSHIFT, e.KEY_RIGHTSHIFT})
ALTGR_KEY = e.KEY_RIGHTALT
CAPSLOCK_KEY = e.KEY_CAPSLOCK
END_KEYS = frozenset({e.KEY_ENTER, e.KEY_KPENTER, e.KEY_TAB})
# Keys that change nothing in a scan (held or pressed by scanners for their own reasons).
IGNORED_KEYS = frozenset(
    {
        e.KEY_LEFTCTRL,
        e.KEY_RIGHTCTRL,
        e.KEY_LEFTALT,
        e.KEY_LEFTMETA,
        e.KEY_RIGHTMETA,
        e.KEY_NUMLOCK,
        e.KEY_SCROLLLOCK,
    }
)


@dataclass(frozen=True)
class KeyMap:
    """One layout: ``char()`` gives the character a key press types, or None."""

    name: str
    base: dict[int, tuple[str, str]]
    altgr: dict[int, tuple[str, str]]

    def char(self, code: int, *, shift: bool, caps: bool, altgr: bool) -> str | None:
        if code in KEYPAD:
            return KEYPAD[code]
        if altgr:
            pair = self.altgr.get(code)
            if pair is None:
                return None
            upper = shift != caps
            return pair[1] if upper else pair[0]
        pair = self.base.get(code)
        if pair is None:
            return None
        plain, shifted = pair
        if plain.isalpha():
            return shifted if shift != caps else plain
        return shifted if shift else plain


US = KeyMap("us", _US, {})
PL = KeyMap("pl", _US, _PL_ALTGR)
LAYOUTS: dict[str, KeyMap] = {"us": US, "pl": PL}
