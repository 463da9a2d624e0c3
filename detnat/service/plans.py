"""Realms and their plan timelines: create, publish (scheduled, corrections), history.

Publishing locks the realm row (``SELECT ... FOR UPDATE``), so concurrent publishers into one realm
queue up and each sees the timeline the previous one left; publishers into different realms race
only on the address-range exclusion constraint, which Postgres settles.

One module at this size: realms, publishing, corrections, approvals and their chains are one
timeline's rules.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.dialects.postgresql import Range
from sqlalchemy.orm import Session

from detnat.engine import Plan, compile_plan, format_ipv4
from detnat.errors import Conflict, InvalidInput, NotFound
from detnat.planfile import canonical_json
from detnat.service import audit
from detnat.service.clock import Clock as Clock  # re-exported: callers use plans.utcnow
from detnat.service.clock import utcnow as utcnow
from detnat.service.mappers import HasPlan as HasPlan  # re-exported
from detnat.service.mappers import MapperCache as MapperCache
from detnat.service.times import format_duration, format_instant
from detnat.store import repo
from detnat.store.models import PlanApproval, PlanVersion, PlanVersionRange, Realm

_REALM_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
MAX_TEXT = 2000
# The last instant a version may take effect: answers add drains and windows to a version's
# start and end, which must stay inside the calendar (year 9999 left no room: every lookup of
# the realm overflowed). Later than any real plan; earlier than 9999, a typo for "for ever".
LAST_EFFECTIVE = datetime(9000, 1, 1, tzinfo=UTC)


def check_text(value: str, *, field: str, required: bool = True) -> str:
    """Text that ends up in the record: no control characters, bounded, not blank if required."""
    if required and not value.strip():
        raise InvalidInput("must not be empty", field=field)
    if len(value) > MAX_TEXT:
        raise InvalidInput(f"longer than {MAX_TEXT} characters", field=field)
    for ch in value:
        if ord(ch) < 32 or ord(ch) == 127 or 0xD800 <= ord(ch) <= 0xDFFF or ch in "\u202e\u202d":
            raise InvalidInput(f"contains a control character ({ord(ch):#x})", field=field)
    return value


# -- realms ----------------------------------------------------------------------------------------


def create_realm(
    session: Session,
    name: str,
    *,
    session_drain: timedelta,
    by: audit.Actor,
    request_id: str = "-",
    description: str = "",
    single_approver: bool = False,
) -> Realm:
    """A new realm (audited: ``realm.create``). ``single_approver`` opts out of four-eyes
    publishing (labs), for good: realms are immutable once created."""
    if not _REALM_NAME.fullmatch(name):
        raise InvalidInput(
            f"{name!r} is not a realm name (lowercase letters, digits, . _ -, at most 63)",
            field="name",
        )
    if session_drain < timedelta(0) or session_drain > timedelta(days=30):
        raise InvalidInput("must be between 0 and 30 days", field="session_drain")
    check_text(description, field="description", required=False)
    if repo.realm_by_name(session, name) is not None:
        raise Conflict(f"realm {name!r} already exists")
    realm = Realm(
        name=name,
        session_drain=session_drain,
        description=description,
        single_approver=single_approver,
    )
    session.add(realm)
    repo.flush(session)
    session.refresh(realm)
    _audit(session, by, "realm.create", request_id, realm_record(realm))
    return realm


def realm_record(realm: Realm) -> dict[str, object]:
    """What ``realm.create`` records of a realm (and ``audit verify`` holds the row against)."""
    return {
        "realm": realm.name,
        "id": realm.id,
        "description": realm.description,
        "session_drain_us": realm.session_drain // timedelta(microseconds=1),
        "single_approver": realm.single_approver,
        "created_at": format_instant(realm.created_at),
    }


def version_record(realm_name: str, version: PlanVersion) -> dict[str, object]:
    """What ``plan.publish`` records of a version: its record hash covers all it says; the id
    is what answers name as the version id."""
    return {
        "realm": realm_name,
        "version": version.seq,
        "id": version.id,
        "record_sha256": version.record_sha256,
    }


def approval_record(realm_name: str, seq: int, approval: PlanApproval) -> dict[str, object]:
    """What ``plan.approve`` records of an approval."""
    return {
        "realm": realm_name,
        "version": seq,
        "content_sha256": approval.content_sha256,
        "approved_by": approval.approved_by,
        "approved_at": format_instant(approval.approved_at),
        "single_approver": approval.single_approver,
        "approved_by_token": approval.approved_by_token,
    }


def _audit(
    session: Session, by: audit.Actor, action: str, request_id: str, record: dict[str, object]
) -> None:
    audit.record(session, by, action, request_id=request_id, detail={"record": record})


def get_realm(session: Session, name: str, *, for_update: bool = False) -> Realm:
    realm = repo.realm_by_name(session, name, for_update=for_update)
    if realm is None:
        raise NotFound(f"no realm named {name!r}", field="realm")
    return realm


def realm_json(session: Session, realm: Realm) -> dict[str, object]:
    last = repo.last_published(session, realm.id)
    return {
        "name": realm.name,
        "description": realm.description,
        "session_drain": format_duration(realm.session_drain),
        "session_drain_seconds": realm.session_drain.total_seconds(),
        "created_at": format_instant(realm.created_at),
        "versions": last.seq if last else 0,
        "single_approver": realm.single_approver,
    }


# -- mappers ---------------------------------------------------------------------------------------


# -- publishing ------------------------------------------------------------------------------------


def plan_address_ranges(plan: Plan) -> list[tuple[int, int]]:
    """The public IPv4 addresses a plan uses, as merged inclusive ranges."""
    return plan.public_ranges()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def content_hash(plan: dict[str, Any]) -> str:
    """SHA-256 of a stored plan's canonical JSON (what ``content_sha256`` must be)."""
    return _sha256(json.dumps(plan, sort_keys=True, separators=(",", ":")))


