"""What an interval's source lines say, read again one by one (``evidence verify``).

An evidence file carries each interval of an answer's account (``account.held``) with the lines
it was made from and the ingest that read them (its format, ``--tz`` and ``--interim``).
:func:`check_row` reads each line again with its format's parser and names what the row shows
that its lines do not say. It does not replay the directory: a row's lines are its first record
and the record that ended it (:mod:`detnat.directory.radius`, :mod:`detnat.directory.kea`), so
what each line proves is checked on its own:

- **csv**: the one line is the row: subscriber, account, from and to (``given``).
- **kea-lease6**: every line names the subscriber prefix, and the last line the same lease
  (DUID, IAID) as the first; the first line names the account and sets ``from``; the last sets
  ``to`` (``expired``), or, a release, bounds it (``released``: between the release row's start
  and end -- for a forensic line, its instant).
- **freeradius-detail**: the first record (Start, an Interim-Update or a Stop whose Start was
  lost) names the account and, when it names the key, sets ``from`` (its event time with
  ``Acct-Delay-Time``; less ``Acct-Session-Time`` when its Start was lost); a key learned later
  must be named by the last record and ``from`` lie within the session. The end is the last
  record's, by how the row was closed: ``stop`` a Stop of the same session (or the lone Stop),
  ``nas-reboot`` an Accounting-On/Off of the same NAS, ``takeover`` a record of another session
  naming the key, ``unheard`` the session's last record heard plus the ingest's interim period,
  ``open`` no end.

An open row ended when answering by the next row of its prefix (``takeover`` with the lines of
an open row) carries no line of that end: it is checked to end after it began, and no more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from detnat.directory import kea, radius, table
from detnat.directory.model import Interval, SourceLine
from detnat.directory.resolve import instant_text
from detnat.errors import DetnatError

T = TypeVar("T")


@dataclass(frozen=True)
class Reading:
    """How an ingest read its files: format, ``--tz``, ``--interim`` (µs)."""

    format: str
    tz: str | None
    interim_us: int | None


class _Unread(Exception):
    """A line that does not read again (the message says which and why)."""


def _show(value: object) -> str:
    return repr(value)


def _when(us: int | None) -> str:
    return "no end" if us is None else instant_text(us)


@dataclass
class _Check:
    row: Interval
    reading: Reading
    problems: list[str]

    def read(self, source: SourceLine, reader: Callable[[SourceLine], T]) -> T:
        try:
            return reader(source)
        except (ValueError, DetnatError) as exc:
            raise _Unread(
                f"{source.file}:{source.line} does not read again as {self.reading.format}: {exc}"
            ) from exc

    def say(self, source: SourceLine, text: str) -> None:
        self.problems.append(
            f"{source.file}:{source.line} read again as {self.reading.format} {text}"
        )

    def same(self, source: SourceLine, what: str, said: object, shown: object) -> None:
        if said != shown:
            self.say(source, f"says {what} {_show(said)}, not {_show(shown)}")

    def same_time(self, source: SourceLine, what: str, said: int | None, shown: int | None) -> None:
        if said != shown:
            self.say(source, f"says {what} {_when(said)}, not {_when(shown)}")

    def derived_end(self, source: SourceLine) -> None:
        """An open row ended by the next row of its prefix (no line of that end is carried)."""
        row = self.row
        if row.end is None or row.end <= row.start:
            self.say(source, f"says the row is open: taken over at {_when(row.end)} is no end")


def check_row(row: Interval, reading: Reading) -> list[str]:
    """What ``row`` (an answer's held interval, with its source lines) shows that its lines,
    read again as ``reading`` says, do not say; empty when they say all of it."""
    if not row.sources:
        return ["carries no source line: nothing read again proves it"]
    check = _Check(row, reading, [])
    rules = {"csv": _csv, "kea-lease6": _kea, "freeradius-detail": _radius}
    rule = rules.get(reading.format)
    if rule is None:
        return [f"its ingest's format {reading.format!r} is not one this version reads again"]
    try:
        rule(check)
    except _Unread as exc:
        check.problems.append(str(exc))
    return check.problems


def _csv(check: _Check) -> None:
    row, tz = check.row, check.reading.tz
    if len(row.sources) != 1:
        check.problems.append(f"a csv row is one line, not {len(row.sources)}")
        return
    (source,) = row.sources
    said = check.read(source, lambda s: table.read_row(s.file, s.text, tz=tz))
    check.same(source, "subscriber", said.subscriber, row.subscriber)
    check.same(source, "account", said.account, row.account)
    check.same_time(source, "from", said.start, row.start)
    if said.end is None and row.closed == "takeover":
        check.derived_end(source)
        return
    check.same_time(source, "to", said.end, row.end)
    check.same(source, "closed", "given", row.closed)


def _kea(check: _Check) -> None:
    row, tz = check.row, check.reading.tz
    if len(row.sources) > 2:
        check.problems.append(
            f"a lease's row is made of its first and last line, not {len(row.sources)}"
        )
        return
    lines = [check.read(s, lambda s: kea.read_line(s.text, tz=tz)) for s in row.sources]
    for source, line in zip(row.sources, lines, strict=True):
        check.same(source, "subscriber", line.lease[0], row.subscriber)
    first, last = lines[0], lines[-1]
    head, tail = row.sources[0], row.sources[-1]
    check.same(head, "account", first.account, row.account)
    check.same(tail, "lease (DUID, IAID)", last.lease[1:], first.lease[1:])
    if first.ending:
        check.say(head, "ends its lease: no row begins with it")
        return
    check.same_time(head, "from", first.start, row.start)
    if len(lines) == 2 and last.ending:
        check.same(tail, "closed", "released", row.closed)
        if row.end is None or not last.start <= row.end <= last.end:
            check.say(
                tail,
                f"says the lease ended between {_when(last.start)} and {_when(last.end)}, "
                f"not at {_when(row.end)}",
            )
        return
    check.same(tail, "closed", "expired", row.closed)
    check.same_time(tail, "to", last.end, row.end)


def _radius(check: _Check) -> None:
    row, tz = check.row, check.reading.tz
    if len(row.sources) > 2:
        check.problems.append(
            f"a session's row is made of its first and last record, not {len(row.sources)}"
        )
        return
    records = [
        check.read(s, lambda s: radius.read_record(s.file, s.text, tz=tz)) for s in row.sources
    ]
    first, head = records[0], row.sources[0]
    last, tail = (records[1], row.sources[1]) if len(records) == 2 else (None, head)
    if first.status in (radius.ON, radius.OFF):
        check.say(head, f"is an {first.status}: no session begins with it")
        return
    check.same(head, "account", first.account, row.account)
    if first.status == radius.START:
        begin = first.at
    elif first.session_time_us is None and first.status == radius.STOP:
        check.say(head, "is a Stop without Acct-Session-Time: no session begins with it")
        return
    else:  # its Start lost: it began Acct-Session-Time before
        begin = first.at - (first.session_time_us or 0)
    if row.subscriber in first.keys:
        check.same_time(head, "from", begin, row.start)
    elif last is None or row.subscriber not in last.keys:
        check.say(head, f"does not name {row.subscriber}, nor does the row's last record")
    elif row.start < begin or (row.end is not None and row.start > row.end):
        check.say(
            head, f"says the session began at {_when(begin)}: {_when(row.start)} is not in it"
        )
    _radius_end(check, first, last, tail)


def _radius_end(
    check: _Check, first: radius.Record, last: radius.Record | None, tail: SourceLine
) -> None:
    row = check.row
    ours = last is not None and last.session == first.session
    closed = row.closed
    if closed == "open":
        if last is not None or row.end is not None:
            check.say(tail, f"does not leave the session open (shown to {_when(row.end)})")
    elif closed == "takeover" and last is None:
        check.derived_end(tail)
    elif closed == "stop":
        stop = last if last is not None else first
        if stop.status != radius.STOP or (last is not None and not ours):
            check.say(tail, f"is a {stop.status} of session {stop.session}: no Stop of this one")
        else:
            check.same_time(tail, "to", stop.at, row.end)
    elif closed == "nas-reboot":
        if last is None or last.status not in (radius.ON, radius.OFF):
            check.say(tail, "is no Accounting-On/Off: it does not end the session (nas-reboot)")
        elif last.session[0] != first.session[0]:
            check.say(tail, f"is of NAS {last.session[0]}, not the session's {first.session[0]}")
        else:
            check.same_time(tail, "to", last.at, row.end)
    elif closed == "takeover":
        assert last is not None
        if ours or last.status in (radius.ON, radius.OFF) or row.subscriber not in last.keys:
            check.say(tail, f"is no record of another session naming {row.subscriber} (takeover)")
        else:
            check.same_time(tail, "to", last.at, row.end)
    elif closed == "unheard":
        heard = last if last is not None else first
        interim = check.reading.interim_us
        if interim is None:
            check.say(tail, "was ingested without --interim: no session of it ends unheard")
        elif (last is not None and not ours) or heard.status not in (radius.START, radius.INTERIM):
            check.say(tail, "is not the session's last record heard (unheard)")
        else:
            check.same_time(tail, "to", heard.at + interim, row.end)
    else:
        check.say(tail, f"ends no session as {closed!r}")
