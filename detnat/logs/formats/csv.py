"""`csv`: port-block events of any other datapath, written by the operator in one plain shape::

    time,event,subscriber,public_ip,port_first,port_last,protocol
    2026-12-07T10:00:00Z,allocate,100.64.0.10,203.0.113.7,1024,1535,
    2026-12-07T10:30:00+01:00,interim,2001:db8:100::/56,203.0.113.7,2048,2111,tcp
    2026-12-07T11:00:00.5Z,release,100.64.0.10,203.0.113.7,1024,1535,

- `time`: ISO 8601 with its offset (``+01:00``) or ``Z``; a time without one only with `--tz`;
- `event`: ``allocate``, ``interim`` or ``release``;
- `subscriber`: the inside key, an IPv4 address, an IPv6 address (a B4) or an IPv6 prefix with no
  host bits (``2001:db8:100::/56``);
- `public_ip`: IPv4; `port_first` to `port_last`: the block, inclusive;
- `protocol` (the column may be left out): ``tcp``, ``udp``, ``icmp``, or empty (or ``all``) for a
  block that holds for every protocol.

The header line is optional (a file read from an offset has none) but, where present, must be
this one (with or without `protocol`); cells may be quoted as RFC 4180 has it.

>>> from detnat.logs.formats import ParseOptions
>>> lines = [b"time,event,subscriber,public_ip,port_first,port_last,protocol\\r\\n",
...          b"2026-12-07T10:00:00Z,allocate,2001:db8:100::/56,203.0.113.7,1024,1535,udp\\r\\n"]
>>> [event] = parse(lines, "ops.csv", ParseOptions())
>>> event.kind.value, event.inside, event.port_last, event.protocol, event.source.line
('allocate', '2001:db8:100::/56', 1535, 'udp', 2)
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from detnat.logs.events import EventKind, LineRef, LogEvent, Refused
from detnat.logs.formats import ParseOptions
from detnat.logs.formats._common import (
    PROTOCOL_NAMES,
    Refuse,
    block,
    drive,
    inside_key,
    port,
    public,
)

COLUMNS = ("time", "event", "subscriber", "public_ip", "port_first", "port_last", "protocol")
_HEADERS = {",".join(COLUMNS), ",".join(COLUMNS[:-1])}
_KINDS = {kind.value: kind for kind in EventKind}
_PROTOCOLS = {**PROTOCOL_NAMES, "": None, "all": None}


def parse(lines: Iterable[bytes], file: str, options: ParseOptions) -> Iterator[LogEvent | Refused]:
    """Every event of `lines` (a CSV file of the shape above)."""
    clock = options.clock_now()

    def read(text: str, number: int, raw: bytes) -> LogEvent | None:
        if number == 1 and text.startswith("\ufeff"):
            text = text[1:]  # a byte-order mark some spreadsheets write
        if not text.strip():
            return None
        if '"' in text:
            try:
                cells = next(csv.reader([text]))
            except csv.Error as error:
                raise Refuse(f"not CSV: {error}") from None
        else:
            cells = text.split(",")
        if cells[0] == "time":
            if ",".join(cell.strip() for cell in cells) not in _HEADERS:
                raise Refuse(f"a header that is not {','.join(COLUMNS)} (protocol optional)")
            return None
        if not 6 <= len(cells) <= 7:
            raise Refuse(f"{len(cells)} cells, not 6 or 7 ({','.join(COLUMNS)})")
        if " " in text:
            cells = [cell.strip() for cell in cells]
        when, event, subscriber, address, low, high = cells[:6]
        kind = _KINDS.get(event)
        if kind is None:
            raise Refuse(f"event {event!r} is not allocate, interim or release")
        protocol_text = cells[6].lower() if len(cells) == 7 else ""
        if protocol_text not in _PROTOCOLS:
            raise Refuse(f"protocol {protocol_text!r} is not tcp, udp, icmp or empty (all)")
        first, last = port(low, "port_first"), port(high, "port_last")
        block(first, last)
        return LogEvent(
            kind,
            clock.iso(when),
            inside_key(subscriber, "subscriber"),
            public(address, "public_ip"),
            first,
            last,
            _PROTOCOLS[protocol_text],
            LineRef.of(file, number, raw),
        )

    return drive(lines, file, read)
