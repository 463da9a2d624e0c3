"""Lookups at an instant: "who held A:P at T" and "what did S get at T", from the timeline.

The window searched is ``[T - tolerance, T + tolerance]`` (never past now). A version is a
candidate when it was in force at some instant of the window, or when its successor took over less
than the realm's ``session_drain`` before the window starts (sessions opened under it live on):
that is the window widened backwards by the drain (:func:`timelines.candidate_range`). Every
candidate is evaluated; the answer is ``match`` only when every candidate names the same subscriber
with the same public address and ports (:func:`verdict`).

The rules work on a :class:`~detnat.service.timelines.Timelines` snapshot (no query of their own);
:mod:`detnat.service.batch_lookups` applies the very same functions to many rows at once.

One module at this size: the lookup rules (window, drain, candidates, verdict) are applied by
single and batch lookups alike and read as one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

from detnat.engine import (
    Allocation,
    ReverseAnswer,
    format_ipv4,
    non_public_many,
    non_public_reason,
    parse_public_address,
)
from detnat.engine.addresses import parse_prefix, reused
from detnat.errors import NotFound, QueryError
from detnat.service import answers
from detnat.service.answers import Reason, Status
from detnat.service.clock import Clock, utcnow
from detnat.service.mappers import MapperCache
from detnat.service.timelines import (
    RealmTimeline,
    TimelineCache,
    Timelines,
    TimelineVersion,
    candidate_range,
    to_us,
)
from detnat.service.times import check_window, format_instant

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

DEFAULT_MAPPERS = MapperCache()
DEFAULT_TIMELINES = TimelineCache()


@dataclass(frozen=True)
class Span:
    """A candidate version and when it stopped being in force (None: it has not)."""

    realm: RealmTimeline
    version: TimelineVersion
    until: datetime | None


# -- the rules -------------------------------------------------------------------------------------


def window(at: datetime, tolerance: timedelta, now: datetime) -> tuple[datetime, datetime]:
    """The instants searched: [at - tolerance, at + tolerance], capped at now."""
    check_window(at, tolerance)
    return at - tolerance, min(at + tolerance, now)


def realm_timeline(snapshot: Timelines, name: str) -> RealmTimeline:
    found = snapshot.by_name.get(name)
    if found is None:
        raise NotFound(f"no realm named {name!r}", field="realm")
    return found


def spans(realm: RealmTimeline, start: datetime, end: datetime) -> list[Span]:
    """The realm's candidate versions for the window [start, end]."""
    first, last = candidate_range(realm.starts, realm.drain_us, to_us(start), to_us(end))
    return [
        Span(realm, realm.versions[i], realm.until(i)) for i in range(int(first), int(last) + 1)
    ]


def spans_holding(snapshot: Timelines, address: int, start: datetime, end: datetime) -> list[Span]:
    """Candidates of every realm whose plan held ``address`` in the window (no realm named).

    A retirement is kept when the plan it ended held ``address``: then no plan is in force for the
    address (``no_plan_in_force``), which other realms' plans elsewhere do not change.
    """
    found = []
    for realm in snapshot.realms_holding(address):
        first, last = candidate_range(realm.starts, realm.drain_us, to_us(start), to_us(end))
        for i in range(int(first), int(last) + 1):
            version = realm.versions[i]
            held = version if version.plan is not None else realm.plan_ended_by(i)
            if held is not None and held.holds(address):
                found.append(Span(realm, version, realm.until(i)))
    return found


