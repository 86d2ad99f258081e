"""Build readers, and the decoders they share, from configuration: the one place that does."""

from __future__ import annotations

from config.backoff import Backoff
from config.schema import CardsSection, ReaderSection
from drivers.base import Reader
from drivers.classify import TextDecoder
from drivers.keymap import LAYOUTS
from drivers.qr import QrDecoder, load_public_key
from drivers.wedge import WedgeDecoder
from ledger.cards import CardNumberFormat
from ledger.clock import Clock


def card_number_format(cards: CardsSection) -> CardNumberFormat:
    """The card-number format ``[cards]`` describes (pattern, issuer digits, lengths, zero)."""
    return CardNumberFormat(
        pattern=cards.number_pattern,
        issuer_digits=cards.issuer_digits,
        digit_lengths=tuple(cards.digit_lengths),
        strip_extra_zero=cards.strip_extra_zero,
        number_digits=cards.number_digits,
    )


def text_decoder(cards: CardsSection, clock: Clock) -> TextDecoder:
    """The swipe/barcode/QR decoder configured by ``[cards]``."""
    fmt = card_number_format(cards)
    key = load_public_key(cards.qr_public_key) if cards.qr_public_key else None
    return TextDecoder(fmt, QrDecoder(fmt, clock, key, accept_plain=cards.accept_plain_qr))


def build_reader(section: ReaderSection, cards: CardsSection, clock: Clock) -> Reader:
    """The reader a ``[[readers]]`` section describes (not started: use ``async with``)."""
    backoff = Backoff(
        section.reconnect_min_s, max(section.reconnect_max_s, section.reconnect_min_s)
    )
    # Each transport is imported when configured: a till without a contactless reader
    # never loads pyscard, one without a serial reader never loads pyserial.
    if section.kind == "serial":
        from drivers.serial import SerialReader

        return SerialReader(
            section.name,
            section.path,
            text_decoder(cards, clock),
            clock,
            baudrate=section.baudrate,
            prefix=section.prefix,
            suffix=section.suffix,
            inter_byte_timeout_s=section.inter_byte_timeout_ms / 1000,
            dedupe_window_s=section.dedupe_window_s,
            backoff=backoff,
        )
    if section.kind == "evdev":
        from drivers.evdev_reader import EvdevReader, open_input_device

        spec = section.path
        return EvdevReader(
            section.name,
            lambda: open_input_device(spec),
            text_decoder(cards, clock),
            WedgeDecoder(
                LAYOUTS[section.layout],
                section.inter_key_timeout_ms / 1000,
                prefix=section.prefix,
                suffix=section.suffix,
            ),
            clock,
            grab=section.grab,
            dedupe_window_s=section.dedupe_window_s,
            backoff=backoff,
            describe=spec,
        )
    from drivers.pcsc import PcscReader

    return PcscReader(
        section.name, section.path, clock, dedupe_window_s=section.dedupe_window_s, backoff=backoff
    )
