"""`Reading`: a file read a block at a time gives the lines, counts, offsets and hash that one
`readline` after the other gives, whatever the blocks cut."""

from __future__ import annotations

import hashlib
import io

from hypothesis import given
from hypothesis import strategies as st

from detnat.service import logs


def _by_readline(data: bytes, final: bool) -> list[bytes]:
    stream = io.BytesIO(data)
    lines = []
    while line := stream.readline():
        if not final and not line.endswith(b"\n"):
            break
        lines.append(line)
    return lines


@given(
    st.lists(st.sampled_from([b"a", b"\xc3\xa9", b"\t", b"\r", b"\n", b"\r\n", b"\x00"])).map(
        b"".join
    ),
    st.booleans(),
    st.integers(1, 9),
)
def test_lines_read_in_blocks_are_the_lines_readline_gives(
    data: bytes, final: bool, block: int
) -> None:
    want = _by_readline(data, final)
    stream = io.BytesIO(data)
    reading = logs.Reading(stream, name="t.log", final=final, block=block)
    got = list(reading.lines())
    assert got == [line.removesuffix(b"\n") for line in want]
    assert reading.count == len(want)
    assert reading.offset == stream.tell() == sum(map(len, want))  # a follow resumes here
    assert reading.sha.hexdigest() == hashlib.sha256(b"".join(want)).hexdigest()
    for number, line in enumerate(want, 1):
        text = line.rstrip(b"\r\n").decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
        assert reading.raw(number) == text
    assert reading.raw(len(want) + 1) == ""


@given(
    st.lists(
        st.builds(
            lambda n, b: (b * n).replace(b"\n", b"") + b"\n", st.integers(0, 500), st.binary()
        ),
        max_size=12,
    ),
    st.integers(0, 12),
    st.booleans(),
    st.integers(1, 700),
)
def test_the_fingerprint_is_of_the_files_first_bytes_as_read_whatever_the_resumes(
    lines: list[bytes], cut: int, half: bool, block: int
) -> None:
    """A file read up to line ``cut`` (and half of the next one written), then resumed where
    that reading stopped, with the start it had read: each reading's fingerprint is the SHA-256
    of the file's first ``min(HEAD, offset)`` bytes, as ``--follow`` checks a file against."""
    data = b"".join(lines)
    written = b"".join(lines[:cut])
    if half and cut < len(lines):
        written += lines[cut][: len(lines[cut]) // 2]
    first = logs.Reading(io.BytesIO(written), name="f", identity="1:2", final=False, block=block)
    list(first.lines())
    assert first.offset == len(b"".join(lines[:cut]))
    resumed = logs.Reading(
        io.BytesIO(data),
        name="f",
        identity="1:2",
        offset=first.offset,
        final=False,
        block=block,
        head=first.head,
    )
    resumed.stream.seek(first.offset)
    list(resumed.lines())
    for reading in (first, resumed):
        kept = data[: min(logs.HEAD, reading.offset)]
        assert reading.fingerprint() == (hashlib.sha256(kept).hexdigest(), len(kept))
    assert logs.Reading(io.BytesIO(data), name="-").fingerprint() is None  # stdin: no identity
    assert resumed.offset == len(data)
