"""Queries over the plan store: rows in, rows out. The rules live in :mod:`detnat.service`.

One module at this size: every SQL statement of the store in one place, grouped by table, so
queries are found where the tables are.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import BigInteger, cast, delete, exists, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from detnat.errors import Conflict, DetnatError
from detnat.store import lean
from detnat.store.models import (
    ApiToken,
    AuditCheckpoint,
    AuditEntry,
    Case,
    PlanApproval,
    PlanVersion,
    PlanVersionRange,
    Realm,
    StoreRevision,
)


def conflict_from(exc: IntegrityError) -> Conflict:
    """A clear :class:`Conflict` for a constraint violation (never the raw driver error)."""
    return lean.conflict_of(exc.orig)


def flush(session: Session) -> None:
    try:
        session.flush()
    except IntegrityError as exc:
        raise conflict_from(exc) from None


# -- realms ----------------------------------------------------------------------------------------


def realm_by_name(session: Session, name: str, *, for_update: bool = False) -> Realm | None:
    query = select(Realm).where(Realm.name == name)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def realms(session: Session) -> Sequence[Realm]:
    return session.scalars(select(Realm).order_by(Realm.name)).all()


def realms_by_id(session: Session, ids: set[int]) -> dict[int, Realm]:
    if not ids:
        return {}
    return {r.id: r for r in session.scalars(select(Realm).where(Realm.id.in_(ids)))}


# -- versions --------------------------------------------------------------------------------------


def history(session: Session, realm_id: int) -> Sequence[PlanVersion]:
    """Every version of a realm in publication order (superseded ones included)."""
    return session.scalars(
        select(PlanVersion).where(PlanVersion.realm_id == realm_id).order_by(PlanVersion.seq)
    ).all()


def version(session: Session, realm_id: int, seq: int) -> PlanVersion | None:
    return session.scalars(
        select(PlanVersion).where(PlanVersion.realm_id == realm_id, PlanVersion.seq == seq)
    ).one_or_none()


def last_published(session: Session, realm_id: int) -> PlanVersion | None:
    return session.scalars(
        select(PlanVersion)
        .where(PlanVersion.realm_id == realm_id)
        .order_by(PlanVersion.seq.desc())
        .limit(1)
    ).one_or_none()


def _in_force(realm_id: int):  # type: ignore[no-untyped-def]
    return select(PlanVersion).where(PlanVersion.realm_id == realm_id, ~PlanVersion.superseded)


def in_force_at(session: Session, realm_id: int, moment: datetime) -> PlanVersion | None:
    """The version of the timeline in force at ``moment`` (a retirement counts)."""
    return session.scalars(
        _in_force(realm_id)
        .where(PlanVersion.effective_from <= moment)
        .order_by(PlanVersion.effective_from.desc())
        .limit(1)
    ).one_or_none()


def at_instant(session: Session, realm_id: int, moment: datetime) -> PlanVersion | None:
    return session.scalars(
        _in_force(realm_id).where(PlanVersion.effective_from == moment)
    ).one_or_none()


def next_after(session: Session, realm_id: int, moment: datetime) -> PlanVersion | None:
    return session.scalars(
        _in_force(realm_id)
        .where(PlanVersion.effective_from > moment)
        .order_by(PlanVersion.effective_from)
        .limit(1)
    ).one_or_none()


def timeline_between(
    session: Session, realm_id: int, start: datetime, end: datetime
) -> list[PlanVersion]:
    """Versions in force at some instant of ``[start, end]``, in effective order."""
    first = in_force_at(session, realm_id, start)
    later = session.scalars(
        _in_force(realm_id)
        .where(PlanVersion.effective_from > start, PlanVersion.effective_from <= end)
        .order_by(PlanVersion.effective_from)
    ).all()
    return ([first] if first is not None else []) + list(later)


# -- address ranges --------------------------------------------------------------------------------


def add_ranges(session: Session, rows: list[PlanVersionRange]) -> None:
    session.add_all(rows)


def cut_validity(session: Session, version_id: int, until: datetime | None) -> None:
    """The version is now in force until ``until`` (None: until further notice)."""
    session.execute(
        update(PlanVersionRange)
        .where(PlanVersionRange.version_id == version_id)
        .values(validity=func.tstzrange(func.lower(PlanVersionRange.validity), until, "[)"))
    )


def drop_ranges(session: Session, version_id: int) -> None:
    session.execute(delete(PlanVersionRange).where(PlanVersionRange.version_id == version_id))


def overlapping_ranges(
    session: Session, realm_id: int, first: int, last: int, start: datetime, end: datetime | None
) -> PlanVersionRange | None:
    """A range of another realm overlapping addresses [first, last] during [start, end)."""
    return session.scalars(
        select(PlanVersionRange)
        .where(
            PlanVersionRange.realm_id != realm_id,
            PlanVersionRange.addresses.op("&&")(func.int8range(first, last, "[]")),
            PlanVersionRange.validity.op("&&")(func.tstzrange(start, end, "[)")),
        )
        .limit(1)
    ).one_or_none()


def other_versions_with_addresses(
    session: Session, realm_id: int, first: int, last: int
) -> Sequence[PlanVersion]:
    """Versions of other realms whose plans used any address of [first, last] (at any time)."""
    return session.scalars(
        select(PlanVersion)
        .where(
            PlanVersion.id.in_(
                select(PlanVersionRange.version_id).where(
                    PlanVersionRange.realm_id != realm_id,
                    PlanVersionRange.addresses.op("&&")(func.int8range(first, last, "[]")),
                )
            )
        )
        .order_by(PlanVersion.id)
    ).all()


def versions_holding(
    session: Session, address: int, start: datetime, end: datetime
) -> list[tuple[int, int]]:
    """(realm id, version id) of plans whose pool held ``address`` in [start - drain, end]."""
    rows = session.execute(
        select(PlanVersionRange.realm_id, PlanVersionRange.version_id)
        .join(Realm, Realm.id == PlanVersionRange.realm_id)
        .where(
            PlanVersionRange.addresses.op("@>")(cast(address, BigInteger)),
            PlanVersionRange.validity.op("&&")(
                func.tstzrange(start - Realm.session_drain, end, "[]")
            ),
        )
        .distinct()
    ).all()
    return [(r[0], r[1]) for r in rows]


def any_plan_between(session: Session, start: datetime, end: datetime) -> bool:
    return bool(
        session.scalar(
            select(
                exists().where(PlanVersionRange.validity.op("&&")(func.tstzrange(start, end, "[]")))
            )
        )
    )


def versions_by_id(session: Session, ids: set[int]) -> dict[int, PlanVersion]:
    if not ids:
        return {}
    return {v.id: v for v in session.scalars(select(PlanVersion).where(PlanVersion.id.in_(ids)))}


# -- timelines for the lookup cache ----------------------------------------------------------------


_REVISION = select(StoreRevision.__table__.c.revision).where(StoreRevision.__table__.c.id == 1)


def store_revision(session: Session) -> int:
    """The store-wide revision: changes whenever a realm or version is added or changed."""
    return int(session.connection().execute(_REVISION).scalar_one())


# The timeline snapshot's reads: the lookup path's statements (detnat.store.lean), on the session's
# own psycopg connection.
TimelineRow = lean.TimelineRow
TimelineRows = lean.TimelineRows


def realm_heads(session: Session) -> dict[int, tuple[int, int]]:
    """Each realm's newest version id and newest approval id ((0, 0) for an empty realm)."""
    return lean.realm_heads(driver(session))


