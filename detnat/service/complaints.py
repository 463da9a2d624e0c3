"""Complaints answered against the store: one row per notice, a verdict the abuse desk acts on.

The notices of one or more files (:mod:`detnat.complaints` reads them) are answered from one
timeline snapshot, in chunks, as one batch inquiry: the edge opens it
(:func:`~detnat.service.inquiry.open_batch`), this module answers every complaint, and the edge
records it (:func:`~detnat.service.inquiry.record_batch`: rows, verdict counts, SHA-256 of input
and output, plan versions used) and commits before any row leaves.

- A complaint with a **source port** is asked exactly as a batch row of ``detnat reverse --batch``
  (:func:`~detnat.service.batch_lookups.answer_rows`), so both always agree.
- A complaint **without a source port** (none given, or a *service* port: X-ARF 0.2 ``Port``, a
  Shadowserver scan's ``port``) names no one on a shared address (RFC 6302). It gets
  ``no_source_port`` and ``shared_by``: how many subscribers held a port set on that address in
  the window (the union over the plan versions in force and the port blocks the NAT's own logs
  show, asked once per chunk), never a subscriber.
- A notice that states two instants (ACNS text vs XML) is asked at both: ``identified`` only
  when both name the same subscriber, else ``ambiguous``, and the row says why.

Verdicts: ``identified`` (match), ``ambiguous`` (plans disagree, dynamic overflow ports, or two
instants disagree), ``no_source_port``, ``not_ours`` (no subscriber of ours held it: not in a
pool, no plan, an unallocated port), ``unreadable`` (with the reason). The summary groups the
identified complaints by account (by subscriber where the answer names no account): the
repeat-offender list.
"""

from __future__ import annotations

import enum
import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from detnat import complaints as intake
from detnat.batch import parse_ip
from detnat.complaints import Complaint, Record, Unreadable
from detnat.engine import MATCH, Reason, Status
from detnat.errors import InvalidInput, QueryError
from detnat.service import audit, batch_lookups, directory, inquiry, log_answers, lookups
from detnat.service.batch_lookups import BatchQuery, BatchReport
from detnat.service.timelines import from_us, to_us
from detnat.service.times import format_instant

CHUNK = 1 << 14


class Verdict(enum.StrEnum):
    IDENTIFIED = "identified"
    AMBIGUOUS = "ambiguous"
    NO_SOURCE_PORT = "no_source_port"
    NOT_OURS = "not_ours"
    UNREADABLE = "unreadable"


WORDS = {
    Verdict.IDENTIFIED: "one subscriber named",
    Verdict.AMBIGUOUS: "cannot name one subscriber (see the note)",
    Verdict.NO_SOURCE_PORT: "no source port: a shared address names no one (RFC 6302)",
    Verdict.NOT_OURS: "no subscriber of ours held it",
    Verdict.UNREADABLE: "not a complaint we can ask about (see the note)",
}

COLUMNS = (
    "complaint", "source", "format", "category", "ip", "port", "port_kind", "time",
    "time_as_read", "zone", "status", "reason", "subscriber", "account", "shared_by", "verdict",
    "note",
)  # fmt: skip

_AMBIGUOUS_NOTES = {
    Reason.LOG_CONFLICT: "the NAT's logs name two subscribers for that port then",
    Reason.LOG_OPEN_ENDED: "the NAT's logs show an allocation with no end in the window",
    Reason.LOG_BOUNDARY: "the time asked crosses the start or the end of a logged allocation",
    Reason.PLAN_AND_LOG_DISAGREE: "the plan names one subscriber and the NAT's logs another",
}
_NOT_OURS_NOTES = {
    Reason.NOT_IN_POOL: "the address is in none of our pools then",
    Reason.UNALLOCATED: "no subscriber held that port then",
    Reason.RESERVED_PORT: "that port is reserved on our addresses",
    Reason.EXCLUDED_ADDRESS: "the address is excluded from our pools",
    Reason.NO_PLAN: "no plan was in force then",
}


@dataclass(frozen=True, slots=True)
class Row:
    """One complaint's answer, as written (every value text; empty when there is none)."""

    complaint: str
    source: str
    format: str
    category: str
    ip: str
    port: str
    port_kind: str
    time: str  # UTC, RFC 3339
    time_as_read: str
    zone: str
    status: str
    reason: str
    subscriber: str
    account: str
    shared_by: str
    verdict: Verdict
    note: str

    def cells(self) -> list[str]:
        return [str(getattr(self, name)) for name in COLUMNS]

    def to_json(self) -> dict[str, str]:
        return dict(zip(COLUMNS, self.cells(), strict=True))


