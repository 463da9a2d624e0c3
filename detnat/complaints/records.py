"""What one complaint says, in one shape for every format, and what a notice could not say.

A parser turns a notice (a mail, a JSON or XML document, a CSV row) into a :class:`Complaint` —
the address, the port *and what kind of port it is*, the instant, the zone as the notice wrote
it — or an :class:`Unreadable` with the reason, never a guess. Every record keeps where it came
from (:class:`Ref`: the file, the message number in a mailbox, the CSV line), so each output row
can be traced to the notice behind it.

>>> c = Complaint(Ref("box.mbox", message=3), "xarf-4", "R-1", "192.0.2.55", 54321, SOURCE,
...               1517840230000000, "2018-02-05T14:17:10Z", "Z", "login_attack")
>>> str(c.ref), c.has_source_port
('box.mbox#3', True)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PortKind = Literal["source", "service"]
SOURCE: Final[PortKind] = "source"  # the port on the shared address: names a subscriber
SERVICE: Final[PortKind] = "service"  # the reported service's port (ssh 22): names no one


@dataclass(frozen=True, slots=True)
class Ref:
    """Where a notice was read: the file as given, the message (1-based) in a mailbox, the CSV
    line (the header is line 1)."""

    file: str
    message: int | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.message is not None:
            where += f"#{self.message}"
        if self.line is not None:
            where += f":{self.line}"
        return where


@dataclass(frozen=True, slots=True)
class Complaint:
    """One complaint turned into a question: who held ``ip``:``port`` at ``at_us``?

    ``port`` is None when the notice gives none; ``port_kind`` says what the port is: ``source``
    (the port on the shared address) or ``service`` (the port of the reported service, which
    cannot identify anyone on a shared address). ``at_us``: UTC microseconds since the epoch;
    ``time_text`` and ``zone``: as the notice wrote them. ``also_at_us``: a second instant the
    same notice states (ACNS text vs XML), with ``flags`` saying so.
    """

    ref: Ref
    format: str
    id: str
    ip: str
    port: int | None
    port_kind: PortKind | None
    at_us: int
    time_text: str
    zone: str
    category: str
    flags: tuple[str, ...] = ()
    also_at_us: int | None = None

    @property
    def has_source_port(self) -> bool:
        return self.port is not None and self.port_kind == SOURCE


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A notice (or row) that is no complaint we can ask about, and why."""

    ref: Ref
    format: str | None
    reason: str
    id: str = ""


Record = Complaint | Unreadable


# -- instants --------------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_ISO = re.compile(
    r"\s*(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?"
    r"\s*([Zz]|UTC|GMT|[+-]\d{2}:?\d{2})?\s*",
    re.ASCII,
)


class BadTime(ValueError):
    """A time a notice states that names no single instant (the message says why)."""


def to_us(moment: datetime) -> int:
    return (moment - _EPOCH) // _US


def iso_instant(text: str, *, tz: str | None = None) -> tuple[int, str]:
    """(UTC µs, zone as read) of an ISO-8601 / RFC 3339 time; naive ones only with ``tz``.

    >>> iso_instant("2018-02-05T14:17:10Z")
    (1517840230000000, 'Z')
    >>> iso_instant("2014-04-12 00:00:06", tz="UTC")
    (1397260806000000, 'UTC')
    """
    found = _ISO.fullmatch(text)
    if found is None:
        raise BadTime(f"time {text[:60]!r} is not an ISO-8601 date and time")
    year, month, day, hour, minute, second = (int(g) for g in found.groups()[:6])
    frac, offset = found.group(7), found.group(8)
    if second == 60:
        raise BadTime(f"time {text[:60]!r} is a leap second")
    if frac and len(frac) > 6 and frac[6:].strip("0"):
        raise BadTime(f"time {text[:60]!r} is finer than a microsecond")
    micro = int((frac or "0")[:6].ljust(6, "0"))
    try:
        local = datetime(year, month, day, hour, minute, second, micro)
    except ValueError as exc:
        raise BadTime(f"time {text[:60]!r}: {exc}") from None
    if offset is None:
        if tz is None:
            raise BadTime(f"time {text[:60]!r} has no offset and no zone was named (--tz)")
        return _in_zone(local, tz), tz
    if offset in ("Z", "z", "UTC", "GMT"):
        return _checked(local.replace(tzinfo=UTC), text), offset
    sign = -1 if offset[0] == "-" else 1
    digits = offset[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if hours > 23 or minutes > 59:
        raise BadTime(f"time {text[:60]!r} has offset {offset} beyond ±23:59")
    zone = timezone(timedelta(hours=hours, minutes=minutes) * sign)
    return _checked(local.replace(tzinfo=zone), text), offset


def mail_instant(text: str) -> tuple[int, str]:
    """(UTC µs, zone as read) of an RFC 5322 date (``Arrival-Date``), or of X-ARF 0.2's
    ``Feb  3 2014 02:13:35 +0100``.

    >>> mail_instant("Thu, 8 Mar 2005 14:00:00 EDT")
    (1110304800000000, 'EDT')
    >>> mail_instant("Feb  3 2014 02:13:35 +0100")
    (1391390015000000, '+0100')
    """
    words = text.split()
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        try:
            moment = datetime.strptime(" ".join(words), "%b %d %Y %H:%M:%S %z")
        except ValueError:
            raise BadTime(f"date {text[:60]!r} is neither RFC 5322 nor X-ARF's form") from None
    zone = words[-1] if words else ""
    if moment.tzinfo is None:
        # The parser gives no offset for "-0000" (UTC, the sender's local zone unknown: RFC 5322
        # 3.3), for a zone it does not know ("CET"), for a military letter (RFC 5322 4.3 asks to
        # read those as -0000 because their sign was never settled) and for no zone at all. Only
        # the first says the instant; reading the others as UTC would ask about the wrong hour.
        if zone != "-0000":
            raise BadTime(
                f"date {text[:60]!r} has no offset we can read ({zone[:12]!r}): the instant is "
                "unknown; the notice needs a numeric offset"
            )
        moment = moment.replace(tzinfo=UTC)
    return _checked(moment, text), zone


def _checked(moment: datetime, text: str) -> int:
    try:
        return to_us(moment.astimezone(UTC))
    except OverflowError:
        raise BadTime(f"time {text[:60]!r} leaves the calendar in UTC") from None


def _in_zone(local: datetime, tz: str) -> int:
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadTime(f"no time zone named {tz[:60]!r}") from None
    early, late = local.replace(tzinfo=zone, fold=0), local.replace(tzinfo=zone, fold=1)
    if early.utcoffset() != late.utcoffset():
        if early.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != local:
            raise BadTime(f"{local.isoformat()} never happened in {tz} (a DST gap)")
        raise BadTime(
            f"{local.isoformat()} happened twice in {tz}: {early.isoformat()} or "
            f"{late.isoformat()} (DST ended)"
        )
    return _checked(early, local.isoformat())


def zone_checked(tz: str) -> str:
    """``tz`` if it names an IANA zone, else :class:`BadTime`."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadTime(f"no time zone named {tz[:60]!r}") from None
    return tz


def port_of(value: object) -> int | None:
    """A port as a notice writes it (a number, or decimal text), or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= 65535 else None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())
        return number if number <= 65535 and len(value.strip()) <= 5 else None
    return None
