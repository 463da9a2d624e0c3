"""Lines made to break a parser: each is refused with its line number, the rest of the file read.

Found by an attacker's review of the nfdump reader: negative or enormous numbers, deep nesting and
a block whose end comes before its start escaped the parser and stopped the whole ingest (under
``--follow`` the same chunk forever); records sharing one line at one instant were stored as one;
a record spread over lines was stored with only its first line, so its evidence did not verify.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from detnat.logs.events import LogEvent, Refused
from detnat.logs.formats import ParseOptions, parse_lines
from tests.logs.test_formats import NFDUMP_NDJSON, NFDUMP_PRETTY


def _read(*lines: str) -> tuple[list[LogEvent], list[Refused]]:
    out = list(
        parse_lines(
            "nfdump-json", [s.encode() for s in lines], file="f.log", options=ParseOptions(tz="UTC")
        )
    )
    return [e for e in out if isinstance(e, LogEvent)], [r for r in out if isinstance(r, Refused)]


def _with(**fields: object) -> str:
    record = json.loads(NFDUMP_NDJSON)
    record.update(fields)
    return json.dumps(record)


@pytest.mark.parametrize(
    "line",
    [
        _with(pblock_start=-5),
        _with(pblock_size=-3),
        _with(pblock_start="-5"),
        _with(pblock_start=2000, pblock_end=1000),
        _with(nat_event_id="9" * 5000),
        '{"nat_event_id": ' + "9" * 5000 + "}",
        "[" * 100_000,
        "[" + "[" * 50_000 + "]" * 50_000 + "]",
    ],
)
def test_a_hostile_line_is_refused_and_the_next_line_still_read(line: str) -> None:
    events, refused = _read(line, NFDUMP_NDJSON)
    assert [r.line for r in refused] == [1]
    assert len(events) == 1 and events[0].source.line == 2


def test_two_records_of_one_line_at_one_instant_are_not_one() -> None:
    """Stored lines are keyed by instant and the line's hash: a second event of the same line and
    instant would be taken for a duplicate and lost, so it is refused, loudly."""
    first = json.loads(NFDUMP_NDJSON)
    second = dict(first, src4_addr="100.64.0.11", pblock_start=1536, pblock_end=2047)
    later = dict(second, t_event="2026-12-07T11:00:01.5")
    events, refused = _read(json.dumps([first, second, later]))
    assert [e.inside for e in events] == ["100.64.0.10", "100.64.0.11"]
    assert len(refused) == 1 and "same instant" in refused[0].reason


def test_a_record_spread_over_lines_is_hashed_over_the_lines_it_is_stored_as() -> None:
    from io import BytesIO

    from detnat.service.logs import Reading

    data = "\n".join(NFDUMP_PRETTY).encode() + b"\n"
    reading = Reading(BytesIO(data), name="pretty.json")
    items = list(
        parse_lines(
            "nfdump-json", reading.lines(), file="pretty.json", options=ParseOptions(tz="UTC")
        )
    )
    (event,) = [e for e in items if isinstance(e, LogEvent)]
    text = reading.text_of(event.source.line, event.source.sha256)
    assert hashlib.sha256(text.encode()).hexdigest() == event.source.sha256
    assert text.startswith("{\n") and text.endswith("}")


def test_a_line_with_a_nul_byte_is_refused() -> None:
    """A NUL cannot be stored as text, so its stored line could never match its hash."""
    events, refused = _read(NFDUMP_NDJSON.replace("EVENT", "EV\x00ENT"), NFDUMP_NDJSON)
    assert [r.line for r in refused] == [1] and "NUL" in refused[0].reason
    assert len(events) == 1
