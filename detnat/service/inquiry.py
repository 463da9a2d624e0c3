"""Identity inquiries: one audited use case per question, whichever door it came through.

An inquiry checks why it is asked (the case, legal basis, requester), opens or checks the case
(:class:`~detnat.service.audit.CaseOwners`), answers from a timeline snapshot, and appends its
audit entry — one schema (:class:`ReverseDetail`, :class:`ForwardDetail`, :class:`BatchDetail`)
for the API, the CLI and the web pages; only ``via`` says which. It flushes; the edge commits (a
single lookup on the API is committed with its group, :func:`ask_async`) and only then lets the
answer out. Evidence files are built from these entries, so they cannot depend on the
door either.

Example (the CLI)::

    asked = inquiry.ReverseQuery("192.0.2.1", 1100, "2026-03-14T21:07:33+01:00",
                                 identity=inquiry.Identity("ABUSE-7"), via="cli")
    answered = inquiry.ask(session, actor, asked, snapshot=timelines.get(session),
                           kept=inquiry.Inquiries(), now=utcnow(), request_id="cli-…")
    session.commit()
    print(answered.to_json())

One module at this size: the queries, the audit-detail schema and the use cases are one contract;
splitting them would put the schema away from what writes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from detnat.errors import Unavailable
from detnat.service import audit, lookups, revisions
from detnat.service.answers import ForwardAnswer, ReverseAnswer
from detnat.service.mappers import MapperCache
from detnat.service.times import check_tolerance, parse_instant
from detnat.store.lean import Stale

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from detnat.service.timelines import Timelines
    from detnat.store.async_db import AsyncStore

Via = Literal["api", "cli", "web"]
US = timedelta(microseconds=1)

# How many times an answer is asked again when the store moved on before its audit entry was
# written (a publish, a revocation: :class:`~detnat.store.lean.Stale`); the API, the CLI and
# the batch's closing entry alike.
STALE_TRIES = 5


@dataclass(frozen=True)
class Identity:
    """Why a question is asked: the case (required), the legal basis and who requested it."""

    case: str
    legal_basis: str | None = None
    requested_by: str | None = None

    def checked(self, via: Via) -> Identity:
        """The identity, or :class:`~detnat.errors.InvalidInput` naming the field as the edge
        spells it (``--legal-basis`` on the CLI, ``legal_basis`` elsewhere)."""
        audit.check_reference(self.case, field=_field("case", via))
        for name in ("legal_basis", "requested_by"):
            value = getattr(self, name)
            if value is not None:
                audit.check_reference(value, field=_field(name, via), limit=500)
        return self


def _field(name: str, via: Via) -> str:
    return "--" + name.replace("_", "-") if via == "cli" else name


@dataclass(frozen=True)
class ReverseQuery:
    """Who held ``ip:port`` at ``time`` (as given: RFC 3339, or naive with ``tz``)."""

    ip: str
    port: int
    time: str
    identity: Identity
    via: Via
    tz: str | None = None
    tolerance: timedelta = timedelta(0)
    realm: str | None = None


@dataclass(frozen=True)
class ForwardQuery:
    """What ``subscriber`` got at ``time``."""

    subscriber: str
    time: str
    identity: Identity
    via: Via
    tz: str | None = None
    realm: str | None = None


@dataclass(frozen=True)
class Answered:
    """An answer that is in the audit log: the answer, its case, its entry and the entry's hash."""

    answer: ReverseAnswer | ForwardAnswer
    case: str
    answer_id: int
    audit_sha256: str
    trace: dict[str, object] = field(default_factory=dict)  # what the evidence needs

    def to_json(self) -> dict[str, object]:
        """The answer as it leaves: an :class:`~detnat.service.answers.AuditedReverseAnswer` or
        :class:`~detnat.service.answers.AuditedForwardAnswer` (a plain dict for the edges)."""
        return {
            **self.answer,
            "case": self.case,
            "answer_id": self.answer_id,
            "audit_sha256": self.audit_sha256,
        }


# -- the audit details: one schema per inquiry -----------------------------------------------------
#
# TypedDicts: mypy checks every key the service writes, and a detail is the plain dict the audit
# entry hashes (no model is built or validated on the lookup path, issue 12).


