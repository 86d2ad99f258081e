"""Serial framing: terminators, STX/ETX, prefix/suffix, quiet-line completion."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from drivers.framing import MAX_FRAME_BYTES, Frame, SerialFramer


def test_terminators() -> None:
    f = SerialFramer()
    assert f.feed(b";01000018?\r\n01000019\n") == [Frame(";01000018?"), Frame("01000019")]
    assert not f.pending


def test_bytes_split_anywhere() -> None:
    f = SerialFramer()
    out: list[Frame] = []
    for b in b";0100\x00"[:-1] + b"0018?\r":
        out += f.feed(bytes([b]))
    assert out == [Frame(";01000018?")]


def test_stx_etx() -> None:
    f = SerialFramer()
    assert f.feed(b"\x02;01000018?\x03") == [Frame(";01000018?")]


def test_stx_in_the_middle_discards_the_unfinished_frame() -> None:
    f = SerialFramer()
    assert f.feed(b";0100\x02;01000018?\x03") == [
        Frame(None, "incomplete", "msr"),
        Frame(";01000018?"),
    ]


def test_prefix_and_suffix() -> None:
    f = SerialFramer(prefix="@@", suffix="##")
    assert f.feed(b"@@;01000018?##") == [Frame(";01000018?")]


def test_quiet_line_completes_a_swipe_without_terminator() -> None:
    f = SerialFramer()
    assert f.feed(b"%ABC?;01000018?") == []
    assert f.expire() == Frame("%ABC?;01000018?")


def test_half_swipe_then_silence_is_discarded() -> None:
    f = SerialFramer()
    assert f.feed(b";010000") == []
    assert f.expire() == Frame(None, "incomplete", "msr")
    assert not f.pending
    assert f.feed(b"18?\r") == [Frame("18?")]  # the rest never joins the old half


def test_overlong_input_is_one_garbled_frame() -> None:
    f = SerialFramer()
    assert f.feed(b"1" * (MAX_FRAME_BYTES * 3) + b"\r") == [Frame(None, "garbled", "barcode")]


CHUNK = st.one_of(
    st.binary(max_size=40),
    st.lists(st.sampled_from([b"\x02", b"\x03", b"\r", b"\n", b";0100", b"0018?", b"%E?"])).map(
        b"".join
    ),
    st.just(b"9" * (MAX_FRAME_BYTES - 3)),
)


@given(st.lists(CHUNK, max_size=8), st.booleans())
def test_fast_path_frames_exactly_like_byte_at_a_time(chunks: list[bytes], expire: bool) -> None:
    fast, slow = SerialFramer(prefix="@"), SerialFramer(prefix="@")
    for c in chunks:
        assert fast.feed(c) == slow.feed_bytewise(c)
        assert fast.pending == slow.pending
    if expire:
        assert fast.expire() == slow.expire()
