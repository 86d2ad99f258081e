"""Keyboard-wedge decoding driven by real evdev.InputEvent sequences."""

from __future__ import annotations

from evdev import InputEvent
from evdev import ecodes as e

from drivers.keymap import PL, US
from drivers.wedge import Scan, WedgeDecoder
from tests.drivers.helpers import KeyTyper


def run(dec: WedgeDecoder, events: list[InputEvent]) -> list[Scan]:
    out: list[Scan] = []
    for ev in events:
        out += dec.feed(ev)
    return out


def texts(scans: list[Scan]) -> list[str | None]:
    return [
        s.text if s.text is not None else f"!{s.error.reason if s.error else ''}" for s in scans
    ]


def test_scanner_at_2ms_per_key_ends_on_enter() -> None:
    dec = WedgeDecoder(US, 0.08)
    assert texts(run(dec, KeyTyper().type("01000018"))) == ["01000018"]
    assert not dec.pending


def test_keypad_digits_and_keypad_enter() -> None:
    dec = WedgeDecoder(US, 0.08)
    typer = KeyTyper()
    assert texts(run(dec, typer.type("01000018", keypad=True, end=e.KEY_KPENTER))) == ["01000018"]


def test_tab_ends_a_scan() -> None:
    dec = WedgeDecoder(US, 0.08)
    assert texts(run(dec, KeyTyper().type("01000018", end=e.KEY_TAB))) == ["01000018"]


def test_shifted_characters_of_a_swipe() -> None:
    dec = WedgeDecoder(US, 0.08)
    swipe = "%MIESZKANIEC^KOWALSKA/ANNA?;01000018=2712?"
    assert texts(run(dec, KeyTyper().type(swipe))) == [swipe]


def test_caps_lock_inverts_letters_but_not_digits() -> None:
    dec = WedgeDecoder(US, 0.08)
    typer = KeyTyper()
    events = list(typer.tap(e.KEY_CAPSLOCK, 0.002)) + typer.type("abc1")
    events += list(typer.tap(e.KEY_CAPSLOCK, 0.002)) + typer.type("abc1")
    assert texts(run(dec, events)) == ["ABC1", "abc1"]


def test_altgr_in_polish_layout() -> None:
    dec = WedgeDecoder(PL, 0.08)
    assert texts(run(dec, KeyTyper("pl").type("Łódź-ŻÓŁW"))) == ["Łódź-ŻÓŁW"]


def test_altgr_letter_on_us_layout_is_garbled() -> None:
    dec = WedgeDecoder(US, 0.08)
    typer = KeyTyper()
    events = list(typer.hold(e.KEY_RIGHTALT, True)) + list(typer.tap(e.KEY_A, 0.002))
    events += list(typer.hold(e.KEY_RIGHTALT, False)) + typer.type("12345")
    assert texts(run(dec, events)) == ["!garbled"]


def test_syn_dropped_discards_the_whole_scan_including_its_tail() -> None:
    dec = WedgeDecoder(US, 0.08)
    typer = KeyTyper()
    events = typer.type("0100", end=None) + typer.dropped() + typer.type("0018")
    # The tail alone could have been a valid shorter number: it must not be used.
    assert texts(run(dec, events)) == ["!incomplete"]
    assert texts(run(dec, typer.type("01000018"))) == ["01000018"]


def test_events_after_syn_dropped_are_ignored_until_syn_report() -> None:
    dec = WedgeDecoder(US, 0.08)
    typer = KeyTyper()
    stale = [InputEvent(1, 0, e.EV_KEY, e.KEY_9, 1)]
    events = typer.dropped() + stale + [InputEvent(1, 0, e.EV_SYN, e.SYN_REPORT, 0)]
    events += typer.type("01000018")
    assert texts(run(dec, events)) == ["!incomplete"]


def test_key_repeats_are_ignored() -> None:
    dec = WedgeDecoder(US, 0.08)
    typer = KeyTyper()
    events = typer.type("01", end=None)
    events.append(InputEvent(int(typer.t), 0, e.EV_KEY, e.KEY_1, 2))  # autorepeat of '1'
    events += typer.type("000018")
    assert texts(run(dec, events)) == ["01000018"]


def test_timeout_terminated_scan() -> None:
    dec = WedgeDecoder(US, 0.08)
    typer = KeyTyper()
    assert run(dec, typer.type("01000018", end=None)) == []
    assert dec.pending
    # Silence: the transport's timer calls expire().
    assert texts([s for s in [dec.expire()] if s]) == ["01000018"]
    # Or the next scan's first key, long after, ends the previous one.
    typer.pause(0.5)
    events = typer.type("01000019", end=None)
    typer.pause(0.5)
    events += typer.type("01000020")
    assert texts(run(dec, events)) == ["01000019", "01000020"]


def test_human_typing_is_not_a_scan() -> None:
    dec = WedgeDecoder(US, 0.08)
    scans = run(dec, KeyTyper().type("01000018", step=0.18))
    # Every key is its own fragment, too short to be a scan; the Enter ends an empty one.
    assert scans == []
    assert dec.expire() is None


def test_modifiers_never_stick_after_a_drop() -> None:
    dec = WedgeDecoder(US, 0.08)
    typer = KeyTyper()
    events = list(typer.hold(e.KEY_LEFTSHIFT, True)) + typer.dropped()
    events.append(InputEvent(int(typer.t), 0, e.EV_SYN, e.SYN_REPORT, 0))
    events += list(typer.tap(e.KEY_ENTER, 0.002))  # ends the dropped scan
    events += typer.type("abcd")
    assert texts(run(dec, events)) == ["!incomplete", "abcd"]


def test_configured_prefix_and_suffix_are_stripped() -> None:
    dec = WedgeDecoder(US, 0.08, prefix="]C0", suffix="#")
    assert texts(run(dec, KeyTyper().type("]C001000018#"))) == ["01000018"]
    # Without them the text is left as it came.
    assert texts(run(dec, KeyTyper().type("01000019"))) == ["01000019"]
