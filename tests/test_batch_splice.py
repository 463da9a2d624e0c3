"""``splice_rows`` against the obvious loop: each line's bytes, then its tail (or its
replacement), whichever way the block is assembled (a grid of rows, or byte by byte when one line
is far wider than the others)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detnat.batch import splice_rows

Block = tuple[bytes, list[int], list[int], list[bytes], dict[int, tuple[bytes | None, bytes]], bool]
LINES = st.binary(max_size=12) | st.binary(min_size=200, max_size=400)  # a wide one: byte by byte
TAILS = st.binary(min_size=1, max_size=10).map(lambda b: b.replace(b"\0", b"t") + b"\n")


@st.composite
def blocks(draw: st.DrawFn) -> Block:
    """Lines (LF or CRLF, empty lines between), tails, and rows replaced from Python."""
    crlf = draw(st.booleans())
    lines = [
        line.replace(b"\n", b"").replace(b"\r", b"")
        for line in draw(st.lists(LINES, min_size=1, max_size=30))
    ]
    block = b""
    starts, ends = [], []
    for line in lines:
        for _ in range(draw(st.integers(0, 1))):  # an empty line: no row
            block += b"\r\n" if crlf else b"\n"
        starts.append(len(block))
        block += line
        ends.append(len(block))
        block += b"\r\n" if crlf else b"\n"
    tails = [draw(TAILS) for _ in lines]
    special = draw(st.sets(st.integers(0, len(lines) - 1)))
    replaced = {i: (draw(st.none() | st.binary(max_size=5)), draw(TAILS)) for i in special}
    return block, starts, ends, tails, replaced, crlf


@settings(max_examples=300, deadline=None)
@given(blocks())
def test_splice_rows_writes_each_line_then_its_tail(case: Block) -> None:
    block, starts, ends, tails, replaced, crlf = case
    expected = b""
    for i, (start, end) in enumerate(zip(starts, ends, strict=True)):
        echo, tail = replaced.get(i, (None, tails[i]))
        expected += (block[start:end] if echo is None else echo) + tail
    width = max(map(len, tails))
    grid = np.zeros((len(tails), width), dtype=np.uint8)
    for i, tail in enumerate(tails):
        grid[i, : len(tail)] = np.frombuffer(tail, dtype=np.uint8)
    text = np.frombuffer(block + bytes(40), dtype=np.uint8)
    out = splice_rows(
        block,
        text,
        np.array(starts, dtype=np.int64),
        np.array(ends, dtype=np.int64),
        grid,
        np.array([len(t) for t in tails], dtype=np.int64),
        replaced,
        crlf=crlf,
    )
    assert bytes(out) == expected
