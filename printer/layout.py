"""Receipt and Z-report layout: pure functions from ReceiptData to lines and ESC/POS bytes.

The layout is composed once as a list of blocks (lines already wrapped to the width and
reduced to characters the code page has), then either joined as plain text (the preview)
or encoded with python-escpos' ``Dummy`` printer (the bytes a job sends).
"""

from __future__ import annotations

import textwrap
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# escpos reads its profile cache folder when imported: the program's start-up points it
# there first (printer.escpos_env.prepare_escpos_cache, called by terminal.app.Daemon).
import qrcode  # type: ignore[import-untyped]
from escpos.capabilities import get_profile
from escpos.printer import Dummy

from config.schema import PrinterSection
from ledger.clock import WARSAW, parse_ts
from ledger.money import format_pln
from printer import texts as T
from printer.model import ReceiptBenefit, ReceiptData

NBSP = "\u00a0"
REPLACEMENT = "?"
# Typographic punctuation no receipt code page has, folded to plain look-alikes so
# quotes and dashes in partner and benefit names do not print as '?'.
FOLD = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201b": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u201f": '"',
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2010": "-",
    "\u2011": "-",
    "\u2012": "-",
    "\u2013": "-",
    "\u2014": "-",
    "\u2212": "-",
    "\u2026": "...",
    "\u2022": "*",
    "\u202f": " ",
    "\u2009": " ",
}
# The python codec of each code page name python-escpos knows.
PYTHON_CODECS = {
    "CP852": "cp852",
    "CP1250": "cp1250",
    "ISO_8859-2": "iso8859_2",
    "CP437": "cp437",
    "CP850": "cp850",
    "CP858": "cp858",
    "CP866": "cp866",
    "CP1252": "cp1252",
}

# Profiles of clones sold with a Chinese (Kanji) mode that some units start in.
KANJI_CLONE_PROFILES = frozenset({"POS-5890", "ZJ-5870", "NT-5890K", "NT-80-V-UL", "RP326"})

ESC_INIT = b"\x1b@"
FS_CANCEL_KANJI = b"\x1c."
BOLD_ON, BOLD_OFF = b"\x1bE\x01", b"\x1bE\x00"
SIZE_TALL, SIZE_NORMAL = b"\x1d!\x01", b"\x1d!\x00"
ALIGN_LEFT, ALIGN_CENTER = b"\x1ba\x00", b"\x1ba\x01"
FEED_LINES = b"\x1bd"
GS_RASTER = b"\x1dv0\x00"  # GS v 0, normal density; then xL xH yL yH and the bitmap
# ESC p m t1 t2: pulse the drawer on pin 2 (m=0) or 5 (m=1) for 50 ms on, 500 ms off.
DRAWER_KICK = {2: b"\x1bp\x00\x19\xfa", 5: b"\x1bp\x01\x19\xfa"}


class LayoutError(Exception):
    """The printer section names a profile or code page that cannot print a receipt."""


@dataclass(frozen=True, slots=True)
class Line:
    text: str
    bold: bool = False
    tall: bool = False


@dataclass(frozen=True, slots=True)
class Qr:
    payload: str


Block = Line | Qr


@lru_cache(maxsize=16)
def _codec_chars(codepage: str) -> frozenset[str]:
    codec = PYTHON_CODECS.get(codepage)
    if codec is None:
        raise LayoutError(f"unknown code page {codepage!r}")
    chars = set()
    for b in range(0x80, 0x100):
        try:
            chars.add(bytes([b]).decode(codec))
        except UnicodeDecodeError:
            continue
    return frozenset(chars)


def printable(text: str, codepage: str = "CP852") -> str:
    """Text reduced to one-column characters the code page has; others become '?'."""
    if text.isascii() and text.isprintable():
        return text
    have = _codec_chars(codepage)
    out = []
    for ch in unicodedata.normalize("NFC", text):
        if ch in "\t\n\r\v\f":
            out.append(" ")
        elif ch < " " or ch == "\x7f":
            out.append(REPLACEMENT)
        elif ch < "\x80" or ch in have:
            out.append(ch)
        elif ch in FOLD:
            out.append(FOLD[ch])
        else:
            out.append(REPLACEMENT)
    return "".join(out)


