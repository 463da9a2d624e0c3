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
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from detnat.errors import QueryError

_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2})"
    r"(?:\.(?P<frac>\d{1,30}))?(?P<offset>[Zz]|[+-]\d{2}:?\d{2})?"
)
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d{1,6})?)s)?(?:(\d+)ms)?")
MAX_TOLERANCE = timedelta(days=1)


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
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise QueryError(f"{tz!r} is not a known time zone", field="tz") from None
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


__all__ = ["format_duration", "format_instant", "parse_duration", "parse_instant"]