@dataclass
class Offender:
    """Identified complaints against one account (or subscriber): the repeat-offender list."""

    key: str
    kind: str  # "account" or "subscriber"
    complaints: int = 0
    first_us: int = 0
    last_us: int = 0
    categories: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, object]:
        return {
            self.kind: self.key,
            "complaints": self.complaints,
            "first_seen": format_instant(from_us(self.first_us)),
            "last_seen": format_instant(from_us(self.last_us)),
            "categories": dict(self.categories.most_common()),
        }


@dataclass
class ComplaintsReport(BatchReport):
    """A batch report (``counts`` are verdicts; bad rows are the unreadable notices, numbered in
    input order) plus the repeat offenders and the input's SHA-256."""

    offenders: dict[str, Offender] = field(default_factory=dict)
    input_sha256: str = ""
    # (version id, address) -> the subscribers holding a port set there (no-source-port rows);
    # (version id, -1) -> the first port of each of the version's port sets
    holders: dict[tuple[int, int], Any] = field(default_factory=dict, repr=False)

    def summary(self) -> list[Offender]:
        return sorted(self.offenders.values(), key=lambda o: (-o.complaints, o.first_us, o.key))

    def _offend(self, row: Row, at_us: int) -> None:
        key, kind = (row.account, "account") if row.account else (row.subscriber, "subscriber")
        seen = self.offenders.get(key)
        if seen is None:
            seen = self.offenders[key] = Offender(key, kind, 0, at_us, at_us)
        seen.complaints += 1
        seen.first_us, seen.last_us = min(seen.first_us, at_us), max(seen.last_us, at_us)
        seen.categories[row.category] += 1


# -- answering -------------------------------------------------------------------------------------


def answer_audited(
    session: Session,
    actor: audit.Actor,
    ask: inquiry.BatchAsk,
    query: BatchQuery,
    files: Sequence[tuple[str, intake.Readable]],
    options: intake.Options,
    write: Callable[[str], object],
    *,
    kept: inquiry.Inquiries,
    request_id: str,
    on_row: Callable[[Row], object] | None = None,
) -> tuple[ComplaintsReport, audit.Recorded]:
    """The whole use case: the case opened (or checked), every complaint of ``files`` answered
    into ``write``, the batch's audit entry recorded (flushed; the edge commits before any row
    leaves). ``report.answer_id`` is the entry's number."""
    inquiry.open_batch(session, actor, ask, kept=kept, request_id=request_id)
    query = with_accounts(session, actor, with_logs(session, query))
    if query.realm is not None and query.realm not in query.snapshot.by_name:
        raise InvalidInput(f"no realm named {query.realm!r}", field=_field("realm", ask.via))
    report = answer_files(query, files, options, write, on_row=on_row)
    entry = inquiry.record_batch(
        session,
        actor,
        ask,
        report,
        kind=f"complaints/{options.format}",
        input_sha256=report.input_sha256,
        request_id=request_id,
    )
    return report, entry


def with_accounts(session: Session, actor: audit.Actor, query: BatchQuery) -> BatchQuery:
    """``query`` asking the subscriber directory for accounts, as ``actor``'s role may see them
    (the roles of :data:`~detnat.service.directory.SHOW_ACCOUNTS`; the CLI's local operator is
    one): the other roles' rows carry no account."""
    if query.accounts is not None or actor.role not in directory.SHOW_ACCOUNTS:
        return query
    return replace(query, accounts=directory.BatchAccounts(session, actor.role))


def with_logs(session: Session, query: BatchQuery) -> BatchQuery:
    """``query`` asking the NAT's own logs for the ports the plans leave to them, as every reverse
    batch does (:class:`~detnat.service.log_answers.BatchLogs`)."""
    if query.logs is not None:
        return query
    return replace(query, logs=log_answers.BatchLogs(session, query.realm))


def _field(name: str, via: str) -> str:
    return f"--{name}" if via == "cli" else name


def answer_files(
    query: BatchQuery,
    files: Sequence[tuple[str, intake.Readable]],
    options: intake.Options,
    write: Callable[[str], object],
    *,
    progress: Callable[[int], None] | None = None,
    on_row: Callable[[Row], object] | None = None,
) -> ComplaintsReport:
    """Read every file (in order), answer every complaint, write the CSV of :data:`COLUMNS`."""
    digest = hashlib.sha256()
    streams = [(name, _Hashing(stream, digest)) for name, stream in files]

    def records() -> Iterator[Record]:
        for name, stream in streams:
            yield from intake.read(stream, name, options)

    report = answer_records(query, records(), write, progress=progress, on_row=on_row)
    report.input_sha256 = digest.hexdigest()
    return report


