"""Exporting snapshots: the plan versions (and log intervals) of some realms over a period, for
workers without a database.

:func:`build` turns a :class:`~detnat.service.timelines.Timelines` view (what single lookups
answer from) into a snapshot body: per realm, every approved version that can be a candidate for
a window inside ``[start, end]`` (:func:`~detnat.service.timelines.candidate_range` of the
period: from the version in force at ``start`` minus the drain to the one in force at ``end``),
with when it stopped being in force and what replaced it, its content and hashes, the public
addresses it uses (for a retirement: those of the plan it ended); for a realm that has logs, its
log intervals that hold at some instant of the period. :func:`export` does it against
the store as an identity operation: it needs a case, opens or checks it, and writes one audit
entry (``snapshot.export``) carrying the snapshot's SHA-256, before the file leaves.

The file format and its checks live in :mod:`detnat.snapshot.file` (pure, read by workers).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from detnat import __version__
from detnat.errors import InvalidInput, NotFound
from detnat.logs.intervals import Interval
from detnat.service import audit, lookups
from detnat.service import logs as log_service
from detnat.service.timelines import TimelineCache, Timelines, candidate_range, to_us
from detnat.service.times import format_instant
from detnat.snapshot import file, jobs
from detnat.store import logs as log_store

ACTION = "snapshot.export"


def build(
    snapshot: Timelines,
    realms: Sequence[str],
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    case: str,
    logs: Mapping[str, Iterable[Interval]] | None = None,
) -> dict[str, Any]:
    """The body of the snapshot of ``realms`` over ``[start, end]`` answering as at ``now``.
    ``logs``: for each realm that has logs, its log intervals holding in the period."""
    if start > end:
        raise InvalidInput("--from is after --to", field="--from")
    if not realms:
        raise InvalidInput("name at least one realm", field="realms")
    if len(set(realms)) != len(realms):
        raise InvalidInput("a realm is named twice", field="realms")
    lo, hi = to_us(start), to_us(end)
    shown = []
    for name in sorted(realms):
        realm = lookups.realm_timeline(snapshot, name)
        versions: list[dict[str, Any]] = []
        if len(realm.versions):
            first, last = candidate_range(realm.starts_us, realm.drain_us, lo, hi)
            for i in range(int(first), int(last) + 1):
                v = realm.versions[i]
                until = realm.until(i)
                ended = realm.plan_ended_by(i) if v.plan is None else None
                ranges = v.ranges if v.plan is not None else (ended.ranges if ended else ())
                versions.append(
                    {
                        "id": v.id,
                        "seq": v.seq,
                        "effective_from_us": int(realm.starts_us[i]),
                        "valid_to_us": to_us(until) if until is not None else None,
                        "replaced_by": realm.versions[i + 1].seq if until is not None else None,
                        "plan": v.plan,
                        "content_sha256": v.content_sha256,
                        "record_sha256": v.record_sha256,
                        "correction": v.correction,
                        "ranges": [[a, b] for a, b in ranges],
                    }
                )
        shown_realm: dict[str, Any] = {
            "name": realm.name,
            "session_drain_us": realm.drain_us,
            "versions": versions,
        }
        if logs is not None and name in logs:
            shown_realm["logs"] = [file.interval_json(i) for i in logs[name]]
        shown.append(shown_realm)
    return {
        "format": file.FORMAT,
        "code_version": __version__,
        "case": case,
        "exported_at_us": to_us(now),
        "from_us": lo,
        "to_us": hi,
        "all_realms": set(realms) == set(snapshot.by_name),
        "realms": shown,
    }


@dataclass(frozen=True)
class Exported:
    """A snapshot file's bytes, its hash and the audit entry that recorded its export."""

    data: bytes
    sha256: str
    answer_id: int
    audit_sha256: str
    versions: int


def export(
    session: Session,
    actor: audit.Actor,
    realms: Sequence[str],
    *,
    start: datetime,
    end: datetime,
    case: str,
    now: datetime,
    request_id: str,
    cases: audit.CaseOwners | None = None,
) -> Exported:
    """Build the snapshot from the store, open (or check) the case and audit the export
    (flushed: the edge commits, then writes the file)."""
    audit.check_reference(case, field="--case")
    timelines = TimelineCache().get(session)
    logged = {
        name: (log_service.interval_of(row) for row in log_store.during(session, name, start, end))
        for name in realms
        if name in timelines.by_name and log_store.has_logs(session, name)
    }
    body = build(timelines, realms, start=start, end=end, now=now, case=case, logs=logged)
    data = file.encode(body)
    sha256 = file.sha256_of(data)
    (cases or audit.CaseOwners()).claim(session, case, actor, request_id=request_id)
    versions = [
        {"realm": r["name"], "id": v["id"], "seq": v["seq"], "content_sha256": v["content_sha256"]}
        for r in body["realms"]
        for v in r["versions"]
    ]
    log_intervals = {r["name"]: len(r["logs"]) for r in body["realms"] if "logs" in r}
    entry = audit.record(
        session,
        actor,
        ACTION,
        request_id=request_id,
        detail={
            "snapshot_sha256": sha256,
            "bytes": len(data),
            "realms": sorted(realms),
            "from": format_instant(start),
            "to": format_instant(end),
            "exported_at": format_instant(now),
            "all_realms": body["all_realms"],
            "versions": versions,
            "log_intervals": log_intervals,
        },
        case=case,
        status="exported",
    )
    return Exported(data, sha256, entry.seq, entry.entry_sha256, len(versions))


JOB_ACTION = "annotate.job"


def record_job(
    session: Session,
    actor: audit.Actor,
    summary: jobs.JobSummary,
    *,
    request_id: str,
    cases: audit.CaseOwners | None = None,
) -> audit.Recorded:
    """One annotation job's audit entry (``annotate.job``), after checking that its snapshot was
    exported from this store (a ``snapshot.export`` entry of the snapshot's case with its hash).
    Flushed: the edge commits."""
    audit.check_reference(summary.case, field="case")
    audit.check_reference(summary.snapshot_case, field="snapshot_case")
    exported = False
    for entry in audit.entries(session, case=summary.snapshot_case):  # read to the end: it
        # streams through a server-side cursor, which must not be left open
        exported |= (
            entry.action == ACTION
            and entry.detail.get("snapshot_sha256") == summary.snapshot_sha256
        )
    if not exported:
        raise NotFound(
            f"no export of snapshot {summary.snapshot_sha256[:16]}... in case "
            f"{summary.snapshot_case!r}: it was not made by this store",
            field="snapshot_sha256",
        )
    (cases or audit.CaseOwners()).claim(session, summary.case, actor, request_id=request_id)
    return audit.record(
        session,
        actor,
        JOB_ACTION,
        request_id=request_id,
        detail=summary.to_json(),
        case=summary.case,
        status="recorded",
    )


__all__ = ["ACTION", "JOB_ACTION", "Exported", "build", "export", "record_job"]
