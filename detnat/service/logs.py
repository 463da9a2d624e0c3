"""Log ingest, follow and prune: the datapath's own allocation lines into the store, audited.

An ingest takes what a parser made of a file (``Iterable[LogEvent | Refused]``, see
:mod:`detnat.logs.formats`) and the :class:`Reading` that fed the parser its lines (name, identity,
offsets, SHA-256 of the bytes, the raw lines). It stores the events in chunks by ``COPY``
(:mod:`detnat.store.logs`), counts duplicates (a line already stored), reports each refused line
and never stops for one, derives again the intervals its new lines can change (:func:`rebuild`:
per span of ports they touch, from a proven cut before them), and appends one audit entry
``logs.ingest`` whose record is the ``log_ingests`` row (counts, bytes hash, per month the
number and digest of the events it stored) and whose ``options`` are the parse options the lines
were read with (``--year``, ``--tz``, ``--exporter``): with the record's format, what an evidence
file needs to read its lines again offline (:func:`ingests_of_lines`). The edge commits.

``--follow`` is :func:`follow`: one ingest per chunk of complete lines, each committed with the
file's identity (device:inode), byte offset and start (SHA-256 of its first bytes as read), so a
restart resumes where the last commit ended if the file still starts so and is that long (else
it is another file: emptied in place, on a freed inode; read from its start), and a rotated
file is read to its end (found beside the new one by its identity, or by its start under
logrotate's names, compressed or not) before the new file is read from its start: no line lost,
none counted twice. A rotated file not found is a :class:`Gap`: warned, and audited.

Example::

    reading = Reading.open("pba.log")
    items = parse_lines("juniper-pba", reading.lines(), file="pba.log", options=...)
    summary = ingest(session, "aftr-fra-1", items, reading, fmt="juniper-pba", options=...,
                     by=actor, request_id="cli-…")
    session.commit()
"""

from __future__ import annotations

import bisect
import bz2
import functools
import gzip
import hashlib
import json
import lzma
import os
import re
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, BinaryIO, TypeVar, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from detnat.engine import parse_public_address
from detnat.errors import DetnatError, InvalidInput
from detnat.logs.events import EventKind, LineRef, LogEvent, Refused
from detnat.logs.formats import ParseOptions
from detnat.logs.intervals import (
    CutTooLate,
    Interval,
    derive,
    derive_from,
    joined_across,
    reach_us,
)
from detnat.service import audit, plans
from detnat.service.clock import utcnow
from detnat.service.log_answers import interval_of
from detnat.service.times import format_instant, parse_instant
from detnat.store import logs as store
from detnat.store.models import AuditEntry, LogIngest, LogPrune

CHUNK = 50_000  # events per COPY: memory stays flat whatever the file's size
BLOCK = 1 << 20  # bytes read at a time
KEPT = 100_000  # lines kept for their text beyond the block being parsed
SPREAD = 256  # lines one record may be spread over (nfdump -o json: one field a line)
SHOWN = 20  # refused lines kept in a summary (all are reported as they come)
HEAD = 1024  # bytes of a file's start whose SHA-256 is its fingerprint (all, if it is shorter)
MOD = 1 << 256
_MONTH = re.compile(r"\d{4}-\d{2}")
US = timedelta(microseconds=1)
T = TypeVar("T")
EPOCH_DATE = date(1970, 1, 1)


# -- what was read ---------------------------------------------------------------------------------