def verdict(candidates: Sequence[answers.Verdict]) -> answers.Verdict:
    """Status (and reason, or the agreed subscriber) of one or more evaluated candidates.

    Candidates of two realms agree on a subscriber only when its key is one line's wherever it
    is seen: ``10.0.0.5/32`` behind one NAT and behind another are two people
    (:func:`~detnat.engine.addresses.reused`)."""
    distinct = {
        (
            c["status"],
            c.get("reason"),
            c.get("subscriber"),
            c.get("public_ip"),
            str(c.get("port_ranges")),
            _holder_realm(c),
        )
        for c in candidates
    }
    statuses = {c["status"] for c in candidates}
    if len(distinct) == 1 and statuses == {Status.MATCH}:
        first = candidates[0]
        return {
            "status": Status.MATCH,
            "subscriber": first["subscriber"],
            "public_ip": first["public_ip"],
            "port_ranges": first["port_ranges"],
        }
    if Status.MATCH in statuses:
        return {"status": Status.AMBIGUOUS, "reason": Reason.CANDIDATES_DIFFER}
    if Status.NOT_DETERMINISTIC in statuses:
        return {"status": Status.NOT_DETERMINISTIC, "reason": Reason.DYNAMIC_BLOCK}
    reasons = sorted({Reason(c["reason"]) for c in candidates})
    why = reasons[0] if len(reasons) == 1 else Reason.MIXED
    return {"status": Status.NO_MAPPING, "reason": why}


def _holder_realm(candidate: answers.Verdict) -> object:
    """The realm that is part of a matched candidate's holder: its own for a reused key."""
    subscriber = candidate.get("subscriber")
    if subscriber is None or not reused(parse_prefix(subscriber)):
        return None
    return cast(Mapping[str, Any], candidate).get("realm")


V = TypeVar("V", answers.Verdict, answers.ReverseAnswer, answers.ForwardAnswer)


def with_verdict(answer: V, decided: answers.Verdict) -> V:
    """``answer`` with the status of ``decided`` and its reason or allocation, no other key."""
    answer["status"] = decided["status"]
    if "reason" in decided:
        answer["reason"] = decided["reason"]
    if "subscriber" in decided:
        answer["subscriber"] = decided["subscriber"]
        answer["public_ip"] = decided["public_ip"]
        answer["port_ranges"] = decided["port_ranges"]
    return answer


def engine_verdict(result: ReverseAnswer) -> answers.Verdict:
    """One plan's reverse answer in the answers' shape (its ``to_json``, typed)."""
    out: answers.Verdict = {"status": result.status}
    if result.reason is not None:
        out["reason"] = result.reason
    if result.allocation is not None:
        allocated = allocation_json(result.allocation)
        out["subscriber"] = allocated["subscriber"]
        out["public_ip"] = allocated["public_ip"]
        out["port_ranges"] = allocated["port_ranges"]
    return out


def in_realm(candidate: answers.Verdict, realm: str) -> answers.Verdict:
    """``candidate`` with the realm of its version, which :func:`verdict` weighs (a batch's
    candidates carry no evidence, only this)."""
    return cast(answers.Verdict, {**candidate, "realm": realm})


def allocation_json(allocation: Allocation) -> answers.Allocated:
    return {
        "subscriber": str(allocation.subscriber),
        "public_ip": format_ipv4(allocation.public_ip),
        "port_ranges": [list(r) for r in allocation.port_ranges],
    }


def without_candidates(
    snapshot: Timelines,
    address: int,
    start: datetime,
    end: datetime,
    *,
    realm_named: bool,
    retired: bool = False,
) -> answers.Verdict:
    """The answer when no plan version held the address in the window.

    ``retired``: the realm whose plan held the address was retired (no realm named): no plan is
    in force for it. Otherwise an address that is never public (private, shared CGN space,
    loopback ...) is a mistake of the asker, refused whatever the timeline holds; another is
    ``not_in_pool`` while some realm has a plan in force.
    """
    if retired:
        return {"status": Status.NO_PLAN_IN_FORCE, "reason": Reason.NO_PLAN}
    what = non_public_reason(address)
    if what is not None:
        raise QueryError(
            f"{format_ipv4(address)} is {what}, not a public address of any plan", field="ip"
        )
    if not realm_named and snapshot.plan_in_force_between(to_us(start), to_us(end)):
        return {"status": Status.NO_MAPPING, "reason": Reason.NOT_IN_POOL}
    return {"status": Status.NO_PLAN_IN_FORCE, "reason": Reason.NO_PLAN}