def record_hash(version: PlanVersion, realm_name: str, supersedes_seq: int | None) -> str:
    """What the hash chain covers: everything published about the version, and its predecessor."""
    record = {
        "realm": realm_name,
        "seq": version.seq,
        "effective_from": format_instant(version.effective_from),
        "content_sha256": version.content_sha256,
        "prev_sha256": version.prev_sha256,
        "published_at": format_instant(version.published_at),
        "published_by": version.published_by,
        "reason": version.reason,
        "correction": version.correction,
        "supersedes": supersedes_seq,
    }
    return _sha256(json.dumps(record, sort_keys=True, separators=(",", ":")))


def publish(
    session: Session,
    realm_name: str,
    plan: Plan | None,
    *,
    effective_from: datetime | None,
    reason: str,
    by: audit.Actor,
    request_id: str = "-",
    correction: bool = False,
    clock: Clock = utcnow,
) -> PlanVersion:
    """Append a plan version (``plan=None`` retires the realm from ``effective_from`` on),
    audited (``plan.publish``) in the same transaction.

    ``effective_from=None`` means now, as this publish reads the clock (after taking the lock).
    """
    check_text(reason, field="reason")
    published_by = by.name
    check_text(published_by, field="published_by")
    realm = get_realm(session, realm_name, for_update=True)
    now = clock()
    if effective_from is None:
        effective_from = now
    if effective_from >= LAST_EFFECTIVE:
        raise InvalidInput(
            f"{format_instant(effective_from)} is too far ahead: a version takes effect before "
            f"{format_instant(LAST_EFFECTIVE)}",
            field="effective_from",
        )
    if effective_from < now and not correction:
        raise InvalidInput(
            f"{format_instant(effective_from)} is in the past; publishing there is a correction "
            "(--correction, with a --reason naming the change)",
            field="effective_from",
        )
    if effective_from <= now and not correction and not realm.single_approver:
        # a four-eyes version takes effect only if approved before then (see approve): one
        # effective now could never be approved, and would hold its addresses while pending
        raise InvalidInput(
            f"realm {realm.name!r} needs a second admin's approval before a version takes "
            "effect: give a later --effective-from (and approve it before then), or record a "
            "change already made as a --correction",
            field="effective_from",
        )
    content: dict[str, Any] | None = None
    content_sha: str | None = None
    ranges: list[tuple[int, int]] = []
    if plan is not None:
        compile_plan(plan)  # the whole-plan checks (capacity, overlaps ...)
        text = canonical_json(plan)
        content, content_sha = json.loads(text), _sha256(text)
        ranges = plan_address_ranges(plan)

    same_instant = repo.at_instant(session, realm.id, effective_from)
    supersedes: PlanVersion | None = None
    if same_instant is not None:
        if not correction:
            raise Conflict(
                f"realm {realm.name!r} already has version {same_instant.seq} effective at "
                f"{format_instant(effective_from)}; to replace it publish a correction"
            )
        supersedes = same_instant  # marked superseded by the INSERT below (trigger, 0004)
        repo.drop_ranges(session, same_instant.id)
    before = repo.in_force_at(session, realm.id, effective_from - timedelta(microseconds=1))
    if before is not None and before.id != getattr(supersedes, "id", None):
        if correction and supersedes is None:
            supersedes = before  # partly: it stays in force until the correction takes over
        repo.cut_validity(session, before.id, effective_from)
    following = repo.next_after(session, realm.id, effective_from)
    until = following.effective_from if following is not None else None

    for first, last in ranges:
        clash = repo.overlapping_ranges(session, realm.id, first, last, effective_from, until)
        if clash is not None:
            other = session.get(Realm, clash.realm_id)
            owner = session.get(PlanVersion, clash.version_id)
            assert other is not None and owner is not None
            raise Conflict(
                f"public addresses {format_ipv4(max(first, clash.addresses.lower or 0))}... are "
                f"also in realm {other.name!r} version {owner.seq} at that time; an address "
                "belongs to one realm at a time"
            )

    for first, last in ranges:
        _free_while_approved(session, realm.id, first, last, effective_from, until)

    last_version = repo.last_published(session, realm.id)
    version = PlanVersion(
        realm_id=realm.id,
        seq=(last_version.seq + 1) if last_version else 1,
        effective_from=effective_from,
        plan=content,
        content_sha256=content_sha,
        prev_sha256=last_version.record_sha256 if last_version else None,
        published_at=now,
        published_by=published_by,
        reason=reason,
        correction=correction,
        supersedes_id=supersedes.id if supersedes else None,
        superseded=False,
    )
    version.record_sha256 = record_hash(version, realm.name, supersedes.seq if supersedes else None)
    session.add(version)
    repo.flush(session)
    repo.add_ranges(
        session,
        [
            PlanVersionRange(
                version_id=version.id,
                realm_id=realm.id,
                addresses=Range(first, last, bounds="[]"),
                validity=Range(effective_from, until, bounds="[)"),
            )
            for first, last in ranges
        ],
    )
    repo.flush(session)
    _audit(session, by, "plan.publish", request_id, version_record(realm.name, version))
    if realm.single_approver:
        approval = PlanApproval(
            version_id=version.id,
            content_sha256=version.content_sha256,
            approved_by=published_by,
            approved_at=now,
            single_approver=True,
            approved_by_token=by.token_id,
        )
        session.add(approval)
        repo.flush(session)
        _audit(
            session,
            by,
            "plan.approve",
            request_id,
            approval_record(realm.name, version.seq, approval),
        )
    return version


