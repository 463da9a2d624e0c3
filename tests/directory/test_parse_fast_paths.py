"""The parsers' fast paths read what the general ones read (issue 14: ingest speed).

Each fast path is held to the code it shortcuts on random inputs made of the characters that
matter to it: the plain csv rows to :mod:`csv`'s, and a whole csv parse through either.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from detnat.directory import table
from detnat.directory.model import Parsed

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
