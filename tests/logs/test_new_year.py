"""A BSD syslog time has no year: ``--year`` names it. A file that runs over a new year has two.

Found by a careless-operator review: ``logs ingest --year 2025`` of a file whose lines run from
``Dec 31 23:59:59`` into ``Jan  1 00:00:01`` dated the January lines 2025-01-01 -- a year before
the December ones -- without a word: a block allocated on the night of the new year was stored
(and answered) as held twelve months earlier. (Juniper's lines carry their own epoch; A10 lines
without ``rt`` and any line timed by its BSD header do not.)

``--year`` is now the year of the file's first time without one, and the year turns where the
months do (December, then January); a straggler from before the turn keeps the old year.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from detnat.logs.events import LogEvent, Refused
from detnat.logs.formats import ParseOptions, parse_lines

CEF = (
    "CEF:0|A10|CFW|6.0.0-P1|CGN 106|Nat Port Batch Pool Allocated|5|proto=UDP src={inside} "
    "sourceTranslatedAddress=99.99.99.12 sourceTranslatedPort=22016 cn3=22271"
)


def test_a_line_after_the_new_year_is_never_dated_a_year_before_the_lines_it_follows() -> None:
    lines = [
        f"<134>Dec 31 23:59:59 a10 {CEF.format(inside='100.65.140.73')}",
        f"<134>Jan  1 00:00:01 a10 {CEF.format(inside='100.65.140.74')}",
    ]
    out = list(
        parse_lines(
            "a10-cef",
            [s.encode() for s in lines],
            file="f.log",
            options=ParseOptions(year=2025, tz="UTC"),
        )
    )
    december = next(i for i in out if isinstance(i, LogEvent) and i.inside == "100.65.140.73")
    january = [i for i in out if not isinstance(i, LogEvent) or i.inside == "100.65.140.74"]
    assert len(january) == 1
    (after,) = january
    assert isinstance(after, Refused) or after.at_us > december.at_us, after


def _times(lines: list[str], year: int) -> list[int | None]:
    out = parse_lines(
        "a10-cef",
        [s.encode() for s in lines],
        file="f.log",
        options=ParseOptions(year=year, tz="UTC"),
    )
    return [i.at_us if isinstance(i, LogEvent) else None for i in out]


def _utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * 1_000_000


def test_each_new_year_of_a_file_is_counted_and_a_straggler_keeps_the_year_before() -> None:
    head = ["Dec 31 23:59:59", "Jan  1 00:00:01", "Dec 31 23:59:58", "Jun 30 12:00:00"]
    head += ["Dec 31 23:00:00", "Jan  1 01:00:00", "Feb 29 00:00:00"]
    lines = [f"<134>{h} a10 {CEF.format(inside='100.65.140.73')}" for h in head]
    assert _times(lines, 2026) == [
        _utc("2026-12-31T23:59:59"),
        _utc("2027-01-01T00:00:01"),
        _utc("2026-12-31T23:59:58"),
        _utc("2027-06-30T12:00:00"),
        _utc("2027-12-31T23:00:00"),
        _utc("2028-01-01T01:00:00"),
        _utc("2028-02-29T00:00:00"),  # a leap day of the year the file reached
    ]


def test_an_rt_without_a_year_turns_with_the_file_too() -> None:
    rt = CEF.format(inside="100.65.140.73") + " rt={}"
    lines = [rt.format("Dec 31 23:59:59 UTC"), rt.format("Jan 01 00:00:01 UTC")]
    assert _times(lines, 2025) == [_utc("2025-12-31T23:59:59"), _utc("2026-01-01T00:00:01")]


@given(
    start=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1)),
    steps=st.lists(st.integers(0, 150 * 86_400), min_size=1, max_size=40),
)
def test_lines_in_order_whose_gaps_are_under_half_a_year_are_dated_exactly(
    start: datetime, steps: list[int]
) -> None:
    """A file written in order, over any number of new years, with no six-month silence: every
    BSD time is dated as the instant it was written."""
    instants = [start.replace(microsecond=0)]
    for step in steps:
        instants.append(instants[-1] + timedelta(seconds=step))
    lines = [
        f"<134>{t:%b} {t.day:2d} {t:%H:%M:%S} a10 {CEF.format(inside='100.65.140.73')}"
        for t in instants
    ]
    assert _times(lines, instants[0].year) == [_utc(t.isoformat()) for t in instants]


def test_the_chunks_of_a_followed_file_share_one_clock() -> None:
    """``--follow`` parses a file a chunk at a time: the year turns across chunks too."""
    options = ParseOptions(year=2025, tz="UTC").continued()
    line = f"<134>{{}} a10 {CEF.format(inside='100.65.140.73')}"
    times = [
        i.at_us
        for chunk in (["Dec 31 23:59:59"], ["Jan  1 00:00:01"])
        for i in parse_lines(
            "a10-cef", [line.format(h).encode() for h in chunk], file="f.log", options=options
        )
        if isinstance(i, LogEvent)
    ]
    assert times == [_utc("2025-12-31T23:59:59"), _utc("2026-01-01T00:00:01")]