def _free_while_approved(
    session: Session,
    realm_id: int,
    first: int,
    last: int,
    start: datetime,
    until: datetime | None,
) -> None:
    """Refuse [first, last] during [start, until) where another realm's *approved* timeline
    holds it. The ranges (and their constraint) follow every published version, so a pending
    version that moves its realm off a pool frees the pool there at once; lookups use approved
    versions only, and for them the version before it still holds the pool until it is approved.
    """
    approved: dict[int, list[PlanVersion]] = {}  # realm id -> its approved timeline
    for held in repo.other_versions_with_addresses(session, realm_id, first, last):
        if held.realm_id not in approved:
            approved[held.realm_id] = [
                v for _, v in repo.approvals(session, held.realm_id) if not v.superseded
            ]
        timeline = approved[held.realm_id]
        if held not in timeline:
            continue
        ends = [v.effective_from for v in timeline if v.effective_from > held.effective_from]
        end = min(ends) if ends else None
        if (until is None or held.effective_from < until) and (end is None or start < end):
            other = session.get(Realm, held.realm_id)
            assert other is not None
            raise Conflict(
                f"public addresses {format_ipv4(first)}-{format_ipv4(last)} are held by realm "
                f"{other.name!r} version {held.seq} (approved) at that time, until a version "
                "after it is approved; an address belongs to one realm at a time"
            )


def approve(
    session: Session,
    realm_name: str,
    seq: int,
    *,
    by: audit.Actor,
    request_id: str = "-",
    content_sha256: str | None = None,
    clock: Clock = utcnow,
) -> PlanApproval:
    """The second admin's approval (audited: ``plan.approve``): from then on lookups use the
    version.

    ``content_sha256``, when given, must be the version's (the approver says what they read);
    the approval is bound to the version's content hash either way (and Postgres checks it).
    Four eyes means two people: the publisher may not approve under any name, nor with a token
    that they made (or that a token of theirs made, and so on up the chain of creators).
    """
    approved_by = by.name
    check_text(approved_by, field="approved_by")
    realm = get_realm(session, realm_name, for_update=True)
    version = get_version(session, realm, seq)
    if version.superseded:
        raise Conflict(f"{realm.name} version {seq} is superseded by a correction")
    if content_sha256 is not None and content_sha256 != version.content_sha256:
        raise Conflict(
            f"{realm.name} version {seq} has content {version.content_sha256}, not "
            f"{content_sha256}: approve what was published"
        )
    if repo.approval_of(session, version.id) is not None:
        raise Conflict(f"{realm.name} version {seq} is already approved")
    now = clock()
    if version.effective_from < now and not version.correction:
        # Until approved it was not in force: lookups (and a datapath applied as they see it)
        # used the version before it. Approving now would rewrite the answers of that stretch
        # without the correction flag that says so.
        raise Conflict(
            f"{realm.name} version {seq} was to take effect at "
            f"{format_instant(version.effective_from)}, before this approval; until now the "
            "version before it was in force. Publish it again effective from a later instant, "
            "or as a correction (--correction) if the datapath did change then"
        )
    if audit.same_person(version.published_by, approved_by) and not realm.single_approver:
        raise Conflict(
            f"{realm.name} version {seq} was published by {approved_by}; a different admin "
            "must approve it (four eyes)"
        )
    if not realm.single_approver:
        maker = repo.token_made_by(
            session, by.token_id, lambda maker: audit.same_person(maker, version.published_by)
        )
        if maker is not None:
            raise Conflict(
                f"{realm.name} version {seq} was published by {version.published_by}, who made "
                f"the token this approval comes with (token {maker}); a different admin must "
                "approve it with a token of their own (four eyes)"
            )
        # The mirror: whoever makes a token sees it once, so a version published with a token
        # the approver made (up the chain) may be the approver's own under another name.
        made = repo.token_made_by(
            session,
            repo.publishing_token(session, version.id),
            lambda maker: audit.same_person(maker, approved_by),
        )
        if made is not None:
            raise Conflict(
                f"{realm.name} version {seq} was published with a token that {approved_by} made "
                f"(token {made}); a different admin must approve it (four eyes)"
            )
    approval = PlanApproval(
        version_id=version.id,
        content_sha256=version.content_sha256,
        approved_by=approved_by,
        approved_at=now,
        single_approver=realm.single_approver,
        approved_by_token=by.token_id,
    )
    session.add(approval)
    repo.flush(session)
    _audit(session, by, "plan.approve", request_id, approval_record(realm.name, seq, approval))
    return approval


