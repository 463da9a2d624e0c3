"""The ``csv`` directory format: ``subscriber,account,from,to`` — an export of another system.

``subscriber`` is an address or prefix (host bits zero), ``from``/``to`` RFC 3339 instants
(``to`` empty: still held); naive times need ``--tz``. One interval per row, ``closed = "given"``::

    subscriber,account,from,to
    2001:db8:104d:c900::/56,CUST-1001,2026-03-01T00:00:00Z,2026-04-01T00:00:00Z
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import datetime

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
from detnat.directory.zones import Zone, epoch_us

HEADER = ["subscriber", "account", "from", "to"]


@collector_paused
def parse(files: Iterable[tuple[str, str]], *, tz: str | None) -> Parsed:
    out = Parsed()
    for batch in stream(files, tz=tz, out=out):
        out.intervals += batch
    return out


def stream(files: Iterable[tuple[str, str]], *, tz: str | None, out: Parsed) -> Batches:
    """:func:`parse` as a stream: the intervals in batches as the rows are read, the counts and
    refused records into ``out``."""
    zone = Zone.named(tz) if tz else None
    seen: set[str] = set()
    intervals: list[Interval] = []
    instants: dict[str, int] = {}  # an export's rows share their times: each read once
    for name, text in files:
        rows = _plain_rows(text) if '"' not in text and "\r" not in text else _csv_rows(text)
        header = [h.strip().lower() for h in next(rows, (0, [], ""))[1]]
        if header != HEADER:
            out.refused.append(Refused(name, 1, f"the header must be {','.join(HEADER)}"))
            continue
        for n, row, raw in rows:
            if not row or not "".join(row).strip():  # no field but blanks
                continue
            out.records += 1
            if raw in seen:
                out.duplicates += 1
                continue
            seen.add(raw)
            try:
                if len(row) != 4:
                    raise ValueError(f"{len(row)} fields, not 4")
                subscriber = network_text(row[0])
                account = row[1].strip()
                if not account:
                    raise ValueError("no account")
                start = _instant(row[2], zone, instants)
                end = _instant(row[3], zone, instants) if row[3].strip() else None
                if end is not None and end <= start:
                    raise ValueError("'to' is not after 'from'")
            except ValueError as exc:
                out.refused.append(Refused(name, n, str(exc)))
                continue
            source = SourceLine.of(name, n, raw)
            intervals.append(Interval(subscriber, account, start, end, "given", (source,)))
            if len(intervals) >= BATCH:
                yield intervals
                intervals = []
    if intervals:
        yield intervals


def read_row(file: str, text: str, *, tz: str | None) -> Interval:
    """A source line of a ``csv`` interval read alone, as its ingest read it (``evidence
    verify``; ``tz``: the zone of naive times). ValueError: it is not one row this parser reads."""
    out = Parsed()
    found = [iv for batch in stream([(file, ",".join(HEADER) + "\n" + text)], tz=tz, out=out)
             for iv in batch]  # fmt: skip
    if out.refused:
        raise ValueError(out.refused[0].reason)
    if len(found) != 1:
        raise ValueError(f"{len(found)} rows, not one")
    return found[0]


def _csv_rows(text: str) -> Iterator[tuple[int, list[str], str]]:
    """(line number, fields, the line as written) of each row, read by :mod:`csv` (quoted fields,
    a field over several lines, CR line ends)."""
    lines = text.split("\n")
    reader = csv.reader(io.StringIO(text))
    for row in reader:
        n = reader.line_num
        yield n, row, lines[n - 1].rstrip("\r") if n - 1 < len(lines) else ",".join(row)


def _plain_rows(text: str) -> Iterator[tuple[int, list[str], str]]:
    """:func:`_csv_rows` of a text without quotes or CRs (what an export usually is), without
    :mod:`csv`: each line is a row (an empty one none) and its fields are what lies between its
    commas, as :mod:`csv` reads such a line (issue 14: half a csv parse's time)."""
    lines = text.split("\n")
    if lines and not lines[-1]:
        lines.pop()  # the text's last newline ends a line, it does not begin one
    for n, line in enumerate(lines, start=1):
        yield n, line.split(",") if line else [], line


def _instant(text: str, zone: Zone | None, known: dict[str, int]) -> int:
    found = known.get(text)
    if found is None:
        found = _read_instant(text, zone)
        if len(known) >= 100_000:
            known.clear()
        known[text] = found
    return found


def _read_instant(text: str, zone: Zone | None) -> int:
    text = text.strip()
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        if zone is None:
            raise ValueError(f"{text!r} has no offset: give --tz")
        return (
            zone.instant_us(
                moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second
            )
            + moment.microsecond
        )
    return epoch_us(moment)