class Reading:
    """The lines of one file as a parser reads them, and what an ingest records of them.

    ``final``: the file is complete (a file named on the command line, stdin): a last line
    without its line ending is read. Otherwise (a followed file) such a line is left for later:
    it may still be being written. ``block``: bytes read at a time. ``head``: the file's first
    bytes (up to :data:`HEAD`), when the reading starts at ``offset`` after them. ``source``: the
    file actually read when it is not ``name`` (a followed file rotated away), for errors.
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
        block: int = BLOCK,
        head: bytes = b"",
        source: str | None = None,
    ) -> None:
        self.stream = stream
        self.name = name
        self.source = name if source is None else source
        self.identity = identity
        self.offset_from = offset
        self.offset = offset
        self.base_line = base_line
        self.count = 0
        self.final = final
        self.block = block
        self.sha = hashlib.sha256()
        self.head = head  # the file's first bytes (up to HEAD) as read: see fingerprint()
        self._kept: list[bytes] = []  # the lines last read, for raw(): line _kept_from + n is [n]
        self._kept_from = 1

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
        """The lines from the current offset (without their ``\\n``), counted and hashed as they
        are read: a block at a time, split at ``\\n`` only (as ``readline`` does)."""
        read = self.stream.read
        rest = b""
        while True:
            try:
                block = read(self.block)
            except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:  # a truncated .gz
                raise InvalidInput(f"{self.source}: cannot read on: {exc}", field="FILE") from None
            if not block:
                break
            if rest:
                block = rest + block
            cut = block.rfind(b"\n") + 1
            if cut == 0:
                rest = block
                continue
            rest = block[cut:]
            self._took(memoryview(block)[:cut])
            pieces = block[: cut - 1].split(b"\n")
            self._keep(pieces)
            yield from pieces
        if rest:
            if not self.final:
                self.stream.seek(self.offset)  # a line still being written: left for later
                return
            self._took(memoryview(rest))
            self._keep([rest])
            yield rest

    def _took(self, data: memoryview) -> None:
        """``data`` (the bytes from the offset on) was read: hashed, and kept as the file's start
        while that is shorter than :data:`HEAD` and all read so far."""
        self.sha.update(data)
        if self.offset < HEAD and len(self.head) == self.offset:
            self.head += data[: HEAD - self.offset]
        self.offset += len(data)

    def fingerprint(self) -> tuple[str, int] | None:
        """SHA-256 of the file's first bytes as read (``min(HEAD, offset)`` of them), and how many:
        what ``--follow`` checks a file against before it resumes at the offset. None for a
        stream with no identity (stdin), or one whose start was not read."""
        if self.identity is None or len(self.head) != min(HEAD, self.offset):
            return None
        return hashlib.sha256(self.head).hexdigest(), len(self.head)

    def _keep(self, pieces: list[bytes]) -> None:
        kept = self._kept
        if len(kept) > KEPT:  # the parser is done with all but the last few lines
            drop = len(kept) - KEPT // 2
            del kept[:drop]
            self._kept_from += drop
        kept.extend(pieces)
        self.count += len(pieces)

    def has_line(self) -> bool:
        """Whether a line can be read now (a complete one, unless the file is final)."""
        at = self.stream.tell()
        line = self.stream.readline()
        self.stream.seek(at)
        return bool(line) and (self.final or line.endswith(b"\n"))

    def text_of(self, line: int, sha256: str) -> str:
        """The text an event of line ``line`` names by ``sha256``: the line, or for a record
        spread over lines (nfdump ``-o json``) the lines from it joined by line feeds, as hashed.
        """
        at = line - self._kept_from
        if not 0 <= at < len(self._kept):
            return ""
        first = self._kept[at].rstrip(b"\r\n")
        if hashlib.sha256(first).hexdigest() != sha256:
            parts = [first]
            for piece in self._kept[at + 1 : at + SPREAD]:
                parts.append(piece.rstrip(b"\r\n"))
                body = b"\n".join(parts)
                if hashlib.sha256(body).hexdigest() == sha256:
                    return body.decode("utf-8", "backslashreplace")
        return self.raw(line)

    def raw(self, line: int) -> str:
        """The text of line ``line`` (1-based, of this reading), as stored beside its event."""
        at = line - self._kept_from
        if not 0 <= at < len(self._kept):
            return ""
        text = self._kept[at].rstrip(b"\r\n").decode("utf-8", "backslashreplace")
        if "\x00" in text:
            text = text.replace("\x00", "\\x00")
        return text


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
    gaps: list[Gap] = field(default_factory=list)  # bytes of a followed file that may be lost

    def add(self, other: IngestSummary) -> None:
        self.lines_read += other.lines_read
        self.events_stored += other.events_stored
        self.duplicates += other.duplicates
        self.refused += other.refused
        self.refusals += other.refusals[: SHOWN - len(self.refusals)]
        self.gaps += other.gaps

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
            "warnings": [gap.warning for gap in self.gaps],
        }


@dataclass(frozen=True)
class Gap:
    """Bytes a follow may never read: the file ``file`` named when its identity was ``identity``
    was read up to byte ``offset``, then rotated away while detnat was down (or emptied in place),
    and no copy of it with the start that was read was found beside ``file``. How many bytes were
    written to it after ``offset`` cannot be known: none, or all of them lost."""

    file: str
    identity: str
    offset: int

    @property
    def warning(self) -> str:
        return (
            f"{self.file}: the file read up to byte {self.offset} (identity {self.identity}) was "
            "rotated away and no copy of it was found beside it: whatever was written to it after "
            f"byte {self.offset} (how many bytes is not known) is lost"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "identity": self.identity,
            "read_to": self.offset,
            "warning": self.warning,
        }


def check_hold(hold: timedelta | None, *, field: str = "--log-hold") -> timedelta | None:
    """A declared log hold (or interim period: ``field="--log-interim"``), if it is one."""
    if hold is not None and not (timedelta(0) < hold <= timedelta(days=366)):
        raise InvalidInput("must be more than 0 and at most 366 days", field=field)
    return hold


def check_interim(interim: timedelta | None) -> timedelta | None:
    return check_hold(interim, field="--log-interim")


def _us(period: timedelta | None) -> int | None:
    return None if period is None else period // US


def periods_us(session: Session, realm_id: int) -> tuple[int | None, int | None]:
    """The realm's log hold and interim period in µs, as its latest declarations of each give
    them (None: never declared): what :func:`~detnat.logs.intervals.derive` is given."""
    return _us(store.log_hold(session, realm_id)), _us(store.log_interim(session, realm_id))


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
    options: ParseOptions | None = None,
    log_hold: timedelta | None = None,
    log_interim: timedelta | None = None,
    on_refused: Callable[[Refused], None] | None = None,
    gaps: Sequence[Gap] = (),
) -> IngestSummary:
    """Store ``items`` into ``realm_name`` (see the module docstring); flushed, not committed.

    ``fmt`` / ``options``: the format and parse options ``items`` were read with, recorded so
    that an evidence file can read the lines again (None: not known, not recorded: a line that
    needs them cannot be read again offline). ``log_hold`` / ``log_interim``: the realm's log
    hold and interim period, declared by this ingest (None: the latest declared before stays). A
    declaration that changes either re-derives every interval of the realm. ``gaps``: bytes of
    the followed file that may be lost before this reading (:func:`follow`), told in the summary
    and the audit entry."""
    check_hold(log_hold)
    check_interim(log_interim)
    realm = plans.get_realm(session, realm_name)
    store.lock_realm(session, realm.id)
    previous = (store.log_hold(session, realm.id), store.log_interim(session, realm.id))
    ingest_id = store.next_ingest_id(session)
    summary = IngestSummary(realm.name, reading.name, ingest_id, gaps=list(gaps))
    months: dict[str, list[int]] = {}
    touched: set[int] = set()
    # (address, first port, last port) -> the instant of its first line in this file
    earliest: dict[tuple[int, int, int], int] = {}
    publics = _Publics()
    base = reading.base_line

    def refuse(item: Refused) -> None:
        summary.refused += 1
        if len(summary.refusals) < SHOWN:
            summary.refusals.append(item)
        if on_refused is not None:
            on_refused(item)

    realm_id = realm.id
    sha256, from_bytes = hashlib.sha256, _from_bytes

    def rows() -> Iterator[_Chunk]:
        chunk = _Chunk()
        lines, sums, keys = chunk.lines, chunk.sums, chunk.keys
        files: dict[str, str] = {}
        text_of = reading.text_of
        last_line = text_line = -1
        text = ""
        head = f"{realm_id}\t{ingest_id}\t"
        minute, at_minute = None, ""  # the last instant's whole minute, and its text
        for item in items:
            if isinstance(item, Refused):
                refuse(Refused(item.file, base + item.line, item.reason))
                continue
            kind, at_us, inside, public_text, first, last, protocol, source, step = item
            file, line, sha = source
            try:
                public = publics[public_text]
            except DetnatError as exc:
                refuse(Refused(file, base + line, exc.message))
                continue
            if len(lines) >= CHUNK and line != last_line:  # a line's events stay in one chunk
                yield chunk
                chunk = _Chunk()
                lines, sums, keys = chunk.lines, chunk.sums, chunk.keys
            last_line = line
            file_text = files.get(file)
            if file_text is None:
                file_text = files[file] = _escape(file)
            if line != text_line:  # a line's events (one after the other) share its text
                text, text_line = text_of(line, sha), line
            proto = protocol or "all"
            if -store.EXACT_US < at_us < store.EXACT_US:
                cut_us = at_us
                whole, rest = divmod(at_us, 60_000_000)
                if whole != minute:
                    minute, at_minute = whole, _bound(whole * 60_000_000)[:-12]
                seconds, micros = divmod(rest, 1_000_000)
                at_text = f"{at_minute}{seconds:02}.{micros:06}+00"
            else:  # stored as the staging insert always stored it: through a float
                chunk.exact = False
                stored_us = int(float(at_us))
                at_text = _bound(stored_us)
                # its block's cut is taken no later than the instant stored, which the
                # derivation reads back
                cut_us = min(at_us, stored_us)
            lines.append(
                f"{head}{at_text}\t{sha}\t{kind}\t{_escape(inside)}\t{public}\t{first}\t{last}"
                f"\t{step}\t{proto}\t{file_text}\t{base + line}\t{_escape(text)}\n"
            )
            # the row's digest as Postgres computes it at verify (store.ROW_TEXT), if stored
            digest = from_bytes(
                sha256(
                    f"{realm_id}|{at_us}|{sha}|{ingest_id}|{kind}|{inside}|{public}|{first}|"
                    f"{last}|{step}|{proto}|{file}|{base + line}|{text}".encode()
                ).digest()
            )
            key = (at_us, sha)
            if key in keys:
                chunk.repeats = True
            keys.add(key)
            if at_us < chunk.first_us:
                chunk.first_us = at_us
            if at_us > chunk.last_us:
                chunk.last_us = at_us
            block = (public, first, last)
            first_at = earliest.get(block)
            if first_at is None or cut_us < first_at:
                earliest[block] = cut_us
            key_month = (_month(at_us // _DAY_US), public)
            count_sum = sums.get(key_month)
            if count_sum is None:
                sums[key_month] = [1, digest]
            else:
                count_sum[0] += 1
                count_sum[1] += digest
        if lines:
            yield chunk

    staged = 0

    def store_chunk(chunk: _Chunk) -> None:
        nonlocal staged
        staged += len(chunk.lines)
        data = ["".join(chunk.lines).encode()]
        if (
            chunk.exact
            and not chunk.repeats
            and not store.stored_between(session, realm_id, chunk.first_us, chunk.last_us)
        ):
            # no row can be a duplicate: straight into log_events, the digests made here
            made = store.ensure_months(session, realm_id, (m for m, _ in chunk.sums))
            store.copy_events(session, data, made[0] if len(made) == 1 else None)
            found = [(m, p, c, d) for (m, p), (c, d) in chunk.sums.items()]
        else:
            store.stage(session, data)
            store.ensure_partitions(session, realm_id)
            stored = store.insert_staged(session, realm_id, ingest_id)
            if stored == len(chunk.lines) and chunk.exact:  # no duplicate: the digests made here
                found = [(m, p, c, d) for (m, p), (c, d) in chunk.sums.items()]
            elif stored == 0:  # every row a duplicate: nothing stored to account for
                found = []
            else:
                found = [
                    (m, p, c, store.digest_sum(parts))
                    for m, p, c, *parts in store.staged_digests(session, realm_id, ingest_id)
                ]
            store.clear_stage(session)
        for month, public, count, digest in found:
            count_sum = months.setdefault(month, [0, 0])
            count_sum[0] += count
            count_sum[1] = (count_sum[1] + digest) % MOD
            touched.add(public)

    behind(store_chunk, rows())
    summary.lines_read = reading.count
    summary.events_stored = sum(c for c, _ in months.values())
    summary.duplicates = staged - summary.events_stored
    head_sha256, head_bytes = reading.fingerprint() or (None, None)
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
        log_interim=log_interim,
        months={m: [c, f"{s:064x}"] for m, (c, s) in sorted(months.items())},
        head_sha256=head_sha256,
        head_bytes=head_bytes,
    )
    session.add(row)
    session.flush()
    declared = (
        previous[0] if log_hold is None else log_hold,
        previous[1] if log_interim is None else log_interim,
    )
    if declared != previous:
        # a new hold or interim period changes every open interval of the realm
        rebuild(session, realm.id, None)
    elif touched:
        since: dict[int, list[tuple[int, int, int]]] = {}
        for (public, first, last), at_us in earliest.items():
            if public in touched:
                since.setdefault(public, []).append((first, last, at_us))
        rebuild(session, realm.id, touched, since=since)
    detail: dict[str, Any] = {"record": ingest_record(realm.name, row)}
    if options is not None:
        detail["options"] = options_record(options)
    if gaps:
        detail["gaps"] = [gap.to_json() for gap in gaps]
    audit.record(session, by, "logs.ingest", request_id=request_id, detail=detail)
    return summary


def options_record(options: ParseOptions) -> dict[str, Any]:
    """The parse options an ingest read its lines with, as ``logs.ingest`` records them."""
    return {"year": options.year, "tz": options.tz, "exporter": options.exporter}


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
        "log_hold_us": _us(row.log_hold),
        "log_interim_us": _us(row.log_interim),
        "months": row.months,
        # migration 0012: rows before it have neither, nor have their records (verify compares
        # key by key, an absent key as None)
        "head_sha256": row.head_sha256,
        "head_bytes": row.head_bytes,
    }


def ingests_of_lines(
    session: Session, lines: Iterable[tuple[str, str, str, str]]
) -> list[int | None]:
    """For each (realm, file, instant as answers write it, SHA-256) of a line an answer shows,
    the ingest that read it: the one that stored its event or -- that event pruned -- the only
    ingest of the realm that read a file of that name and stored events of its month. None:
    none such, or several (which one read it is no longer known)."""
    found: list[int | None] = []
    for realm, file, at, sha256 in lines:
        instant = parse_instant(at)
        ingest_id = store.ingest_of_event(session, realm, instant, sha256)
        if ingest_id is None:
            month = instant.astimezone(UTC).strftime("%Y-%m")
            candidates = store.ingests_of_file(session, realm, file, month)
            ingest_id = candidates[0] if len(candidates) == 1 else None
        found.append(ingest_id)
    return found


def ingest_entries(session: Session, ingests: Iterable[int]) -> list[AuditEntry]:
    """The ``logs.ingest`` audit entries of ``ingests``, in the audit log's order."""
    entries = (session.get(AuditEntry, seq) for seq in store.ingest_entry_seqs(session, ingests))
    return [entry for entry in entries if entry is not None]


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