class ReverseAsked(TypedDict):
    ip: str
    port: int
    time: str
    tz: str | None
    tolerance_us: int
    realm: str | None
    case: str
    legal_basis: str | None
    requested_by: str | None
    via: Via


class ReverseDetail(TypedDict):
    query: ReverseAsked
    answer: dict[str, Any]  # a ReverseAnswer, copied as given (not validated again)
    trace: dict[str, Any]


class ForwardAsked(TypedDict):
    subscriber: str
    time: str
    tz: str | None
    realm: str | None
    case: str
    legal_basis: str | None
    requested_by: str | None
    via: Via


class ForwardDetail(TypedDict):
    query: ForwardAsked
    answer: dict[str, Any]  # a ForwardAnswer, copied


class BatchAsked(TypedDict):
    case: str
    legal_basis: str | None
    requested_by: str | None
    tz: str | None
    tolerance_us: int
    realm: str | None
    file: str | None
    via: Via


class BatchDone(TypedDict):
    format: str
    rows: int
    bad_rows: int
    counts: dict[str, int]
    input_sha256: str
    output_sha256: str
    versions: list[dict[str, Any]]


class BatchDetail(TypedDict):
    query: BatchAsked
    batch: BatchDone


def _plain(record: Mapping[str, Any]) -> dict[str, Any]:
    """A detail as :func:`audit.record` takes it."""
    return dict(record)


def _reverse_detail(
    query: ReverseQuery, answer: ReverseAnswer, trace: dict[str, object]
) -> dict[str, Any]:
    """A :class:`ReverseDetail`: a plain dict (typed for mypy, not validated at run time: every
    single lookup pays for it, and this module built every value itself).
    ``tests/test_inquiry_detail.py`` holds its keys to the schema and its stored form."""
    who = query.identity
    asked = ReverseAsked(
        ip=query.ip,
        port=query.port,
        time=query.time,
        tz=query.tz,
        tolerance_us=query.tolerance // US,
        realm=query.realm,
        case=who.case,
        legal_basis=who.legal_basis,
        requested_by=who.requested_by,
        via=query.via,
    )
    return _plain(ReverseDetail(query=asked, answer=dict(answer), trace=dict(trace)))


def _forward_detail(query: ForwardQuery, answer: ForwardAnswer) -> dict[str, Any]:
    who = query.identity
    asked = ForwardAsked(
        subscriber=query.subscriber,
        time=query.time,
        tz=query.tz,
        realm=query.realm,
        case=who.case,
        legal_basis=who.legal_basis,
        requested_by=who.requested_by,
        via=query.via,
    )
    return _plain(ForwardDetail(query=asked, answer=dict(answer)))


# -- single lookups --------------------------------------------------------------------------------


def _answer_reverse(
    query: ReverseQuery, at: datetime, snapshot: Timelines, mappers: MapperCache, now: datetime
) -> tuple[ReverseAnswer, dict[str, object]]:
    trace: dict[str, object] = {}
    answer = lookups.reverse_in(
        snapshot,
        query.ip,
        query.port,
        at=at,
        tolerance=query.tolerance,
        realm=query.realm,
        now=now,
        mappers=mappers,
        trace=trace,
    )
    return answer, trace


def _answer_forward(
    query: ForwardQuery, at: datetime, snapshot: Timelines, mappers: MapperCache, now: datetime
) -> ForwardAnswer:
    return lookups.forward_in(
        snapshot,
        query.subscriber,
        at=at,
        realm=query.realm,
        now=now,
        mappers=mappers,
    )


def _precheck(query: ReverseQuery | ForwardQuery) -> datetime:
    """What can be refused before a case is opened: the identity, the tolerance, the time (the
    instant asked about, parsed once)."""
    query.identity.checked(query.via)
    at = parse_instant(query.time, tz=query.tz, field="--at" if query.via == "cli" else "time")
    if isinstance(query, ReverseQuery):
        _check_tolerance(query.tolerance, query.via)
    return at


def _check_tolerance(tolerance: timedelta, via: Via) -> None:
    check_tolerance(tolerance, field="--tolerance" if via == "cli" else "tolerance_seconds")