class _Composer:
    """Builds the block list for one width and code page."""

    def __init__(self, columns: int, codepage: str) -> None:
        self.width = columns
        self.codepage = codepage
        self.blocks: list[Block] = []

    def _wrap(self, text: str) -> list[str]:
        clean = printable(text, self.codepage).strip()
        if not clean:
            return []
        if len(clean) <= self.width:
            return [clean]
        return textwrap.wrap(clean, self.width, break_long_words=True, break_on_hyphens=False) or [
            clean[: self.width]
        ]

    def left(self, text: str, *, bold: bool = False, tall: bool = False) -> None:
        for ln in self._wrap(text):
            self.blocks.append(Line(ln, bold, tall))

    def center(self, text: str, *, bold: bool = False, tall: bool = False) -> None:
        for ln in self._wrap(text):
            self.blocks.append(Line(" " * ((self.width - len(ln)) // 2) + ln, bold, tall))

    def right(self, text: str, *, bold: bool = False) -> None:
        for ln in self._wrap(text):
            self.blocks.append(Line(ln.rjust(self.width), bold))

    def pair(self, label: str, value: str, *, bold: bool = False) -> None:
        """'label      value' on one line, or the label wrapped and the value right-aligned."""
        lab = printable(label, self.codepage).strip()
        val = printable(value, self.codepage).strip()
        if len(lab) + 1 + len(val) <= self.width:
            self.blocks.append(Line(lab + " " * (self.width - len(lab) - len(val)) + val, bold))
            return
        self.left(lab, bold=bold)
        self.right(val, bold=bold)

    def rule(self) -> None:
        self.blocks.append(Line("-" * self.width))

    def blank(self) -> None:
        self.blocks.append(Line(""))

    def qr(self, payload: str) -> None:
        self.blocks.append(Qr(payload))


def _points(n: int) -> str:
    return T.POINTS.format(points=f"{n:,}".replace(",", NBSP))


def _count(n: int) -> str:
    return f"{n:,}".replace(",", NBSP)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return WARSAW


def _local(ts: str, tz: str) -> datetime | None:
    try:
        return parse_ts(ts).astimezone(_zone(tz))
    except ValueError:
        return None


def _pl_date(iso_date: str) -> str:
    parts = iso_date.split("-")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        return f"{parts[2]}.{parts[1]}.{parts[0]}"
    return iso_date


def verification_code(data: ReceiptData) -> str:
    """What the QR carries: '<terminal>:<seq>:<first 16 hex of the entry hash>'."""
    return f"{data.terminal}:{data.entry.seq}:{data.entry.hash[:16]}"


def _header(c: _Composer, data: ReceiptData, title: str) -> None:
    p = data.partner
    c.center(p.name, bold=True, tall=True)
    # "ul. Długa 1, 42-200 Częstochowa" too wide: a line per part, so the postcode stays
    # beside its town (plain wrapping split them).
    address = printable(p.address, c.codepage).strip()
    for part in [address] if len(address) <= c.width else address.split(","):
        c.center(part)
    if p.nip:
        c.center(T.NIP.format(nip=p.nip))
    c.center(T.NONFISCAL, bold=True)
    c.center(T.PROGRAMME)
    c.rule()
    c.center(title, bold=True, tall=True)
    when = _local(data.entry.ts, data.timezone)
    if when is not None:
        c.pair(T.DATE, when.strftime("%d.%m.%Y"))
        c.pair(T.TIME, when.strftime("%H:%M:%S"))
    else:
        c.pair(T.DATE, data.entry.ts)
    c.pair(T.TERMINAL, data.terminal)
    c.pair(T.TRANSACTION, str(data.entry.seq))
    if data.cashier_name:
        c.pair(T.CASHIER, data.cashier_name)
    if data.card_masked:
        c.pair(T.CARD, data.card_masked)
    c.rule()


def _benefit(c: _Composer, b: ReceiptBenefit) -> None:
    unit = T.UNITS.get(b.unit, b.unit)
    c.left(b.name)
    qty = T.BENEFIT_QTY.format(quantity=_count(b.quantity), unit=unit)
    # The right column always says something: the points, or else the quantity.
    if b.points:
        c.pair(f"  {b.label}  {qty}" if b.label else f"  {qty}", "+" + _points(b.points))
    else:
        c.pair(f"  {b.label}" if b.label else "", qty)


def _balance(c: _Composer, data: ReceiptData) -> None:
    if data.balance_after is None:
        return
    c.pair(T.BALANCE, _points(data.balance_after), bold=True)
    if data.balance_as_of:
        c.right(T.BALANCE_AS_OF.format(date=_pl_date(data.balance_as_of)))


def _sale(c: _Composer, data: ReceiptData) -> None:
    e = data.entry
    benefit_points = (
        sum(e.benefit_points.values()) if e.benefit_points else sum(b.points for b in data.benefits)
    )
    paid = format_pln(e.amount_gr - e.discount_gr)
    c.pair(T.AMOUNT, format_pln(e.amount_gr), bold=True)
    if e.points_redeemed or e.discount_gr:
        c.pair(T.REDEEMED, _points(e.points_redeemed))
        c.pair(T.DISCOUNT, format_pln(-e.discount_gr))
    c.pair(T.PAID, paid, bold=True)
    c.pair(T.PURCHASE_POINTS.format(paid=paid), _points(e.points_earned - benefit_points))
    if data.benefits:
        c.left(T.BENEFITS)
        for b in data.benefits:
            _benefit(c, b)
    c.pair(T.TOTAL_POINTS, _points(e.points_earned), bold=True)
    c.rule()
    _balance(c, data)


def _void(c: _Composer, data: ReceiptData) -> None:
    e = data.entry
    voided = data.voided_seq if data.voided_seq is not None else e.ref
    c.pair(T.VOIDED, str(voided) if voided is not None else "?", bold=True)
    if data.voided_ts:
        when = _local(data.voided_ts, data.timezone)
        c.pair(T.VOIDED_AT, when.strftime("%d.%m.%Y %H:%M") if when else data.voided_ts)
    # The void entry negates the sale: its points_earned is minus what the sale granted
    # (taken back), its points_redeemed minus what the sale spent (given back).
    amount = data.voided_amount_gr if data.voided_amount_gr is not None else -e.amount_gr
    c.pair(T.VOIDED_AMOUNT, format_pln(amount))
    c.pair(T.VOID_POINTS_TAKEN, _points(-e.points_earned))
    c.pair(T.VOID_POINTS_BACK, _points(-e.points_redeemed))
    if e.discount_gr:
        c.pair(T.VOID_DISCOUNT, format_pln(-e.discount_gr))
    if e.reason:
        c.left(f"{T.VOID_REASON} {e.reason}")
    c.rule()
    _balance(c, data)


def _day_close(c: _Composer, data: ReceiptData) -> None:
    s = data.summary
    if s is None:
        from printer.model import DaySummary

        s = DaySummary.from_entry(data.entry)
    c.pair(T.Z_DAY, _pl_date(data.entry.local_date), bold=True)
    c.pair(T.Z_SALES, _count(s.sales))
    c.pair(T.Z_VOIDS, _count(s.voids))
    c.pair(T.Z_SALES_AMOUNT, format_pln(s.sales_amount_gr))
    c.pair(T.Z_VOIDED_AMOUNT, format_pln(-s.voided_amount_gr))
    c.pair(T.Z_AMOUNT, format_pln(s.amount_gr), bold=True)
    c.pair(T.Z_DISCOUNT, format_pln(s.discount_gr))
    c.pair(T.Z_POINTS_EARNED, _points(s.points_earned))
    c.pair(T.Z_POINTS_REDEEMED, _points(s.points_redeemed))
    price = format_pln(s.point_cost_gr)
    c.pair(T.Z_PARTNER_COST.format(price=price), format_pln(s.partner_cost_gr), bold=True)
    if s.first_seq is not None and s.last_seq is not None:
        seq_range = T.Z_SEQ_RANGE_VALUE.format(first=s.first_seq, last=s.last_seq)
    else:
        seq_range = T.Z_NO_TRANSACTIONS
    c.pair(T.Z_SEQ_RANGE, seq_range)
    c.left(T.Z_HEAD)
    c.left(data.head_hash or data.entry.hash)
    c.rule()


def compose(
    data: ReceiptData, columns: int, *, copy: bool = False, codepage: str = "CP852"
) -> list[Block]:
    """The receipt as wrapped lines and a QR block; no line is wider than ``columns``."""
    c = _Composer(columns, codepage)
    if copy:
        c.center(T.COPY, bold=True, tall=True)
    title = {"sale": T.SALE_TITLE, "void": T.VOID_TITLE, "day_close": T.Z_TITLE}[data.kind]
    _header(c, data, title)
    if data.kind == "void":
        _void(c, data)
    elif data.kind == "day_close":
        _day_close(c, data)
    else:
        _sale(c, data)
    for text in data.explanation:
        c.left(text)
    code = verification_code(data)
    c.center(T.VERIFY)
    c.qr(code)
    c.center(code)
    c.center(T.VERIFY_HINT)
    c.blank()
    footer = {"day_close": T.Z_FOOTER, "void": T.VOID_FOOTER}.get(data.kind, T.FOOTER)
    for text in footer:
        c.center(text)
    if copy:
        c.center(T.COPY, bold=True, tall=True)
    return c.blocks


def render_text(
    data: ReceiptData, columns: int, *, copy: bool = False, codepage: str = "CP852"
) -> str:
    """The receipt as plain text lines (the cashier screen's and the demo's preview)."""
    lines = [
        b.text for b in compose(data, columns, copy=copy, codepage=codepage) if isinstance(b, Line)
    ]
    return "\n".join(lines) + "\n"


@lru_cache(maxsize=16)
def _profile(name: str) -> Any:
    try:
        return get_profile(name)
    except KeyError as e:
        raise LayoutError(f"unknown printer profile {name!r}") from e


def check_printer(printer: PrinterSection) -> None:
    """Raise LayoutError unless the profile exists and has the code page."""
    profile = _profile(printer.profile)
    if printer.codepage not in profile.get_code_pages():
        raise LayoutError(
            f"printer profile {printer.profile!r} has no code page {printer.codepage!r}"
        )
    _codec_chars(printer.codepage)


def needs_cancel_kanji(printer: PrinterSection) -> bool:
    """FS . after init: when configured, and always for the Chinese-market clones."""
    return printer.cancel_kanji or printer.profile in KANJI_CLONE_PROFILES


def _init(p: Any, printer: PrinterSection) -> None:
    p._raw(ESC_INIT)
    if needs_cancel_kanji(printer):
        p._raw(FS_CANCEL_KANJI)
    # ESC @ resets the printer's code page but python-escpos still believes the old
    # one is active and would send no ESC t: forget it and select again.
    p.magic.encoding = None
    p.charcode(printer.codepage)


def render(data: ReceiptData, printer: PrinterSection, *, copy: bool = False) -> bytes:
    """The receipt as ESC/POS bytes for the configured profile, code page and width."""
    check_printer(printer)
    profile = _profile(printer.profile)
    blocks = compose(data, printer.columns, copy=copy, codepage=printer.codepage)
    p = Dummy(profile=printer.profile)
    _init(p, printer)
    bold = tall = False
    run: list[str] = []

    # The text is already reduced to the code page's characters (printable()), so the
    # python codec gives the bytes python-escpos' own per-character encoder would, at a
    # fraction of the cost; the code page itself was selected through python-escpos.
    codec = PYTHON_CODECS[printer.codepage]

    def flush() -> None:
        if run:
            p._raw("".join(run).encode(codec, errors="replace"))
            run.clear()

    for b in blocks:
        if isinstance(b, Qr):
            flush()
            p._raw(ALIGN_CENTER)
            size = 4 if printer.columns >= 42 else 3
            if profile.supports("qrCode"):
                p.qr(b.payload, size=size, native=True)
            else:
                p._raw(qr_raster(b.payload, size))
            p._raw(ALIGN_LEFT)
            continue
        if b.bold != bold or b.tall != tall:
            flush()
            if b.bold != bold:
                p._raw(BOLD_ON if b.bold else BOLD_OFF)
                bold = b.bold
            if b.tall != tall:
                p._raw(SIZE_TALL if b.tall else SIZE_NORMAL)
                tall = b.tall
        run.append(b.text + "\n")
    flush()
    if bold:
        p._raw(BOLD_OFF)
    if tall:
        p._raw(SIZE_NORMAL)
    if printer.cutter and (profile.supports("paperFullCut") or profile.supports("paperPartCut")):
        p.cut()
    else:
        p._raw(FEED_LINES + bytes([6]))
    return bytes(p.output)


def qr_raster(payload: str, scale: int) -> bytes:
    """A QR code as a GS v 0 raster image, for printers without native QR (58 mm clones).

    The mask pattern is fixed: choosing the "best" of eight (what qrcode does by default,
    and python-escpos' image path) costs ~8 ms per receipt and changes nothing a
    scanner cares about.
    """
    code = qrcode.QRCode(
        border=1, error_correction=qrcode.constants.ERROR_CORRECT_L, mask_pattern=0
    )
    code.add_data(payload)
    code.make(fit=True)
    matrix: list[list[bool]] = code.get_matrix()
    width = len(matrix[0]) * scale
    row_bytes = (width + 7) // 8
    out = bytearray(GS_RASTER)
    out += bytes([row_bytes & 0xFF, row_bytes >> 8])
    height = len(matrix) * scale
    out += bytes([height & 0xFF, height >> 8])
    for modules in matrix:
        bits = 0
        for dark in modules:
            for _ in range(scale):
                bits = bits << 1 | dark
        bits <<= row_bytes * 8 - width
        row = bits.to_bytes(row_bytes, "big")
        out += row * scale
    return bytes(out) + b"\n"


def drawer_kick(pin: int = 2) -> bytes:
    """ESC p: open the cash drawer on pin 2 or 5."""
    return DRAWER_KICK[5 if pin == 5 else 2]
