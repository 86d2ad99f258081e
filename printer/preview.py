"""The receipt as a PNG (cashier screen, demo): the same lines the printer gets."""

from __future__ import annotations

import io
import math
from functools import lru_cache
from pathlib import Path

import qrcode  # type: ignore[import-untyped]
from PIL import Image, ImageDraw, ImageFont

from printer.layout import Line, Qr, compose
from printer.model import ReceiptData

FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/share/fonts/TTF"),
)
FONT_SIZE = 18
MARGIN = 16
PAPER = 255
INK = 0

FontType = ImageFont.FreeTypeFont | ImageFont.ImageFont


class PreviewError(Exception):
    """No font with Polish glyphs is installed (Debian: fonts-dejavu-core)."""


@lru_cache(maxsize=4)
def _font(bold: bool) -> FontType:
    name = "DejaVuSansMono-Bold.ttf" if bold else "DejaVuSansMono.ttf"
    for folder in FONT_DIRS:
        path = folder / name
        if path.exists():
            return ImageFont.truetype(str(path), FONT_SIZE)
    raise PreviewError(f"font {name} not found in {', '.join(map(str, FONT_DIRS))}")


def _qr_image(payload: str, box: int) -> Image.Image:
    code = qrcode.QRCode(box_size=box, border=1, error_correction=qrcode.constants.ERROR_CORRECT_L)
    code.add_data(payload)
    code.make(fit=True)
    img: Image.Image = code.make_image(fill_color="black", back_color="white").get_image()
    return img.convert("L")


def render_image(data: ReceiptData, columns: int, *, copy: bool = False) -> Image.Image:
    """Draw the receipt on a paper-white image, one monospace cell per column."""
    regular, bold = _font(False), _font(True)
    line_h = math.ceil(FONT_SIZE * 1.25)
    blocks = compose(data, columns, copy=copy)
    images: list[Image.Image | None] = []
    img: Image.Image | None
    height = MARGIN * 2
    for b in blocks:
        if isinstance(b, Qr):
            img = _qr_image(b.payload, 4)
            images.append(img)
            height += img.height + line_h // 2
        else:
            images.append(None)
            height += line_h * (2 if b.tall else 1)
    width = MARGIN * 2 + math.ceil(regular.getlength("M" * columns))
    page = Image.new("L", (width, height), PAPER)
    draw = ImageDraw.Draw(page)
    y = MARGIN
    for b, img in zip(blocks, images, strict=True):
        if isinstance(b, Qr) and img is not None:
            page.paste(img, ((width - img.width) // 2, y))
            y += img.height + line_h // 2
            continue
        assert isinstance(b, Line)
        font = bold if b.bold else regular
        if b.tall:
            strip = Image.new("L", (width, line_h), PAPER)
            ImageDraw.Draw(strip).text((MARGIN, 0), b.text, font=font, fill=INK)
            page.paste(strip.resize((width, line_h * 2)), (0, y))
            y += line_h * 2
        else:
            draw.text((MARGIN, y), b.text, font=font, fill=INK)
            y += line_h
    return page


def render_png(data: ReceiptData, columns: int, *, copy: bool = False) -> bytes:
    """The receipt preview as PNG bytes."""
    buf = io.BytesIO()
    render_image(data, columns, copy=copy).save(buf, format="PNG", optimize=True)
    return buf.getvalue()
