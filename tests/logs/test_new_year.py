"""A BSD syslog time has no year: ``--year`` names it. A file that runs over a new year has two.

Found by a careless-operator review: ``logs ingest --year 2025`` of a file whose lines run from
``Dec 31 23:59:59`` into ``Jan  1 00:00:01`` dated the January lines 2025-01-01 -- a year before
the December ones -- without a word: a block allocated on the night of the new year was stored
(and answered) as held twelve months earlier. (Juniper's lines carry their own epoch; A10 lines
without ``rt`` and any line timed by its BSD header do not.)
"""

from __future__ import annotations

import pytest

from detnat.logs.events import LogEvent, Refused
from detnat.logs.formats import ParseOptions, parse_lines

CEF = (
    "CEF:0|A10|CFW|6.0.0-P1|CGN 106|Nat Port Batch Pool Allocated|5|proto=UDP src={inside} "
    "sourceTranslatedAddress=99.99.99.12 sourceTranslatedPort=22016 cn3=22271"
)


@pytest.mark.xfail(
    strict=True, reason="BSD syslog times are all dated --year, across a new year too"
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