def without_candidates_many(
    snapshot: Timelines,
    addresses: Any,
    start_us: Any,
    end_us: Any,
    *,
    realm_named: bool,
    retired: Any,
) -> tuple[Any, Any]:
    """:func:`without_candidates` of many rows (numpy arrays: addresses, window bounds in µs,
    ``retired``) at once, as two masks: ``refused`` (the rows :func:`without_candidates` refuses:
    ask it for the message) and ``not_in_pool`` (``no_mapping`` / ``not_in_pool``); every other
    row is ``no_plan_in_force`` / ``no_plan``."""
    refused = ~retired & non_public_many(addresses)
    not_in_pool = ~retired & ~refused
    if realm_named:
        not_in_pool &= False
    else:
        not_in_pool &= snapshot.plan_in_force_between(start_us, end_us)
    return refused, not_in_pool


def _covers(
    span: Span, start: datetime, end: datetime, instant: Callable[[datetime], str] = format_instant
) -> answers.Covers:
    lo = max(span.version.effective_from, start)
    hi = end if span.until is None else min(end, span.until + span.realm.session_drain)
    return {
        "from": instant(lo),
        "to": instant(hi),
        "in_drain_only": span.until is not None and span.until <= start,
    }


def evidence_of(realm: RealmTimeline, version: TimelineVersion) -> answers.VersionEvidence:
    """The evidence of a version with a plan (a retirement has no content hash)."""
    assert version.content_sha256 is not None, "a version with a plan has its content's hash"
    return {
        "realm": realm.name,
        "version": version.seq,
        "content_sha256": version.content_sha256,
        "effective_from": format_instant(version.effective_from),
        "correction": version.correction,
    }


def _nearest_change(
    found: list[Span], at: datetime, instant: Callable[[datetime], str] = format_instant
) -> answers.NearestChange | None:
    changes = {(s.version.effective_from, s.realm.name, s.version.seq) for s in found}
    changes |= {(s.until, s.realm.name, -1) for s in found if s.until is not None}
    if not changes:
        return None
    moment, realm, _ = min(changes, key=lambda c: (abs((c[0] - at).total_seconds()), c[0]))
    return {
        "at": instant(moment),
        "realm": realm,
        "seconds_from_time": (moment - at).total_seconds(),
    }


