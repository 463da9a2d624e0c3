"""Queries over the plan store: rows in, rows out. The rules live in :mod:`detnat.service`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import BigInteger, cast, delete, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from detnat.errors import Conflict
from detnat.store.models import PlanVersion, PlanVersionRange, Realm

_CONSTRAINT_MESSAGES = {
    "uq_realms_name": "a realm with this name already exists",
    "uq_plan_versions_in_force_effective_from": (
        "the realm already has a plan version effective at that instant"
    ),
    "uq_plan_versions_realm_id_seq": "another version was published concurrently; try again",
    "ex_plan_version_ranges_one_realm_per_address": (
        "a public address would belong to two plans at the same instant"
    ),
}


def conflict_from(exc: IntegrityError) -> Conflict:
    """A clear :class:`Conflict` for a constraint violation (never the raw driver error)."""
    diag = getattr(exc.orig, "diag", None)
    name = getattr(diag, "constraint_name", None)
    message = _CONSTRAINT_MESSAGES.get(name or "")
    if message is None:
        primary = getattr(diag, "message_primary", None) or "constraint violated"
        message = f"refused by the store: {primary}"
    return Conflict(message)


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


def mark_superseded(session: Session, version_id: int) -> None:
    session.execute(update(PlanVersion).where(PlanVersion.id == version_id).values(superseded=True))


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