@dataclass
class _Chunk:
    """Event rows for one COPY, and per (month, public address) their count and digest sum."""

    lines: list[str] = field(default_factory=list)
    sums: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    exact: bool = True  # every instant is one Postgres stores exactly (store.EXACT_US)
    keys: set[tuple[int, str]] = field(default_factory=set)  # (instant, line SHA-256) of each
    repeats: bool = False  # a key comes twice (the later is a duplicate)
    first_us: int = 1 << 62  # the earliest and latest instants of the rows
    last_us: int = -(1 << 62)


@functools.lru_cache(maxsize=4096)
def _month(days: int) -> str:
    return (EPOCH_DATE + timedelta(days=days)).isoformat()[:7]


def _from_bytes(digest: bytes) -> int:
    return int.from_bytes(digest, "big")


def behind(work: Callable[[T], object], chunks: Iterable[T]) -> None:
    """``work(chunk)`` for each chunk in order, in one other thread, while the next chunk is
    made: Postgres stores one chunk while Python parses the next (two cores, not one after the
    other). At most one chunk is worked on and one made: memory stays flat. Only the worker
    uses the session while it works (the producer touches no database); the first error of
    either side is raised here once the worker is idle."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="detnat-store") as pool:
        pending: Future[object] | None = None
        try:
            for chunk in chunks:
                if pending is not None:
                    pending.result()
                pending = pool.submit(work, chunk)
        finally:
            if pending is not None and not pending.done():
                wait([pending])
        if pending is not None:
            pending.result()


# -- rows of the store <-> events and intervals ---------------------------------------------------


_KINDS = {k.value: k for k in EventKind}
_DAY_US = 86_400_000_000


@functools.lru_cache(maxsize=4096)
def _day(days: int) -> str:
    return (EPOCH_DATE + timedelta(days=days)).isoformat()


def _bound(value: int | None) -> str:
    """A range bound as Postgres reads a timestamptz (``2026-01-31 10:00:00.000001+00``)."""
    if value is None:
        return ""
    days, rest = divmod(value, _DAY_US)
    seconds, micros = divmod(rest, 1_000_000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{_day(days)} {hour:02}:{minute:02}:{second:02}.{micros:06}+00"


def interval_row(
    realm_id: int, public: int, i: Interval, files: dict[str, str] | None = None
) -> str:
    """An interval as one COPY row of ``log_intervals`` (``files``: a memo of file names as JSON
    strings escaped for COPY, kept by the caller across rows). The lines are written as Postgres
    prints jsonb (``", "`` between items), so :func:`rebuild` can tell a stored row from its
    text (:data:`detnat.store.logs.STORED_ROWS`)."""
    if files is None:
        files = {}
    seen = []
    for s in i.lines:
        file, line, sha = s.source
        name = files.get(file)
        if name is None:
            name = files[file] = store.copy_text(json.dumps(file))
        seen.append(f'["{s.kind}", {s.at_us}, {name}, {line}, "{sha}"]')
    lo = public * 65536
    return (
        f"{realm_id}\t{public}\t{i.port_first}\t{i.port_last}\t{i.port_step}\t"
        f"{i.protocol or 'all'}\t{store.copy_text(i.inside)}\t"
        f"[{_bound(i.start_us)},{_bound(i.end_us)})\t[{lo + i.port_first},{lo + i.port_last + 1})\t"
        f"{'t' if i.open else 'f'}\t{'t' if i.unknown_start else 'f'}\t"
        f"{'t' if i.conflict else 'f'}\t[{', '.join(seen)}]\t{'t' if i.interim_deadline else 'f'}\n"
    )


def _events_of(public: int, rows: list[tuple[Any, ...]]) -> list[LogEvent]:
    """Stored event rows (:func:`detnat.store.logs.event_rows`) of one address as the events they
    were. Built as tuples without the checks of ``LogEvent(...)``: the store's rows passed them."""
    text = store.ipv4_text(public)
    make, ref, kinds = LogEvent._make, LineRef._make, _KINDS
    return [
        make(
            (
                kinds[kind],
                at_us,
                inside,
                text,
                first,
                last,
                None if protocol == "all" else protocol,
                ref((file, line, sha)),
                step,
            )
        )
        for _, at_us, sha, kind, inside, first, last, step, protocol, file, line in rows
    ]


