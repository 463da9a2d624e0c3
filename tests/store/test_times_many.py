"""The vectorised instant parser (``parse_instants_us``) against the per-row ``parse_instant``: the
same instant, or the same refusal with the same message, on every text; so a batch row's time
is accepted, refused and explained exactly as a single lookup's."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from detnat.errors import QueryError
from detnat.service import batch_lookups
from detnat.service.batch_lookups import BatchQuery
from detnat.service.plans import MapperCache
from detnat.service.timelines import Timelines
from detnat.service.times import parse_instant, parse_instants_us

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ZONES = [None, "UTC", "Etc/UTC", "Etc/GMT-14", "Etc/GMT+12", "GMT", "Zulu", "Europe/Berlin"]
ZONES += ["utc", "Etc/GMT+15", "No/Such_Zone", "UTC\u0661"]


def _one(text: str, tz: str | None) -> tuple[str, object]:
    try:
        return ("ok", (parse_instant(text, tz=tz) - EPOCH) // timedelta(microseconds=1))
    except QueryError as exc:
        return ("refused", exc.message)


def _many(texts: list[str], tz: str | None) -> list[tuple[str, object]]:
    values, errors = parse_instants_us(texts, tz=tz)
    return [
        ("refused", errors[i]) if i in errors else ("ok", int(values[i])) for i in range(len(texts))
    ]


def _assert_agree(texts: list[str], tz: str | None) -> None:
    assert _many(texts, tz) == [_one(t, tz) for t in texts]


# -- texts: valid, near-valid, calendar edges -----------------------------------------------------

_NUMBERS = st.one_of(
    st.integers(0, 99).map(lambda n: f"{n:02}"),
    st.sampled_from(["24", "60", "00", "23", "59", "29", "30", "31", "28", "02", "13", "0", "1"]),
)
_YEARS = st.one_of(
    st.integers(1, 9999).map(lambda n: f"{n:04}"),
    st.sampled_from(["0000", "0001", "0002", "9998", "9999", "2000", "1900", "2024", "2100"]),
)
_FRACTIONS = st.one_of(
    st.just(""),
    st.text("0123456789", min_size=1, max_size=9).map(lambda d: "." + d),
    st.integers(1, 6).map(lambda k: "." + "1" * k + "000"),  # zeros beyond microseconds
    st.sampled_from([".", ".1234560", ".1234567", ".0000001", ".000000000", ".12345600001"]),
)
_OFFSETS = st.one_of(
    st.sampled_from(["", "Z", "z", "+00:00", "-00:00", "+01:00", "-14:00", "+14:00", "+23:59"]),
    st.sampled_from(["+24:00", "-24:00", "+00:60", "+0100", "+01", "+1:00", "Z ", " Z", "ZZ"]),
    st.tuples(st.sampled_from("+-"), _NUMBERS, _NUMBERS).map(lambda t: f"{t[0]}{t[1]}:{t[2]}"),
)
_SEPARATORS = st.sampled_from(["T", "t", " ", "_", "TT", ""])


@st.composite
def _texts(draw: st.DrawFn) -> str:
    text = (
        f"{draw(_YEARS)}-{draw(_NUMBERS)}-{draw(_NUMBERS)}{draw(_SEPARATORS)}"
        f"{draw(_NUMBERS)}:{draw(_NUMBERS)}:{draw(_NUMBERS)}{draw(_FRACTIONS)}{draw(_OFFSETS)}"
    )
    mutation = draw(st.integers(0, 9))
    if mutation == 0 and text:  # one character replaced (non-ASCII digits, letters, separators)
        at = draw(st.integers(0, len(text) - 1))
        other = draw(st.sampled_from("0912٣２-:.+TZz \n\x00é"))
        text = text[:at] + other + text[at + 1 :]
    elif mutation == 1 and text:  # one character dropped or doubled
        at = draw(st.integers(0, len(text) - 1))
        text = text[:at] + text[at + 1 :] if draw(st.booleans()) else text[:at] + text[at:]
    return text


def _valid(moment: datetime, offset_minutes: int, shape: int) -> str:
    local = moment + timedelta(minutes=offset_minutes)
    body = local.strftime("%Y-%m-%dT%H:%M:%S")
    if shape % 3:
        body += f".{local.microsecond:06}"[: 1 + shape]
    if shape == 5:
        return body
    if offset_minutes == 0 and shape % 2:
        return body + "Z"
    sign = "-" if offset_minutes < 0 else "+"
    return f"{body}{sign}{abs(offset_minutes) // 60:02}:{abs(offset_minutes) % 60:02}"


_VALID = st.builds(
    _valid,
    st.datetimes(datetime(2, 1, 1), datetime(9998, 12, 31)),
    st.integers(-23 * 60 - 59, 23 * 60 + 59) | st.just(0),
    st.integers(0, 6),
)
EDGES = (
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00",
    "0001-01-01T00:00:00+00:01",
    "0001-01-01T00:00:00-00:01",
    "0001-01-01T13:59:59.999999",
    "0001-01-01T14:00:00",
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59.999999",
    "9999-12-31T23:59:59.999999-00:01",
    "9999-12-31T10:00:00",
    "9999-12-31T12:00:00",
    "9998-12-31T23:59:59",
    "0002-01-01T00:00:00",
    "2024-02-29T00:00:00Z",
    "2023-02-29T00:00:00Z",
    "2000-02-29T00:00:00Z",
    "1900-02-29T00:00:00Z",
    "2026-04-31T00:00:00Z",
    "2026-00-10T00:00:00Z",
    "2026-13-10T00:00:00Z",
    "2026-01-00T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "2016-12-31T23:59:60Z",
    "2026-03-01T24:00:00Z",
    "2026-03-01T24:00:00",
    "2026-03-29T02:30:00",
    "2026-10-25T02:30:00",
    "2026-03-01T10:00:00+24:00",
    "2026-03-01T10:00:00-24:00",
    "2026-03-01T10:00:00+00:60",
    "2026-03-01T10:00:00-00:00",
    "2026-03-01T10:00:00.5-00:00",
    "2026-03-01T10:00:00+0100",
    "2026-03-01T10:00:00.1234567Z",
    "2026-03-01T10:00:00.1234560Z",
    "2026-03-01T10:00:00.1234560",
)
_EDGES = st.sampled_from(EDGES)
# A valid date and time with any fraction and offset, valid or not (the near misses of one field).
_NEAR = st.builds(
    lambda moment, sep, frac, offset: moment.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + frac + offset,
    st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)),
    _SEPARATORS,
    _FRACTIONS,
    _OFFSETS,
)
_ANY = st.one_of(_texts(), _VALID, _NEAR, _EDGES, st.text(max_size=34))


@settings(max_examples=400, deadline=None)
@given(st.lists(_ANY, min_size=1, max_size=40), st.sampled_from(ZONES))
@example(["2026-03-14T21:07:33", "2026-03-14T21:07:33.5"], "UTC")
@example(["2026-03-14T21:07:33.1234567Z", "2026-03-14T21:07:33.1234560Z"], None)
@example(["2026-03-14t21:07:33z", "2026-03-14 21:07:33-00:00", "２026-03-14T21:07:33Z"], None)
def test_the_vectorised_parser_agrees_with_parse_instant(texts: list[str], tz: str | None) -> None:
    _assert_agree(texts, tz)


@settings(max_examples=200, deadline=None)
@given(st.lists(_VALID, min_size=1, max_size=40), st.sampled_from(["UTC", "Etc/GMT-2", None]))
def test_valid_times_agree_and_are_answered(texts: list[str], tz: str | None) -> None:
    _assert_agree(texts, tz)


@pytest.mark.parametrize("tz", ZONES)
def test_every_edge_agrees_alone_and_together(tz: str | None) -> None:
    edges = list(EDGES)
    _assert_agree(edges, tz)
    for text in edges:
        _assert_agree([text], tz)


def test_naive_times_with_a_fixed_zone_take_the_fast_path() -> None:
    from detnat.service import times

    texts = ["2026-03-14T21:07:33", "2026-03-14T21:07:33.250", "2026-03-14T21:07:33Z"]
    raw = "\n".join(texts).encode("ascii")
    _, ok = times._fast_instants(raw, texts, times._fixed_offset_s("Etc/GMT-1"))
    assert ok.tolist() == [True, True, True]
    assert times._fixed_offset_s("Europe/Berlin") is None  # DST: always the per-row parser
    _assert_agree(texts, "Etc/GMT-1")


def _csv_report(texts: list[str], tz: str | None) -> batch_lookups.BatchReport:
    query = BatchQuery(
        snapshot=Timelines(0, []),
        now=datetime(2027, 1, 1, tzinfo=UTC),
        mappers=MapperCache(),
        tz=tz,
    )
    text = "ip,port,time\n" + "".join(f"192.0.2.1,1100,{t}\n" for t in texts)
    return batch_lookups.reverse_csv_at(query, io.StringIO(text, newline=""), lambda _: None)


@settings(max_examples=100, deadline=None)
@given(st.lists(_ANY, min_size=1, max_size=30), st.sampled_from([None, "UTC", "Europe/Berlin"]))
def test_a_refused_time_is_reported_on_its_line_with_parse_instants_message(
    texts: list[str], tz: str | None
) -> None:
    ips = ["192.0.2.1"] * len(texts)
    _, _, _, errors = batch_lookups._parse_columns(ips, ["1100"] * len(texts), texts, tz)
    want = {}
    for i, text in enumerate(texts):
        verdict = _one(text, tz)
        if verdict[0] == "refused":
            want[i] = f"bad time: {verdict[1]}"
    assert errors == want


_CSV_SAFE = st.one_of(_texts(), _VALID, _NEAR, _EDGES).filter(
    lambda t: not any(c in t for c in ',"\r\n') and t.strip()
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_CSV_SAFE, min_size=1, max_size=30), st.sampled_from([None, "UTC"]))
def test_a_csv_batch_reports_each_refused_time_on_its_line(
    texts: list[str], tz: str | None
) -> None:
    report = _csv_report(texts, tz)
    want = [
        (line, f"bad time: {verdict[1]}")
        for line, verdict in enumerate((_one(t, tz) for t in texts), start=2)
        if verdict[0] == "refused"
    ]
    assert [(b.line, b.message) for b in report.bad_rows] == want