def verify_approvals(session: Session, realm: Realm) -> list[tuple[str, str]]:
    """Approvals that do not hold: (version, why)."""
    problems = []
    for approval, version in repo.approvals(session, realm.id):
        if approval.content_sha256 != version.content_sha256:
            problems.append((f"v{version.seq}", "approval bound to another content hash"))
        elif (
            audit.same_person(approval.approved_by, version.published_by)
            and not approval.single_approver
        ):
            problems.append((f"v{version.seq}", "approved by its own publisher"))
    return problems


def retire(
    session: Session,
    realm_name: str,
    *,
    effective_from: datetime,
    reason: str,
    by: audit.Actor,
    request_id: str = "-",
    correction: bool = False,
    clock: Clock = utcnow,
) -> PlanVersion:
    return publish(
        session,
        realm_name,
        None,
        effective_from=effective_from,
        reason=reason,
        by=by,
        request_id=request_id,
        correction=correction,
        clock=clock,
    )


def get_version(session: Session, realm: Realm, seq: int | None) -> PlanVersion:
    found = (
        repo.last_published(session, realm.id)
        if seq is None
        else repo.version(session, realm.id, seq)
    )
    if found is None:
        raise NotFound(
            f"realm {realm.name!r} has no version {seq}" if seq is not None else "no versions yet",
            field="version",
        )
    return found


def version_json(
    session: Session, realm: Realm, version: PlanVersion, *, with_plan: bool = False
) -> dict[str, object]:
    supersedes = session.get(PlanVersion, version.supersedes_id) if version.supersedes_id else None
    out: dict[str, object] = {
        "realm": realm.name,
        "version": version.seq,
        "effective_from": format_instant(version.effective_from),
        "retired": version.plan is None,
        "content_sha256": version.content_sha256,
        "prev_sha256": version.prev_sha256,
        "record_sha256": version.record_sha256,
        "published_at": format_instant(version.published_at),
        "published_by": version.published_by,
        "reason": version.reason,
        "correction": version.correction,
        "supersedes": supersedes.seq if supersedes else None,
        "superseded": version.superseded,
    }
    approval = repo.approval_of(session, version.id)
    out["approved"] = approval is not None
    out["approved_by"] = approval.approved_by if approval else None
    out["approved_at"] = format_instant(approval.approved_at) if approval else None
    if with_plan:
        out["plan"] = version.plan
    return out


def verify_chain(session: Session, realm: Realm) -> int | None:
    """The seq of the first version whose record hash or link is broken, None if all hold."""
    prev: str | None = None
    by_id = {v.id: v for v in repo.history(session, realm.id)}
    for version in by_id.values():
        sup = by_id.get(version.supersedes_id) if version.supersedes_id else None
        if version.supersedes_id is not None and sup is None:
            return version.seq  # it names a version of another realm, or none
        if version.prev_sha256 != prev or version.record_sha256 != record_hash(
            version, realm.name, sup.seq if sup else None
        ):
            return version.seq
        if version.plan is not None and version.content_sha256 != content_hash(version.plan):
            return version.seq
        prev = version.record_sha256
    return None


def list_realms(session: Session) -> list[Realm]:
    return list(repo.realms(session))


def history(session: Session, realm: Realm) -> list[PlanVersion]:
    return list(repo.history(session, realm.id))
