"""The ingest's one pass (digest and COPY lines together) against the plain formulas: the digest
is :func:`rows_digest` of each row's text, and each COPY line is the row's fields escaped as
COPY's text format reads them back (what ``audit verify`` recomputes from the stored rows)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from detnat.directory.model import Interval, SourceLine
from detnat.directory.resolve import instant_text
from detnat.service import directory

_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
_US = st.integers(-(10**15), 4 * 10**15)


@st.composite
def _intervals(draw: st.DrawFn) -> Interval:
    start = draw(_US)
    end = draw(st.one_of(st.none(), st.integers(start + 1, start + 10**12)))
    sources = tuple(
        SourceLine.of(draw(_TEXT), draw(st.integers(1, 10**6)), draw(_TEXT))
        for _ in range(draw(st.integers(0, 3)))
    )
    subscriber = draw(st.sampled_from(["10.0.0.5/32", "2001:db8:1:100::/56"]))
    closed = draw(st.sampled_from(["stop", "open", "given"]))
    return Interval(subscriber, draw(_TEXT), start, end, closed, sources)


def _unescape(field: str) -> str:
    """COPY text format, read back."""
    out, k = [], 0
    named = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}
    while k < len(field):
        if field[k] == "\\":
            out.append(named[field[k + 1]])
            k += 2
        else:
            out.append(field[k])
            k += 1
    return "".join(out)


@given(st.lists(_intervals(), max_size=20), st.one_of(st.none(), st.integers(1, 10**6)))
def test_one_pass_rows_are_the_plain_formulas(
    intervals: list[Interval], realm_id: int | None
) -> None:
    digest, lines = directory._rows(intervals, realm_id)
    texts = []
    for n, (iv, line) in enumerate(zip(intervals, lines, strict=True), start=1):
        account, closed, sources = directory._stored(iv)
        texts.append(
            directory._row_text(
                n, iv.subscriber, iv.start, iv.end, *directory._stored(iv), realm_id
            )
        )
        assert line.endswith("\n")
        fields = line[:-1].split("\t")
        end = "" if iv.end is None else instant_text(iv.end)
        realm = "\\N" if realm_id is None else str(realm_id)  # COPY's NULL, or the id
        assert [*map(_unescape, fields[:-1]), fields[-1]] == [
            str(n), iv.subscriber, f"[{instant_text(iv.start)},{end})", account, closed, sources,
            realm,
        ]  # fmt: skip
    assert digest == directory.rows_digest(texts)