def answer_records(
    query: BatchQuery,
    records: Iterable[Record],
    write: Callable[[str], object],
    *,
    progress: Callable[[int], None] | None = None,
    on_row: Callable[[Row], object] | None = None,
) -> ComplaintsReport:
    """Answer ``records`` (already read) into ``write``; each row also to ``on_row``."""
    report = ComplaintsReport()
    out = hashlib.sha256()

    def emit(text: str) -> None:
        out.update(text.encode("utf-8", "surrogateescape"))
        write(text)

    emit(",".join(COLUMNS) + "\n")
    chunk: list[Record] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= CHUNK:
            _chunk(query, chunk, report, emit, on_row)
            chunk = []
            if progress is not None:
                progress(report.rows)
    if chunk:
        _chunk(query, chunk, report, emit, on_row)
    report.output_sha256 = out.hexdigest()
    return report


def _chunk(
    query: BatchQuery,
    records: list[Record],
    report: ComplaintsReport,
    emit: Callable[[str], None],
    on_row: Callable[[Row], object] | None,
) -> None:
    base = report.rows
    report.rows += len(records)
    if query.max_rows is not None and report.rows > query.max_rows:
        raise InvalidInput(
            f"more than {query.max_rows} complaints; the limit is {query.max_rows} per batch",
            field="batch",
        )
    rows: list[Row | None] = [None] * len(records)
    asked: list[tuple[int, int, int, int]] = []  # (record, ip, port, at_us) with a source port
    also: dict[int, int] = {}  # record -> its row in `asked` for the second instant
    portless: list[tuple[int, int]] = []  # (record, ip) without a source port
    for i, record in enumerate(records):
        if isinstance(record, Unreadable):
            rows[i] = _unreadable(record, record.reason)
            continue
        ip = parse_ip(record.ip)
        if isinstance(ip, str):
            rows[i] = _unreadable(record, ip)
        elif not record.has_source_port:
            portless.append((i, ip))
        else:
            assert record.port is not None
            asked.append((i, ip, record.port, record.at_us))
            if record.also_at_us is not None:
                also[i] = len(asked)
                asked.append((i, ip, record.port, record.also_at_us))
    if portless:
        _without_ports(query, records, portless, rows, report)
    if asked:
        table = np.array([a[1:] for a in asked], dtype=np.int64).reshape(-1, 3)
        errors: dict[int, str] = {}
        answers = batch_lookups.answer_rows(
            query, table[:, 0], table[:, 1], table[:, 2], errors, report
        )
        accounts = (answers.account, answers.account_status)
        subscribers = answers.subscribers()
        k = 0
        while k < len(asked):
            i = asked[k][0]
            record = records[i]
            assert isinstance(record, Complaint)
            said = _said(answers, subscribers, accounts, errors, k)
            if i in also:
                rows[i] = _two_instants(
                    record, said, _said(answers, subscribers, accounts, errors, k + 1)
                )
                k += 2
            else:
                rows[i] = _with_port(record, *said)
                k += 1
    done: list[Row] = []
    for n, (record, row) in enumerate(zip(records, rows, strict=True)):
        assert row is not None
        report.note(row.verdict)
        if row.verdict is Verdict.UNREADABLE:
            report.bad(base + n + 1, f"{row.source}: {row.note}")
        elif row.verdict is Verdict.IDENTIFIED:
            assert isinstance(record, Complaint)
            report._offend(row, record.at_us)
        done.append(row)
        if on_row is not None:
            on_row(row)
    # The batch writer's own cells: formula starts neutralised, quoted where needed.
    lines = batch_lookups.echoes([row.cells() for row in done], len(COLUMNS))
    emit("".join(line + "\n" for line in lines))


_Said = tuple[str, str, str, str, str]  # status, reason, subscriber, account, account status
ACCOUNT_AMBIGUOUS = "the directory names several accounts in the window: no account named"


