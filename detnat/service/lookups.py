"""Lookups at an instant: "who held A:P at T" and "what did S get at T", from the timeline.

The window searched is ``[T - tolerance, T + tolerance]`` (never past now). A version is a
candidate when it was in force at some instant of the window, or when its successor took over less
than the realm's ``session_drain`` before the window starts (sessions opened under it live on):
that is the window widened backwards by the drain. Every candidate is evaluated; the answer is
``match`` only when every candidate names the same subscriber with the same public address and
ports.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from detnat.engine import format_ipv4, parse_public_address
from detnat.engine import non_public_reason
from detnat.errors import QueryError
from detnat.service.plans import Clock, MapperCache, get_realm, utcnow
from detnat.service.times import format_instant
from detnat.store import repo
from detnat.store.models import PlanVersion, Realm

MATCH, AMBIGUOUS, NO_MAPPING = "match", "ambiguous", "no_mapping"
NOT_DETERMINISTIC, NO_PLAN, FUTURE = "not_deterministic", "no_plan_in_force", "future"

DEFAULT_MAPPERS = MapperCache()


@dataclass(frozen=True)
class _Span:
    realm: Realm
    version: PlanVersion
    until: datetime | None  # the next change of the realm's timeline


def _spans(session: Session, realm: Realm, start: datetime, end: datetime) -> list[_Span]:
    versions = repo.timeline_between(session, realm.id, start - realm.session_drain, end)
    if not versions:
        return []
    following = repo.next_after(session, realm.id, end)
    bounds = [v.effective_from for v in versions[1:]] + [
        following.effective_from if following else None
    ]
    return [_Span(realm, v, until) for v, until in zip(versions, bounds, strict=True)]


def _covers(span: _Span, start: datetime, end: datetime) -> dict[str, object]:
    lo = max(span.version.effective_from, start)
    hi = end if span.until is None else min(end, span.until + span.realm.session_drain)
    return {
        "from": format_instant(lo),
        "to": format_instant(hi),
        "in_drain_only": span.until is not None and span.until <= start,
    }


def _evidence(span: _Span) -> dict[str, object]:
    return {
        "realm": span.realm.name,
        "version": span.version.seq,
        "content_sha256": span.version.content_sha256,
        "effective_from": format_instant(span.version.effective_from),
        "correction": span.version.correction,
    }


def _nearest_change(spans: list[_Span], at: datetime) -> dict[str, object] | None:
    changes = {(s.version.effective_from, s.realm.name, s.version.seq) for s in spans}
    changes |= {(s.until, s.realm.name, -1) for s in spans if s.until is not None}
    if not changes:
        return None
    moment, realm, _ = min(changes, key=lambda c: abs((c[0] - at).total_seconds()))
    return {
        "at": format_instant(moment),
        "realm": realm,
        "seconds_from_time": (moment - at).total_seconds(),
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
) -> dict[str, object]:
    address = parse_public_address(ip, field="ip")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise QueryError(f"port {port!r} is outside 0-65535", field="port")
    now = clock()
    start, end = at - tolerance, min(at + tolerance, now)
    answer: dict[str, object] = {
        "ip": format_ipv4(address),
        "port": port,
        "time": format_instant(at),
        "tolerance_seconds": tolerance.total_seconds(),
        "window": {"from": format_instant(start), "to": format_instant(at + tolerance)},
    }
    if at > now:
        return {**answer, "status": FUTURE, "reason": "after_now", "candidates": []}

    if realm is not None:
        spans = _spans(session, get_realm(session, realm), start, end)
    else:
        hits = repo.versions_holding(session, address, start, end)
        realms = repo.realms_by_id(session, {r for r, _ in hits})
        wanted = {v for _, v in hits}
        spans = [
            span
            for r in realms.values()
            for span in _spans(session, r, start, end)
            if span.version.id in wanted
        ]
    answer["nearest_change"] = _nearest_change(spans, at)

    candidates: list[dict[str, object]] = []
    for span in sorted(spans, key=lambda s: (s.version.effective_from, s.realm.name)):
        if span.version.plan is None:
            continue  # a retirement: no plan in force for that part of the window
        result = mappers.get(span.version).reverse(address, port).to_json()
        candidates.append({**result, **_evidence(span), "covers": _covers(span, start, end)})
    answer["candidates"] = candidates

    if not candidates:
        if realm is None and repo.any_plan_between(session, start, end):
            what = non_public_reason(address)
            if what is not None:
                raise QueryError(
                    f"{format_ipv4(address)} is {what}, not a public address of any plan",
                    field="ip",
                )
            return {**answer, "status": NO_MAPPING, "reason": "not_in_pool"}
        return {**answer, "status": NO_PLAN, "reason": "no_plan"}

    distinct = {
        (
            c["status"],
            c.get("reason"),
            c.get("subscriber"),
            c.get("public_ip"),
            str(c.get("port_ranges")),
        )
        for c in candidates
    }
    statuses = {c["status"] for c in candidates}
    if len(distinct) == 1 and statuses == {MATCH}:
        first = candidates[0]
        return {
            **answer,
            "status": MATCH,
            "subscriber": first["subscriber"],
            "public_ip": first["public_ip"],
            "port_ranges": first["port_ranges"],
        }
    if MATCH in statuses:
        return {**answer, "status": AMBIGUOUS, "reason": "candidates_differ"}
    if NOT_DETERMINISTIC in statuses:
        return {**answer, "status": NOT_DETERMINISTIC, "reason": "dynamic_block"}
    reasons = sorted({str(c.get("reason")) for c in candidates})
    return {**answer, "status": NO_MAPPING, "reason": reasons[0] if len(reasons) == 1 else "mixed"}


def forward_at(
    session: Session,
    subscriber: str,
    *,
    at: datetime,
    realm: str | None = None,
    clock: Clock = utcnow,
    mappers: MapperCache = DEFAULT_MAPPERS,
) -> dict[str, object]:
    """The allocation of ``subscriber`` under each plan in force at ``at`` (scheduled ones too)."""
    realms = [get_realm(session, realm)] if realm is not None else list(repo.realms(session))
    answer: dict[str, object] = {"query": subscriber, "time": format_instant(at)}
    if at > clock():
        answer["scheduled"] = True
    candidates: list[dict[str, object]] = []
    in_force = 0
    last_error: QueryError | None = None
    for r in realms:
        version = repo.in_force_at(session, r.id, at)
        if version is None or version.plan is None:
            continue
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
                **allocation.to_json(),
                **_evidence(_Span(r, version, None)),
                "static": allocation.static,
            }
        )
    answer["candidates"] = candidates
    if not candidates:
        if in_force and last_error is not None:
            raise QueryError(
                f"{subscriber!r} is a subscriber of no plan in force at {format_instant(at)} "
                f"({last_error.message})",
                field="query",
            )
        return {**answer, "status": NO_PLAN, "reason": "no_plan"}
    if len(candidates) > 1:
        return {**answer, "status": AMBIGUOUS, "reason": "several_realms"}
    first = candidates[0]
    return {
        **answer,
        "status": MATCH,
        "subscriber": first["subscriber"],
        "public_ip": first["public_ip"],
        "port_ranges": first["port_ranges"],
    }
