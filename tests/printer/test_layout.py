"""Receipt layout: exact Polish lines through a real ESC/POS decode, goldens, widths."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest

from config.schema import PrinterSection
from ledger.domain import Partner
from printer import texts
from printer.layout import (
    LayoutError,
    Line,
    check_printer,
    compose,
    drawer_kick,
    printable,
    render,
    render_text,
    verification_code,
)
from printer.model import ReceiptData, receipt_decoder, receipt_encoder
from printer.samples import sample_day_close, sample_sale, sample_void
from tests.printer.escpos_decode import decode

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "receipts"
PRINTER_80 = PrinterSection(kind="file", path="x", profile="TM-T20II", columns=48)
PRINTER_80_42 = PrinterSection(kind="file", path="x", profile="TM-T88V", columns=42)
PRINTER_58 = PrinterSection(
    kind="file", path="x", profile="POS-5890", columns=32, cancel_kanji=True
)
# python-escpos' POS-5890 profile puts CP852 in slot 54.
CLONE_PAGES = {54: "cp852"}

SAMPLES = {"sale": sample_sale, "void": sample_void, "day_close": sample_day_close}


def with_partner(data: ReceiptData, **changes: str) -> ReceiptData:
    return msgspec.structs.replace(data, partner=msgspec.structs.replace(data.partner, **changes))


def test_sale_80mm_has_exact_polish_lines() -> None:
    data = with_partner(sample_sale(), address="ul. Żółć 1, Łódź")
    d = decode(render(data, PRINTER_80))
    assert d.inits == 1
    assert d.codepage_selects == [18]  # ESC t 18 = CP852, after the init
    assert not d.text_before_codepage
    lines = d.text_lines
    assert "                Karta Mieszkańca" in lines
    assert "                ul. Żółć 1, Łódź" in lines
    assert "               WYDRUK NIEFISKALNY" in lines
    assert "Karta:                                 01-****18" in lines
    assert "Kwota zakupu:                          123,45 zł" in lines
    assert "Rabat za punkty:                       -10,00 zł" in lines
    assert "-100%  2 szt.                            +10 pkt" in lines
    assert "-50%  1 godz.                             +5 pkt" in lines
    assert "                              stan na 17.11.2026" in lines
    assert "Data:                                 18.11.2026" in lines
    # 11:05 UTC in November is 12:05 in Warsaw (CET).
    assert "Godzina:                                12:05:42" in lines
    assert d.qr == [f"T-0001:12:{data.entry.hash[:16]}"]
    assert d.cuts == 1
    assert d.cancel_kanji == 0
    assert all(len(x) <= 48 for x in lines if not x.startswith("[QR"))


def test_sale_58mm_clone_cancels_chinese_mode_and_feeds_without_cutter() -> None:
    d = decode(render(sample_sale(), PRINTER_58), codepages=CLONE_PAGES)
    assert d.cancel_kanji == 1
    assert d.codepage_selects == [54]
    lines = d.text_lines
    assert "        Karta Mieszkańca" in lines
    assert "ul. Piotrkowska 12, 90-001 Łódź" in lines
    assert "Sala zabaw - żółć" in lines
    # No native QR on this clone: the code is a raster image instead.
    assert d.qr == []
    assert len(d.images) == 1
    assert d.cuts == 0
    assert d.feeds >= 6
    assert all(len(x) <= 32 for x in lines if not x.startswith("[IMAGE"))


def test_init_resets_code_page_every_receipt() -> None:
    """Two receipts back to back: each must select the code page after its own ESC @."""
    joined = render(sample_sale(), PRINTER_80) + render(sample_void(), PRINTER_80)
    d = decode(joined)
    assert d.inits == 2
    assert d.codepage_selects == [18, 18]


def test_copy_says_kopia_top_and_bottom() -> None:
    lines = decode(render(sample_sale(), PRINTER_80, copy=True)).lines
    assert lines[0].text.strip() == texts.COPY
    assert lines[0].bold
    assert lines[0].tall
    assert lines[-1].text.strip() == texts.COPY
    original = decode(render(sample_sale(), PRINTER_80)).text_lines
    assert texts.COPY not in [x.strip() for x in original]


def test_void_names_the_voided_transaction() -> None:
    lines = decode(render(sample_void(), PRINTER_80)).text_lines
    assert "                   ANULOWANIE" in lines
    assert "Anulowana transakcja nr:                      12" in lines
    assert "Kwota anulowanej sprzedaży:            123,45 zł" in lines


def test_z_report_totals_and_partner_cost() -> None:
    data = sample_day_close()
    text = decode(render(data, PRINTER_80)).text
    assert "Liczba sprzedaży:                             11" in text
    assert "Liczba anulowań:                               1" in text
    assert "Przyznane punkty:                      1\u00a0234 pkt" in text
    # 1234 points x 0.10 PLN
    assert "Koszt partnera (0,10 zł/pkt):          123,40 zł" in text
    assert "Transakcje nr:                            1 - 13" in text
    assert data.entry.hash[:48] in text
    assert data.entry.hash[48:] in text


def test_unencodable_characters_print_as_question_marks() -> None:
    data = with_partner(sample_sale(), name="Sklep 日本 ☕ Żabka")
    lines = decode(render(data, PRINTER_80)).text_lines
    assert any(x.strip() == "Sklep ?? ? Żabka" for x in lines)


def test_typographic_punctuation_is_folded_not_lost() -> None:
    assert printable("„Żółć” – już…") == '"Żółć" - już...'


def test_decomposed_letters_are_composed_first() -> None:
    assert printable("Łódz\u0301") == "Łódź"


def test_bad_profile_and_code_page_are_layout_errors() -> None:
    with pytest.raises(LayoutError, match="profile"):
        check_printer(PrinterSection(profile="No-Such-Printer"))
    with pytest.raises(LayoutError, match="code page"):
        render(sample_sale(), PrinterSection(profile="TM-U220", codepage="CP852"))


def test_drawer_kick_bytes() -> None:
    assert decode(drawer_kick(2)).kicks == 1
    assert drawer_kick(5) != drawer_kick(2)


def test_receipt_data_round_trips_through_json() -> None:
    for make in SAMPLES.values():
        data = make()
        assert receipt_decoder.decode(receipt_encoder.encode(data)) == data


def test_verification_code_format() -> None:
    data = sample_sale()
    assert verification_code(data) == f"T-0001:12:{data.entry.hash[:16]}"


def test_long_words_wrap_at_spaces_never_mid_word() -> None:
    data = with_partner(sample_sale(), address="Aleja Marszałka Józefa Piłsudskiego 100/200")
    lines = [b.text for b in compose(data, 32) if isinstance(b, Line)]
    words = {w for ln in lines for w in ln.split()}
    assert {"Marszałka", "Józefa", "Piłsudskiego", "100/200"} <= words


@pytest.mark.parametrize("kind", sorted(SAMPLES))
@pytest.mark.parametrize(
    ("printer", "pages"), [(PRINTER_80, None), (PRINTER_80_42, None), (PRINTER_58, CLONE_PAGES)]
)
@pytest.mark.parametrize("copy", [False, True])
def test_golden_receipts(
    kind: str, printer: PrinterSection, pages: dict[int, str] | None, copy: bool
) -> None:
    data = SAMPLES[kind]()
    decoded = decode(render(data, printer, copy=copy), codepages=pages).text
    suffix = "_kopia" if copy else ""
    path = GOLDEN / f"{kind}_{printer.columns}{suffix}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(decoded, encoding="utf-8")
    assert decoded == path.read_text(encoding="utf-8")
    # The plain-text preview is the same receipt minus the QR/image placeholders.
    preview = render_text(data, printer.columns, copy=copy)
    printed = [x for x in decoded.splitlines() if not x.startswith(("[QR", "[IMAGE"))]
    assert [x for x in preview.splitlines() if x] == [x for x in printed if x]


def test_texts_are_encodable_in_every_polish_code_page() -> None:
    values: list[str] = []
    for name in dir(texts):
        if name.startswith("_"):
            continue
        v = getattr(texts, name)
        if isinstance(v, str):
            values.append(v)
        elif isinstance(v, tuple):
            values.extend(v)
        elif isinstance(v, dict):
            values.extend(v.values())
    for cp in ("cp852", "cp1250", "iso8859_2"):
        for v in values:
            assert v.encode(cp).decode(cp) == v
    assert len(values) > 40


def test_partner_without_nip_or_address() -> None:
    data = msgspec.structs.replace(sample_sale(), partner=Partner(name="Ż"))
    lines = render_text(data, 48).splitlines()
    assert not any(x.strip().startswith("NIP") for x in lines)


def test_raster_qr_carries_the_same_modules_as_the_code() -> None:
    """Unpack the GS v 0 bitmap a clone gets and compare it module by module."""
    import qrcode  # type: ignore[import-untyped]

    payload = verification_code(sample_sale())
    d = decode(render(sample_sale(), PRINTER_58), codepages=CLONE_PAGES)
    ((width, height, bitmap),) = d.rasters
    assert width <= 384  # the printable width of 58 mm paper at 203 dpi
    code = qrcode.QRCode(
        border=1, error_correction=qrcode.constants.ERROR_CORRECT_L, mask_pattern=0
    )
    code.add_data(payload)
    code.make(fit=True)
    matrix = code.get_matrix()
    scale = height // len(matrix)
    row_bytes = width // 8

    def dot(x: int, y: int) -> bool:
        return bool(bitmap[y * row_bytes + x // 8] & (0x80 >> (x % 8)))

    for r, modules in enumerate(matrix):
        for c, dark in enumerate(modules):
            for dy in range(scale):
                for dx in range(scale):
                    assert dot(c * scale + dx, r * scale + dy) == dark
    # Padding dots right of the code stay white.
    assert not any(dot(x, y) for y in range(height) for x in range(len(matrix) * scale, width))


def test_clone_profiles_cancel_chinese_mode_without_being_told() -> None:
    clone = PrinterSection(profile="ZJ-5870", columns=32)
    assert decode(render(sample_sale(), clone)).cancel_kanji == 1
    assert decode(render(sample_sale(), PRINTER_80)).cancel_kanji == 0
