"""Instants and durations as evidence: strict RFC 3339, no guessing.

Decisions (also in ``docs/store.md``):

- An instant needs an explicit offset (``Z`` or ``±HH:MM``). A naive time is refused unless the
  caller names its zone (``tz="Europe/Berlin"``); then a local time that DST makes ambiguous (it
  happened twice) or impossible (it never happened) is refused, showing both readings.
- ``-00:00`` (RFC 3339: "UTC, local offset unknown") is accepted: it names one instant, the same as
  ``Z``.
- ``+24:00`` and other offsets beyond ``±23:59``, ``+0100`` (no colon), hour ``24``, and the leap
  second ``23:59:60`` are refused (Python and Postgres cannot represent a leap second and disagree
  on what it means).
- Fractions: up to microseconds (Postgres' resolution). Finer digits are accepted only when they are
  zeros; otherwise refused rather than silently rounded, because a nanosecond can decide which side
  of a plan change an answer falls.
- Numbers (epoch seconds or milliseconds) are not accepted anywhere: strings only.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from detnat.errors import QueryError

if TYPE_CHECKING:  # the batch paths import numpy: a single lookup starts without it
    import numpy as np
    import numpy.typing as npt

_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2})"
    r"(?:\.(?P<frac>\d{1,30}))?(?P<offset>[Zz]|[+-]\d{2}:?\d{2})?",
    re.ASCII,  # RFC 3339 digits are ASCII: not ２０２６ or ٢٠٢٦
)
_DURATION = re.compile(
    r"(?:(\d{1,5})h)?(?:(\d{1,7})m(?!s))?(?:(\d{1,9}(?:\.\d{1,6})?)s)?(?:(\d{1,12})ms)?", re.ASCII
)
MAX_TOLERANCE = timedelta(days=1)
_ZONE = re.compile(r"[A-Za-z][A-Za-z0-9/_+\-]{0,63}", re.ASCII)


def _fmt(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def format_instant(moment: datetime) -> str:
    """UTC, RFC 3339, microseconds only when there are some."""
    return _fmt(moment.astimezone(UTC))


def parse_instant(text: object, *, tz: str | None = None, field: str = "time") -> datetime:
    """An aware UTC datetime for an RFC 3339 instant (see the module docstring for the rules)."""
    if not isinstance(text, str):
        raise QueryError(
            f"give the time as an RFC 3339 string such as 2026-03-14T21:07:33+01:00, "
            f"not {type(text).__name__}",
            field=field,
        )
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise QueryError(
            f"{text!r} is not an RFC 3339 time such as 2026-03-14T21:07:33+01:00", field=field
        )
    hour, minute, second = int(match["h"]), int(match["m"]), int(match["s"])
    if second == 60:
        raise QueryError(
            f"{text!r} is a leap second; detnat refuses them (give :59 or the next second)",
            field=field,
        )
    frac = match["frac"] or ""
    if len(frac) > 6 and frac[6:].strip("0"):
        raise QueryError(
            f"{text!r} is finer than a microsecond; detnat resolves time to microseconds and will "
            "not round evidence for you (round it, or widen the tolerance)",
            field=field,
        )
    micro = int((frac[:6]).ljust(6, "0")) if frac else 0
    try:
        year, month, day = (int(p) for p in match["date"].split("-"))
        local = datetime(year, month, day, hour, minute, second, micro)
    except ValueError as exc:
        raise QueryError(f"{text!r} is not a valid date and time: {exc}", field=field) from None
    offset_text = match["offset"]
    if offset_text is None:
        return _from_zone(text, local, tz, field)
    if offset_text in ("Z", "z"):
        offset = timedelta(0)
    else:
        if ":" not in offset_text:
            raise QueryError(
                f"{text!r}: write the offset as ±HH:MM (RFC 3339), e.g. "
                f"{offset_text[:3]}:{offset_text[3:]}",
                field=field,
            )
        oh, om = int(offset_text[1:3]), int(offset_text[4:6])
        if oh > 23 or om > 59:
            raise QueryError(f"{text!r}: offset {offset_text} is not a valid offset", field=field)
        offset = timedelta(hours=oh, minutes=om) * (-1 if offset_text[0] == "-" else 1)
    try:
        return (local - offset).replace(tzinfo=UTC)
    except OverflowError:
        raise QueryError(f"{text!r} is outside the years 1-9999 in UTC", field=field) from None


def _from_zone(text: str, local: datetime, tz: str | None, field: str) -> datetime:
    if tz is None:
        raise QueryError(
            f"{text!r} has no offset; add one (Z or ±HH:MM) or name the zone it is in "
            "(--tz Europe/Berlin)",
            field=field,
        )
    zone = check_zone(tz)
    try:
        first = local.replace(tzinfo=zone, fold=0)
        second = local.replace(tzinfo=zone, fold=1)
        readings = [first.astimezone(UTC), second.astimezone(UTC)]
    except OverflowError:
        raise QueryError(f"{text!r} is outside the years 1-9999 in UTC", field=field) from None
    if readings[0] != readings[1]:
        shown = " or ".join(r.astimezone(zone).isoformat() for r in (first, second))
        back = readings[0].astimezone(zone).replace(tzinfo=None)
        if back != local:
            raise QueryError(
                f"{text!r} never happened in {tz} (a DST gap); it could mean {shown}", field=field
            )
        raise QueryError(
            f"{text!r} happened twice in {tz} (DST); give the offset: {shown}", field=field
        )
    return readings[0]


def check_zone(tz: str, *, field: str = "tz") -> ZoneInfo:
    """An IANA time zone by name (``Europe/Berlin``): ASCII, at most 64 characters, known."""
    if not isinstance(tz, str) or not _ZONE.fullmatch(tz):
        raise QueryError(
            f"{tz[:40]!r} is not a time zone name such as Europe/Berlin or UTC", field=field
        )
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise QueryError(f"{tz!r} is not a known time zone", field=field) from None


def parse_duration(text: str, *, field: str = "tolerance") -> timedelta:
    """``2s``, ``1.5s``, ``500ms``, ``90m``, ``2h``, ``1h30m`` (a bare ``0`` is zero)."""
    text = text.strip()
    if text == "0":
        return timedelta(0)
    match = _DURATION.fullmatch(text)
    if not text or match is None or not any(match.groups()):
        raise QueryError(f"{text!r} is not a duration such as 2s, 500ms, 90m or 2h", field=field)
    h, m, s, ms = match.groups()
    return timedelta(
        hours=int(h or 0), minutes=int(m or 0), seconds=float(s or 0), milliseconds=int(ms or 0)
    )


def check_tolerance(tolerance: timedelta, *, field: str = "tolerance") -> timedelta:
    if tolerance < timedelta(0) or tolerance > MAX_TOLERANCE:
        raise QueryError(f"tolerance must be between 0 and {MAX_TOLERANCE}", field=field)
    return tolerance


def tolerance_seconds(value: float, *, field: str = "tolerance_seconds") -> timedelta:
    """A tolerance given in seconds (a JSON number): finite, 0 to one day."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value != value
        or not 0 <= value <= MAX_TOLERANCE.total_seconds()
    ):
        raise QueryError(
            f"must be between 0 and {MAX_TOLERANCE.total_seconds():g} seconds", field=field
        )
    return timedelta(seconds=value)