def _said(
    answers: Any,
    subscribers: list[str],
    accounts: tuple[list[str] | None, list[str] | None],
    errors: dict[int, str],
    k: int,
) -> _Said:
    if k in errors:
        return "error", errors[k], "", "", ""
    names, statuses = accounts
    account = names[k] if names is not None else ""
    held = statuses[k] if statuses is not None else ""
    status = batch_lookups.STATUS_WORDS[answers.status[k]]
    reason = batch_lookups.REASON_WORDS[answers.reason[k]]
    return status, reason, subscribers[k], account, held


def _base(record: Complaint) -> dict[str, str]:
    return {
        "complaint": record.id,
        "source": str(record.ref),
        "format": record.format,
        "category": record.category,
        "ip": record.ip,
        "port": "" if record.port is None else str(record.port),
        "port_kind": record.port_kind or "",
        "time": format_instant(from_us(record.at_us)),
        "time_as_read": record.time_text,
        "zone": record.zone,
    }


def _notes(record: Complaint, *more: str) -> str:
    return "; ".join([*more, *record.flags])


def _unreadable(record: Record, reason: str) -> Row:
    if isinstance(record, Complaint):
        fields = _base(record)
    else:
        fields = dict.fromkeys(COLUMNS[:10], "")
        fields.update(complaint=record.id, source=str(record.ref), format=record.format or "")
    return Row(
        **fields, status="", reason="", subscriber="", account="", shared_by="",
        verdict=Verdict.UNREADABLE, note=reason,
    )  # fmt: skip


def _judge(status: str, reason: str) -> tuple[Verdict, str]:
    if status == Status.MATCH:
        return Verdict.IDENTIFIED, ""
    if status == Status.AMBIGUOUS:
        return Verdict.AMBIGUOUS, _AMBIGUOUS_NOTES.get(
            reason, "the plan versions in force disagree"
        )  # type: ignore[call-overload]
    if status == Status.NOT_DETERMINISTIC:
        return Verdict.AMBIGUOUS, "a dynamic overflow port: only the NAT's own logs can tell"
    if reason == Reason.NOT_LOGGED:  # our port, held by someone the logs we have do not name
        return Verdict.AMBIGUOUS, "a dynamic overflow port that no stored log line covers then"
    if status in (Status.NO_MAPPING, Status.NO_PLAN_IN_FORCE):
        return Verdict.NOT_OURS, _NOT_OURS_NOTES.get(reason, reason)  # type: ignore[call-overload]
    if status == Status.FUTURE:
        return Verdict.UNREADABLE, "the time is in the future"
    return Verdict.UNREADABLE, reason


def _with_port(
    record: Complaint, status: str, reason: str, subscriber: str, account: str, held: str = ""
) -> Row:
    verdict, note = _judge(status, reason)
    if held == "ambiguous":  # the subscriber stands; the account is never one of several
        account = ""
        note = "; ".join(filter(None, [note, ACCOUNT_AMBIGUOUS]))
    return Row(
        **_base(record), status="" if status == "error" else status,
        reason="" if status == "error" else reason, subscriber=subscriber, account=account,
        shared_by="", verdict=verdict, note=_notes(record, *[note] * bool(note)),
    )  # fmt: skip


def _two_instants(record: Complaint, first: _Said, second: _Said) -> Row:
    row = _with_port(record, *first)
    other = _with_port(record, *second)
    assert record.also_at_us is not None
    if row.verdict is other.verdict and (row.subscriber, row.account) == (
        other.subscriber,
        other.account,
    ):
        return row
    at = format_instant(from_us(record.also_at_us))
    said = other.subscriber or other.verdict.value
    note = f"at the other instant ({at}) the answer is {said}"
    note = "; ".join(filter(None, [note, row.note]))
    if Verdict.IDENTIFIED in (row.verdict, other.verdict):
        return replace(row, verdict=Verdict.AMBIGUOUS, subscriber="", account="", note=note)
    return replace(row, note=note)


def _without_ports(
    query: BatchQuery,
    records: list[Record],
    portless: list[tuple[int, int]],
    rows: list[Row | None],
    report: ComplaintsReport,
) -> None:
    """The rows of the complaints without a source port (record, ip): the logs asked once for
    the chunk."""
    windows: dict[int, tuple[datetime, datetime]] = {}
    for i, _ in portless:
        record = records[i]
        assert isinstance(record, Complaint)
        at = from_us(record.at_us)
        if at > query.now:
            rows[i] = _unreadable(record, "the time is in the future")
            continue
        try:
            windows[i] = lookups.window(at, query.tolerance, query.now)
        except QueryError as exc:
            rows[i] = _unreadable(record, exc.message)
    logged: dict[int, set[str]] = {}
    if query.logs is not None and query.logs.asked and windows:
        ips = dict(portless)
        order = list(windows)
        with query.asking:
            shared = query.logs.sharing(
                [(ips[i], to_us(windows[i][0]), to_us(windows[i][1])) for i in order]
            )
        logged = dict(zip(order, shared, strict=True))
    for i, ip in portless:
        if i in windows:
            record = records[i]
            assert isinstance(record, Complaint)
            rows[i] = _without_port(query, record, ip, windows[i], logged.get(i, set()), report)


