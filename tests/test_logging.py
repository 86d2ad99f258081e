"""Logging: card numbers masked, payment cards/tracks and secrets never written, JSON lines."""

from __future__ import annotations

import io
import json
import random
import sys
from collections.abc import Iterator

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from config.logging import configure_logging, mask_text


def luhn_pan(prefix: str, length: int, rng: random.Random) -> str:
    """A Luhn-valid test card number, built here so none is stored in the repository."""
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # these get doubled once the check digit is appended
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


def luhn_ok(number: str) -> bool:
    digits = [int(c) for c in number][::-1]
    s = sum(digits[0::2]) + sum(sum(divmod(2 * d, 10)) for d in digits[1::2])
    return s % 10 == 0


class TtyStringIO(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def _log_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_luhn_helper_builds_valid_numbers() -> None:
    rng = random.Random(7)
    for length in (13, 15, 16, 19):
        pan = luhn_pan("4", length, rng)
        assert len(pan) == length
        assert luhn_ok(pan)
        assert not luhn_ok(pan[:-1] + str((int(pan[-1]) + 1) % 10))


def test_printed_card_numbers_are_masked() -> None:
    assert mask_text("karta 01-000018 odczytana") == "karta 01-****18 odczytana"
    assert mask_text("01-1234567") == "01-*****67"
    assert mask_text("card=01-000018,") == "card=01-****18,"


def test_digits_only_card_numbers_are_masked() -> None:
    assert mask_text("read 01000018 from msr") == "read 01****18 from msr"
    assert mask_text("read 012345678") == "read 01*****78"


def test_payment_card_numbers_are_dropped_whole() -> None:
    rng = random.Random()
    for pan in (luhn_pan("4", 16, rng), luhn_pan("5", 16, rng), luhn_pan("37", 15, rng)):
        spaced = " ".join(pan[i : i + 4] for i in range(0, len(pan), 4))
        for text in (pan, spaced, spaced.replace(" ", "-")):
            out = mask_text(f"swiped {text} by mistake")
            assert out == "swiped [pan] by mistake"
            assert pan[-4:] not in out


def test_track_data_is_dropped() -> None:
    pan = luhn_pan("4", 16, random.Random())
    track1 = f"%B{pan}^KOWALSKI/JAN^2712101000000000000?"
    track2 = f";{pan}=27121010000000000?"
    out = mask_text(f"raw {track1}{track2} end")
    assert pan not in out
    assert "KOWALSKI" not in out
    assert out == "raw [track][track] end"
    assert mask_text("msr ;01000018? ok") == "msr [track] ok"


def test_ids_and_hashes_are_left_alone() -> None:
    h = "7fc2281413113cbbac328e0b9f818041748607034c651bd7a0ba3e6a30cb0d56"
    assert mask_text(h) == h
    u = "0190f7a0-1234-7000-8000-000000000018"
    assert mask_text(u) == u


SECRETS = {
    "token": "tok-abc",
    "pin": "1234",
    "pin_hash": "pbkdf2_sha256$1$x$y",
    "authorization": "Bearer abc",
    "Authorization": "Bearer abc",
    "password": "hunter2",
    "private_key": "-----BEGIN",
    "cookie": "s=1",
    "signature": "c2ln",
    "api_token": "t",
    "track": "%B?",
}


def test_secret_keys_are_dropped_at_any_depth() -> None:
    stream = io.StringIO()
    configure_logging(level="info", fmt="auto", stream=stream)
    log = structlog.get_logger()
    log.info("login", **SECRETS, headers={"Authorization": "Bearer xyz", "Accept": "json"})
    (line,) = _log_lines(stream)
    for key in SECRETS:
        assert line[key] == "[secret]", key
    assert line["headers"] == {"Authorization": "[secret]", "Accept": "json"}
    raw = stream.getvalue()
    for value in ("tok-abc", "1234", "Bearer", "hunter2", "BEGIN", "c2ln"):
        assert value not in raw


def test_json_lines_when_not_a_tty() -> None:
    stream = io.StringIO()
    configure_logging(level="info", fmt="auto", stream=stream)
    log = structlog.get_logger()
    log.info("card_read", card="01-000018", reader="msr", note="Zażółć gęślą jaźń")
    log.debug("hidden")  # below the level
    log.warning("printer_offline", host="192.0.2.50")
    lines = _log_lines(stream)
    assert [ln["event"] for ln in lines] == ["card_read", "printer_offline"]
    first = lines[0]
    assert first["card"] == "01-****18"
    assert first["level"] == "info"
    assert str(first["timestamp"]).endswith("Z")
    assert "Zażółć gęślą jaźń" in stream.getvalue()  # UTF-8, not \\u escapes


def test_console_format_on_a_tty() -> None:
    stream = TtyStringIO()
    configure_logging(level="info", fmt="auto", stream=stream)
    structlog.get_logger().info("card_read", card="01-000018")
    text = stream.getvalue()
    assert "card_read" in text
    assert "01-****18" in text
    assert "01-000018" not in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_exceptions_in_logs_are_masked_too() -> None:
    stream = io.StringIO()
    configure_logging(level="info", fmt="json", stream=stream)
    try:
        raise ValueError("card 01-000018 unknown")
    except ValueError:
        structlog.get_logger().exception("lookup_failed")
    assert "01-000018" not in stream.getvalue()
    assert "01-****18" in stream.getvalue()


SEPARATORS = st.sampled_from([" ", ": ", "=", "(", ")", ",", "\n", "'", '"', "[", "]", "/"])
FILLER = st.text(st.sampled_from("abcdefgh ąęż:;,.()"), max_size=12)


@given(
    issuer=st.integers(0, 99),
    number=st.integers(0, 9_999_999),
    seven=st.booleans(),
    digits_only=st.booleans(),
    before=FILLER,
    after=FILLER,
    sep1=SEPARATORS,
    sep2=SEPARATORS,
)
def test_no_card_number_survives_masking(
    issuer: int,
    number: int,
    seven: bool,
    digits_only: bool,
    before: str,
    after: str,
    sep1: str,
    sep2: str,
) -> None:
    tail = f"{number:07d}" if seven else f"{number % 1_000_000:06d}"
    card = f"{issuer:02d}{tail}" if digits_only else f"{issuer:02d}-{tail}"
    out = mask_text(f"{before}{sep1}{card}{sep2}{after}")
    assert card not in out
    assert tail not in out


@given(
    seed=st.integers(0, 2**32),
    length=st.integers(13, 19),
    before=FILLER,
    after=FILLER,
    sep1=SEPARATORS,
    sep2=SEPARATORS,
)
def test_no_payment_card_number_survives_masking(
    seed: int, length: int, before: str, after: str, sep1: str, sep2: str
) -> None:
    pan = luhn_pan(str(3 + seed % 3), length, random.Random(seed))
    out = mask_text(f"{before}{sep1}{pan}{sep2}{after}")
    assert pan not in out
    assert pan[-8:] not in out


@pytest.mark.parametrize("name", ["stdout", "stderr"])
def test_standard_streams_are_looked_up_at_each_write(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """A command run in-process under pytest capture must not leave logging bound to a
    buffer that is closed after that test."""
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, name, first)
    configure_logging(level="info", fmt="json", stream=None if name == "stdout" else first)
    monkeypatch.setattr(sys, name, second)
    first.close()
    structlog.get_logger().info("after_swap", card="01-000018")
    assert json.loads(second.getvalue())["event"] == "after_swap"