@dataclass
class Inquiries:
    """What a process keeps between inquiries: compiled plans and committed case owners."""

    mappers: MapperCache = field(default_factory=MapperCache)
    cases: audit.CaseOwners = field(default_factory=audit.CaseOwners)


@dataclass(frozen=True)
class _Prepared:
    """An inquiry checked and answered, not yet recorded: what the two writers need."""

    action: str
    case: str
    answer: ReverseAnswer | ForwardAnswer
    detail: dict[str, Any]
    trace: dict[str, object]

    def entry(self, request_id: str) -> dict[str, Any]:
        """What :func:`audit.record` (or ``record_async``) takes besides the writer and actor."""
        return {
            "request_id": request_id,
            "detail": self.detail,
            "case": self.case,
            "status": self.answer["status"],
        }

    def answered(self, entry: audit.Recorded) -> Answered:
        return Answered(self.answer, self.case, entry.seq, entry.entry_sha256, self.trace)


LogConsult = Callable[[ReverseAnswer, str | None, datetime], ReverseAnswer]


def _prepare(
    query: ReverseQuery | ForwardQuery,
    snapshot: Timelines,
    kept: Inquiries,
    now: datetime,
    logs: LogConsult | None = None,
) -> _Prepared:
    """Check and answer (pure but for ``logs``, the stored logs consulted beside the plans): a
    question refused here opens no case and records nothing."""
    at = _precheck(query)
    case = query.identity.case
    if isinstance(query, ReverseQuery):
        answer, trace = _answer_reverse(query, at, snapshot, kept.mappers, now)
        if logs is not None:
            answer = logs(answer, query.realm, now)
        detail = _reverse_detail(query, answer, trace)
        return _Prepared("lookup.reverse", case, answer, detail, trace)
    forwarded = _answer_forward(query, at, snapshot, kept.mappers, now)
    return _Prepared("lookup.forward", case, forwarded, _forward_detail(query, forwarded), {})


def ask(
    session: Session,
    actor: audit.Actor,
    query: ReverseQuery | ForwardQuery,
    *,
    snapshot: Timelines,
    kept: Inquiries,
    now: datetime,
    request_id: str,
) -> Answered:
    """Who held ``ip:port`` (a :class:`ReverseQuery`) or what did ``subscriber`` get (a
    :class:`ForwardQuery`): checked, answered, the case opened or checked, audited (flushed)."""
    if isinstance(query, ReverseQuery) and not _holds_logs_or_directory(session, snapshot.revision):
        ready = _prepare(query, snapshot, kept, now)  # nothing but the plans can answer
    else:
        ready = _consulting(session, actor, query, snapshot, kept, now)
    kept.cases.claim(session, ready.case, actor, request_id=request_id)
    return ready.answered(audit.record(session, actor, ready.action, **ready.entry(request_id)))


def _consulting(
    session: Session,
    actor: audit.Actor,
    query: ReverseQuery | ForwardQuery,
    snapshot: Timelines,
    kept: Inquiries,
    now: datetime,
) -> _Prepared:
    """:func:`_prepare` with the stored logs beside the plans, and the account of the directory."""
    from detnat.service import directory, log_answers

    ready = _prepare(
        query,
        snapshot,
        kept,
        now,
        logs=lambda answer, realm, at: log_answers.consult(
            session, answer, realm=realm, now=at, revision=snapshot.revision
        ),
    )
    if isinstance(query, ForwardQuery):  # the subscriber's logged blocks beside its plan's
        blocks = log_answers.forward_blocks(session, ready.answer, realm=query.realm)  # type: ignore[arg-type]
        ready = _Prepared(ready.action, ready.case, blocks, _forward_detail(query, blocks), {})
    directory.add_account(session, actor, ready.answer, ready.detail, revision=snapshot.revision)
    return ready


# Whether the store held any logs or any directory, per database and revision (an ingest or a
# prune moves the revision): a reverse lookup in a store with neither asks the plans only, and
# imports neither the logs' nor the directory's modules (the CLI's start-up, issue 12).
_LOGS_OR_DIRECTORY = revisions.Facts()