def check_window(at: datetime, tolerance: timedelta, *, field: str = "time") -> None:
    """Refuse an instant whose window ``[at - tolerance, at + tolerance]`` leaves the calendar
    (years 1-9999 in UTC): nothing can be searched there, and Python cannot even name it."""
    try:
        at - tolerance, at + tolerance  # computed only to see whether it overflows
    except OverflowError:
        raise QueryError(
            f"{format_instant(at)} ± {format_duration(tolerance)} reaches outside the years "
            "1-9999 (UTC); give a smaller tolerance or a time inside them",
            field=field,
        ) from None


def format_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    if seconds == int(seconds):
        whole = int(seconds)
        if whole and whole % 3600 == 0:
            return f"{whole // 3600}h"
        if whole and whole % 60 == 0:
            return f"{whole // 60}m"
        return f"{whole}s"
    return f"{seconds}s"


# -- many instants at once (batch lookups) ---------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_US = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_MAX_US = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
# Two-digit fields of ``YYYY-MM-DDTHH:MM:SS``: the positions of their tens and their units.
_TENS = (0, 2, 5, 8, 11, 14, 17)
_UNITS = (1, 3, 6, 9, 12, 15, 18)
_YEARS = 10_000


@cache
def _tables() -> tuple[
    npt.NDArray[np.intp],
    npt.NDArray[np.intp],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.uint8],
]:
    """:func:`instants_in`'s constants: (tens rows, units rows, columns, the day number of the
    first of each month and its length in days, both by ``year * 12 + month - 1`` for years
    0-9999). The day numbers count from 1970-01-01 (0) in the proleptic Gregorian calendar."""
    import numpy as np

    year = np.arange(_YEARS, dtype=np.int64)
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    # 1 January of each year: 365 days a year and a day for each leap year before it.
    before = year - 1
    leaps = np.where(year > 0, before // 4 - before // 100 + before // 400 + 1, 0)
    january = year * 365 + leaps - 719528  # 0000-01-01 is 719,528 days before 1970-01-01
    lengths = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
    days = np.where(leap[:, None], lengths + (np.arange(12) == 1), lengths)
    first = (january[:, None] + np.cumsum(days, axis=1) - days).reshape(-1)
    days = days.astype(np.uint8).reshape(-1)
    return (
        np.array(_TENS, dtype=np.intp),
        np.array(_UNITS, dtype=np.intp),
        np.arange(26, dtype=np.int64)[:, None],
        first,
        days,
    )


def parse_instants_us(
    texts: list[str], *, tz: str | None = None, field: str = "time"
) -> tuple[npt.NDArray[np.int64], dict[int, str]]:
    """Many RFC 3339 instants as microseconds since the epoch, and the message of each bad one.

    The common shape ``YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|±HH:MM)`` in ASCII is parsed with array
    operations, and so is the naive ``YYYY-MM-DDTHH:MM:SS[.f{1,6}]`` when ``tz`` names a zone
    with one fixed offset (``UTC``, ``Etc/GMT-2``; years 2-9998 only); every other text goes
    through :func:`parse_instant`, which stays the one definition: a text the fast path is unsure
    of is never answered by it.
    """
    import numpy as np

    n = len(texts)
    out = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=np.bool_)
    if n:
        try:
            raw = "\n".join(texts).encode("ascii")
        except UnicodeEncodeError:
            raw = b""
        if raw:
            out, ok = _fast_instants(raw, texts, _fixed_offset_s(tz))
    errors: dict[int, str] = {}
    for i in np.flatnonzero(~ok).tolist():
        try:
            out[i] = (parse_instant(texts[i], tz=tz, field=field) - _EPOCH) // timedelta(
                microseconds=1
            )
        except QueryError as exc:
            errors[i] = exc.message
    return out, errors


