"""Instants as evidence: explicit offsets, no guessing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from detnat.errors import QueryError
from detnat.service.times import parse_duration, parse_instant


def test_offset_is_applied() -> None:
    assert parse_instant("2026-03-14T21:07:33+01:00") == datetime(
        2026, 3, 14, 20, 7, 33, tzinfo=UTC
    )


def test_minus_zero_offset_is_utc() -> None:
    assert parse_instant("2026-03-14T21:07:33-00:00") == parse_instant("2026-03-14T21:07:33Z")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("2026-03-01T10:00:00", "no offset"),
        ("2016-12-31T23:59:60Z", "leap second"),
        ("2026-03-01T10:00:00+24:00", "not a valid offset"),
        ("2026-03-01T10:00:00+0100", "±HH:MM"),
        ("2026-03-01T24:00:00Z", "not a valid date"),
        ("2026-03-01T10:00:00.123456789Z", "microsecond"),
        ("0001-01-01T00:00:00+14:00", "outside the years"),
        ("9999-12-31T23:59:59-14:00", "outside the years"),
        ("1700000000", "RFC 3339"),
    ],
)
def test_bad_instants_are_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(QueryError, match=why):
        parse_instant(text)


def test_numbers_are_not_instants() -> None:
    with pytest.raises(QueryError, match="string"):
        parse_instant(1700000000)


def test_naive_local_time_with_a_zone() -> None:
    got = parse_instant("2026-07-01T12:00:00", tz="Europe/Berlin")
    assert got == datetime(2026, 7, 1, 10, tzinfo=UTC)


def test_dst_ambiguous_and_impossible_local_times_show_both_readings() -> None:
    with pytest.raises(QueryError, match=r"twice.*\+02:00 or .*\+01:00"):
        parse_instant("2026-10-25T02:30:00", tz="Europe/Berlin")
    with pytest.raises(QueryError, match="never happened"):
        parse_instant("2026-03-29T02:30:00", tz="Europe/Berlin")


def test_durations() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("500ms") == timedelta(milliseconds=500)
    with pytest.raises(QueryError):
        parse_duration("2 weeks")
