"""``detnat audit verify``: the chains hold, and the store is what the audit log says it made.

Three kinds of check, each reporting every break it finds (not only the first):

1. **Chains.** Every realm's plan versions (record and content hashes, links), the approvals (bound
   to the content hash, not by the publisher), and the audit log (seq without gaps, each link, each
   content hash recomputed, each entry hash), with the head row against the last entry.
2. **The store against the log.** Every row that decides an answer or who may ask — realms (their
   session drain and four-eyes setting), plan versions and retirements, approvals, tokens and
   their revocation, cases and their owner — was made by an audited action that recorded it
   (``detail.record``; rows older than migration 0004 by its ``store.baseline`` entry). A row
   without its entry, an entry without its row, or a row that differs from its entry is named.
   Derived state is recomputed: ``superseded`` only where a correction at the same instant says
   so, and the address ranges of every version (``plan_version_ranges``) from the plans. The
   subscriber directory's rows are held, per ingest, against the count and digest its
   ``directory.ingest`` entry recorded (:func:`detnat.service.directory.check_store`).
3. **Checkpoints.** The last one recorded in the database and the one given (an exported file):
   the audit entry and every realm's newest plan version they name must still be there, the same.

What this cannot see (``docs/trust.md``): a superuser who appends rows *and* their audit entries
after the last checkpoint kept outside the database acts exactly as detnat would.

Example (as the CLI prints it)::

    detnat: broken: realm aftr-fra-1: session_drain_us differs from audit entry 7 (realm.create)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from detnat.errors import DetnatError
from detnat.planfile import plan_from_data
from detnat.service import audit, directory, logs, plans, tokens
from detnat.store import repo
from detnat.store.models import AuditCheckpoint, AuditHead, PlanVersion

SHOWN = audit.SHOWN


@dataclass(frozen=True)
class Broken:
    """One broken link: where (``what`` and ``key``) and why."""

    what: str  # "audit" | "plan_versions" | "approval" | "realm" | "token" | "case" | "checkpoint"
    key: str
    why: str

    def __str__(self) -> str:
        return f"{self.what} {self.key}: {self.why}"


@dataclass(frozen=True)
class Checkpoint:
    """A head of the audit chain (and of every realm's plan chain) to hold the store against."""

    seq: int
    sha256: str
    plan_heads: dict[str, Any] = field(default_factory=dict)


# The actions that make rows, and the kind of row each records in ``detail.record``.
RECORDS = {
    "realm.create": "realms",
    "plan.publish": "versions",
    "plan.approve": "approvals",
    "token.create": "tokens",
    "token.revoke": "revocations",
    "case.open": "cases",
    "audit.checkpoint": "checkpoints",
    "logs.ingest": "log_ingests",
    "logs.prune": "log_prunes",
}
BASELINE = "store.baseline"
_LABEL = {
    "realms": "realm",
    "versions": "plan_versions",
    "approvals": "approval",
    "tokens": "token",
    "revocations": "token",
    "cases": "case",
    "checkpoints": "checkpoint",
    "log_ingests": "log_ingest",
    "log_prunes": "log_prune",
}


def _key(kind: str, record: dict[str, Any]) -> str:
    if kind in ("versions", "approvals"):
        return f"{record['realm']} v{record['version']}"
    if kind == "realms":
        return str(record["realm"])
    if kind == "cases":
        return repr(record["case"])
    if kind == "checkpoints":
        return str(record["checkpoint"])
    if kind == "log_ingests":
        return str(record["ingest"])
    if kind == "log_prunes":
        return str(record["prune"])
    return str(record["token_id"])


class _Expected:
    """The rows the audit log says were made: kind -> key -> (record, seq of its entry)."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, tuple[dict[str, Any], int]]] = {k: {} for k in _LABEL}
        self.malformed: list[Broken] = []
        self.ingests: dict[int, Any] = {}  # directory.ingest entries: seq -> detail.record

    def take(self, seq: int, action: str, detail: Any) -> None:
        try:
            if action == directory.ACTION:
                self.ingests[seq] = detail.get("record") if isinstance(detail, dict) else None
            elif action == BASELINE:
                for kind, records in detail["records"].items():
                    for record in records:
                        self.rows[kind][_key(kind, record)] = (record, seq)
            elif action in RECORDS and isinstance(detail, dict) and "record" in detail:
                kind = RECORDS[action]
                record = detail["record"]
                self.rows[kind][_key(kind, record)] = (record, seq)
        except (KeyError, TypeError, AttributeError):
            self.malformed.append(Broken("audit", f"entry {seq}", f"{action}: record malformed"))


def verify(
    session: Session, *, checkpoint: Checkpoint | None = None
) -> tuple[list[Broken], dict[str, Any]]:
    """Every check above; returns the broken links (at most :data:`SHOWN` per kind, then a
    count) and a summary."""
    broken: list[Broken] = []
    realms = list(repo.realms(session))
    versions = 0
    for realm in realms:
        versions += len(repo.history(session, realm.id))
        seq = plans.verify_chain(session, realm)
        if seq is not None:
            broken.append(
                Broken("plan_versions", f"{realm.name} v{seq}", "record or content hash altered")
            )
        for where, why in plans.verify_approvals(session, realm):
            broken.append(Broken("approval", f"{realm.name} {where}", why))

    marks: list[tuple[str, Checkpoint]] = []
    if checkpoint is not None:
        marks.append(("exported", checkpoint))
    last = session.scalars(
        select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(1)
    ).one_or_none()
    if last is not None:
        marks.append(("recorded", Checkpoint(last.seq, last.sha256, dict(last.plan_heads or {}))))

    expected = _Expected()
    chain, count, bad, hashes = _walk_audit(session, expected, {m.seq for _, m in marks})
    broken += chain
    broken += expected.malformed
    broken += _capped(_against_the_log(session, expected))
    broken += _capped(_derived_state(session, realms))
    broken += _capped(Broken(*found) for found in logs.verify_stored(session))
    found = directory.check_store(session, expected.ingests)
    broken += _capped(Broken("directory", key, why) for key, why in found)
    broken += _checkpoints(session, marks, hashes)
    current = session.get(AuditHead, 1)
    summary = {
        "realms": len(realms),
        "plan_versions": versions,
        "audit_entries": count,
        "broken_entries": bad,
        "head": {"seq": current.seq, "sha256": current.sha256} if current else None,
        "checkpoints_checked": len(marks),
        "ok": not broken,
    }
    return broken, summary


def _walk_audit(
    session: Session, expected: _Expected, wanted: set[int]
) -> tuple[list[Broken], int, int, dict[int, str]]:
    """The audit chain, entry by entry, in constant memory: (broken, entries, broken entries,
    entry hashes of the checkpointed seqs)."""
    broken: list[Broken] = []
    prev, expected_seq, count, bad = audit.GENESIS, 1, 0, 0
    hashes: dict[int, str] = {}
    for entry in audit.entries(session):
        count += 1
        if entry.seq in wanted:
            hashes[entry.seq] = entry.entry_sha256
        why = None
        if entry.seq != expected_seq:
            why = (
                f"expected entry {expected_seq} here: entries {expected_seq}..{entry.seq - 1} "
                "missing"
            )
        elif entry.prev_sha256 != prev:
            why = "prev_sha256 does not match the previous entry (removed, reordered or altered)"
        elif entry.content_sha256 != audit.sha256_text(audit.canonical(audit.content_of(entry))):
            why = "content altered (content_sha256 does not match the entry)"
        elif entry.entry_sha256 != audit.chain_hash(
            entry.seq, entry.prev_sha256, entry.content_sha256
        ):
            why = "entry_sha256 does not match (hash altered)"
        if why is not None:
            bad += 1
            if bad <= SHOWN:
                broken.append(Broken("audit", f"entry {entry.seq}", why))
        expected.take(entry.seq, entry.action, entry.detail)
        prev, expected_seq = entry.entry_sha256, entry.seq + 1
    if bad > SHOWN:
        broken.append(Broken("audit", "log", f"{bad} broken entries in all ({SHOWN} shown)"))
    current = session.get(AuditHead, 1)
    if current is None:
        broken.append(Broken("audit", "head", "the head row is missing (audit_head emptied)"))
    elif current.seq != expected_seq - 1 or current.sha256 != prev:
        broken.append(
            Broken(
                "audit",
                f"head {current.seq}",
                f"the head says entry {current.seq} {current.sha256[:12]}, the log ends at "
                f"{expected_seq - 1} {prev[:12]} (entries removed at the end?)",
            )
        )
    return broken, count, bad, hashes


def _store_rows(session: Session) -> dict[str, dict[str, dict[str, Any]]]:
    """The rows of the store as records, the same shapes the audited actions write."""
    rows: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in _LABEL}
    names = {}
    for realm in repo.realms(session):
        names[realm.id] = realm.name
        rows["realms"][realm.name] = plans.realm_record(realm)
        for version in repo.history(session, realm.id):
            record = plans.version_record(realm.name, version)
            rows["versions"][_key("versions", record)] = record
        for approval, version in repo.approvals(session, realm.id):
            record = plans.approval_record(realm.name, version.seq, approval)
            rows["approvals"][_key("approvals", record)] = record
    for token in repo.tokens(session):
        rows["tokens"][str(token.id)] = tokens.token_record(token)
        if token.revoked_at is not None or token.revoked_by is not None:
            rows["revocations"][str(token.id)] = tokens.revocation_record(token)
    for case in repo.cases(session):
        shown: dict[str, Any] = audit.case_record(case.ref, case.owner, case.role, case.created_at)
        rows["cases"][_key("cases", shown)] = shown
    for mark in repo.checkpoints(session):
        rows["checkpoints"][str(mark.id)] = audit.checkpoint_record(mark)
    for kind, key, record in logs.records(session, names):
        rows[kind][key] = record
    return rows


def _against_the_log(session: Session, expected: _Expected) -> Iterable[Broken]:
    actual = _store_rows(session)
    for kind, label in _LABEL.items():
        recorded, present = expected.rows[kind], actual[kind]
        for key in sorted(recorded.keys() | present.keys()):
            if key not in recorded:
                what = "revocation" if kind == "revocations" else "row"
                yield Broken(label, key, f"no audit entry made this {what} (made behind detnat?)")
                continue
            record, seq = recorded[key]
            if key not in present:
                gone = "revoked state" if kind == "revocations" else "row"
                yield Broken(label, key, f"audit entry {seq} made it, but the {gone} is missing")
                continue
            row = present[key]
            differing = sorted(k for k in record.keys() | row.keys() if record.get(k) != row.get(k))
            if differing:
                yield Broken(label, key, f"{', '.join(differing)} differs from audit entry {seq}")


def _derived_state(session: Session, realms: list[Any]) -> Iterable[Broken]:
    """``superseded`` and the address ranges, recomputed from the versions themselves."""
    ranges = repo.all_ranges(session)
    for realm in realms:
        history = list(repo.history(session, realm.id))
        for version in history:
            by = [
                c.seq
                for c in history
                if c.supersedes_id == version.id and c.effective_from == version.effective_from
            ]
            if version.superseded and not by:
                yield Broken(
                    "plan_versions",
                    f"{realm.name} v{version.seq}",
                    "marked superseded, but no correction at its instant supersedes it",
                )
            elif by and not version.superseded:
                yield Broken(
                    "plan_versions",
                    f"{realm.name} v{version.seq}",
                    f"superseded by v{by[0]} at the same instant, but not marked so",
                )
        timeline = sorted((v for v in history if not v.superseded), key=lambda v: v.effective_from)
        for n, version in enumerate(timeline):
            until = timeline[n + 1].effective_from if n + 1 < len(timeline) else None
            try:
                want = _ranges_of(version, until)
            except DetnatError as exc:
                ranges.pop(version.id, None)
                yield Broken("plan_versions", f"{realm.name} v{version.seq}", f"not a plan ({exc})")
                continue
            if ranges.pop(version.id, set()) != want:
                yield Broken(
                    "plan_versions",
                    f"{realm.name} v{version.seq}",
                    "its public address ranges (plan_version_ranges) are not the plan's",
                )
        for version in history:
            if version.superseded and ranges.pop(version.id, set()):
                yield Broken(
                    "plan_versions",
                    f"{realm.name} v{version.seq}",
                    "superseded, but still holds public address ranges",
                )
    for version_id in sorted(ranges):
        yield Broken("plan_version_ranges", f"version id {version_id}", "ranges of no version")


def _ranges_of(version: PlanVersion, until: datetime | None) -> set[repo.RangeRow]:
    if version.plan is None:
        return set()
    plan = plan_from_data(version.plan)
    return {
        (version.realm_id, first, last, version.effective_from, until)
        for first, last in plans.plan_address_ranges(plan)
    }


def _checkpoints(
    session: Session, marks: list[tuple[str, Checkpoint]], hashes: dict[int, str]
) -> list[Broken]:
    broken = []
    for kind, mark in marks:
        if not (mark.seq == 0 and mark.sha256 == audit.GENESIS) and hashes.get(mark.seq) != (
            mark.sha256
        ):
            broken.append(
                Broken(
                    "checkpoint",
                    f"{kind} {mark.seq}",
                    f"entry {mark.seq} is {'missing' if mark.seq not in hashes else 'different'}: "
                    "the log was altered after that checkpoint",
                )
            )
        for realm, head in sorted(mark.plan_heads.items()):
            if not isinstance(head, dict):
                broken.append(Broken("checkpoint", f"{kind} {mark.seq}", f"{realm}: malformed"))
                continue
            found = _version_hash(session, realm, head.get("version"))
            if found != head.get("record_sha256"):
                state = "missing" if found is None else "different"
                broken.append(
                    Broken(
                        "checkpoint",
                        f"{kind} {mark.seq}",
                        f"plan version {realm} v{head.get('version')} is {state}: plan versions "
                        "were removed or rewritten after that checkpoint",
                    )
                )
    return broken


def _version_hash(session: Session, realm_name: str, seq: object) -> str | None:
    realm = repo.realm_by_name(session, realm_name)
    if realm is None or not isinstance(seq, int):
        return None
    version = repo.version(session, realm.id, seq)
    return version.record_sha256 if version is not None else None


def _capped(found: Iterable[Broken]) -> list[Broken]:
    out: list[Broken] = []
    extra = 0
    for link in found:
        if len(out) < SHOWN:
            out.append(link)
        else:
            extra += 1
    if extra:
        out.append(Broken("store", "rows", f"{extra} more differences not shown"))
    return out


__all__ = ["Broken", "Checkpoint", "verify"]