def rebuild(
    session: Session,
    realm_id: int,
    publics: set[int] | None,
    *,
    since: dict[int, list[tuple[int, int, int]]] | None = None,
) -> int:
    """Derive the intervals of ``publics`` (None: all) of the realm anew from its events, and
    write what changed; how many intervals were derived.

    ``since``: per address, the port ranges of its new lines (an ingest's), each with the
    instant of its first line. Then only what the new lines can change is derived again: per
    span of ports, the intervals from a cut before those instants, from the lines of a bounded
    time before the cut (:func:`_from_cuts`, :func:`detnat.logs.intervals.derive_from`); the
    other intervals stay. An address where no cut can be proven for one of its spans (no hold
    or interim period declared, an unknown start that no line bounds, an interval open since
    before every cut tried) is derived whole, from all its events.

    A derived interval's row is compared with the row stored, each read back as the MD5 of the
    COPY row it was made from (:func:`detnat.store.logs.stored_rows`): a row whose text the
    events make again stays, the others are deleted, and only new texts are copied. So rows
    are not rewritten each time a later file touches their addresses (their index entries were
    most of an ingest's cost once a realm has history). The rows are the same as if all were
    derived from all the events, deleted and copied again; ``audit verify`` compares them with
    the events."""
    hold_us, interim_us = periods_us(session, realm_id)
    had = store.publics_with_intervals(session, realm_id, publics)
    made = 0
    conn = store.raw_connection(session)
    with_events: list[int] = []
    md5 = hashlib.md5
    cut: dict[int, list[_Span]] = {}
    if publics is not None and since is not None:
        cut = _from_cuts(
            conn,
            realm_id,
            {p: since[p] for p in publics if p in had and p in since},
            hold_us=hold_us,
            interim_us=interim_us,
        )
    whole = None if publics is None else publics - set(cut)

    def compared(
        public: int, found: list[Interval], stored: dict[str, str] | None, files: dict[str, str]
    ) -> tuple[list[str], list[str]]:
        texts = [interval_row(realm_id, public, i, files) for i in found]
        if stored is None:
            return texts, []
        pending = []
        for row in texts:
            digest = md5(row[:-1].encode("utf-8", "surrogatepass")).hexdigest()
            if stored.pop(digest, None) is None:
                pending.append(row)
        return pending, list(stored.values())

    def chunks() -> Iterator[tuple[list[str], list[str]]]:
        nonlocal made
        pending: list[str] = []
        stale: list[str] = []
        files: dict[str, str] = {}
        if cut:
            publics_cut = sorted(cut)
            asked = [(p, 0, 65535, min(s.cut for s in cut[p])) for p in publics_cut]
            for public, rows in zip(
                publics_cut, store.stored_rows_from(conn, realm_id, asked), strict=True
            ):
                for span, stored in _stored_by_span(cut[public], rows):
                    found = span.found or []
                    made += len(found)
                    texts, gone = compared(public, found, stored, files)
                    pending += texts
                    stale += gone
                if len(pending) + len(stale) >= CHUNK:
                    yield pending, stale
                    pending, stale = [], []
        if whole is None or whole:
            for public, rows in store.event_rows(session, realm_id, whole):
                with_events.append(public)
                found = derive(_events_of(public, rows), hold_us=hold_us, interim_us=interim_us)
                made += len(found)
                kept = store.stored_rows(conn, realm_id, public) if public in had else None
                texts, gone = compared(public, found, kept, files)
                pending += texts
                stale += gone
                if len(pending) + len(stale) >= CHUNK:
                    yield pending, stale
                    pending, stale = [], []
        if pending or stale:
            yield pending, stale

    def write(chunk: tuple[list[str], list[str]]) -> None:
        rows, stale = chunk
        store.delete_rows(conn, stale)  # first: a changed row may keep its primary key
        if rows:
            store.copy_intervals(conn, rows)

    # the intervals of one chunk are written while the next are derived (psycopg serialises the
    # copy and the cursor's fetches on the one connection)
    behind(write, chunks())
    if publics is None:  # an address whose events are all gone (pruned) keeps no interval
        store.delete_intervals_without_events(session, realm_id, with_events)
    return made