def check_port(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise QueryError(f"port {port!r} is outside 0-65535", field="port")
    return port


def answer_reverse(
    snapshot: Timelines,
    address: int,
    port: int,
    *,
    at: datetime,
    tolerance: timedelta,
    realm: str | None,
    now: datetime,
    mappers: MapperCache,
    trace: dict[str, object] | None = None,
) -> answers.ReverseAnswer:
    """The full answer (candidates, window, nearest change) from a snapshot.

    ``trace``, when given, receives what is needed to recompute and check the answer offline
    (the evidence file): ``now`` and, per realm searched, its drain and the versions from the
    first candidate to the first version after the window (id, seq, record hash, approval).
    """
    start, end = window(at, tolerance, now)
    shown_at: dict[datetime, str] = {}  # the window's instants are often one: formatted once

    def instant(moment: datetime) -> str:
        text = shown_at.get(moment)
        if text is None:
            text = shown_at[moment] = format_instant(moment)
        return text

    def answer(
        candidates: list[answers.ReverseCandidate], decided: answers.Verdict
    ) -> answers.ReverseAnswer:
        shown: answers.ReverseAnswer = {
            "ip": format_ipv4(address),
            "port": port,
            "time": instant(at),
            "tolerance_seconds": tolerance.total_seconds(),
            "window": {"from": instant(start), "to": instant(at + tolerance)},
            "candidates": candidates,
            "status": decided["status"],
        }
        return with_verdict(shown, decided)

    if at > now:
        return answer([], {"status": Status.FUTURE, "reason": Reason.AFTER_NOW})
    if realm is not None:
        searched = [realm_timeline(snapshot, realm)]
        found = spans(searched[0], start, end)
    else:
        searched = snapshot.realms_holding(address)
        found = spans_holding(snapshot, address, start, end)
    nearest = _nearest_change(found, at, instant)
    pending = [
        _pending(r, v) for r in searched for v in r.pending_between(to_us(start), to_us(end))
    ]
    if trace is not None:
        trace["now"] = format_instant(now)
        trace["realms"] = {r.name: _kept_excerpt(r, start, end) for r in searched}
    candidates: list[answers.ReverseCandidate] = []
    for span in sorted(found, key=lambda s: (s.version.effective_from, s.realm.name)):
        if span.version.plan is None:
            continue  # a retirement: no plan in force for that part of the window
        result = engine_verdict(mappers.get(span.version).reverse(address, port))
        candidates.append(
            {
                **result,
                **_kept_evidence(span.realm, span.version),
                "covers": _covers(span, start, end, instant),
            }
        )
    if candidates:
        decided = verdict(candidates)
    else:
        retired = realm is None and any(s.version.plan is None for s in found)
        decided = without_candidates(
            snapshot, address, start, end, realm_named=realm is not None, retired=retired
        )
    shown = answer(candidates, decided)
    shown["nearest_change"] = nearest
    if pending:
        shown["pending_approval"] = pending
    return shown


def _pending(realm: RealmTimeline, version: TimelineVersion) -> answers.PendingVersion:
    return {
        "realm": realm.name,
        "version": version.seq,
        "content_sha256": version.content_sha256,
        "effective_from": format_instant(version.effective_from),
        "correction": version.correction,
        "pending_approval": True,
    }


_KEPT_PER_REALM = 4096


def _kept_evidence(realm: RealmTimeline, version: TimelineVersion) -> answers.VersionEvidence:
    """:func:`evidence_of`, made once per realm object and version (shared: copied into each
    candidate, never mutated)."""
    key = ("evidence", version.id)
    kept: answers.VersionEvidence | None = realm.derived.get(key)
    if kept is None:
        kept = realm.derived[key] = evidence_of(realm, version)
    return kept


def _kept_excerpt(realm: RealmTimeline, start: datetime, end: datetime) -> dict[str, object]:
    """:func:`_excerpt`, made once per realm object and candidate range: every lookup whose
    window falls between the same changes shares it (a trace only reads it, the audit entry
    stores its stored form)."""
    first, last = candidate_range(realm.starts, realm.drain_us, to_us(start), to_us(end))
    key = ("excerpt", int(first), int(last))
    kept: dict[str, object] | None = realm.derived.get(key)
    if kept is None:
        if len(realm.derived) >= _KEPT_PER_REALM:
            realm.derived.clear()  # a bound, not a policy: lookups far apart in a long history
        kept = realm.derived[key] = _excerpt(realm, start, end)
    return kept


def _excerpt(realm: RealmTimeline, start: datetime, end: datetime) -> dict[str, object]:
    """A realm's part of the trace: what an evidence file shows of it, bound by the audit hash.

    Integers and strings only (no float survives canonical JSON unchanged); ``version_ids`` and
    ``session_drain_seconds`` stay for the readers of older entries (the web timeline strip).
    """
    first, last = candidate_range(realm.starts, realm.drain_us, to_us(start), to_us(end))
    upto = min(int(last) + 2, len(realm.versions))
    versions = realm.versions[int(first) : max(upto, int(first))]
    return {
        "session_drain_seconds": realm.session_drain.total_seconds(),
        "session_drain_us": realm.drain_us,
        "version_ids": [v.id for v in versions],
        "versions": [
            {
                "id": v.id,
                "seq": v.seq,
                "record_sha256": v.record_sha256,
                "approved_by": v.approved_by,
                "approved_at": format_instant(v.approved_at) if v.approved_at else None,
            }
            for v in versions
        ],
    }


def reverse_at(
    session: Session,
    ip: str | int,
    port: int,
    *,
    at: datetime,
    tolerance: timedelta = timedelta(0),
    realm: str | None = None,
    clock: Clock = utcnow,
    mappers: MapperCache = DEFAULT_MAPPERS,
    timelines: TimelineCache = DEFAULT_TIMELINES,
    revision: int | None = None,
    trace: dict[str, object] | None = None,
) -> answers.ReverseAnswer:
    """Who held ``ip:port`` at ``at`` (see the module docstring)."""
    return reverse_in(
        timelines.get(session, revision),
        ip,
        port,
        at=at,
        tolerance=tolerance,
        realm=realm,
        now=clock(),
        mappers=mappers,
        trace=trace,
    )


def reverse_in(
    snapshot: Timelines,
    ip: str | int,
    port: int,
    *,
    at: datetime,
    tolerance: timedelta,
    realm: str | None,
    now: datetime,
    mappers: MapperCache,
    trace: dict[str, object] | None = None,
) -> answers.ReverseAnswer:
    """:func:`reverse_at` on a snapshot the caller has (the API's lookup path)."""
    address = parse_public_address(ip, field="ip")
    check_port(port)
    return answer_reverse(
        snapshot,
        address,
        port,
        at=at,
        tolerance=tolerance,
        realm=realm,
        now=now,
        mappers=mappers,
        trace=trace,
    )


def forward_at(
    session: Session,
    subscriber: str,
    *,
    at: datetime,
    realm: str | None = None,
    clock: Clock = utcnow,
    mappers: MapperCache = DEFAULT_MAPPERS,
    timelines: TimelineCache = DEFAULT_TIMELINES,
    revision: int | None = None,
) -> answers.ForwardAnswer:
    """The allocation of ``subscriber`` under each plan in force at ``at`` (scheduled ones too)."""
    return forward_in(
        timelines.get(session, revision),
        subscriber,
        at=at,
        realm=realm,
        now=clock(),
        mappers=mappers,
    )


def forward_in(
    snapshot: Timelines,
    subscriber: str,
    *,
    at: datetime,
    realm: str | None,
    now: datetime,
    mappers: MapperCache,
) -> answers.ForwardAnswer:
    """:func:`forward_at` on a snapshot the caller has."""
    realms = [realm_timeline(snapshot, realm)] if realm is not None else list(snapshot.realms)
    candidates: list[answers.ForwardCandidate] = []
    in_force = 0
    last_error: QueryError | None = None
    for r in realms:
        index = r.in_force_at(at)
        if index < 0 or r.versions[index].plan is None:
            continue
        version = r.versions[index]
        in_force += 1
        try:
            allocation = mappers.get(version).forward(subscriber)
        except QueryError as exc:
            if realm is not None:
                raise
            last_error = exc
            continue
        candidates.append(
            {
                **allocation_json(allocation),
                **evidence_of(r, version),
                "static": allocation.static,
            }
        )
    decided: answers.Verdict
    if not candidates:
        if in_force and last_error is not None:
            raise QueryError(
                f"{subscriber!r} is a subscriber of no plan in force at {format_instant(at)} "
                f"({last_error.message})",
                field="query",
            )
        decided = {"status": Status.NO_PLAN_IN_FORCE, "reason": Reason.NO_PLAN}
    elif len(candidates) > 1:
        decided = {"status": Status.AMBIGUOUS, "reason": Reason.SEVERAL_REALMS}
    else:
        first = candidates[0]
        decided = {
            "status": Status.MATCH,
            "subscriber": first["subscriber"],
            "public_ip": first["public_ip"],
            "port_ranges": first["port_ranges"],
        }
    answer: answers.ForwardAnswer = {
        "query": subscriber,
        "time": format_instant(at),
        "candidates": candidates,
        "status": decided["status"],
    }
    if at > now:
        answer["scheduled"] = True
    return with_verdict(answer, decided)
