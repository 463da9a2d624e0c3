"""`nfdump-json`: IPFIX / NetFlow v9 NAT port-block events (RFC 8158) as nfdump prints them.

nfdump writes one JSON object per line (``-o ndjson``, ``-o json-log``), or a JSON array with one
field per line (``-o json``, the default JSON); both are read, and a record spread over lines is
numbered and hashed by the lines it spans (its first line number; the SHA-256 of those lines'
bytes, each without its line ending, joined by ``\\n``)::

    {"type":"EVENT","export_sysid":1,"proto":0,"src4_addr":"100.64.0.10",
     "nat_event_id":16,"nat_event":"…","nat_pool_id":0,"t_event":"2026-12-07T11:00:00.250",
     "src4_xlt_ip":"203.0.113.7","pblock_start":1024,"pblock_end":1535,"pblock_step":1,
     "pblock_size":512}

Fields: the inside key is `src4_addr` or `src6_addr` (DS-Lite, NAT64), the public address
`src4_xlt_ip`, the block `pblock_start` to `pblock_end` inclusive every `pblock_step` ports
(0, as nfdump prints an absent step, is 1). When `pblock_end` is 0 or absent the block ends at
``start + (size - 1) * step``; when both are given they must agree. `proto` 6 / 17 / 1 makes the
block per protocol, 0 or absent for every protocol. Numbers may be JSON numbers or strings (nfdump
prints both, by version).

The event is `nat_event_id` (or a numeric `nat_event`), in the numbering of `--exporter`:
``iana`` (RFC 8158, nfdump, VPP: 16 allocation, 17 de-allocation) or ``juniper`` (Juniper MX,
from draft-ietf-behave-ipfix-nat-logging-02: 14 allocation, 15 release, 16 active, read as an
interim). Other NAT events are skipped. A record that names its event only in words is refused:
the words do not say which numbering they came from.

Time: `t_event`, which nfdump prints in the local time of the machine that ran it, without an
offset: it is read in `--tz` (give the zone nfdump ran in) and refused without it. nfdump prints
its milliseconds unpadded (``.5`` is 5 ms, ``.250`` 250 ms), and so they are read.

>>> from detnat.logs.formats import ParseOptions
>>> line = (b'{"src4_addr":"100.64.0.10","nat_event_id":16,"t_event":"2026-12-07T11:00:00.5",'
...         b'"src4_xlt_ip":"203.0.113.7","pblock_start":1024,"pblock_end":1535,'
...         b'"pblock_step":1,"pblock_size":512}')
>>> [event] = parse([line], "nf.json", ParseOptions(tz="UTC"))
>>> event.kind.value, event.at_us % 1_000_000, event.port_first, event.port_last, event.protocol
('allocate', 5000, 1024, 1535, None)
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from detnat.errors import InvalidInput
from detnat.logs.events import EventKind, LineRef, LogEvent, Refused
from detnat.logs.formats import ParseOptions
from detnat.logs.formats._common import (
    PROTOCOL_NUMBERS,
    Clock,
    Refuse,
    block,
    inside,
    public,
)

NUMBERING: dict[str, dict[int, EventKind]] = {
    "iana": {16: EventKind.ALLOCATE, 17: EventKind.RELEASE},
    "juniper": {14: EventKind.ALLOCATE, 15: EventKind.RELEASE, 16: EventKind.INTERIM},
}
_T_EVENT = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,3}))?")
_raw_decode = json.JSONDecoder().raw_decode


def _decode(text: str) -> Any:
    """One JSON value that is the whole of `text` (already stripped); a value the decoder cannot
    hold (nesting deeper than the stack, a number of thousands of digits) is not JSON to us."""
    try:
        value, end = _raw_decode(text)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as error:
        raise json.JSONDecodeError(f"{type(error).__name__}: {str(error)[:60]}", text, 0) from None
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


def parse(lines: Iterable[bytes], file: str, options: ParseOptions) -> Iterator[LogEvent | Refused]:
    """Every port-block event of `lines` (nfdump JSON); other records are skipped."""
    numbering = NUMBERING.get(options.exporter)
    if numbering is None:
        raise InvalidInput(
            f"exporter {options.exporter!r} is not one of {', '.join(sorted(NUMBERING))}",
            field="exporter",
        )
    clock = options.clock_now()
    return _records(lines, file, numbering, clock)


def _records(
    lines: Iterable[bytes], file: str, numbering: dict[int, EventKind], clock: Clock
) -> Iterator[LogEvent | Refused]:
    pending: list[bytes] = []  # the lines of a record spread over several (-o json)
    start = 0
    for number, raw in enumerate(lines, 1):
        if b"\x00" in raw:  # Postgres text holds no NUL: the stored line could not be the line
            yield Refused(file, start if pending else number, "a NUL byte in the line")
            pending = []
            continue
        if pending:
            stripped = raw.strip()
            if stripped[:1] != b'"' and stripped not in (b"}", b"},"):
                # not a field of -o json: the "{" line before was a broken one; read this anew
                yield Refused(file, start, "a '{' line not followed by the fields of a record")
                pending = []
            else:
                pending.append(raw)
                if stripped in (b"}", b"},"):
                    yield from _spread(pending, file, start, numbering, clock)
                    pending = []
                continue
        try:
            text = raw.decode().strip()
        except UnicodeDecodeError as error:
            yield Refused(
                file,
                number,
                f"not UTF-8 text: byte 0x{raw[error.start]:02x} at column {error.start + 1}",
            )
            continue
        if not text or text in ("[", "]", "],"):
            continue
        if text == "{":
            pending, start = [raw], number
            continue
        if text.startswith("["):  # a whole array on one line
            yield from _array(text, raw, file, number, numbering, clock)
            continue
        yield from _one(text.rstrip(","), LineRef.of(file, number, raw), numbering, clock)
    if pending:
        yield Refused(file, start, "a JSON record that the file ends inside (no closing '}')")


def _spread(
    lines: list[bytes], file: str, start: int, numbering: dict[int, EventKind], clock: Clock
) -> Iterator[LogEvent | Refused]:
    """The record of `lines` (from "{" to "}"), numbered by its first line, hashed over all."""
    body = b"\n".join(line.rstrip(b"\r\n") for line in lines)
    try:
        whole = body.decode()
    except UnicodeDecodeError as error:
        yield Refused(file, start, f"not UTF-8 text: byte 0x{body[error.start]:02x} in the record")
        return
    source = LineRef(file, start, hashlib.sha256(body).hexdigest())
    yield from _one(whole.strip().rstrip(","), source, numbering, clock)


def _array(
    text: str, raw: bytes, file: str, number: int, numbering: dict[int, EventKind], clock: Clock
) -> Iterator[LogEvent | Refused]:
    try:
        records = _decode(text.rstrip(","))
    except json.JSONDecodeError as error:
        yield Refused(file, number, f"not JSON: {error.msg} at column {error.pos + 1}")
        return
    source = LineRef.of(file, number, raw)
    seen: dict[int, LogEvent] = {}
    for record in records if isinstance(records, list) else [records]:
        for item in _event(record, source, numbering, clock):
            if isinstance(item, LogEvent):
                # Stored lines are keyed by instant and hash: another event of this line at the
                # same instant would be taken for the first's duplicate and lost (the same
                # record twice is a duplicate indeed).
                first = seen.setdefault(item.at_us, item)
                if first != item:
                    item = Refused(
                        file,
                        number,
                        "another record of this line at the same instant: write one record a "
                        "line (jq -c '.[]')",
                    )
            yield item


def _one(
    text: str, source: LineRef, numbering: dict[int, EventKind], clock: Clock
) -> Iterator[LogEvent | Refused]:
    try:
        record = _decode(text)
    except json.JSONDecodeError as error:
        yield Refused(source.file, source.line, f"not JSON: {error.msg} at column {error.pos + 1}")
        return
    yield from _event(record, source, numbering, clock)


def _event(
    record: Any, source: LineRef, numbering: dict[int, EventKind], clock: Clock
) -> Iterator[LogEvent | Refused]:
    try:
        event = _read(record, source, numbering, clock)
    except (Refuse, ValueError) as refusal:  # ValueError: ports the event itself refuses
        yield Refused(source.file, source.line, str(refusal))
        return
    if event is not None:
        yield event


def _read(
    record: Any, source: LineRef, numbering: dict[int, EventKind], clock: Clock
) -> LogEvent | None:
    if not isinstance(record, dict):
        raise Refuse("a JSON value that is not a record ({...})")
    number = record.get("nat_event_id")
    if number is None:
        number = record.get("nat_event")
        if number is None:
            return None  # a flow record, no NAT event
        if not _is_number(number):
            raise Refuse(
                f"nat_event {number!r} without nat_event_id: the name does not say its numbering"
            )
    kind = numbering.get(_integer(number, "nat_event_id"))
    if kind is None:
        return None
    inside_text = record.get("src4_addr", record.get("src6_addr"))
    if inside_text is None:
        raise Refuse("a port-block event without src4_addr or src6_addr")
    public_text = record.get("src4_xlt_ip")
    if public_text is None:
        raise Refuse("a port-block event without src4_xlt_ip")
    first = _port(record, "pblock_start")
    step = _integer(record.get("pblock_step", 0), "pblock_step") or 1
    size = _integer(record.get("pblock_size", 0), "pblock_size")
    last = _port(record, "pblock_end", default=0)
    if last == 0:
        if size == 0:
            raise Refuse("a port block with neither pblock_end nor pblock_size")
        last = first + (size - 1) * step
        if last > 65535:
            raise Refuse(f"pblock_start {first} + {size} ports every {step} runs past 65535")
    else:
        block(first, last)
        if size and (last - first) // step + 1 != size:
            raise Refuse(
                f"pblock_start {first} to pblock_end {last} every {step} is "
                f"{(last - first) // step + 1} ports, not pblock_size {size}"
            )
    return LogEvent(
        kind,
        _t_event(record.get("t_event"), clock),
        inside(str(inside_text), "src4_addr/src6_addr"),
        public(str(public_text), "src4_xlt_ip"),
        first,
        last,
        _protocol(record.get("proto", 0)),
        source,
        step,
    )


def _is_number(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, str) and value.isascii() and value.isdigit()
    )


def _integer(value: Any, what: str) -> int:
    if type(value) is int and 0 <= value < 1 << 63:  # the common case (ndjson), first
        return value
    if not _is_number(value) or (isinstance(value, str) and len(value) > 18):
        shown = value[:24] if isinstance(value, str) else value
        raise Refuse(f"{what} {shown!r} is not a whole number")
    return int(value)


def _port(record: dict[str, Any], what: str, default: int | None = None) -> int:
    value = record.get(what, default)
    if value is None:
        raise Refuse(f"a port-block event without {what}")
    number = _integer(value, what)
    if number > 65535:
        raise Refuse(f"{what} {number} is not a port (0..65535)")
    return number


def _protocol(value: Any) -> str | None:
    number = _integer(value, "proto")
    if number == 0:
        return None
    name = PROTOCOL_NUMBERS.get(number)
    if name is None:
        raise Refuse(f"proto {number} is not 0 (all), 1 (icmp), 6 (tcp) or 17 (udp)")
    return name


def _t_event(value: Any, clock: Clock) -> int:
    if value is None:
        raise Refuse("no time: the record has no t_event")
    found = _T_EVENT.fullmatch(value) if isinstance(value, str) else None
    if found is None:
        raise Refuse(f"t_event {value!r} is not nfdump's YYYY-MM-DDThh:mm:ss.ms")
    year, month, day, hour, minute, second, millis = found.groups()
    try:
        naive = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int(millis or 0) * 1000,
        )
    except ValueError:
        raise Refuse(f"t_event {value!r} is not a time of the calendar") from None
    return clock.local(naive, value)