def _stored_by_span(
    spans: list[_Span], rows: list[tuple[int, int, int | None, str, str]]
) -> Iterator[tuple[_Span, dict[str, str]]]:
    """Each span with its stored rows (as ``store.stored_rows_from`` gives them: the address's)
    that end at or after its cut (or never): MD5 -> ctid. Such a row is on the span's ports
    alone (the span was widened to them)."""
    los = [s.lo for s in spans]
    mine: dict[int, dict[str, str]] = {id(s): {} for s in spans}
    for first, last, end, digest, ctid in rows:
        for span in _meeting(spans, los, first, last):
            if end is None or end >= span.cut:
                mine[id(span)][digest] = ctid
    for span in spans:
        yield span, mine[id(span)]


ROUNDS = 8  # cuts tried per span before its address is derived whole


@dataclass(eq=False)  # one span is itself: compared and hashed by identity
class _Span:
    """Ports ``lo``-``hi`` of an address derived again from ``cut`` (µs); ``found``: what
    :func:`~detnat.logs.intervals.derive_from` made there, once the cut is proven."""

    public: int
    lo: int
    hi: int
    cut: int
    found: list[Interval] | None = None

    def meets(self, first: int, last: int) -> bool:
        return first <= self.hi and self.lo <= last


def _merged(spans: list[_Span]) -> list[_Span]:
    """The spans (of one address) in port order, those that share a port as one, from the
    earlier cut (to be derived again)."""
    out: list[_Span] = []
    for span in sorted(spans, key=lambda s: s.lo):
        last = out[-1] if out else None
        if last is not None and span.lo <= last.hi:
            out[-1] = _Span(last.public, last.lo, max(last.hi, span.hi), min(last.cut, span.cut))
        else:
            out.append(span)
    return out