def _without_port(
    query: BatchQuery,
    record: Complaint,
    ip: int,
    window: tuple[datetime, datetime],
    logged: set[str],
    report: ComplaintsReport,
) -> Row:
    """No source port: how many subscribers shared the address in the window (the plans'
    holders and those the NAT's logs show, ``logged``); never who."""
    why = (
        "no port given"
        if record.port is None
        else f"port {record.port} is a service port, not a source port"
    )
    start, end = window
    snapshot = query.snapshot
    if query.realm is None:
        spans = lookups.spans_holding(snapshot, ip, start, end)
    else:
        realm = lookups.realm_timeline(snapshot, query.realm)
        spans = [s for s in lookups.spans(realm, start, end) if s.version.holds(ip)]
    found = [s for s in spans if s.version.plan is not None]
    for span in found:
        report.versions.setdefault(span.version.id, lookups.evidence_of(span.realm, span.version))
    if len(found) == 1 and not logged:  # the usual case: count subscriber numbers, name no one
        shared = len(_holders(query, found[0].version, ip, report.holders))
    else:  # several versions, or the logs too: the same subscriber may hold a set in each
        shared = len(
            logged
            | {
                str(query.mappers.get(span.version).subscriber_at(n))
                for span in found
                for n in _holders(query, span.version, ip, report.holders)
            }
        )
    if not found and not logged:
        try:
            decided = lookups.without_candidates(
                snapshot, ip, start, end, realm_named=query.realm is not None,
                retired=bool(spans),
            )  # fmt: skip
        except QueryError as exc:
            return _unreadable(record, exc.message)
        verdict, note = _judge(decided["status"], decided.get("reason", ""))
        return Row(
            **_base(record), status=decided["status"], reason=decided.get("reason", ""),
            subscriber="", account="", shared_by="", verdict=verdict, note=_notes(record, note),
        )  # fmt: skip
    return Row(
        **_base(record), status="", reason="", subscriber="", account="",
        shared_by=str(shared), verdict=Verdict.NO_SOURCE_PORT,
        note=_notes(record, f"{why}: {shared} subscribers shared {record.ip} then"),
    )  # fmt: skip


def _holders(
    query: BatchQuery, version: Any, ip: int, cache: dict[tuple[int, int], Any]
) -> list[int]:
    """The numbers of the subscribers holding a port set on ``ip`` under ``version``: one probe
    per port set (its first port), so static bindings and unallocated sets count right."""
    key = (version.id, ip)
    found: list[int] | None = cache.get(key)
    if found is None:
        firsts = cache.get((version.id, -1))
        mapper = query.mappers.get(version)
        if firsts is None:
            sets = mapper.pool_port_sets()
            firsts = cache[(version.id, -1)] = np.array([r[0][0] for r in sets if r])
        answers = mapper.reverse_many(np.full(len(firsts), ip, dtype=np.int64), firsts)
        found = cache[key] = np.unique(answers.subscriber[answers.status == MATCH]).tolist()
    return found


class _Hashing:
    """A binary stream that hashes what is read from it."""

    def __init__(self, stream: intake.Readable, digest: Any) -> None:
        self._stream, self._digest = stream, digest

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self._digest.update(data)
        return data


def summary_lines(report: ComplaintsReport) -> list[str]:
    """The repeat-offender list as text lines (most complaints first)."""
    lines = []
    for o in report.summary():
        cats = ", ".join(f"{c} x{n}" for c, n in o.categories.most_common())
        lines.append(
            f"{o.key}  {o.complaints} complaint{'s' * (o.complaints != 1)}  "
            f"{format_instant(from_us(o.first_us))} .. {format_instant(from_us(o.last_us))}  {cats}"
        )
    return lines


__all__ = [
    "COLUMNS",
    "ComplaintsReport",
    "Offender",
    "Row",
    "Verdict",
    "answer_audited",
    "answer_files",
    "answer_records",
    "summary_lines",
]
