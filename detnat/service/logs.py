"""Log ingest, follow and prune: the datapath's own allocation lines into the store, audited.

An ingest takes what a parser made of a file (``Iterable[LogEvent | Refused]``, see
:mod:`detnat.logs.formats`) and the :class:`Reading` that fed the parser its lines (name, identity,
offsets, SHA-256 of the bytes, the raw lines). It stores the events in chunks by ``COPY``
(:mod:`detnat.store.logs`), counts duplicates (a line already stored), reports each refused line
and never stops for one, rebuilds the intervals of the public addresses it touched
(:func:`detnat.logs.intervals.derive`), and appends one audit entry ``logs.ingest`` whose record
is the ``log_ingests`` row (counts, bytes hash, per month the number and digest of the events it
stored). The edge commits.

``--follow`` is :func:`follow`: one ingest per chunk of complete lines, each committed with the
file's identity (device:inode) and byte offset, so a restart resumes where the last commit ended
and a rotated file is read to its end (found by its identity beside the new one) before the new
file is read from its start: no line lost, none counted twice.

Example::

    reading = Reading.open("pba.log")
    items = parse_lines("juniper-pba", reading.lines(), file="pba.log", options=...)
    summary = ingest(session, "aftr-fra-1", items, reading, fmt="juniper-pba", by=actor,
                     request_id="cli-…")
    session.commit()
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from detnat.engine import parse_public_address
from detnat.errors import DetnatError, InvalidInput
from detnat.logs.events import EventKind, LineRef, LogEvent, Refused
from detnat.logs.intervals import Interval, Seen, derive
from detnat.service import audit, plans
from detnat.service.clock import utcnow
from detnat.service.times import format_instant
from detnat.store import logs as store
from detnat.store.models import LogIngest, LogPrune

CHUNK = 50_000  # events per COPY: memory stays flat whatever the file's size
SHOWN = 20  # refused lines kept in a summary (all are reported as they come)
MOD = 1 << 256
_MONTH = re.compile(r"\d{4}-\d{2}")
US = timedelta(microseconds=1)


# -- what was read ---------------------------------------------------------------------------------


class Reading:
    """The lines of one file as a parser reads them, and what an ingest records of them.

    ``final``: the file is complete (a file named on the command line, stdin): a last line
    without its line ending is read. Otherwise (a followed file) such a line is left for later:
    it may still be being written.
    """

    def __init__(
        self,
        stream: BinaryIO,
        *,
        name: str,
        identity: str | None = None,
        offset: int = 0,
        base_line: int = 0,
        final: bool = True,
    ) -> None:
        self.stream = stream
        self.name = name
        self.identity = identity
        self.offset_from = offset
        self.offset = offset
        self.base_line = base_line
        self.count = 0
        self.final = final
        self.sha = hashlib.sha256()
        self._recent: OrderedDict[int, bytes] = OrderedDict()

    @classmethod
    def open(cls, path: str) -> Reading:
        """A file named on the command line: ``-`` is stdin, ``.gz`` is read decompressed."""
        if path == "-":
            return cls(sys.stdin.buffer, name="<stdin>")
        try:
            if path.endswith(".gz"):
                return cls(cast(BinaryIO, gzip.open(path, "rb")), name=path)
            stream = open(path, "rb")  # noqa: SIM115 - closed by the caller (close())
        except OSError as exc:
            raise InvalidInput(f"cannot read {path}: {exc.strerror}", field="FILE") from None
        return cls(stream, name=path, identity=identity_of(os.fstat(stream.fileno())))

    def close(self) -> None:
        if self.stream is not sys.stdin.buffer:
            self.stream.close()

    def lines(self) -> Iterator[bytes]:
        """The lines from the current offset, counted and hashed as they are read."""
        readline = self.stream.readline
        recent = self._recent
        while True:
            try:
                line = readline()
            except (OSError, EOFError) as exc:  # a truncated .gz
                raise InvalidInput(f"{self.name}: cannot read on: {exc}", field="FILE") from None
            if not line:
                return
            if not self.final and not line.endswith(b"\n"):
                self.stream.seek(self.offset)  # a line still being written: left for later
                return
            self.sha.update(line)
            self.offset += len(line)
            self.count += 1
            recent[self.count] = line
            if len(recent) > 100_000:
                recent.popitem(last=False)
            yield line

    def has_line(self) -> bool:
        """Whether a line can be read now (a complete one, unless the file is final)."""
        at = self.stream.tell()
        line = self.stream.readline()
        self.stream.seek(at)
        return bool(line) and (self.final or line.endswith(b"\n"))

    def raw(self, line: int) -> str:
        """The text of line ``line`` (1-based, of this reading), as stored beside its event."""
        found = self._recent.get(line)
        if found is None:
            return ""
        text = found.rstrip(b"\r\n").decode("utf-8", "backslashreplace")
        return text.replace("\x00", "\\x00")


def identity_of(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}"


# -- ingest ----------------------------------------------------------------------------------------


@dataclass
class IngestSummary:
    """What one ingest did: counts, and the first refused lines (all go to ``on_refused``)."""

    realm: str
    file: str
    ingest_id: int
    lines_read: int = 0
    events_stored: int = 0
    duplicates: int = 0
    refused: int = 0
    refusals: list[Refused] = field(default_factory=list)

    def add(self, other: IngestSummary) -> None:
        self.lines_read += other.lines_read
        self.events_stored += other.events_stored
        self.duplicates += other.duplicates
        self.refused += other.refused
        self.refusals += other.refusals[: SHOWN - len(self.refusals)]

    def to_json(self) -> dict[str, Any]:
        return {
            "realm": self.realm,
            "file": self.file,
            "ingest": self.ingest_id,
            "lines_read": self.lines_read,
            "events_stored": self.events_stored,
            "duplicates": self.duplicates,
            "refused": self.refused,
            "refusals": [
                {"file": r.file, "line": r.line, "reason": r.reason} for r in self.refusals
            ],
        }


def check_hold(hold: timedelta | None) -> timedelta | None:
    if hold is not None and not (timedelta(0) < hold <= timedelta(days=366)):
        raise InvalidInput("must be more than 0 and at most 366 days", field="--log-hold")
    return hold


def _escape(value: str) -> str:
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return value


class _Publics(dict[str, int]):
    """Public address text -> integer, parsed once per address."""

    def __missing__(self, key: str) -> int:
        value = parse_public_address(key, field="public")
        self[key] = value
        return value


def ingest(
    session: Session,
    realm_name: str,
    items: Iterable[LogEvent | Refused],
    reading: Reading,
    *,
    fmt: str,
    by: audit.Actor,
    request_id: str,
    log_hold: timedelta | None = None,
    on_refused: Callable[[Refused], None] | None = None,
) -> IngestSummary:
    """Store ``items`` into ``realm_name`` (see the module docstring); flushed, not committed."""
    check_hold(log_hold)
    realm = plans.get_realm(session, realm_name)
    store.lock_realm(session, realm.id)
    previous_hold = store.log_hold(session, realm.id)
    ingest_id = store.next_ingest_id(session)
    summary = IngestSummary(realm.name, reading.name, ingest_id)
    months: dict[str, list[int]] = {}
    touched: set[int] = set()
    publics = _Publics()
    base = reading.base_line

    def refuse(item: Refused) -> None:
        summary.refused += 1
        if len(summary.refusals) < SHOWN:
            summary.refusals.append(item)
        if on_refused is not None:
            on_refused(item)

    def rows() -> Iterator[list[bytes]]:
        chunk: list[str] = []
        for item in items:
            if isinstance(item, Refused):
                refuse(Refused(item.file, base + item.line, item.reason))
                continue
            try:
                public = publics[item.public]
            except DetnatError as exc:
                refuse(Refused(item.source.file, base + item.source.line, exc.message))
                continue
            chunk.append(
                f"{item.at_us}\t{item.source.sha256}\t{item.kind.value}\t{_escape(item.inside)}"
                f"\t{public}\t{item.port_first}\t{item.port_last}\t{item.port_step}"
                f"\t{item.protocol or 'all'}\t{_escape(item.source.file)}"
                f"\t{base + item.source.line}\t{_escape(reading.raw(item.source.line))}\n"
            )
            if len(chunk) >= CHUNK:
                yield [s.encode() for s in chunk]
                chunk = []
        if chunk:
            yield [s.encode() for s in chunk]

    staged = 0
    for chunk in rows():
        store.stage(session, [b"".join(chunk)])
        staged += len(chunk)
        store.ensure_partitions(session, realm.id)
        touched |= store.staged_publics(session)
        for month, digest in store.store_staged(session, realm.id, ingest_id):
            count_sum = months.setdefault(month, [0, 0])
            count_sum[0] += 1
            count_sum[1] = (count_sum[1] + int(digest, 16)) % MOD
    summary.lines_read = reading.count
    summary.events_stored = sum(c for c, _ in months.values())
    summary.duplicates = staged - summary.events_stored
    row = LogIngest(
        id=ingest_id,
        realm_id=realm.id,
        at=utcnow(),
        by=by.name,
        format=fmt,
        file=reading.name,
        file_identity=reading.identity,
        offset_from=reading.offset_from,
        offset_to=reading.offset,
        bytes_sha256=reading.sha.hexdigest(),
        lines_read=summary.lines_read,
        events_stored=summary.events_stored,
        duplicates=summary.duplicates,
        refused=summary.refused,
        log_hold=log_hold,
        months={m: [c, f"{s:064x}"] for m, (c, s) in sorted(months.items())},
    )
    session.add(row)
    session.flush()
    if log_hold is not None and log_hold != previous_hold:
        rebuild(session, realm.id, None)  # a new hold changes every open interval of the realm
    elif touched:
        rebuild(session, realm.id, touched)
    audit.record(
        session,
        by,
        "logs.ingest",
        request_id=request_id,
        detail={"record": ingest_record(realm.name, row)},
    )
    return summary


def ingest_record(realm_name: str, row: LogIngest) -> dict[str, Any]:
    """What ``logs.ingest`` records of an ingest (``audit verify`` holds the row against it)."""
    return {
        "ingest": row.id,
        "realm": realm_name,
        "at": format_instant(row.at),
        "by": row.by,
        "format": row.format,
        "file": row.file,
        "file_identity": row.file_identity,
        "offset_from": row.offset_from,
        "offset_to": row.offset_to,
        "bytes_sha256": row.bytes_sha256,
        "lines_read": row.lines_read,
        "events_stored": row.events_stored,
        "duplicates": row.duplicates,
        "refused": row.refused,
        "log_hold_us": None if row.log_hold is None else row.log_hold // US,
        "months": row.months,
    }


def prune_record(realm_name: str, row: LogPrune) -> dict[str, Any]:
    """What ``logs.prune`` records of a prune."""
    return {
        "prune": row.id,
        "realm": realm_name,
        "at": format_instant(row.at),
        "by": row.by,
        "before": format_instant(row.before),
        "months": row.months,
    }


# -- rows of the store <-> events and intervals ---------------------------------------------------


def event_of(row: Any) -> LogEvent:
    """A stored event row (:func:`detnat.store.logs.events`) as the event it was."""
    return LogEvent(
        EventKind(row.kind),
        row.at_us,
        row.inside,
        store.ipv4_text(row.public),
        row.port_first,
        row.port_last,
        None if row.protocol == "all" else row.protocol,
        LineRef(row.file, row.line, row.line_sha256),
        row.port_step,
    )


def interval_of(row: Any) -> Interval:
    """A stored interval row as the interval it is (ValueError/TypeError/KeyError: not one)."""
    during = row.during
    return Interval(
        store.ipv4_text(row.public),
        row.port_first,
        row.port_last,
        row.port_step,
        None if row.protocol == "all" else row.protocol,
        row.inside,
        None if during.lower is None else store.micros(during.lower),
        None if during.upper is None else store.micros(during.upper),
        row.open,
        row.unknown_start,
        tuple(Seen(EventKind(k), at, LineRef(f, n, sha)) for k, at, f, n, sha in row.lines),
        row.conflict,
    )


def _bound(value: int | None) -> str:
    return "" if value is None else store.instant(value).isoformat()


def interval_row(realm_id: int, public: int, i: Interval) -> str:
    """An interval as one COPY row of ``log_intervals``."""
    lines = json.dumps(
        [[s.kind.value, s.at_us, s.source.file, s.source.line, s.source.sha256] for s in i.lines],
        separators=(",", ":"),
    )
    return (
        "\t".join(
            (
                str(realm_id),
                str(public),
                str(i.port_first),
                str(i.port_last),
                str(i.port_step),
                i.protocol or "all",
                store.copy_text(i.inside),
                f"[{_bound(i.start_us)},{_bound(i.end_us)})",
                f"[{public * 65536 + i.port_first},{public * 65536 + i.port_last + 1})",
                "t" if i.open else "f",
                "t" if i.unknown_start else "f",
                "t" if i.conflict else "f",
                store.copy_text(lines),
            )
        )
        + "\n"
    )


def rebuild(session: Session, realm_id: int, publics: set[int] | None) -> int:
    """Derive the intervals of ``publics`` (None: all) of the realm anew from its events."""
    hold = store.log_hold(session, realm_id)
    hold_us = None if hold is None else hold // US
    store.delete_intervals(session, realm_id, publics)
    made = 0
    pending: list[str] = []
    for public, rows in store.events(session, realm_id, publics):
        found = derive([event_of(r) for r in rows], hold_us=hold_us)
        pending.extend(interval_row(realm_id, public, i) for i in found)
        made += len(found)
        if len(pending) >= CHUNK:
            store.insert_intervals(session, pending)
            pending = []
    if pending:
        store.insert_intervals(session, pending)
    return made


# -- prune -----------------------------------------------------------------------------------------


def prune(
    session: Session, realm_name: str, *, before: datetime, by: audit.Actor, request_id: str
) -> list[str]:
    """Drop the realm's whole months that end at or before ``before`` (audited ``logs.prune``);
    the months dropped. A month that ``before`` cuts is kept whole."""
    realm = plans.get_realm(session, realm_name)
    store.lock_realm(session, realm.id)
    dropped = [m for m in store.months(session, realm.id) if _month_end(m) <= before]
    for month in dropped:
        store.drop_month(session, realm.id, month)
    row = LogPrune(realm_id=realm.id, at=utcnow(), by=by.name, before=before, months=dropped)
    session.add(row)
    session.flush()
    rebuild(session, realm.id, None)
    audit.record(
        session,
        by,
        "logs.prune",
        request_id=request_id,
        detail={"record": prune_record(realm.name, row)},
    )
    return dropped


def _month_end(month: str) -> datetime:
    from datetime import UTC

    year, mon = int(month[:4]), int(month[5:7])
    return datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=UTC)


# -- follow ----------------------------------------------------------------------------------------

Parse = Callable[[Iterable[bytes], str], Iterable[LogEvent | Refused]]
Units = Callable[[], AbstractContextManager[Session]]


@dataclass(frozen=True)
class Follow:
    """How to follow one file: its path, the realm, the format and a parser of lines."""

    path: str
    realm: str
    fmt: str
    parse: Parse
    log_hold: timedelta | None = None
    until_idle: bool = False  # stop when the file has nothing new (tests, one-shot catch-up)
    poll_seconds: float = 1.0


def follow(
    units: Units,
    how: Follow,
    *,
    by: audit.Actor,
    request_id: Callable[[], str],
    on_refused: Callable[[Refused], None] | None = None,
    on_chunk: Callable[[IngestSummary], None] | None = None,
) -> IngestSummary:
    """Tail ``how.path`` through rotation, one committed ingest per chunk (module docstring)."""
    if how.path == "-" or how.path.endswith(".gz"):
        raise InvalidInput("--follow reads a plain file (not stdin, not .gz)", field="--follow")
    total = IngestSummary(how.realm, how.path, 0)

    def step(reading: Reading) -> bool:
        if not reading.has_line():
            return False
        with units() as session:
            items = how.parse(reading.lines(), reading.name)
            done = ingest(
                session,
                how.realm,
                items,
                reading,
                fmt=how.fmt,
                by=by,
                request_id=request_id(),
                log_hold=how.log_hold,
                on_refused=on_refused,
            )
        if done.lines_read:
            total.add(done)
            if on_chunk is not None:
                on_chunk(done)
        return done.lines_read > 0

    def reading_of(stream: BinaryIO, name: str, final: bool) -> Reading:
        ident = identity_of(os.fstat(stream.fileno()))
        with units() as session:
            realm = plans.get_realm(session, how.realm)
            offset, lines = store.position(session, realm.id, ident)
        stream.seek(offset)
        return Reading(
            stream, name=name, identity=ident, offset=offset, base_line=lines, final=final
        )

    _catch_up_rotated(units, how, reading_of, step)
    stream = _open(how.path)
    try:
        current = reading_of(stream, how.path, final=False)
        while True:
            if step(current):
                current = _again(current)
                continue
            rotated = _rotated(how.path, current.identity)
            if rotated:
                current.final = True  # the old file is complete: read its last line too
                step(_again(current))
                stream.close()
                stream = _open(how.path)
                current = reading_of(stream, how.path, final=False)
                continue
            if how.until_idle:
                return total
            time.sleep(how.poll_seconds)
    finally:
        stream.close()


def _again(reading: Reading) -> Reading:
    """A new reading that goes on where ``reading`` stopped."""
    return Reading(
        reading.stream,
        name=reading.name,
        identity=reading.identity,
        offset=reading.offset,
        base_line=reading.base_line + reading.count,
        final=reading.final,
    )


def _open(path: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}", field="FILE") from None


def _rotated(path: str, identity: str | None) -> bool:
    """Whether ``path`` now names another file than the one read (it was rotated)."""
    try:
        return identity_of(os.stat(path)) != identity
    except FileNotFoundError:
        return False  # between the rename and the new file: wait for it


def _catch_up_rotated(
    units: Units,
    how: Follow,
    reading_of: Callable[[BinaryIO, str, bool], Reading],
    step: Callable[[Reading], bool],
) -> None:
    """After a restart: if the file last followed was rotated away, read the rest of it first,
    found beside ``how.path`` by its identity."""
    with units() as session:
        realm = plans.get_realm(session, how.realm)
        known = store.identities(session, realm.id, how.path)
    if not known:
        return
    try:
        now = identity_of(os.stat(how.path))
    except FileNotFoundError:
        now = None
    if known[-1] == now:
        return
    folder = Path(how.path).parent
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        try:
            if entry.is_file() and identity_of(entry.stat()) == known[-1]:
                with open(entry.path, "rb") as old:
                    reading = reading_of(old, how.path, True)
                    while step(reading):
                        reading = _again(reading)
                return
        except OSError:
            continue


# -- verify ----------------------------------------------------------------------------------------


def records(session: Session, names: dict[int, str]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(kind, key, record) of every ingest and prune row, as their audit entries record them."""
    for ingest_row in session.scalars(select(LogIngest).order_by(LogIngest.id)):
        name = names.get(ingest_row.realm_id, f"realm id {ingest_row.realm_id}")
        yield "log_ingests", str(ingest_row.id), ingest_record(name, ingest_row)
    for prune_row in session.scalars(select(LogPrune).order_by(LogPrune.id)):
        name = names.get(prune_row.realm_id, f"realm id {prune_row.realm_id}")
        yield "log_prunes", str(prune_row.id), prune_record(name, prune_row)