def _meeting(spans: list[_Span], los: list[int], first: int, last: int) -> list[_Span]:
    """The spans (in port order, apart; ``los`` their first ports) that share a port with
    ``first``-``last``."""
    found = []
    n = bisect.bisect_right(los, last) - 1
    while n >= 0 and spans[n].hi >= first:
        found.append(spans[n])
        n -= 1
    return found


def _from_cuts(
    conn: Any,
    realm_id: int,
    since: dict[int, list[tuple[int, int, int]]],
    *,
    hold_us: int | None,
    interim_us: int | None,
) -> dict[int, list[_Span]]:
    """Per address of ``since`` (address -> the port ranges of its new lines, each with its
    first line's instant) where every span's cut is proven
    (:func:`detnat.logs.intervals.derive_from`): its spans of ports, each with what is derived
    again in it. The others are left out (derived whole).

    A span holds the ports of new lines, widened to every interval and line on a port of it
    that reaches the cut's window (``cut - reach`` on): the rule relates intervals only through
    shared ports, and an interval on a port of the span that ends before the window (and so,
    assumed end included, before the cut) changes nothing from the cut on, nor is changed. Its
    cut starts at its first new line and is lowered, at most ``ROUNDS`` times, to the start of
    what spans it: a stored interval (condition (a) of ``derive_from``), the open interval
    before it that a block's first later line continues (b), an unknown start bounded before
    it (c)."""
    reach = reach_us(hold_us, interim_us)
    if reach is None:
        return {}
    spans = {
        p: _merged([_Span(p, lo, hi, at) for lo, hi, at in found]) for p, found in since.items()
    }
    whole: set[int] = set()
    for _ in range(ROUNDS):
        pending = {p: s for p, s in spans.items() if any(x.found is None for x in s)}
        if not pending:
            break
        whole |= _widen(conn, realm_id, pending, reach)
        windows: dict[int, int] = {}
        for public, its in pending.items():
            if public not in whole:
                spans[public] = its
                windows[public] = min(s.cut for s in its if s.found is None) - reach
        dealt: list[tuple[_Span, list[LogEvent]]] = []
        for public, rows in store.event_rows_since(conn, realm_id, windows) if windows else ():
            lines = _dealt(pending[public], _events_of(public, rows), reach)
            if lines is None:  # lines on wider ports: the spans are widened, tried again
                spans[public] = _merged(pending[public])
                continue
            dealt += [(s, e) for s, e in zip(pending[public], lines, strict=True) if not s.found]
        lowered = set(_open_before(conn, realm_id, dealt, whole))
        for span, events in dealt:
            if span.public in whole or span in lowered:
                continue
            try:
                span.found = derive_from(events, span.cut, hold_us=hold_us, interim_us=interim_us)
            except CutTooLate as exc:
                if exc.earlier is None:
                    whole.add(span.public)
                else:
                    span.cut = exc.earlier
        for public in whole:
            spans.pop(public, None)
    return {p: s for p, s in spans.items() if all(x.found is not None for x in s)}


def _widen(conn: Any, realm_id: int, pending: dict[int, list[_Span]], reach: int) -> set[int]:
    """Condition (a) of :func:`detnat.logs.intervals.derive_from`: widen the spans of each address
    to the stored intervals on their ports that reach their windows, and lower each cut to the
    start of one that spans it, until none does (``pending`` gets the spans so settled). The
    addresses to derive whole (an interval spanning a cut has no start; too many rounds)."""
    whole: set[int] = set()
    todo = sorted(pending)
    for _ in range(ROUNDS):
        if not todo:
            return whole
        froms = {p: min(s.cut for s in pending[p]) - reach for p in todo}
        reached = store.reaching(conn, realm_id, [(p, 0, 65535, froms[p]) for p in todo])
        again = []
        for public, rows in zip(todo, reached, strict=True):
            settled = _settled(pending[public], rows, reach)
            if settled is None:
                whole.add(public)
                continue
            pending[public] = settled
            if min(s.cut for s in settled) - reach < froms[public]:
                again.append(public)  # earlier than what was read: read again
        todo = again
    whole.update(todo)
    return whole


def _settled(
    spans: list[_Span], rows: list[tuple[int, int, int | None, int | None]], reach: int
) -> list[_Span] | None:
    """The spans widened and their cuts lowered by ``rows`` (stored intervals as
    ``store.reaching`` gives them) until no row that reaches a span's window crosses its ports
    or spans its cut (None: one spanning a cut has no start)."""
    for _ in range(len(rows) + 1):
        los = [s.lo for s in spans]
        moved = False
        for first, last, start, end in rows:
            met = [
                s for s in _meeting(spans, los, first, last) if end is None or end >= s.cut - reach
            ]
            if len(met) > 1 or (met and not met[0].lo <= first <= last <= met[0].hi):
                met[0].lo, met[0].hi = min(met[0].lo, first), max(met[0].hi, last)
                met[0].found = None
                moved = True
                break
            if met and (end is None or end >= met[0].cut):
                span = met[0]
                if start is None:
                    return None
                if start < span.cut:
                    span.cut, span.found, moved = start, None, True
        if not moved:
            return spans
        spans = _merged(spans)
    return None


def _dealt(spans: list[_Span], events: list[LogEvent], reach: int) -> list[list[LogEvent]] | None:
    """The lines of each span's window (``events``: the address's, from the earliest window
    on); None when a line crosses a span's ports (the span is widened to it)."""
    los = [s.lo for s in spans]
    out: list[list[LogEvent]] = [[] for _ in spans]
    at = {id(s): n for n, s in enumerate(spans)}
    wider = False
    for event in events:
        first, last = event.port_first, event.port_last
        met = [s for s in _meeting(spans, los, first, last) if event.at_us >= s.cut - reach]
        if not met:
            continue
        span = met[0]
        if len(met) > 1 or not span.lo <= first <= last <= span.hi:
            span.lo, span.hi, span.found, wider = (
                min(span.lo, first),
                max(span.hi, last),
                None,
                True,
            )
            continue
        out[at[id(span)]].append(event)
    return None if wider else out


