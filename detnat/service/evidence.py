"""Evidence files: one reverse answer, self-contained, that anyone can check offline.

An evidence file (JSON, ``format: detnat-evidence/1``) holds the query as given and as
normalised, the answer, the full content and hashes of every plan version the answer was computed
from (per realm: from the first candidate to the first version after the window, with the realm's
session drain), the audit entry of the lookup with its hashes, and the code version.

:func:`verify` needs no database: it recomputes each plan's content hash and record hash, the
audit entry's content and chain hashes, and the answer itself from the embedded plans with the
same rules as the service (:func:`detnat.service.lookups.answer_reverse`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from detnat import __version__
from detnat.engine import parse_public_address
from detnat.errors import InvalidInput, NotFound
from detnat.planfile import plan_from_data
from detnat.service import audit, lookups, plans
from detnat.service.timelines import RealmTimeline, Timelines, make_version
from detnat.service.times import format_instant, parse_instant
from detnat.store import repo
from detnat.store.models import AuditEntry, PlanVersion

FORMAT = "detnat-evidence/1"


def _version_record(session: Session, realm: str, version: PlanVersion) -> dict[str, Any]:
    supersedes = session.get(PlanVersion, version.supersedes_id) if version.supersedes_id else None
    approval = repo.approval_of(session, version.id)
    return {
        "id": version.id,
        "realm": realm,
        "seq": version.seq,
        "effective_from": format_instant(version.effective_from),
        "plan": version.plan,
        "content_sha256": version.content_sha256,
        "prev_sha256": version.prev_sha256,
        "record_sha256": version.record_sha256,
        "published_at": format_instant(version.published_at),
        "published_by": version.published_by,
        "reason": version.reason,
        "correction": version.correction,
        "supersedes": supersedes.seq if supersedes else None,
        "approved_by": approval.approved_by if approval else None,
    }


def lookup_entry(session: Session, answer_id: int) -> AuditEntry:
    entry = session.get(AuditEntry, answer_id)
    if entry is None or not entry.action.startswith("lookup."):
        raise NotFound(f"no answer {answer_id}", field="answer_id")
    return entry


def build(session: Session, answer_id: int) -> dict[str, Any]:
    """The evidence file of the reverse answer ``answer_id`` (its audit entry's seq)."""
    entry = lookup_entry(session, answer_id)
    if entry.action != "lookup.reverse":
        raise NotFound(
            f"answer {answer_id} is a {entry.action.removeprefix('lookup.')} lookup; evidence "
            "files are made for single reverse lookups",
            field="answer_id",
        )
    trace = entry.detail["trace"]
    realms: dict[str, Any] = {}
    for name, excerpt in trace["realms"].items():
        ids = set(excerpt["version_ids"])
        rows = repo.versions_by_id(session, ids)
        realms[name] = {
            "session_drain_seconds": excerpt["session_drain_seconds"],
            "versions": [_version_record(session, name, rows[i]) for i in excerpt["version_ids"]],
        }
    return {
        "format": FORMAT,
        "code_version": __version__,
        "query": entry.detail["query"],
        "answer": entry.detail["answer"],
        "realms": realms,
        "audit_entry": audit.entry_json(entry),
    }


def _check(condition: bool, problems: list[str], message: str) -> None:
    if not condition:
        problems.append(message)


def verify(document: Any) -> tuple[list[str], dict[str, Any] | None]:
    """Check an evidence file offline: (problems, the recomputed answer). No problems: valid."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise InvalidInput(f"not a {FORMAT} file", field="format")
    problems: list[str] = []
    try:
        entry = document["audit_entry"]
        fields = audit.CONTENT_FIELDS
        content = {k: entry[k] for k in fields}
        digest = audit.sha256_text(audit.canonical(content))
        _check(
            digest == entry["content_sha256"],
            problems,
            f"audit entry {entry['seq']}: content does not match its content_sha256",
        )
        _check(
            audit.chain_hash(entry["seq"], entry["prev_sha256"], entry["content_sha256"])
            == entry["entry_sha256"],
            problems,
            f"audit entry {entry['seq']}: entry_sha256 does not match its chain link",
        )
        detail = entry["detail"]
        _check(
            detail["answer"] == document["answer"], problems, "answer differs from the audit entry"
        )
        _check(detail["query"] == document["query"], problems, "query differs from the audit entry")
        realms = []
        for n, (name, part) in enumerate(sorted(document["realms"].items())):
            versions = []
            for record in part["versions"]:
                versions.append(_checked_version(record, problems))
            versions.sort(key=lambda v: v.effective_from)
            drain = timedelta(seconds=part["session_drain_seconds"])
            realms.append(RealmTimeline(n + 1, name, drain, tuple(versions)))
        answer = document["answer"]
        query = document["query"]
        recomputed = lookups.answer_reverse(
            Timelines(0, realms),
            parse_public_address(answer["ip"], field="ip"),
            int(answer["port"]),
            at=parse_instant(answer["time"]),
            tolerance=timedelta(seconds=answer["tolerance_seconds"]),
            realm=query.get("realm"),
            now=parse_instant(detail["trace"]["now"]),
            mappers=plans.MapperCache(),
        )
    except (KeyError, TypeError, ValueError, InvalidInput) as exc:
        problems.append(f"malformed evidence file: {type(exc).__name__}: {exc}")
        return problems, None
    shown = {k: v for k, v in answer.items() if k != "pending_approval"}
    if recomputed != shown:
        if not answer.get("candidates"):
            problems.append(
                "no plan held the address: the evidence embeds no plan to recompute that from"
            )
        else:
            problems.append("recomputing the answer from the embedded plans gives another answer")
    return problems, recomputed


def _checked_version(record: dict[str, Any], problems: list[str]) -> Any:
    where = f"{record['realm']} v{record['seq']}"
    plan = record["plan"]
    if plan is not None:
        _check(
            plans.content_hash(plan) == record["content_sha256"],
            problems,
            f"{where}: plan content does not match its content_sha256",
        )
    row = PlanVersion(
        seq=record["seq"],
        effective_from=parse_instant(record["effective_from"]),
        content_sha256=record["content_sha256"],
        prev_sha256=record["prev_sha256"],
        published_at=parse_instant(record["published_at"]),
        published_by=record["published_by"],
        reason=record["reason"],
        correction=record["correction"],
    )
    _check(
        plans.record_hash(row, record["realm"], record["supersedes"]) == record["record_sha256"],
        problems,
        f"{where}: record does not match its record_sha256",
    )
    ranges: list[tuple[int, int]] = []
    if plan is not None:
        ranges = plans.plan_address_ranges(plan_from_data(plan))
    return make_version(
        id=record["id"],
        seq=record["seq"],
        effective_from=row.effective_from,
        plan=plan,
        content_sha256=record["content_sha256"],
        record_sha256=record["record_sha256"],
        correction=record["correction"],
        ranges=ranges,
    )