def _holds_logs_or_directory(session: Session, revision: int | None) -> bool:
    from detnat.store import directory as directory_rows
    from detnat.store import logs as log_rows

    info = log_rows.raw_connection(session).info
    at = revisions.key(f"{info.host}:{info.port}/{info.dbname}", revision)
    known = _LOGS_OR_DIRECTORY.known(at)
    if known is None:
        held = log_rows.has_logs(session, None) or directory_rows.any_rows(session)
        known = _LOGS_OR_DIRECTORY.learn(at, held)
    return known


async def _holds_logs_or_directory_async(store: AsyncStore, revision: int) -> bool:
    """:func:`_holds_logs_or_directory` on the lookup path: a connection and a query only when
    not known at this revision."""
    at = revisions.key(store.name, revision)
    known = _LOGS_OR_DIRECTORY.known(at)
    if known is None:
        from detnat.store import directory as directory_rows
        from detnat.store import logs as log_rows

        async with store.connection() as conn:
            held = await log_rows.has_logs_async(conn, None) or await directory_rows.any_rows_async(
                conn
            )
        known = _LOGS_OR_DIRECTORY.learn(at, held)
    return known


async def ask_async(
    store: AsyncStore,
    actor: audit.Actor,
    query: ReverseQuery | ForwardQuery,
    *,
    snapshot: Timelines,
    kept: Inquiries,
    now: datetime,
    request_id: str,
) -> Answered:
    """:func:`ask` on the lookup path: a new case is opened in its own statement; the entry is
    group-committed with the entries of the lookups in flight beside it, and this returns only
    after that commit (else :class:`~detnat.errors.Unavailable`: no answer), if the store is
    still at the snapshot's revision then (else :class:`~detnat.store.lean.Stale`: nothing
    was recorded, ask again at the new revision)."""
    if isinstance(query, ReverseQuery) and not await _holds_logs_or_directory_async(
        store, snapshot.revision
    ):
        ready = _prepare(query, snapshot, kept, now)  # nothing but the plans can answer
    else:
        ready = await _consulting_async(store, actor, query, snapshot, kept, now)
    await kept.cases.claim_async(
        store, ready.case, actor, request_id=request_id, revision=snapshot.revision
    )
    entry = await audit.record_async(
        store, actor, ready.action, revision=snapshot.revision, **ready.entry(request_id)
    )
    return ready.answered(entry)


async def _consulting_async(
    store: AsyncStore,
    actor: audit.Actor,
    query: ReverseQuery | ForwardQuery,
    snapshot: Timelines,
    kept: Inquiries,
    now: datetime,
) -> _Prepared:
    """:func:`_consulting` on the lookup path."""
    from detnat.service import directory, log_answers

    ready = _prepare(query, snapshot, kept, now)
    if isinstance(ready.answer, dict) and ready.action == "lookup.reverse":
        assert isinstance(query, ReverseQuery)
        fetched = await log_answers.fetch_async(
            store,
            ready.answer,  # type: ignore[arg-type]
            realm=query.realm,
            now=now,
            revision=snapshot.revision,
        )
        if fetched is not None:  # answered again, with the logs beside the plans
            ready = _prepare(
                query, snapshot, kept, now, logs=lambda a, r, n: log_answers.apply(a, fetched)
            )
    elif isinstance(query, ForwardQuery):
        blocks = await log_answers.forward_blocks_async(
            store,
            ready.answer,  # type: ignore[arg-type]
            realm=query.realm,
        )
        ready = _Prepared(ready.action, ready.case, blocks, _forward_detail(query, blocks), {})
    await directory.add_account_async(
        store, actor, ready.answer, ready.detail, revision=snapshot.revision
    )
    return ready


# -- batches ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchAsk:
    """A batch's shared question (the rows come as a file or a body)."""

    identity: Identity
    via: Via
    tz: str | None = None
    tolerance: timedelta = timedelta(0)
    realm: str | None = None
    file: str | None = None