def _open_before(
    conn: Any, realm_id: int, dealt: list[tuple[_Span, list[LogEvent]]], whole: set[int]
) -> list[_Span]:
    """Condition (b) of :func:`detnat.logs.intervals.derive_from`: the spans whose cut is lowered
    to the start of a block's last interval before it that is still open (not released) when
    the block's first line from the cut is not an allocation (one with no start: its address
    is added to ``whole``)."""
    asked: list[tuple[store.Block, int]] = []
    owners: list[_Span] = []
    for span, events in dealt:
        for _, first, last, step, protocol, inside in joined_across(events, span.cut):
            asked.append(((span.public, first, last, step, protocol, inside), span.cut))
            owners.append(span)
    lowered: list[_Span] = []
    for span, found in zip(owners, store.last_before(conn, realm_id, asked), strict=True):
        if found is None or not found[0]:
            continue
        if found[1] is None:
            whole.add(span.public)
        elif found[1] < span.cut:
            span.cut = found[1]
            lowered.append(span)
    return lowered


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

# A format's parser (:data:`detnat.logs.formats.Parser`): lines, the file's name, the options
Parse = Callable[[Iterable[bytes], str, ParseOptions], Iterable[LogEvent | Refused]]
Units = Callable[[], AbstractContextManager[Session]]


