"""FreeRADIUS ``detail`` files: accounting records replayed into sessions, then intervals.

A record is an un-indented timestamp line (the server's local time, no zone), then tab-indented
``Attribute = value`` lines, then a blank line (``/var/log/radius/radacct/<nas>/detail-YYYYMMDD``)::

    Mon Jun 30 22:44:25 2026
        Acct-Status-Type = Start
        Acct-Session-Id = "4D2BB8AC-00000098"
        User-Name = "alice@isp.example"
        NAS-IP-Address = 192.0.2.10
        Delegated-IPv6-Prefix = 2001:db8:104d:c900::/56
        Event-Timestamp = "Jun 30 2026 22:44:25 CEST"
        Acct-Delay-Time = 0

The rules (RFC 2866, RFC 2869; ``docs/directory.md``):

- **When**: ``Event-Timestamp`` (epoch seconds, or FreeRADIUS' printed form with the zone
  abbreviation, checked against ``--tz``); without it, the time the server received the record
  (its ``Timestamp`` attribute, else the timestamp line read in ``--tz``) minus
  ``Acct-Delay-Time``. A record whose timestamp line and ``Timestamp`` attribute disagree by more
  than a minute is refused: the file was not written in ``--tz``.
- **Who**: ``User-Name``, else ``Calling-Station-Id``. **Which keys**: ``Delegated-IPv6-Prefix``,
  ``Framed-IPv6-Prefix``, ``Framed-IPv6-Address`` (a /128) and ``Framed-IP-Address`` (a /32).
- **Sessions** are ``(NAS-IP-Address, Acct-Session-Id)``, replayed in event-time order (records
  delayed and written out of order land where they happened). A Start opens; an Interim-Update
  adds keys learned later (or opens a session whose Start was lost, from ``Acct-Session-Time``
  before it); a Stop closes; Accounting-On/Off closes every open session of that NAS. A Stop
  whose Start was never seen gives ``[event − Acct-Session-Time, event)``.
- **Lost stops**: a session never stopped stays open (``closed = "open"``, no end) until a later
  Start for the same key by another session (``takeover``) or its NAS reboots (``nas-reboot``).
- **The interim period** (``interim_us``, ``--interim``: the NAS sends an Interim-Update at least
  that often while a session lives): a session not heard from (Start or Interim-Update) for
  longer than that is taken to have ended one period after it was last heard (``unheard``), not
  when the next Start or reboot came, nor never. A Stop or Interim-Update read later shows it
  lived on: the rule applies only to a session that was never heard from again.
- The same record twice (a retransmission) is read once and counted as a duplicate.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from detnat.directory.model import (
    BATCH,
    Batches,
    Interval,
    Parsed,
    Refused,
    SourceLine,
    collector_paused,
    network_text,
)
from detnat.directory.zones import LocalTimeError, Zone

START, STOP, INTERIM, ON, OFF = "Start", "Stop", "Interim-Update", "Accounting-On", "Accounting-Off"
_STATUS = {
    "start": START,
    "1": START,
    "stop": STOP,
    "2": STOP,
    "interim-update": INTERIM,
    "alive": INTERIM,
    "3": INTERIM,
    "accounting-on": ON,
    "7": ON,
    "accounting-off": OFF,
    "8": OFF,
}
_MONTHS = {
    m: n
    for n, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
# attribute -> prefix length the value is read with (None: as written, a prefix)
_KEYS = (
    ("Delegated-IPv6-Prefix", None),
    ("Framed-IPv6-Prefix", None),
    ("Framed-IPv6-Address", 128),
    ("Framed-IP-Address", 32),
)
MAX_SKEW_US = 60_000_000  # the timestamp line against the Timestamp attribute


class Record(NamedTuple):
    """One accounting record as read (the replay's input)."""

    status: str
    at: int  # event time, µs
    session: tuple[str, str]  # (NAS, Acct-Session-Id)
    account: str | None
    keys: tuple[str, ...]
    session_time_us: int | None
    source: SourceLine


@collector_paused
def parse(
    files: Iterable[tuple[str, str]], *, tz: str | None, interim_us: int | None = None
) -> Parsed:
    """Read ``(file name, text)`` pairs as FreeRADIUS detail files and replay their sessions
    (``interim_us``: the NAS's interim period, when declared)."""
    out = Parsed()
    for batch in stream(files, tz=tz, out=out, interim_us=interim_us):
        out.intervals += batch
    return out


def stream(
    files: Iterable[tuple[str, str]], *, tz: str | None, out: Parsed, interim_us: int | None = None
) -> Batches:
    """:func:`parse` as a stream: every record is read first (the replay orders them all by
    event time), then the replay gives the intervals as its sessions end."""
    clock = _Clock(Zone.named(tz))
    records: list[Record] = []
    seen: set[tuple[str, str, str, int]] = set()
    for name, text in files:
        for record in _records(name, text, clock, out):
            mark = (record.session[0], record.session[1], record.status, record.at)
            if mark in seen:
                out.duplicates += 1
                continue
            seen.add(mark)
            records.append(record)
    yield from _replay(records, out, interim_us=interim_us)


# ``^[ \t]+([^ \t=]+) = "?(.*?)"?[ \t]*$``: the value without the quotes around it and without
# trailing blanks. Written without the lazy ``.*?`` (which tries the line's end after every
# character): runs of plain characters, blanks not trailing, a quote not the closing one.
_ATTR = re.compile(
    r'^[ \t]+([^ \t=]+) = "?((?:[^\n \t"]+|[ \t]+(?![ \t]*$)|"(?![ \t]*$))*)"?[ \t]*$', re.M
)
_BLANKISH = re.compile(r"(?m)^[ \t]+$")


def _records(name: str, text: str, clock: _Clock, out: Parsed) -> Iterable[Record]:
    """The records of one file: split at blank lines, attributes read by one regex per record;
    a record of another shape goes through :func:`_records_by_line`, which says what is wrong."""
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if "\n " in text or "\n\t\n" in text:
        text = _BLANKISH.sub("", text)  # whitespace-only lines are blank lines
    line = 1
    for chunk in text.split("\n\n"):
        at = line
        line += chunk.count("\n") + 2
        if chunk.startswith("\n"):
            stripped = chunk.lstrip("\n")
            at += len(chunk) - len(stripped)
            chunk = stripped
        chunk = chunk.rstrip("\n")
        if not chunk:
            continue
        header, _, body = chunk.partition("\n")
        found = _ATTR.findall(body)
        if header[0] in " \t" or len(found) != body.count("\n") + 1:
            yield from _records_by_line(name, chunk.split("\n"), at - 1, clock, out)
            continue
        out.records += 1
        try:
            yield _record(name, at, header, chunk, dict(found), clock)
        except (ValueError, LocalTimeError) as exc:
            out.refused.append(Refused(name, at, str(exc)))


def read_record(file: str, text: str, *, tz: str | None) -> Record:
    """A source record of a ``freeradius-detail`` interval read alone, as its ingest read it in
    the zone ``tz`` (``evidence verify``). ValueError: it is not one record this parser reads."""
    out = Parsed()
    found = list(_records(file, text, _Clock(Zone.named(tz)), out))
    if out.refused:
        raise ValueError(out.refused[0].reason)
    if len(found) != 1:
        raise ValueError(f"{len(found)} accounting records, not one")
    return found[0]


def _records_by_line(
    name: str, lines: list[str], offset: int, clock: _Clock, out: Parsed
) -> Iterable[Record]:
    n = len(lines)
    i = 0
    while i < n:
        line = lines[i]
        if not line or line.isspace():
            i += 1
            continue
        first = i
        i += 1
        if line[0] in " \t":
            while i < n and lines[i] and not lines[i].isspace() and lines[i][0] in " \t":
                i += 1
            where = offset + first + 1
            out.refused.append(Refused(name, where, "attribute lines outside a record"))
            continue
        attrs: dict[str, str] = {}
        while i < n:
            body = lines[i]
            if not body or body.isspace() or body[0] not in " \t":
                break
            key, sep, value = body.strip().partition(" = ")
            if sep:
                value = value.strip()
                if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
                    value = value[1:-1]
                attrs[key] = value
            i += 1
        out.records += 1
        where = offset + first + 1
        try:
            yield _record(name, where, line, "\n".join(lines[first:i]), attrs, clock)
        except (ValueError, LocalTimeError) as exc:
            out.refused.append(Refused(name, where, str(exc)))


def _record(
    name: str, line: int, header: str, text: str, attrs: dict[str, str], clock: _Clock
) -> Record:
    raw = attrs.get("Acct-Status-Type")
    status = _STATUS.get(raw.lower()) if raw is not None else None
    if status is None:
        raise ValueError(f"Acct-Status-Type {raw!r} is not one this directory reads")
    received = _received(header, attrs, clock)
    delay = _seconds(attrs, "Acct-Delay-Time") or 0
    stamp = attrs.get("Event-Timestamp")
    at = _event_timestamp(stamp, clock) if stamp else received - delay * 1_000_000
    nas = attrs.get("NAS-IP-Address") or attrs.get("NAS-Identifier") or ""
    if not nas:
        raise ValueError("no NAS-IP-Address or NAS-Identifier")
    session_id = attrs.get("Acct-Session-Id", "")
    if status in (ON, OFF):
        account = None
        keys: tuple[str, ...] = ()
    else:
        if not session_id:
            raise ValueError("no Acct-Session-Id")
        account = attrs.get("User-Name") or attrs.get("Calling-Station-Id")
        if not account:
            raise ValueError("no User-Name or Calling-Station-Id: no account to name")
        keys = _keys(attrs)
    session_time = _seconds(attrs, "Acct-Session-Time")
    return Record(
        status,
        at,
        (nas, session_id),
        account,
        keys,
        None if session_time is None else session_time * 1_000_000,
        SourceLine.of(name, line, text),
    )


def _keys(attrs: dict[str, str]) -> tuple[str, ...]:
    keys = []
    for attr, length in _KEYS:
        value = attrs.get(attr)
        if value is None:
            continue
        written = value if length is None or "/" in value else f"{value}/{length}"
        try:
            keys.append(network_text(written))
        except ValueError as exc:
            raise ValueError(f"{attr} {value!r} is not an address or prefix ({exc})") from exc
    return tuple(keys) if len(keys) < 2 else tuple(dict.fromkeys(keys))


def _seconds(attrs: dict[str, str], attr: str) -> int | None:
    value = attrs.get(attr)
    if value is None:
        return None
    if not value.isascii() or not value.isdigit():
        raise ValueError(f"{attr} {value!r} is not a count of seconds")
    return int(value)


class _Clock:
    """The zone of one parse, and the instants of the timestamp lines and printed
    ``Event-Timestamp`` s already read (records come many to a second)."""

    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.name = zone.name
        self.lines: dict[str, int] = {}
        self.stamps: dict[str, int] = {}

    def line(self, header: str) -> int:
        found = self.lines.get(header)
        if found is None:
            found = _line_time(header, self.zone)
            if len(self.lines) >= 100_000:
                self.lines.clear()
            self.lines[header] = found
        return found

    def stamp(self, value: str) -> int:
        found = self.stamps.get(value)
        if found is None:
            found = _printed_time(value, self.zone)
            if len(self.stamps) >= 100_000:
                self.stamps.clear()
            self.stamps[value] = found
        return found


def _received(header: str, attrs: dict[str, str], clock: _Clock) -> int:
    """When the server received the record: the timestamp line in ``clock``'s zone, checked
    against the ``Timestamp`` attribute (epoch) when the record has one, which then wins."""
    local = clock.line(header)
    epoch = attrs.get("Timestamp")
    if epoch is None:
        return local
    if not epoch.isascii() or not epoch.isdigit():
        raise ValueError(f"Timestamp {epoch!r} is not epoch seconds")
    stamped = int(epoch) * 1_000_000
    if abs(stamped - local) > MAX_SKEW_US:
        raise LocalTimeError(
            f"the timestamp line read in {clock.name} is {(local - stamped) // 1_000_000:+d} s "
            "from the record's Timestamp: was the file written in another zone? (--tz)"
        )
    return stamped


def _line_time(header: str, zone: Zone) -> int:
    """A timestamp line's instant in ``zone``."""
    parts = header.split()
    if len(parts) != 5 or parts[1] not in _MONTHS or parts[3].count(":") != 2:
        raise ValueError(f"{header.strip()!r} is not a detail record's timestamp line")
    hh, mm, ss = parts[3].split(":")
    try:
        local = zone.instant_us(
            int(parts[4]), _MONTHS[parts[1]], int(parts[2]), int(hh), int(mm), int(ss)
        )
    except ValueError as exc:
        if isinstance(exc, LocalTimeError):
            raise
        raise ValueError(f"{header.strip()!r} is not a detail record's timestamp line") from exc
    return local


def _event_timestamp(value: str, clock: _Clock) -> int:
    """Epoch seconds, or FreeRADIUS' printed ``Jun 30 2026 22:44:25 CEST``."""
    if value.isascii() and value.isdigit():
        return int(value) * 1_000_000
    return clock.stamp(value)


def _printed_time(value: str, zone: Zone) -> int:
    parts = value.split()
    if len(parts) == 5 and parts[0] in _MONTHS and parts[3].count(":") == 2:
        hh, mm, ss = parts[3].split(":")
        try:
            return zone.instant_us(
                int(parts[2]),
                _MONTHS[parts[0]],
                int(parts[1]),
                int(hh),
                int(mm),
                int(ss),
                abbreviation=parts[4],
            )
        except LocalTimeError as exc:
            raise LocalTimeError(f"Event-Timestamp {value!r}: {exc}") from exc
        except ValueError:
            pass
    raise ValueError(f"Event-Timestamp {value!r} is neither epoch seconds nor a printed date")


# -- the replay ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Session:
    account: str
    starts: dict[str, int] = field(default_factory=dict)  # key -> when it was first held
    lost: set[str] = field(default_factory=set)  # keys another session's Start took over
    first: SourceLine | None = None
    heard: int = 0  # when a record of the session was last read (Start, Interim-Update)
    last: SourceLine | None = None  # that record


_ORDER = {START: 0, INTERIM: 1, STOP: 2, ON: 3, OFF: 3}
_LOST_STOP = frozenset({"takeover", "nas-reboot"})  # ends that say nothing of when it ended


def _started_after(
    open_: dict[tuple[str, str], _Session],
    holder: dict[str, tuple[str, str]],
    keys: tuple[str, ...],
    at: int,
) -> str | None:
    """A key of ``keys`` that another open session began holding after ``at``, if any."""
    for key in keys:
        other = holder.get(key)
        if other is not None and open_[other].starts.get(key, at) > at:
            return key
    return None


def replay(records: list[Record], out: Parsed, *, interim_us: int | None = None) -> list[Interval]:
    """Sessions from records, in event-time order (ties: file order)."""
    return [iv for batch in _replay(records, out, interim_us=interim_us) for iv in batch]


def _replay(records: list[Record], out: Parsed, *, interim_us: int | None = None) -> Batches:
    """:func:`replay` as a stream: an interval is final once made (a session's key closed, a
    Stop without its Start), the sessions still open at the end last."""
    intervals: list[Interval] = []
    open_: dict[tuple[str, str], _Session] = {}
    holder: dict[str, tuple[str, str]] = {}  # key -> the open session holding it
    by_nas: dict[str, set[tuple[str, str]]] = {}
    ended: set[tuple[str, str]] = set()

    def close(sid: tuple[str, str], key: str, at: int, how: str, last: SourceLine | None) -> None:
        held = open_[sid]
        if how == "takeover":
            held.lost.add(key)  # its later records do not take the key back
        if how in _LOST_STOP and interim_us is not None and held.heard + interim_us < at:
            at, how, last = held.heard + interim_us, "unheard", held.last  # silent: it ended
        start = held.starts.pop(key)
        if holder.get(key) == sid:
            del holder[key]
        sources: tuple[SourceLine, ...] = (held.first,) if held.first is not None else ()
        if last is not None and last is not held.first:
            sources += (last,)
        intervals.append(Interval(key, held.account, start, at, how, sources))

    def end(sid: tuple[str, str], at: int, how: str, last: SourceLine | None) -> None:
        for key in list(open_[sid].starts):
            close(sid, key, at, how, last)
        del open_[sid]
        by_nas[sid[0]].discard(sid)
        ended.add(sid)

    def hold(sid: tuple[str, str], keys: tuple[str, ...], at: int, source: SourceLine) -> None:
        held = open_[sid]
        for key in keys:
            if key in held.starts or key in held.lost:
                continue
            other = holder.get(key)
            if other is not None and other != sid:
                close(other, key, at, "takeover", source)
            held.starts[key] = at
            holder[key] = sid

    def begin(record: Record, at: int) -> None:
        sid = record.session
        ended.discard(sid)  # a session id the NAS reuses after an end
        open_[sid] = _Session(record.account or "", first=record.source)
        by_nas.setdefault(sid[0], set()).add(sid)
        hold(sid, record.keys, at, record.source)
        heard(sid, record)

    def heard(sid: tuple[str, str], record: Record) -> None:
        open_[sid].heard, open_[sid].last = record.at, record.source

    when = [(record.at, _ORDER[record.status]) for record in records]
    ordered = sorted(range(len(records)), key=when.__getitem__)
    for n in ordered:
        if len(intervals) >= BATCH:
            yield intervals
            intervals = []
        record = records[n]
        sid = record.session
        if record.status in (ON, OFF):
            for other in sorted(by_nas.get(sid[0], ())):
                end(other, record.at, "nas-reboot", record.source)
        elif record.status == START:
            if sid in open_:
                out.duplicates += 1  # a second Start of an open session: the first one stands
                continue
            begin(record, record.at)
        elif record.status == INTERIM:
            if sid in open_:
                hold(sid, record.keys, record.at, record.source)
                heard(sid, record)
            elif sid not in ended:
                lost_start = record.at - (record.session_time_us or 0)
                later = _started_after(open_, holder, record.keys, lost_start)
                if later is not None:
                    out.refused.append(
                        Refused(
                            record.source.file,
                            record.source.line,
                            f"an Interim-Update of a session whose Start was not read says it "
                            f"held {later} since before another session's Start of it: the "
                            "records disagree",
                        )
                    )
                    continue
                begin(record, lost_start)
        elif sid in open_:  # STOP
            hold(sid, record.keys, record.at, record.source)
            end(sid, record.at, "stop", record.source)
        elif sid not in ended:
            if record.session_time_us is None:
                out.refused.append(
                    Refused(
                        record.source.file,
                        record.source.line,
                        "a Stop whose Start was not read and without Acct-Session-Time: "
                        "when the session began is unknown",
                    )
                )
                continue
            began = record.at - record.session_time_us
            for key in record.keys:
                intervals.append(
                    Interval(key, record.account or "", began, record.at, "stop", (record.source,))
                )
            ended.add(sid)
    for sid in sorted(open_):
        held = open_[sid]
        if interim_us is not None:  # never heard from again: it ended one period after
            end(sid, held.heard + interim_us, "unheard", held.last)
            continue
        first = (held.first,) if held.first is not None else ()
        for key, start in held.starts.items():
            intervals.append(Interval(key, held.account, start, None, "open", first))
    if intervals:
        yield intervals