def timeline_rows(session: Session, realm_id: int) -> TimelineRows:
    """A realm's timeline as :class:`TimelineRows` (three statements)."""
    return lean.timeline_rows(driver(session), realm_id)


def driver(session: Session) -> psycopg.Connection[Any]:
    """The psycopg connection under the session's transaction."""
    conn = session.connection().connection.driver_connection
    assert isinstance(conn, psycopg.Connection)
    return conn


def in_force_versions(session: Session, realm_id: int) -> list[tuple[PlanVersion, bool]]:
    """The realm's timeline (versions not superseded, in effective order), each with whether
    it is approved."""
    rows = session.execute(
        select(PlanVersion, PlanApproval.id)
        .outerjoin(PlanApproval, PlanApproval.version_id == PlanVersion.id)
        .where(PlanVersion.realm_id == realm_id, ~PlanVersion.superseded)
        .order_by(PlanVersion.effective_from)
    ).all()
    return [(v, a is not None) for v, a in rows]


def approval_of(session: Session, version_id: int) -> PlanApproval | None:
    return session.scalars(
        select(PlanApproval).where(PlanApproval.version_id == version_id)
    ).one_or_none()


def approvals(session: Session, realm_id: int) -> Sequence[tuple[PlanApproval, PlanVersion]]:
    return session.execute(
        select(PlanApproval, PlanVersion)
        .join(PlanVersion, PlanVersion.id == PlanApproval.version_id)
        .where(PlanVersion.realm_id == realm_id)
        .order_by(PlanVersion.seq)
    ).all()


# -- cases and tokens ------------------------------------------------------------------------------


_CLAIM_SQL = text(
    lean.CLAIM.format(**{f: f":{f}" for f in lean.CLAIM_FIELDS}).replace(
        ":detail", "CAST(:detail AS jsonb)"
    )
)
_CASE = select(Case.owner, Case.role)


def claim_case(
    session: Session, ref: str, owner: str, role: str, entry: dict[str, Any]
) -> tuple[str, str, bool]:
    """Open case ``ref`` for ``owner`` (a ``role``) unless it exists, and append ``entry`` (its
    ``case.open`` audit entry) in the same statement: (owner, role, opened by this call)."""
    params = lean.claim_params(ref, owner, role, entry)
    params["detail"] = json.dumps(params["detail"])
    row = session.connection().execute(_CLAIM_SQL, params).first()
    if row is None:  # opened concurrently, after this statement's snapshot was taken
        found = session.execute(_CASE.where(Case.ref == ref)).one()
        return str(found[0]), str(found[1]), False
    return str(row[0]), str(row[1]), bool(row[2])