@dataclass(frozen=True)
class Follow:
    """How to follow one file: its path, the realm, the format and its parser. Each file the
    follow reads (the followed one, a rotated one it catches up on) is parsed with one clock
    across its chunks (:meth:`ParseOptions.continued`), so a year-less time's year turns across
    them as within one chunk."""

    path: str
    realm: str
    fmt: str
    parse: Parse
    options: ParseOptions | None = None  # what ``parse`` reads with (recorded by each ingest)
    log_hold: timedelta | None = None
    log_interim: timedelta | None = None
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
    on_gap: Callable[[Gap], None] | None = None,
) -> IngestSummary:
    """Tail ``how.path`` through rotation, one committed ingest per chunk (module docstring).

    ``on_gap``: told at once of bytes that may be lost (:class:`Gap`); the next ingest records
    them in its audit entry, and the summary returned lists them."""
    if how.path == "-" or how.path.endswith(".gz"):
        raise InvalidInput("--follow reads a plain file (not stdin, not .gz)", field="--follow")
    total = IngestSummary(how.realm, how.path, 0)
    gaps: list[Gap] = []  # told, not yet recorded by an ingest
    clock: list[tuple[str | None, ParseOptions]] = []  # the file being read and its options

    def position(identity: str) -> store.Position:
        with units() as session:
            realm = plans.get_realm(session, how.realm)
            return store.position(session, realm.id, identity)

    def step(reading: Reading, *, moved: bool = False) -> bool:
        """One ingest of the complete lines there are (none: no ingest, unless the reading has
        just ``moved`` to another file: that is recorded, and so are the gaps told)."""
        if not moved and not reading.has_line():
            return False
        told = list(gaps)
        with units() as session:
            if not clock or clock[0][0] != reading.identity:  # another file: its own clock
                clock[:] = [(reading.identity, (how.options or ParseOptions()).continued())]
            options = clock[0][1]
            items = how.parse(reading.lines(), reading.name, options)
            done = ingest(
                session,
                how.realm,
                items,
                reading,
                fmt=how.fmt,
                options=how.options,
                by=by,
                request_id=request_id(),
                log_hold=how.log_hold,
                log_interim=how.log_interim,
                on_refused=on_refused,
                gaps=told,
            )
            if not reading.final and not _holds(reading):
                raise _Replaced  # emptied while read: rolled back, read again from its start
        del gaps[: len(told)]
        total.add(done)
        if done.lines_read and on_chunk is not None:
            on_chunk(done)
        return done.lines_read > 0

    def catch_up(identity: str, read: store.Position) -> None:
        """Read the rest of the file ``read`` was read from, now rotated away (found beside
        ``how.path``), recorded under its identity; a gap if it is not found."""
        found = _predecessor(how.path, identity, read)
        if found is None:
            gap = Gap(how.path, identity, read.offset)
            gaps.append(gap)
            if on_gap is not None:
                on_gap(gap)
            return
        where, stream, head = found
        with stream:
            reading = Reading(
                stream,
                name=how.path,
                identity=identity,
                offset=read.offset,
                base_line=read.lines,
                head=head,
                source=where,
            )
            while step(reading):
                reading = _again(reading)

    def reading_of(stream: BinaryIO) -> Reading:
        """The followed file from where it was last read, if that was this file; else from its
        start."""
        ident = identity_of(os.fstat(stream.fileno()))
        read = position(ident)
        head = _start_of(stream, read)
        if head is None:
            read, head = store.Position(0, 0, None, None), b""
        return Reading(
            stream,
            name=how.path,
            identity=ident,
            offset=read.offset,
            base_line=read.lines,
            final=False,
            head=head,
        )

    with units() as session:
        realm = plans.get_realm(session, how.realm)
        last = store.last_identity(session, realm.id, how.path)
    try:
        stream: BinaryIO | None = open(how.path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        stream = None  # between a rotation's rename and the new file: the old one is read first
    except OSError as exc:
        raise InvalidInput(f"cannot read {how.path}: {exc.strerror}", field="FILE") from None
    moved = False  # the next ingest records a move to another file, lines or not
    try:
        if last is not None:
            read = position(last)
            if (
                stream is None
                or identity_of(os.fstat(stream.fileno())) != last
                or _start_of(stream, read) is None
            ):
                catch_up(last, read)  # rotated, or emptied in place, while detnat was down
                moved = True
        if stream is None:
            stream = _open(how.path)
        current = reading_of(stream)
        while True:
            if not _holds(current):  # emptied in place (copytruncate) while followed
                catch_up(current.identity or "", _position_of(current))
                current = Reading(stream, name=how.path, identity=current.identity, final=False)
                moved = True
            trial = _again(current)
            try:
                stepped = step(trial, moved=moved)
            except _Replaced:
                continue  # ``current`` is where the last commit left it
            moved = False
            if stepped:
                current = trial
                continue
            if _rotated(how.path, current.identity):
                current.final = True  # the old file is complete: read its last line too
                step(_again(current))
                stream.close()
                stream = _open(how.path)
                current, moved = reading_of(stream), True
                continue
            if how.until_idle:
                return total
            time.sleep(how.poll_seconds)
    finally:
        if stream is not None:
            stream.close()


class _Replaced(Exception):
    """The followed file was emptied in place while a chunk of it was read (its start is no
    longer the one read): the chunk is rolled back."""


def _again(reading: Reading) -> Reading:
    """A new reading that goes on where ``reading`` stopped."""
    return Reading(
        reading.stream,
        name=reading.name,
        identity=reading.identity,
        offset=reading.offset,
        base_line=reading.base_line + reading.count,
        final=reading.final,
        head=reading.head,
        source=reading.source,
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


def _position_of(reading: Reading) -> store.Position:
    """Where ``reading`` is, as an ingest of it would store it."""
    sha, length = reading.fingerprint() or (None, None)
    return store.Position(reading.offset, reading.base_line + reading.count, sha, length)


def _holds(reading: Reading) -> bool:
    """Whether the file ``reading`` reads still holds what it read: it is at least as long, and
    starts with the bytes read (a file emptied in place and written again does not)."""
    return _start_of(reading.stream, _position_of(reading)) is not None


_UNREADABLE = (OSError, EOFError, zlib.error, lzma.LZMAError)


def _start_of(stream: BinaryIO, read: store.Position) -> bytes | None:
    """The first ``min(HEAD, read.offset)`` bytes of ``stream`` if it is the file ``read`` was
    read from: at least ``read.offset`` bytes long, and starting with the bytes whose SHA-256
    ``read`` holds (a position stored without one, before migration 0012: the length alone).
    The stream is left at ``read.offset``; None (another file): at its start."""
    kept = min(HEAD, read.offset)
    length = max(kept, read.head_bytes or 0)
    try:
        stream.seek(0)
        head = stream.read(length)
        same = len(head) == length and (
            read.head_sha256 is None
            or hashlib.sha256(head[: read.head_bytes]).hexdigest() == read.head_sha256
        )
        if same and read.offset > length:  # as long as it was (compressed: read up to there)
            stream.seek(read.offset - 1)
            same = len(stream.read(1)) == 1
        stream.seek(read.offset if same else 0)
    except _UNREADABLE:
        return None
    return head[:kept] if same else None


# the names logrotate's ``compress`` gives (compresscmd gzip, bzip2 or xz), read decompressed
_PACKED = (".gz", ".bz2", ".xz")


def _open_rotated(path: str, packed: bool) -> BinaryIO:
    """A rotated file, decompressed as its name says if ``packed``."""
    suffix = os.path.splitext(path)[1] if packed else ""
    if suffix == ".gz":
        return cast(BinaryIO, gzip.open(path, "rb"))
    if suffix == ".bz2":
        return cast(BinaryIO, bz2.open(path, "rb"))
    if suffix == ".xz":
        return cast(BinaryIO, lzma.open(path, "rb"))
    return open(path, "rb")


def _predecessor(
    path: str, identity: str, read: store.Position
) -> tuple[str, BinaryIO, bytes] | None:
    """The file ``read`` was read from (its identity ``identity``), now rotated away beside
    ``path``: its path, opened at ``read.offset``, and its first bytes (:func:`_start_of`).

    Tried in turn: the file of that identity (renamed: ``create``, ``delaycompress``), then the
    files whose names logrotate gives a rotated ``path`` (``pba.log.1``, ``pba.log.1.gz``,
    ``pba.log-20260314.gz``, ``pba-20260314.log.gz``, ...: those that start like ``path``'s stem)
    and that start with the bytes read: a copy (``copytruncate``) or a compressed one
    (``compress``), uncompressed first, the latest first. A start is only told by its bytes: a
    position with no fingerprint (stored before migration 0012) or an empty one is found by its
    identity alone."""
    folder = os.path.dirname(path) or "."
    name = os.path.basename(path)
    stem = name.split(".", 1)[0] or name
    same: list[str] = []
    named: list[tuple[bool, int, str]] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return None
    for entry in entries:
        if entry.name == name:
            continue
        try:
            if not entry.is_file():
                continue
            st = entry.stat()
        except OSError:
            continue
        if identity_of(st) == identity:
            same.append(entry.path)
        elif entry.name.startswith(stem) and read.head_sha256 and read.head_bytes:
            packed = os.path.splitext(entry.name)[1] in _PACKED
            named.append((packed, -st.st_mtime_ns, entry.path))
    for candidate in same + [p for _, _, p in sorted(named)]:
        packed = candidate not in same and os.path.splitext(candidate)[1] in _PACKED
        try:
            stream = _open_rotated(candidate, packed)
        except OSError:
            continue
        head = _start_of(stream, read)
        if head is not None:
            return candidate, stream, head
        stream.close()
    return None


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
        hold_us, interim_us = periods_us(session, realm_id)
        want_intervals: list[Interval] = []
        for public, rows in store.event_rows(session, realm_id):
            made = derive(_events_of(public, rows), hold_us=hold_us, interim_us=interim_us)
            want_intervals.extend(made)
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
    "Gap",
    "IngestSummary",
    "Reading",
    "check_hold",
    "check_interim",
    "follow",
    "ingest",
    "ingest_entries",
    "ingest_record",
    "ingests_of_lines",
    "interval_of",
    "options_record",
    "periods_us",
    "prune",
    "prune_record",
    "rebuild",
    "records",
    "verify_stored",
]
