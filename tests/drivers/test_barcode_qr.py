"""Barcode (EAN-13, Code 128, digits) and QR (plain and signed KM1 token) decoding."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest

from drivers.barcode import BarcodeError, decode_barcode, ean13_valid
from drivers.classify import TextDecodeError, classify
from drivers.qr import QrDecoder, QrError, load_public_key
from ledger.clock import FakeClock
from tests.drivers.helpers import FMT, make_key, make_pan, sign_qr, text_decoder


def ean13(data12: str) -> str:
    total = sum((3 if i % 2 else 1) * int(c) for i, c in enumerate(data12))
    return data12 + str((10 - total % 10) % 10)


def test_ean13_check_digit() -> None:
    assert ean13_valid("5901234123457")  # a real Polish EAN-13
    assert not ean13_valid("5901234123458")
    assert not ean13_valid("590123412345")


@pytest.mark.parametrize(
    ("scan", "number"),
    [
        ("01000018", "01-000018"),
        ("010000185", "01-0000185"),
        ("01-000018", "01-000018"),
        (" 01000018\r\n", "01-000018"),
        (ean13("000001000018"), "01-000018"),
        (ean13("000120000185"), "12-0000185"),
    ],
)
def test_barcode_to_number(scan: str, number: str) -> None:
    assert decode_barcode(scan, FMT) == number


@pytest.mark.parametrize(
    ("scan", "reason"),
    [
        ("5901234123457", "unknown_barcode"),  # a product, not a card
        ("0000010000180", "garbled"),  # wrong check digit
        ("HELLO", "unknown_barcode"),
        ("0100\x0018", "garbled"),
        ("", "garbled"),
        ("٠١٠٠٠٠١٨", "garbled"),  # Arabic-Indic digits are digits to Python, not to us
        ("1" * 200, "garbled"),
    ],
)
def test_barcode_refusals(scan: str, reason: str) -> None:
    with pytest.raises(BarcodeError) as err:
        decode_barcode(scan, FMT)
    assert err.value.reason == reason


def test_payment_card_number_scanned_is_refused_as_such() -> None:
    pan = make_pan(21)
    with pytest.raises(BarcodeError) as err:
        decode_barcode(pan, FMT)
    assert err.value.reason == "payment_card"
    assert pan not in repr(err.value)
    spaced = " ".join(pan[i : i + 4] for i in range(0, 16, 4))
    with pytest.raises(BarcodeError) as err:
        decode_barcode(spaced, FMT)
    assert err.value.reason == "payment_card"


def test_classify_routes_by_first_characters() -> None:
    assert classify(";01000018?") == "msr"
    assert classify("%B...") == "msr"
    assert classify("\x02;0100?") == "msr"
    assert classify("KM1:01-000018:1:x") == "qr"
    assert classify("01000018") == "barcode"


def test_signed_qr_accepted_until_expiry_by_the_clocks_wall_time(clock: FakeClock) -> None:
    priv, pub = make_key()
    dec = QrDecoder(FMT, clock, load_public_key(pub))
    expiry = int(clock.now().timestamp()) + 60
    token = sign_qr(priv, "01-000018", expiry)
    assert dec.decode(token) == "01-000018"
    clock.advance(61)
    with pytest.raises(QrError) as err:
        dec.decode(token)
    assert err.value.reason == "expired_qr"


def test_wall_clock_jump_back_does_not_expire_a_fresh_token(clock: FakeClock) -> None:
    priv, pub = make_key()
    dec = QrDecoder(FMT, clock, load_public_key(pub))
    token = sign_qr(priv, "01000018", int(clock.now().timestamp()) + 30)
    clock.set_wall(clock.now() - timedelta(days=1))
    assert dec.decode(token) == "01-000018"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t.replace("01-000018", "01-000019"),  # number changed after signing
        lambda t: t.rsplit(":", 1)[0] + ":" + base64.b64encode(b"\0" * 64).decode(),
        lambda t: t.rsplit(":", 1)[0] + ":!!!",
        lambda t: t.rsplit(":", 1)[0],
        lambda t: t + ":extra",
        lambda t: t.replace("KM1:01-000018:", "KM1:01-000018:-"),
    ],
)
def test_tampered_tokens_are_bad_qr(clock: FakeClock, mutate: object) -> None:
    priv, pub = make_key()
    dec = QrDecoder(FMT, clock, load_public_key(pub))
    token = sign_qr(priv, "01-000018", int(clock.now().timestamp()) + 60)
    assert callable(mutate)
    with pytest.raises(QrError) as err:
        dec.decode(mutate(token))
    assert err.value.reason == "bad_qr"


def test_token_signed_by_another_key_is_refused(clock: FakeClock) -> None:
    priv, _ = make_key()
    _, other_pub = make_key()
    dec = QrDecoder(FMT, clock, load_public_key(other_pub))
    with pytest.raises(QrError):
        dec.decode(sign_qr(priv, "01-000018", int(clock.now().timestamp()) + 60))


def test_without_a_configured_key_tokens_are_refused(clock: FakeClock) -> None:
    priv, _ = make_key()
    dec = QrDecoder(FMT, clock, None)
    with pytest.raises(QrError) as err:
        dec.decode(sign_qr(priv, "01-000018", int(clock.now().timestamp()) + 60))
    assert err.value.reason == "bad_qr"
    assert dec.decode("01-000018") == "01-000018"


def test_signed_token_for_a_non_card_number(clock: FakeClock) -> None:
    priv, pub = make_key()
    dec = QrDecoder(FMT, clock, load_public_key(pub))
    with pytest.raises(QrError) as err:
        dec.decode(sign_qr(priv, "ABC", int(clock.now().timestamp()) + 60))
    assert err.value.reason == "not_a_card_number"


def test_bad_public_key_in_config_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="qr_public_key"):
        load_public_key("not base64!")
    with pytest.raises(ValueError, match="qr_public_key"):
        load_public_key(base64.b64encode(b"short").decode())


def test_text_decoder_reports_the_source_of_a_refusal(clock: FakeClock) -> None:
    dec = text_decoder(clock)
    with pytest.raises(TextDecodeError) as err:
        dec.decode("KM1:nope")
    assert (err.value.source, err.value.reason) == ("qr", "bad_qr")
    assert dec.decode("%E?;01000018?").source == "msr"


def test_with_the_city_key_a_plain_number_qr_is_refused(clock: FakeClock) -> None:
    """Bug caught: anyone could print a card's number as a QR and have it accepted."""
    priv, pub = make_key()
    dec = QrDecoder(FMT, clock, load_public_key(pub))
    with pytest.raises(QrError) as err:
        dec.decode("01-000018")
    assert err.value.reason == "plain_qr_refused"
    token = sign_qr(priv, "01-000018", int(clock.now().timestamp()) + 60)
    assert dec.decode(token) == "01-000018"  # the app's signed token still works
    lenient = QrDecoder(FMT, clock, load_public_key(pub), accept_plain=True)
    assert lenient.decode("01-000018") == "01-000018"