# Zones that are one offset for all time in the tz database (no rules, no transitions).
_FIXED_ZONES = re.compile(
    r"(?:Etc/)?(?:UTC|UCT|Universal|Zulu|Greenwich|GMT(?:[+-]?0)?)|Etc/GMT[+-](?:[1-9]|1[0-4])",
    re.ASCII,
)


def _fixed_offset_s(tz: str | None) -> int | None:
    """The offset in seconds of a zone known to have only one, else None (the slow path decides,
    and says what is wrong with the name)."""
    if tz is None or not _FIXED_ZONES.fullmatch(tz):
        return None
    try:
        zone = check_zone(tz)
    except QueryError:
        return None
    probes = (datetime(2, 1, 1), datetime(1970, 1, 1), datetime(2026, 7, 1), datetime(9998, 12, 1))
    offsets = {zone.utcoffset(probe) for probe in probes}
    if len(offsets) != 1:
        return None
    (offset,) = offsets
    if offset is None:
        return None
    return offset // timedelta(seconds=1)


def _fast_instants(
    raw: bytes, texts: list[str], naive_offset_s: int | None = None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    import numpy as np

    n = len(texts)
    lens = np.fromiter(map(len, texts), dtype=np.int64, count=n)
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(lens[:-1] + 1, out=starts[1:])
    buf = np.frombuffer(raw + b"\0" * 40, dtype=np.uint8)
    return instants_in(buf, starts, lens, naive_offset_s)


def fixed_offset_s(tz: str | None) -> int | None:
    """The one offset (seconds) of a zone that has one for all time, else None: what
    :func:`instants_in` takes for naive times."""
    return _fixed_offset_s(tz)


def _rows_at(buf: npt.NDArray[np.uint8], at: npt.NDArray[np.int64], width: int) -> Any:
    """``buf[at[i] + c]`` as row ``c`` of a (width, len(at)) array: each text's bytes copied as
    one run (a window over ``buf``), then turned column-major."""
    import numpy as np
    from numpy.lib.stride_tricks import as_strided

    windows = as_strided(buf, (max(len(buf) - width + 1, 0), width), (buf.strides[0],) * 2)
    return np.ascontiguousarray(windows[at].T)


def instants_in(
    buf: npt.NDArray[np.uint8],
    starts: npt.NDArray[np.int64],
    lens: npt.NDArray[np.int64],
    naive_offset_s: int | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """The instants of the texts ``buf[starts[i] : starts[i] + lens[i]]``, as
    :func:`parse_instants_us`'s array path reads them: (microseconds, which it vouches for).

    ``buf`` must hold at least 32 bytes after every text's start (pad it); a text it does not
    vouch for is for :func:`parse_instant` to answer.
    """
    import numpy as np

    tens, units, columns, first_day, month_days = _tables()
    n = len(starts)
    # Column-major: row c holds every text's byte c (a byte minus "0" below 10 is a digit).
    grid = _rows_at(buf, starts, 26)
    digit = grid - np.uint8(48)
    high, low = digit[tens], digit[units]
    ok = (lens >= 19) & (lens <= 32)
    ok &= np.all((high < 10) & (low < 10), axis=0)
    ok &= (grid[4] == 45) & (grid[7] == 45) & (grid[13] == 58) & (grid[16] == 58)
    ok &= (grid[10] == 84) | (grid[10] == 116) | (grid[10] == 32)  # T, t or space
    last = buf[starts + np.maximum(lens, 1) - 1]
    zulu = (last == 90) | (last == 122)
    fraction = grid[19] == 46
    # Naive (no offset) only when the zone has one offset: 19 characters, or a fraction up to the
    # end (every character after the dot is checked to be a digit below).
    if naive_offset_s is None:
        naive = np.zeros(n, dtype=np.bool_)
    else:
        naive = (lens == 19) | (fraction & (lens >= 21) & (lens <= 26) & (last - 48 < 10))
    offset_len = np.where(zulu, 1, np.where(naive, 0, 6))
    k = np.where(fraction, lens - 20 - offset_len, 0)
    ok &= np.where(fraction, (k >= 1) & (k <= 6), lens == 19 + offset_len)
    # The offset: Z, or ±HH:MM at the end.
    at = np.maximum(starts + lens - offset_len, 0)
    off = _rows_at(buf, at, 6)
    od = off - np.uint8(48)
    signed = zulu | (
        ((off[0] == 43) | (off[0] == 45)) & (off[3] == 58) & np.all(od[[1, 2, 4, 5]] < 10, axis=0)
    )
    ok &= signed | naive
    fixed = zulu | naive
    # Two digits in a uint8 (at most 99 where both are digits; the rest is refused anyway).
    off_h = np.where(fixed, np.uint8(0), od[1] * np.uint8(10) + od[2])
    off_m = np.where(fixed, np.uint8(0), od[4] * np.uint8(10) + od[5])
    ok &= (off_h <= 23) & (off_m <= 59)
    offset_s = off_h.astype(np.int32) * 3600 + off_m.astype(np.int32) * 60
    np.negative(offset_s, out=offset_s, where=off[0] == 45)
    if naive_offset_s is not None:
        offset_s[naive] = naive_offset_s
    # Fraction digits, positions 20 .. 20 + k - 1 (the others read as 0).
    frac_d = np.where(columns[:6] < k, digit[20:26], np.uint8(0))
    ok &= np.all(frac_d < 10, axis=0)
    micro = frac_d[0].astype(np.int32)
    for place in range(1, 6):
        micro *= 10
        micro += frac_d[place]
    pairs = high * np.uint8(10) + low  # YY, YY, MM, DD, hh, mm, ss
    year = pairs[0].astype(np.int32) * 100 + pairs[1]
    month, day = pairs[2], pairs[3]
    hour, minute, second = pairs[4], pairs[5], pairs[6]
    month_ok = (month >= 1) & (month <= 12)
    index = np.where(ok & month_ok, year * 12 + month - 1, 0)
    ok &= (year >= 1) & month_ok & (day >= 1) & (day <= month_days[index])
    ok &= ~naive | ((year >= 2) & (year <= 9998))  # the zone's edges: parse_instant decides
    ok &= (hour <= 23) & (minute <= 59) & (second <= 59)  # 60 (a leap second) is refused later
    # Days from the civil date, then microseconds in UTC.
    seconds_of_day = hour.astype(np.int32) * 3600 + minute.astype(np.int32) * 60 + second
    seconds = (first_day[index] + (day - 1)) * 86400 + (seconds_of_day - offset_s)
    us = seconds * 1_000_000 + micro
    ok &= (us >= _MIN_US) & (us <= _MAX_US)
    return np.where(ok, us, 0), ok


__all__ = [
    "check_window",
    "check_zone",
    "format_duration",
    "format_instant",
    "parse_duration",
    "parse_instant",
    "parse_instants_us",
    "tolerance_seconds",
]
