"""PNG previews: Polish glyphs drawn, same lines as the printer, committed goldens."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from printer.preview import render_image, render_png
from printer.samples import sample_day_close, sample_sale, sample_void

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "receipts"
CASES = {
    "sale_48.png": (sample_sale, 48, False),
    "void_32_kopia.png": (sample_void, 32, True),
    "day_close_42.png": (sample_day_close, 42, False),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_preview_matches_the_png_looked_at_once(name: str) -> None:
    make, columns, copy = CASES[name]
    png = render_png(make(), columns, copy=copy)
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_bytes(png)
    got = Image.open(io.BytesIO(png)).convert("L")
    want = Image.open(path).convert("L")
    assert got.size == want.size
    diff = ImageChops.difference(got, want).point(lambda v: 255 if v > 64 else 0)
    changed = diff.histogram()[255]
    # Font hinting may move a few pixels between FreeType builds; a layout change moves many.
    assert changed < got.size[0] * got.size[1] // 200


def test_narrow_paper_gives_a_narrower_preview() -> None:
    wide = render_image(sample_sale(), 48)
    narrow = render_image(sample_sale(), 32)
    assert narrow.width < wide.width
    assert narrow.height > wide.height  # more lines wrap


def test_polish_letters_are_drawn_not_boxes() -> None:
    """A font without Polish glyphs draws the same 'tofu' box for ż and ł."""
    from printer.preview import _font

    font = _font(False)
    masks = {ch: bytes(font.getmask(ch)) for ch in "żłęą"}
    assert len(set(masks.values())) == 4
