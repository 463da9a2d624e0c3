"""Tables of the plan store.

``realms``
    one NAT domain with its own timeline and ``session_drain``.
``plan_versions``
    append-only: a trigger refuses UPDATE and DELETE, except the one controlled change of marking a
    version ``superseded`` (by a correction published at the same instant). ``(realm_id,
    effective_from)`` is unique among versions that are not superseded; ``(realm_id, seq)`` is
    unique. ``plan`` NULL means the realm is retired from ``effective_from`` on.
``plan_version_ranges``
    the public IPv4 address ranges each version's plan uses, with the span of time that version is
    in force (``[effective_from, next change)``). An exclusion constraint makes every public address
    belong to at most one plan at any instant, across all realms. Derived rows: the service keeps
    ``validity`` in step with the timeline in the same transaction as the publish.

No ``btree_gist`` is needed: ranges have GiST operator classes built in, and versions of one realm
never overlap in time, so "no two rows overlap in addresses and time" is exactly "an address
belongs to one realm at a time" (the Postgres bundled by ``pgserver`` ships no contrib modules).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Interval,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import INT8RANGE, JSONB, TSTZRANGE, ExcludeConstraint, Range
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Realm(Base):
    __tablename__ = "realms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    description: Mapped[str] = mapped_column(Text, server_default="")
    session_drain: Mapped[timedelta] = mapped_column(Interval)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (CheckConstraint("session_drain >= interval '0'", name="drain_not_negative"),)


class PlanVersion(Base):
    __tablename__ = "plan_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    realm_id: Mapped[int] = mapped_column(ForeignKey("realms.id"))
    seq: Mapped[int] = mapped_column(Integer)
    effective_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    prev_sha256: Mapped[str | None] = mapped_column(String(64))
    record_sha256: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    published_by: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    correction: Mapped[bool] = mapped_column(Boolean)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("plan_versions.id"))
    superseded: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))

    __table_args__ = (
        UniqueConstraint("realm_id", "seq"),
        Index(
            "uq_plan_versions_in_force_effective_from",
            "realm_id",
            "effective_from",
            unique=True,
            postgresql_where=text("NOT superseded"),
        ),
        CheckConstraint("(plan IS NULL) = (content_sha256 IS NULL)", name="hash_iff_plan"),
        CheckConstraint("seq >= 1", name="seq_positive"),
    )


class PlanVersionRange(Base):
    __tablename__ = "plan_version_ranges"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("plan_versions.id"), index=True)
    realm_id: Mapped[int] = mapped_column(ForeignKey("realms.id"))
    addresses: Mapped[Range[int]] = mapped_column(INT8RANGE)
    validity: Mapped[Range[datetime]] = mapped_column(TSTZRANGE)

    __table_args__ = (
        ExcludeConstraint(
            ("addresses", "&&"),
            ("validity", "&&"),
            name="ex_plan_version_ranges_one_realm_per_address",
            using="gist",
        ),
    )
