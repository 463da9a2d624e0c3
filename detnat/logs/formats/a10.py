"""`a10-cef`: A10 Thunder CGN port batch events in ArcSight CEF, `CGN 106` (Nat Port Batch Pool
Allocated) and `CGN 107` (… Freed)::

    2025-05-02T11:34:56.87+00:00 10.254.254.57 cgn0  CEF:0|A10|CFW|6.0.0-P1|CGN 106|Nat Port
    Batch Pool Allocated|5|proto=UDP src=100.65.140.73 sourceTranslatedAddress=99.99.99.12
    sourceTranslatedPort=22016 cn3=22271 cn3Label=Last Nat Port

The inside key is `src`, the public address `sourceTranslatedAddress`, the block
`sourceTranslatedPort` (first) to `cn3` (last, "Last Nat Port"), inclusive, for the one protocol
`proto` names (TCP, UDP or ICMP: A10 batches are per protocol, so a line without `proto` is
refused). Other CEF events (`CGN 100` single ports, sessions, …) are skipped.

Time: A10's CGN lines carry no time of their own in the published samples; the time is the
syslog header's (an RFC 3339 time with its offset; a BSD time with `--year` and `--tz`). When a
line has CEF's `rt=` (epoch milliseconds, or ``MMM dd [yyyy] HH:mm:ss[.SSS] [zone]``), `rt` wins
over the header. A line with neither is refused.

>>> from detnat.logs.formats import ParseOptions
>>> line = (b"2025-05-02T11:34:56.87+00:00 10.254.254.57 cgn0  CEF:0|A10|CFW|6.0.0-P1|CGN 106|"
...         b"Nat Port Batch Pool Allocated|5|proto=UDP src=100.65.140.73 "
...         b"sourceTranslatedAddress=99.99.99.12 sourceTranslatedPort=22016 cn3=22271 "
...         b"cn3Label=Last Nat Port")
>>> [event] = parse([line], "a10.log", ParseOptions())
>>> event.kind.value, event.protocol, event.port_first, event.port_last
('allocate', 'udp', 22016, 22271)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime

from detnat.errors import InvalidInput
from detnat.logs.events import EventKind, LineRef, LogEvent, Refused
from detnat.logs.formats import ParseOptions
from detnat.logs.formats._common import (
    MONTHS,
    PROTOCOL_NAMES,
    PROTOCOL_NUMBERS,
    Clock,
    Refuse,
    block,
    drive,
    fraction,
    inside,
    only_header,
    port,
    public,
)

_KINDS = {"CGN 106": EventKind.ALLOCATE, "CGN 107": EventKind.RELEASE}
_PIPE = re.compile(r"(?<!\\)\|")
_KEY = re.compile(r"(?:^|(?<=\s))([A-Za-z0-9_.]+)=")
_UNESCAPE = re.compile(r"\\(.)")
_RT = re.compile(
    r"(?P<mon>[A-Z][a-z]{2}) (?P<day>\d{1,2})(?: (?P<year>\d{4}))? "
    r"(?P<h>\d\d):(?P<mi>\d\d):(?P<s>\d\d)(?:\.(?P<frac>\d{1,6}))?(?: (?P<zone>\S+))?"
)
_OFFSET = re.compile(r"(?:UTC|GMT)?(?P<sign>[+-])(?P<hh>\d\d):?(?P<mm>\d\d)")
_FAST = re.compile(
    r"proto=(\w+) src=([^\s\\]+) sourceTranslatedAddress=([^\s\\]+) "
    r"sourceTranslatedPort=([^\s\\]+) cn3=([^\s\\]+)(?: |$)"
)
_NEEDED = ("src", "sourceTranslatedAddress", "sourceTranslatedPort", "cn3")


def parse(lines: Iterable[bytes], file: str, options: ParseOptions) -> Iterator[LogEvent | Refused]:
    """Every CGN 106 / CGN 107 event of `lines` (an A10 CEF syslog file); other lines skipped."""
    clock = options.clock_now()

    def read(text: str, number: int, raw: bytes) -> LogEvent | None:
        if "CGN 10" not in text:
            return None
        at = text.find("CEF:")
        if at < 0:
            return None
        cef = text[at:]
        header = _PIPE.split(cef, 7) if "\\" in cef else cef.split("|", 7)
        if len(header) != 8:
            if len(header) > 4 and header[4].strip() in _KINDS:
                raise Refuse("a CEF line with fewer than 7 header fields")
            return None
        kind = _KINDS.get(header[4].strip())
        if kind is None:
            return None
        if not only_header(text, at, 2):  # a time, a sender and a host at most before CEF:
            raise Refuse(
                f"{header[4].strip()} is not where the line's message begins: another program's "
                "text quoting it is not the NAT's word"
            )
        extension = header[7]
        timed = " rt=" in extension or extension.startswith("rt=")
        fast = None if timed else _FAST.match(extension)
        if fast is not None:  # A10's own order, no time field: no need to read every field
            proto, src, address, first_text, last_text = fast.groups()
            fields = {"proto": proto, "src": src, "sourceTranslatedAddress": address}
            fields["sourceTranslatedPort"], fields["cn3"] = first_text, last_text
        else:
            fields = _extension(extension)
            missing = [key for key in _NEEDED if key not in fields]
            if missing:
                raise Refuse(f"{header[4].strip()} without {', '.join(missing)}")
        first = port(fields["sourceTranslatedPort"], "sourceTranslatedPort")
        last = port(fields["cn3"], "cn3 (last port)")
        block(first, last)
        rt = fields.get("rt")
        return LogEvent(
            kind,
            clock.syslog_head(text) if rt is None else _rt(rt, clock),
            inside(fields["src"], "src"),
            public(fields["sourceTranslatedAddress"], "sourceTranslatedAddress"),
            first,
            last,
            _protocol(fields.get("proto")),
            LineRef.of(file, number, raw),
        )

    return drive(lines, file, read)


def _extension(text: str) -> dict[str, str]:
    """CEF extension `key=value key=value with spaces …`; values unescaped."""
    keys = list(_KEY.finditer(text))
    fields: dict[str, str] = {}
    for here, after in zip(keys, [*keys[1:], None], strict=True):
        end = after.start() if after is not None else len(text)
        value = text[here.end() : end].strip()
        fields[here[1]] = _UNESCAPE.sub(_unescaped, value) if "\\" in value else value
    return fields


def _unescaped(found: re.Match[str]) -> str:
    char = found[1]
    return {"n": "\n", "r": "\r"}.get(char, char)


def _protocol(text: str | None) -> str:
    if text is None:
        raise Refuse("no proto: A10 port batches are per protocol")
    name = PROTOCOL_NAMES.get(text.lower())
    if name is None and text.isascii() and text.isdigit():
        name = PROTOCOL_NUMBERS.get(int(text))
    if name is None:
        raise Refuse(f"proto {text!r} is not TCP, UDP or ICMP")
    return name


def _rt(text: str, clock: Clock) -> int:
    """CEF `rt`: epoch milliseconds, or ``MMM dd [yyyy] HH:mm:ss[.SSS] [zone]``."""
    if text.isascii() and text.isdigit():
        millis = int(text)
        if not 0 < millis < 253_402_300_800_000:
            raise Refuse(f"rt {text} is not a time a datapath logs")
        return millis * 1000
    found = _RT.fullmatch(text)
    if found is None:
        raise Refuse(f"rt {text!r} is neither epoch milliseconds nor 'MMM dd yyyy HH:mm:ss'")
    month = MONTHS.get(found["mon"])
    if month is None:
        raise Refuse(f"{found['mon']!r} in rt {text!r} is not a month")
    if found["year"]:
        year = int(found["year"])
    elif clock.year is None:
        raise Refuse(f"rt {text!r} has no year: give --year")
    else:
        year = clock.year_of(month, text)
    try:
        naive = datetime(
            year,
            month,
            int(found["day"]),
            int(found["h"]),
            int(found["mi"]),
            int(found["s"]),
            fraction(found["frac"]),
        )
    except ValueError:
        raise Refuse(f"rt {text!r} is not a date of the calendar") from None
    zone = found["zone"]
    if zone is None:
        return clock.local(naive, text)
    if zone in ("Z", "UTC", "GMT"):
        return Clock(year=None, tz=None).iso(naive.isoformat() + "+00:00")
    offset = _OFFSET.fullmatch(zone)
    if offset is not None:
        return Clock(year=None, tz=None).iso(
            f"{naive.isoformat()}{offset['sign']}{offset['hh']}:{offset['mm']}"
        )
    try:
        named = Clock(year=None, tz=zone)
    except InvalidInput:  # an unknown zone name in a line refuses that line only
        raise Refuse(f"rt {text!r}: {zone!r} is not a time zone") from None
    return named.local(naive, text)