def open_batch(
    session: Session, actor: audit.Actor, ask: BatchAsk, *, kept: Inquiries, request_id: str
) -> None:
    """Check a batch's identity and open (or check) its case, before any row is read."""
    _check_batch(ask)
    kept.cases.claim(session, ask.identity.case, actor, request_id=request_id)


def _check_batch(ask: BatchAsk) -> None:
    ask.identity.checked(ask.via)
    _check_tolerance(ask.tolerance, ask.via)


def record_batch(
    session: Session,
    actor: audit.Actor,
    ask: BatchAsk,
    report: Any,
    *,
    kind: str,
    input_sha256: str,
    request_id: str,
) -> audit.Recorded:
    """The batch's one audit entry (rows, counts, input and output SHA-256, plan versions used);
    sets ``report.answer_id``. Flushed: the edge commits before any answer leaves."""
    entry = audit.record(
        session,
        actor,
        "lookup.reverse_batch",
        request_id=request_id,
        detail=_batch_detail(ask, report, kind=kind, input_sha256=input_sha256),
        case=ask.identity.case,
        status="answered",
    )
    report.answer_id = entry.seq
    return entry


def _batch_detail(ask: BatchAsk, report: Any, *, kind: str, input_sha256: str) -> dict[str, Any]:
    """A :class:`BatchDetail` (the one the sessions' and the lookup path's entries both hold)."""
    who = ask.identity
    detail = BatchDetail(
        query=BatchAsked(
            case=who.case,
            legal_basis=who.legal_basis,
            requested_by=who.requested_by,
            tz=ask.tz,
            tolerance_us=ask.tolerance // US,
            realm=ask.realm,
            file=ask.file[:200] if ask.file else None,
            via=ask.via,
        ),
        batch=BatchDone(
            format=kind,
            rows=int(report.rows),  # plain ints: a count may come from numpy
            bad_rows=int(report.bad_row_count),
            counts={str(k): int(v) for k, v in report.counts.items()},
            input_sha256=input_sha256,
            output_sha256=report.output_sha256,
            versions=[dict(v) for v in sorted(report.versions.values(), key=str)],
        ),
    )
    return _plain(detail)


async def open_batch_async(
    store: AsyncStore,
    actor: audit.Actor,
    ask: BatchAsk,
    *,
    kept: Inquiries,
    request_id: str,
    revision: int,
) -> None:
    """:func:`open_batch` on the lookup path: a new case is opened (its ``case.open`` entry
    committed) in its own transaction, before any row is read, while the store is at
    ``revision`` (the batch's snapshot's; else :class:`~detnat.store.lean.Stale`, nothing
    written: read the snapshot again)."""
    _check_batch(ask)
    await kept.cases.claim_async(
        store, ask.identity.case, actor, request_id=request_id, revision=revision
    )


async def record_batch_async(
    store: AsyncStore,
    actor: audit.Actor,
    ask: BatchAsk,
    report: Any,
    *,
    kind: str,
    input_sha256: str,
    request_id: str,
) -> audit.Recorded:
    """:func:`record_batch` on the lookup path: the entry written by the store's writer, and this
    returns once it is committed (else :class:`~detnat.errors.Unavailable`).

    A batch is answered at one snapshot, and its entry names the plan versions it used; it is
    written whatever the store's revision is by then, as the sessions' side writes it (the
    writer's check that a single answer is still the store's does not apply: a :class:`Stale`
    only names the revision to write it at)."""
    detail = _batch_detail(ask, report, kind=kind, input_sha256=input_sha256)
    revision = await store.revision()
    for _ in range(STALE_TRIES):
        try:
            entry = await audit.record_async(
                store,
                actor,
                "lookup.reverse_batch",
                revision=revision,
                request_id=request_id,
                detail=detail,
                case=ask.identity.case,
                status="answered",
            )
        except Stale as exc:
            revision = exc.revision
            continue
        report.answer_id = entry.seq
        return entry
    raise Unavailable("the store kept changing while this batch was recorded; try again")


__all__ = [
    "Answered",
    "BatchAsk",
    "ForwardQuery",
    "Identity",
    "Inquiries",
    "ReverseQuery",
    "ask",
    "ask_async",
    "open_batch",
    "open_batch_async",
    "record_batch",
    "record_batch_async",
]