def test_aim_symbology_identifiers_tell_a_qr_from_a_barcode(clock: FakeClock) -> None:
    priv, pub = make_key()
    assert classify("]Q101-000018") == "qr"
    assert classify("]C001000018") == "barcode"
    assert classify("]E00000010000180") == "barcode"
    dec = text_decoder(clock, pub)
    with pytest.raises(TextDecodeError) as err:
        dec.decode("]Q101-000018")
    assert (err.value.source, err.value.reason) == ("qr", "plain_qr_refused")
    token = sign_qr(priv, "01-000018", int(clock.now().timestamp()) + 60)
    assert dec.decode("]Q1" + token).number == "01-000018"
    assert dec.decode("]C001000018").number == "01-000018"  # the card's printed barcode
    assert text_decoder(clock).decode("]Q101-000018").number == "01-000018"  # no key: plain


@pytest.mark.parametrize(("accept", "reason"), [(False, "plain_qr_refused"), (True, None)])
def test_cards_section_accept_plain_qr(clock: FakeClock, accept: bool, reason: str | None) -> None:
    """``[cards] accept_plain_qr`` reaches the decoder the readers are built with."""
    from config.schema import CardsSection
    from drivers.factory import text_decoder as configured_decoder

    _, pub = make_key()
    dec = configured_decoder(CardsSection(qr_public_key=pub, accept_plain_qr=accept), clock)
    if reason is not None:
        with pytest.raises(TextDecodeError) as err:
            dec.decode("]Q1010000018")
        assert err.value.reason == reason
    else:  # and the resident panel's extra zero is stripped
        assert dec.decode("]Q1010000018").number == "01-000018"
