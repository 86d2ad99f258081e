"""The card feed's line splitter: any chunking of the stream gives the same lines."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.catalog import FeedRejected
from sync.http import split_lines


async def _chunks(data: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    last = 0
    for c in sorted({min(c, len(data)) for c in cuts}):
        yield data[last:c]
        last = c
    yield data[last:]


async def _collect(data: bytes, cuts: list[int], *, max_line: int, max_total: int) -> list[bytes]:
    chunks = _chunks(data, cuts)
    return [line async for line in split_lines(chunks, max_line=max_line, max_total=max_total)]


lines_st = st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=20)


@given(lines=lines_st, tail=st.booleans(), cuts=st.lists(st.integers(0, 1000), max_size=30))
async def test_any_chunking_gives_the_same_lines(
    lines: list[bytes], tail: bool, cuts: list[int]
) -> None:
    data = b"".join(line + b"\n" for line in lines) + (b"no-newline" if tail else b"")
    got = await _collect(data, cuts, max_line=1000, max_total=10_000)
    expected = [line + b"\n" for line in lines] + ([b"no-newline"] if tail else [])
    assert got == expected
    assert b"".join(got) == data


async def test_total_limit_rejects() -> None:
    with pytest.raises(FeedRejected, match="larger than 50 bytes"):
        await _collect(b"a\n" * 40, [10, 20, 30, 40, 50, 60], max_line=1000, max_total=50)


async def test_a_line_growing_past_the_limit_without_newline_rejects_early() -> None:
    with pytest.raises(FeedRejected, match="longer than 100 bytes"):
        await _collect(b"x" * 10_000, list(range(0, 10_000, 64)), max_line=100, max_total=10**9)
