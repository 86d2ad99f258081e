"""A small ESC/POS decoder for tests: turns printer bytes back into styled lines.

Strict on purpose: an unknown command raises, so a layout that emits garbage (or text
before a code page is selected) fails a test instead of printing nonsense on paper.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# ESC t n -> python codec, Epson numbering; clone profiles pass their own table.
EPSON_CODEPAGES = {
    0: "cp437",
    2: "cp850",
    16: "cp1252",
    17: "cp866",
    18: "cp852",
    19: "cp858",
    39: "iso8859_2",
    45: "cp1250",
}


class DecodeError(ValueError):
    """The bytes are not ESC/POS this decoder understands."""


@dataclass(frozen=True)
class StyledLine:
    text: str
    bold: bool
    tall: bool


@dataclass
class Decoded:
    lines: list[StyledLine] = field(default_factory=list)
    qr: list[str] = field(default_factory=list)
    images: list[tuple[int, int]] = field(default_factory=list)
    # Raster images as (width in dots, height in dots, row-major bitmap, MSB first).
    rasters: list[tuple[int, int, bytes]] = field(default_factory=list)
    inits: int = 0
    cuts: int = 0
    feeds: int = 0
    kicks: int = 0
    cancel_kanji: int = 0
    codepage_selects: list[int] = field(default_factory=list)
    status_queries: list[int] = field(default_factory=list)
    text_before_codepage: bool = False

    @property
    def text_lines(self) -> list[str]:
        """Lines as text, right-trimmed; QR codes as '[QR:payload]', images as '[IMAGE wxh]'."""
        return [ln.text.rstrip() for ln in self.lines]

    @property
    def text(self) -> str:
        return "\n".join(self.text_lines) + "\n"


def decode(data: bytes, *, codepages: dict[int, str] | None = None) -> Decoded:
    """Decode a job's bytes into lines and events."""
    table = codepages or EPSON_CODEPAGES
    out = Decoded()
    codec: str | None = None
    bold = tall = False
    buf = bytearray()
    line_bold = line_tall = False
    pending_qr: str | None = None
    i, n = 0, len(data)

    def need(k: int) -> bytes:
        if i + k > n:
            raise DecodeError(f"truncated command at offset {i}")
        return data[i : i + k]

    def flush_line() -> None:
        nonlocal buf
        text = bytes(buf).decode(codec or "cp437")
        out.lines.append(StyledLine(text, line_bold, line_tall))
        buf = bytearray()

    while i < n:
        b = data[i]
        if b == 0x0A:
            flush_line()
            line_bold = line_tall = False
            i += 1
        elif b == 0x0D:
            i += 1
        elif b >= 0x20 and b != 0x7F:
            if codec is None:
                out.text_before_codepage = True
            if not buf:
                line_bold, line_tall = bold, tall
            else:
                line_bold, line_tall = line_bold or bold, line_tall or tall
            buf.append(b)
            i += 1
        elif b == 0x1B:  # ESC
            cmd = need(2)[1]
            if cmd == 0x40:  # @ init
                out.inits += 1
                codec, bold, tall = None, False, False
                i += 2
            elif cmd == 0x74:  # t n
                num = need(3)[2]
                if num not in table:
                    raise DecodeError(f"ESC t {num}: code page not in the table")
                out.codepage_selects.append(num)
                codec = table[num]
                i += 3
            elif cmd == 0x21:  # ! n
                mode = need(3)[2]
                bold, tall = bool(mode & 0x08), bool(mode & 0x10)
                i += 3
            elif cmd == 0x45:  # E n
                bold = bool(need(3)[2] & 1)
                i += 3
            elif cmd in (0x61, 0x4D, 0x2D, 0x33):  # a / M / - / 3 take one argument
                i += 3
            elif cmd == 0x32:  # 2: default line spacing
                i += 2
            elif cmd == 0x64:  # d n: print and feed
                if buf:
                    flush_line()
                out.feeds += need(3)[2]
                i += 3
            elif cmd == 0x70:  # p m t1 t2: drawer kick
                need(5)
                out.kicks += 1
                i += 5
            else:
                raise DecodeError(f"unknown ESC 0x{cmd:02x} at offset {i}")
        elif b == 0x1D:  # GS
            cmd = need(2)[1]
            if cmd == 0x21:  # ! n
                tall = bool(need(3)[2] & 0x0F)
                i += 3
            elif cmd == 0x56:  # V m [n]
                m = need(3)[2]
                out.cuts += 1
                i += 4 if m in (0x41, 0x42, 65, 66) else 3
            elif cmd == 0x28:  # ( k / ( L
                head = need(5)
                fn_class = head[2]
                length = head[3] | head[4] << 8
                body = need(5 + length)[5:]
                if fn_class == 0x6B and body[:1] == b"1":
                    fn = body[1]
                    if fn == 0x50:  # store data
                        pending_qr = body[3:].decode("utf-8")
                    elif fn == 0x51:  # print
                        if pending_qr is None:
                            raise DecodeError("QR print without stored data")
                        if buf:
                            flush_line()
                        out.qr.append(pending_qr)
                        out.lines.append(StyledLine(f"[QR:{pending_qr}]", False, False))
                        pending_qr = None
                elif fn_class != 0x4C:
                    raise DecodeError(f"unknown GS ( 0x{fn_class:02x}")
                i += 5 + length
            elif cmd == 0x76:  # v 0 m xL xH yL yH data: raster image
                head = need(8)
                width_bytes = head[4] | head[5] << 8
                height = head[6] | head[7] << 8
                bitmap = need(8 + width_bytes * height)[8:]
                out.images.append((width_bytes * 8, height))
                out.rasters.append((width_bytes * 8, height, bitmap))
                out.lines.append(StyledLine(f"[IMAGE {width_bytes * 8}x{height}]", False, False))
                i += 8 + width_bytes * height
            elif cmd == 0x42:  # B n: invert
                i += 3
            else:
                raise DecodeError(f"unknown GS 0x{cmd:02x} at offset {i}")
        elif b == 0x1C:  # FS
            cmd = need(2)[1]
            if cmd == 0x2E:
                out.cancel_kanji += 1
            elif cmd != 0x26:
                raise DecodeError(f"unknown FS 0x{cmd:02x} at offset {i}")
            i += 2
        elif b == 0x10 and i + 2 < n + 1 and need(2)[1] == 0x04:  # DLE EOT n
            out.status_queries.append(need(3)[2])
            i += 3
        else:
            raise DecodeError(f"unexpected control byte 0x{b:02x} at offset {i}")
    if buf:
        flush_line()
    return out