def checkpoints(session: Session) -> Sequence[AuditCheckpoint]:
    return session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id)).all()


def cases(session: Session) -> Sequence[Case]:
    return session.scalars(select(Case).order_by(Case.ref)).all()


def plan_heads(session: Session) -> dict[str, dict[str, object]]:
    """Each realm's newest version: {realm: {"version": seq, "record_sha256": ...}}."""
    newest = (
        select(PlanVersion.realm_id, func.max(PlanVersion.seq).label("seq"))
        .group_by(PlanVersion.realm_id)
        .subquery()
    )
    rows = session.execute(
        select(Realm.name, PlanVersion.seq, PlanVersion.record_sha256)
        .join(newest, newest.c.realm_id == Realm.id)
        .join(
            PlanVersion,
            (PlanVersion.realm_id == Realm.id) & (PlanVersion.seq == newest.c.seq),
        )
        .order_by(Realm.name)
    )
    return {name: {"version": seq, "record_sha256": sha} for name, seq, sha in rows}


RangeRow = tuple[int, int, int, datetime, datetime | None]


def all_ranges(session: Session) -> dict[int, set[RangeRow]]:
    """Every row of ``plan_version_ranges``: by version id, (realm id, first, last, from, until)."""
    out: dict[int, set[RangeRow]] = {}
    for row in session.scalars(select(PlanVersionRange)):
        lower, upper = row.addresses.lower, row.addresses.upper
        assert lower is not None and upper is not None and row.validity.lower is not None
        out.setdefault(row.version_id, set()).add(
            (row.realm_id, int(lower), int(upper) - 1, row.validity.lower, row.validity.upper)
        )
    return out


_AUDIT = AuditEntry.metadata.tables["audit_log"]
_APPEND = insert(_AUDIT).returning(_AUDIT.c.seq, _AUDIT.c.entry_sha256, _AUDIT.c.prev_sha256)


def append_audit(session: Session, values: dict[str, object]) -> tuple[int, str, str]:
    """Insert one audit entry; the chain trigger assigns (seq, entry_sha256, prev_sha256)."""
    row = session.connection().execute(_APPEND, values).one()
    return int(row[0]), str(row[1]), str(row[2])


def token_by_hash(session: Session, digest: str) -> ApiToken | None:
    return session.scalars(select(ApiToken).where(ApiToken.token_sha256 == digest)).one_or_none()


def token_made_by(
    session: Session, token_id: int | None, made_by: Callable[[str], bool]
) -> int | None:
    """The first token up ``token_id``'s chain of creators (itself included) whose creator
    ``made_by`` accepts, or None."""
    seen: set[int] = set()
    while token_id is not None and token_id not in seen:
        seen.add(token_id)
        row = session.get(ApiToken, token_id)
        if row is None:
            return None
        if made_by(row.created_by):
            return row.id
        token_id = row.created_by_token
    return None


def publishing_token(session: Session, version_id: int) -> int | None:
    """The token a version was published with, from its ``plan.publish`` audit entry (None: the
    local operator, or no entry). Configuration entries have no case, so the case index finds
    them among the lookups'."""
    found: int | None = session.scalar(
        select(AuditEntry.token_id)
        .where(
            AuditEntry.case_ref.is_(None),
            AuditEntry.action == "plan.publish",
            AuditEntry.detail["record"]["id"].astext == str(version_id),
        )
        .limit(1)  # one: a version id is published once
    )
    return found


def tokens(session: Session) -> Sequence[ApiToken]:
    return session.scalars(select(ApiToken).order_by(ApiToken.id)).all()


def version_address_ranges(
    session: Session, version_ids: list[int]
) -> dict[int, list[tuple[int, int]]]:
    """The public address ranges (inclusive) of each version's plan."""
    out: dict[int, list[tuple[int, int]]] = {}
    if not version_ids:
        return out
    rows = session.execute(
        select(
            PlanVersionRange.version_id,
            func.lower(PlanVersionRange.addresses),
            func.upper(PlanVersionRange.addresses),
        ).where(PlanVersionRange.version_id.in_(version_ids))
    )
    for version_id, lower, upper in rows:
        out.setdefault(version_id, []).append((int(lower), int(upper) - 1))
    return out


# -- the lookup path, asynchronously (see detnat.store.async_db) -----------------------------------

AsyncConn = lean.AsyncConn
claim_case_async = lean.claim_case_async
token_row_async = lean.token_row_async


# -- driver errors, translated once ----------------------------------------------------------------


def domain_error(exc: BaseException) -> DetnatError | None:
    """What a driver error means, as a domain error (None: ``exc`` is not a driver error).

    Takes SQLAlchemy's wrapper or psycopg's own error. The message never carries the statement or
    its parameters (SQLAlchemy puts both in ``str(exc)``): the edges show it as one line (CLI) or
    a problem (API). A constraint is a :class:`Conflict`, a value the column cannot hold is
    :class:`InvalidInput`, a lost or refused connection and a schema that is not migrated are
    :class:`Unavailable`; anything else is a plain :class:`DetnatError` (an internal error).
    """
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    return None if orig is None else lean.driver_error(orig)
