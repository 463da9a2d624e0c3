"""What every format's parser shares: reading a line, reading a time, reading an address.

A parser refuses a line by raising :class:`Refuse` with the reason; its loop turns that into a
`Refused` and goes on with the next line. Times come back as UTC microseconds since the epoch:

- an epoch field is UTC by definition;
- an ISO-8601 time with an offset (``Z`` or ``+01:00``) says its own instant;
- a time without a zone (a BSD syslog header, a naive ISO time) is read in ``--tz``, and a BSD
  header, which has no year either, in ``--year``; without them the line is refused, and so is a
  local time that a DST change makes occur twice or never (the line cannot say which instant).

>>> clock = Clock(year=2026, tz="Europe/Berlin")
>>> clock.iso("2026-06-30T22:44:25Z") == 1_782_859_465_000_000
True
>>> clock.bsd("Jun", "30", "22", "44", "25", None) == clock.iso("2026-06-30T20:44:25Z")
True
>>> clock.bsd("Mar", "29", "02", "30", "00", None)  # doctest: +ELLIPSIS
Traceback (most recent call last):
    ...
detnat.logs.formats._common.Refuse: local time 2026-03-29 02:30:00 does not exist or occurs twice...
>>> Clock(year=None, tz=None).bsd("Jun", "30", "22", "44", "25", None)
Traceback (most recent call last):
    ...
detnat.logs.formats._common.Refuse: the syslog time 'Jun 30 22:44:25' has no year: give --year
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from detnat.errors import InvalidInput
from detnat.logs.events import LogEvent, Refused

# What a format reads of one line: its text (line ending removed), number and bytes as read.
ReadLine = Callable[[str, int, bytes], LogEvent | None]

_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
PROTOCOL_NUMBERS = {1: "icmp", 6: "tcp", 17: "udp"}
PROTOCOL_NAMES = {"icmp": "icmp", "tcp": "tcp", "udp": "udp"}

# The time at the head of a syslog line, after an optional <PRI> and RFC 5424 version "1":
# an RFC 3339 stamp (RFC 5424, or rsyslog's high-precision form) or a BSD "Mmm dd hh:mm:ss".
SYSLOG_HEAD = re.compile(
    r"\s*(?:<\d{1,3}>)?(?:1 )?(?:"
    r"(?P<iso>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)?)"
    r"|(?P<mon>[A-Z][a-z]{2}) {1,2}(?P<day>\d{1,2}) (?P<h>\d\d):(?P<mi>\d\d):(?P<s>\d\d)"
    r"(?:\.(?P<frac>\d{1,6}))?"
    r"|(?P<nil>-)"
    r")\s"
)
_ISO = re.compile(
    r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d{1,9})?)?(?P<zone>Z|[+-]\d\d:?\d\d)?", re.ASCII
)


_PRI = re.compile(r"\s*<\d{1,3}>(?:1 )?")
# only_header's common case as one pattern per field count: <PRI>, a time (RFC 3339, BSD or
# nil), fields that are no program's tag (no ":" at their end).
_TIME = r"(?:\d{4}-\d\d-\d\dT\S*|[A-Z][a-z]{2} {1,2}\d{1,2} \d\d:\d\d:\d\d(?:\.\d{1,6})?|-)"
_HEADER_ONLY = {
    n: re.compile(rf"\s*(?:<\d{{1,3}}>(?:1 )?)?(?:{_TIME}(?:\s+\S*[^\s:]){{0,{n}}})?\s*")
    for n in (1, 2, 3)
}


def only_header(line: str, end: int, fields: int) -> bool:
    """Whether ``line[:end]`` (the line up to where a NAT event begins) is nothing but a syslog
    header: its time (RFC 5424, RFC 3339 or BSD, after an optional ``<PRI>``) then at most
    ``fields`` fields (a host, a sender, an app name), none a program's tag (``sshd[42]:``) -- or
    nothing.

    A syslog file holds every program's lines, and many quote what strangers send (sshd's
    ``Invalid user ...``): an event that comes after another program's tag, or after more than a
    header, is that program's text, never the NAT's own word.

    >>> line = "<14>Jun 30 22:44:25 BNG-01 RT_NAT: ..."
    >>> only_header(line, 27, 1), only_header(line, 0, 1)
    (True, True)
    >>> only_header("<38>Jun 30 22:44:25 BNG-01 sshd[42]: Invalid user RT_NAT: ...", 51, 1)
    False
    """
    if _HEADER_ONLY[fields].fullmatch(line, 0, end):  # the usual line, in one match
        return True
    prefix = line[:end]
    if not prefix.strip():
        return True
    head = SYSLOG_HEAD.match(prefix)
    if head is not None:
        rest = prefix[head.end() :].split()
    else:  # a time we cannot read (the parser refuses the line for it, if it needs one)
        pri = _PRI.match(prefix)
        rest = prefix[pri.end() if pri else 0 :].split()
        fields += 1
    return len(rest) <= fields and not any(field.endswith(":") for field in rest)


class Refuse(Exception):
    """A line cannot be read; the message is the reason an operator reads."""


def check_year(year: int | None) -> int | None:
    if year is not None and not 1 <= year <= 9999:
        raise InvalidInput(f"year {year} is not a year of the calendar (1..9999)", field="year")
    return year


def check_zone(tz: str | None) -> ZoneInfo | None:
    """The zone named `tz` (an IANA name such as ``Europe/Berlin``), validated; None for None."""
    if tz is None:
        return None
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInput(f"{tz!r} is not an IANA time zone name", field="tz") from None


class Clock:
    """Turns the times lines carry into UTC microseconds, with the year and zone they lack."""

    __slots__ = ("_month", "_offsets", "_turns", "tz_name", "year", "zone")

    def __init__(self, *, year: int | None, tz: str | None) -> None:
        self.year = check_year(year)
        self.zone = check_zone(tz)
        self.tz_name = tz
        # offset of each local minute already read: a log has many lines per minute
        self._offsets: dict[tuple[int, int, int, int, int], int] = {}
        self._month: int | None = None  # the month of the last time read without a year
        self._turns = 0  # new years passed since the first such time

    def year_of(self, month: int, shown: str) -> int:
        """The year of a time ``shown`` that names its month but no year: ``--year`` for the first
        such time read, one more after each turn of the year -- a month more than six months
        before the last one read (``Dec 31`` then ``Jan  1``). A time more than six months after
        the last one read is a straggler from before the turn: the year before.

        >>> clock = Clock(year=2025, tz="UTC")
        >>> [clock.year_of(m, "") for m in (11, 12, 1, 12, 1, 6, 12, 1)]
        [2025, 2025, 2026, 2025, 2026, 2026, 2026, 2027]
        """
        if self.year is None:
            raise Refuse(f"the syslog time {shown!r} has no year: give --year")
        last = self._month
        if last is not None and month - last > 6:
            return self.year + self._turns - 1
        if last is not None and last - month > 6:
            self._turns += 1
        self._month = month
        return self.year + self._turns

    def local(self, naive: datetime, shown: str) -> int:
        """`naive` read in --tz; `shown` is how the line wrote it (for the reason)."""
        if self.zone is None:
            raise Refuse(f"the time {shown!r} has no zone: give --tz")
        key = (naive.year, naive.month, naive.day, naive.hour, naive.minute)
        offset = self._offsets.get(key)
        if offset is None:
            first = naive.replace(tzinfo=self.zone, fold=0).utcoffset()
            second = naive.replace(tzinfo=self.zone, fold=1).utcoffset()
            if first is None or first != second:
                raise Refuse(
                    f"local time {naive:%Y-%m-%d %H:%M:%S} does not exist or occurs twice in "
                    f"{self.tz_name} (a daylight-saving change): the line cannot say which instant"
                )
            offset = _micros(first)
            self._offsets[key] = offset
        return _micros(naive - _EPOCH) - offset

    def bsd(self, mon: str, day: str, h: str, mi: str, s: str, frac: str | None) -> int:
        """A BSD syslog time (``Jun 30 22:44:25``): no year, no zone."""
        shown = f"{mon} {day} {h}:{mi}:{s}"
        if self.year is None:
            raise Refuse(f"the syslog time {shown!r} has no year: give --year")
        month = MONTHS.get(mon)
        if month is None:
            raise Refuse(f"{mon!r} in the syslog time {shown!r} is not a month")
        year = self.year_of(month, shown)
        try:
            naive = datetime(year, month, int(day), int(h), int(mi), int(s), fraction(frac))
        except ValueError:
            raise Refuse(f"the syslog time {shown!r} is not a date of {year}") from None
        return self.local(naive, shown)

    def iso(self, text: str) -> int:
        """An ISO-8601 time: with its offset, or naive and read in --tz."""
        found = _ISO.fullmatch(text)
        if found is None:
            raise Refuse(f"{text!r} is not an ISO-8601 time (2026-12-07T10:00:00+01:00)")
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise Refuse(f"{text!r} is not a time of the calendar") from None
        if when.tzinfo is None:
            return self.local(when, text)
        return _micros(when - _EPOCH_UTC)

    def syslog_head(self, line: str) -> int:
        """The time at the head of a syslog line (RFC 5424, RFC 3339 or BSD)."""
        head = SYSLOG_HEAD.match(line)
        if head is None:
            raise Refuse("no time: the line has no epoch field and no syslog time at its head")
        iso = head["iso"]
        if iso is not None:
            return self.iso(iso)
        if head["nil"] is not None:
            raise Refuse("no time: the syslog header's time is '-' (nil) and no epoch is given")
        return self.bsd(head["mon"], head["day"], head["h"], head["mi"], head["s"], head["frac"])


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def fraction(digits: str | None) -> int:
    """Microseconds of a decimal fraction of a second (``"25"`` is 250000)."""
    if not digits:
        return 0
    return int(digits[:6].ljust(6, "0"))


def epoch_seconds(seconds: int) -> int:
    """UTC microseconds of an epoch in seconds; the instant must be a real one (not 0)."""
    if not 0 < seconds < 253_402_300_800:  # 9999-12-31
        raise Refuse(f"epoch {seconds} is not a time a datapath logs")
    return seconds * 1_000_000


# A dotted quad with no leading zeros and no octet above 255 is already canonical.
_QUAD = re.compile(
    r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
)
_quad = _QUAD.fullmatch


@functools.lru_cache(maxsize=65_536)
def _address(text: str) -> str | None:
    if _quad(text) is not None:
        return text
    if "%" in text:  # a scoped IPv6 address names no subscriber
        return None
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        return None


def inside(text: str, what: str) -> str:
    """The inside key of an address: IPv4 dotted quad or compressed IPv6."""
    found = _address(text)
    if found is None:
        raise Refuse(f"{what} {text!r} is not an IP address")
    return found


def public(text: str, what: str) -> str:
    """A public IPv4 address in canonical text."""
    found = _address(text)
    if found is None or ":" in found:
        raise Refuse(f"{what} {text!r} is not an IPv4 address")
    return found


@functools.lru_cache(maxsize=65_536)
def _inside_key(text: str) -> str | None:
    if "/" not in text:
        return _address(text)
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError:
        return None
    if network.version == 4:
        return str(network.network_address) if network.prefixlen == 32 else None
    if network.prefixlen == 128:
        return network.network_address.compressed
    return network.compressed


def inside_key(text: str, what: str) -> str:
    """An inside key that may be an IPv6 prefix (``2001:db8:100::/56``) as well as an address."""
    found = _inside_key(text)
    if found is None:
        raise Refuse(
            f"{what} {text!r} is neither an IP address nor an IPv6 prefix with no host bits"
        )
    return found


def port(text: str, what: str) -> int:
    if len(text) <= 5 and text.isdigit() and text.isascii():
        value = int(text)
        if value <= 65535:
            return value
    raise Refuse(f"{what} {text!r} is not a port (0..65535)")


def block(first: int, last: int) -> None:
    if first > last:
        raise Refuse(f"port block {first}-{last} ends before it starts")


def drive(lines: Iterable[bytes], file: str, read: ReadLine) -> Iterator[LogEvent | Refused]:
    """Every event and refusal of `lines`, read one by one with `read`; a bad line never stops it.

    `read` returns the line's event, None for a line that is no port-block event, or raises
    :class:`Refuse`. Bytes that are not UTF-8 are refused here, before any format sees them.
    """
    for number, raw in enumerate(lines, 1):
        try:
            text = raw.decode()
        except UnicodeDecodeError as error:
            yield Refused(
                file,
                number,
                f"not UTF-8 text: byte 0x{raw[error.start]:02x} at column {error.start + 1}",
            )
            continue
        if "\x00" in text:  # Postgres text holds no NUL: the stored line could not be the line
            yield Refused(file, number, "a NUL byte in the line")
            continue
        try:
            event = read(text.rstrip("\r\n"), number, raw)
        except Refuse as refusal:
            yield Refused(file, number, str(refusal))
            continue
        if event is not None:
            yield event
