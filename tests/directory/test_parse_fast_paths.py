"""The parsers' fast paths read what the general ones read (issue 14: ingest speed).

Each fast path is held to the code it shortcuts on random inputs made of the characters that
matter to it: the plain csv rows to :mod:`csv`'s, and a whole csv parse through either; a
RADIUS timestamp line read through its minute to the line read whole.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from detnat.directory import radius, table
from detnat.directory.model import Parsed
from detnat.directory.zones import Zone

# what a csv line may hold besides quotes and CRs: commas, blanks, other line-ish characters
_CSV_TEXT = st.text(st.sampled_from([",", " ", "\t", "\n", "a", "1", "\u00e9", "\x0b", "\u2028"]))


@given(_CSV_TEXT)
def test_plain_csv_rows_are_what_the_csv_module_reads(text: str) -> None:
    assert list(table._plain_rows(text)) == list(table._csv_rows(text))


_FIELD = st.sampled_from(
    [
        "10.0.0.5",
        "2001:db8::/32",
        "10.0.0.1/24",
        "x",
        "",
        " ",
        "CUST-1",
        "2026-03-01T00:00:00Z",
        "2026-03-02T00:00:00Z",
        "2026-03-01T00:00:00",
        "yesterday",
    ]
)
_LINE = st.lists(_FIELD, min_size=0, max_size=5).map(",".join)


@settings(max_examples=200)
@given(st.lists(_LINE, max_size=12), st.booleans())
def test_a_csv_parse_through_the_plain_rows_is_the_csv_modules(
    lines: list[str], newline_at_end: bool
) -> None:
    text = "\n".join(["subscriber,account,from,to", *lines]) + ("\n" if newline_at_end else "")
    fast, general = Parsed(), Parsed()
    got = [iv for batch in table.stream([("f.csv", text)], tz="UTC", out=fast) for iv in batch]
    # the same text with a quoted header field goes through csv (a quote read away by it)
    quoted = '"subscriber",' + text.split(",", 1)[1]
    want = [
        iv for batch in table.stream([("f.csv", quoted)], tz="UTC", out=general) for iv in batch
    ]
    # the first line is what differs between the two (only its text, which no interval holds)
    assert got == want
    assert (fast.records, fast.duplicates, fast.refused) == (
        general.records,
        general.duplicates,
        general.refused,
    )


def _read(read: Callable[[str], int], header: str) -> int | str:
    try:
        return read(header)
    except ValueError as exc:  # LocalTimeError too
        return f"{type(exc).__name__}: {exc}"


_HEADER = st.builds(
    "{} {} {} {}:{}:{} {}{}".format,
    st.sampled_from(["Sun", "Thu"]),
    st.sampled_from(["Mar", "Oct", "Jun", "Foo"]),
    st.sampled_from(["29", " 1", "31", "30", "x"]),
    st.sampled_from(["01", "02", "03", "2", "24"]),
    st.sampled_from(["00", "30", "59", "5", ""]),
    st.sampled_from(["00", "07", "59", "60", "7", "٣٣", "1 ", " 1", "", "00:00"]),
    st.sampled_from(["2026", "26", "", "2026 x"]),
    st.sampled_from(["", " ", "\t"]),
)


@settings(max_examples=300)
@given(st.lists(_HEADER, min_size=1, max_size=8), st.sampled_from(["Europe/Berlin", "UTC"]))
def test_timestamp_lines_read_through_their_minute_are_read_as_whole(
    headers: list[str], tz: str
) -> None:
    zone = Zone.named(tz)
    clock = radius._Clock(zone)
    for header in headers + headers:  # each read twice: the second from what the first kept
        assert _read(clock.line, header) == _read(lambda h: radius._line_time(h, zone), header)