def verify_stored(session: Session) -> Iterator[tuple[str, str, str]]:
    """(what, key, why) for every event that no ingest's digest accounts for, every ingest whose
    events differ from its digest (months pruned aside), and every interval that is not what the
    events make."""
    ingests = {row.id: row for row in session.scalars(select(LogIngest))}
    pruned: dict[int, set[str]] = {}
    for prune_row in session.scalars(select(LogPrune)):
        if isinstance(prune_row.months, list):
            pruned.setdefault(prune_row.realm_id, set()).update(map(str, prune_row.months))
    found: dict[tuple[int, str], list[int]] = {}
    for realm_id, ingest_id, month, digest in store.event_digests(session):
        if ingest_id not in ingests or ingests[ingest_id].realm_id != realm_id:
            yield (
                "log_events",
                f"ingest {ingest_id} {month}",
                "events that no ingest of their realm stored",
            )
            continue
        count_sum = found.setdefault((ingest_id, month), [0, 0])
        count_sum[0] += 1
        count_sum[1] = (count_sum[1] + int(digest, 16)) % MOD
    for ingest_id, row in sorted(ingests.items()):
        gone = pruned.get(row.realm_id, set())
        months = dict(row.months) if isinstance(row.months, dict) else {}
        for month in sorted(set(months) | {m for i, m in found if i == ingest_id}):
            if month in gone:
                continue
            want = months.get(month)
            count, total = found.get((ingest_id, month), [0, 0])
            if want != [count, f"{total:064x}"]:
                yield (
                    "log_events",
                    f"ingest {ingest_id} {month}",
                    f"the {count} events stored are not what the ingest recorded ({want!r:.40}): "
                    "added, removed or altered",
                )
    for realm_id in sorted({row.realm_id for row in ingests.values()}):
        hold = store.log_hold(session, realm_id)
        hold_us = None if hold is None else hold // US
        want_intervals: list[Interval] = []
        for _, rows in store.events(session, realm_id):
            want_intervals.extend(derive([event_of(r) for r in rows], hold_us=hold_us))
        stored = [_maybe_interval(r) for r in store.all_intervals(session, realm_id)]
        have = sorted((i for i in stored if i is not None), key=_interval_order)
        if len(have) != len(stored):
            yield "log_intervals", f"realm id {realm_id}", "rows that are not intervals"
            continue
        want_intervals.sort(key=_interval_order)
        if have != want_intervals:
            extra = [i for i in have if i not in want_intervals]
            missing = [i for i in want_intervals if i not in have]
            first = (extra or missing)[0]
            yield (
                "log_intervals",
                f"realm id {realm_id} {first.public} {first.port_first}-{first.port_last}",
                f"{len(extra)} intervals stored that the events do not make, {len(missing)} "
                "that they make missing",
            )


def _maybe_interval(row: Any) -> Interval | None:
    try:
        return interval_of(row)
    except (ValueError, TypeError, KeyError):
        return None


def _interval_order(i: Interval) -> tuple[object, ...]:
    return (i.block, -1 if i.start_us is None else i.start_us, i.end_us or 0)


__all__ = [
    "Follow",
    "IngestSummary",
    "Reading",
    "check_hold",
    "event_of",
    "follow",
    "ingest",
    "ingest_record",
    "interval_of",
    "prune",
    "prune_record",
    "rebuild",
    "records",
    "verify_stored",
]
