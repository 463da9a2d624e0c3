"""Tables of the plan store.

``realms``
    one NAT domain with its own timeline and ``session_drain``; immutable (migration 0004).
``plan_versions``
    append-only: a trigger refuses UPDATE and DELETE, except the one controlled change of marking a
    version ``superseded``, which only the INSERT of its correction at the same instant makes
    (migration 0004). ``(realm_id,
    effective_from)`` is unique among versions that are not superseded; ``(realm_id, seq)`` is
    unique. ``plan`` NULL means the realm is retired from ``effective_from`` on.
``store_revision``
    one row, bumped by triggers in the same transaction as any change to realms or versions:
    workers compare it with the revision of their cached timelines (one cheap read per request).
``api_tokens``, ``cases``, ``audit_log``, ``audit_head``, ``audit_checkpoints``,
``plan_approvals``
    trust (migration 0003, see its docstring): token hashes, case owners, the append-only
    hash-chained audit log whose ``seq`` and hashes a trigger assigns, and four-eyes approvals.
``directory_intervals``
    the subscriber directory (migration 0006): an inside prefix held by an account over a
    ``tstzrange``, append-only, every row made by an audited ingest.
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
from sqlalchemy.dialects.postgresql import (
    CIDR,
    INT8RANGE,
    JSONB,
    TSTZRANGE,
    ExcludeConstraint,
    Range,
)
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
    single_approver: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))

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


class StoreRevision(Base):
    __tablename__ = "store_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)


ROLES = ("abuse", "legal", "planner", "admin", "auditor")


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[str | None] = mapped_column(Text)
    person: Mapped[str] = mapped_column(Text)
    created_by_token: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id"))

    __table_args__ = (
        CheckConstraint(
            "role IN ('abuse', 'legal', 'planner', 'admin', 'auditor')", name="known_role"
        ),
        Index(
            "uq_api_tokens_active_name",
            "name",
            unique=True,
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )


class Case(Base):
    __tablename__ = "cases"

    ref: Mapped[str] = mapped_column(Text, primary_key=True)
    owner: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    role: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(
            "role IN ('abuse', 'legal', 'planner', 'admin', 'auditor')", name="known_role"
        ),
    )


class AuditHead(Base):
    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))

    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)


class AuditEntry(Base):
    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    token_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(Text)
    case_ref: Mapped[str | None] = mapped_column(Text, index=True)
    status: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str] = mapped_column(Text)
    code_version: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB)
    content_sha256: Mapped[str] = mapped_column(String(64))
    prev_sha256: Mapped[str] = mapped_column(String(64))
    entry_sha256: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    by: Mapped[str] = mapped_column(Text)
    plan_heads: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class PlanApproval(Base):
    __tablename__ = "plan_approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("plan_versions.id"), unique=True)
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    approved_by: Mapped[str] = mapped_column(Text)
    approved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    single_approver: Mapped[bool] = mapped_column(Boolean)
    approved_by_token: Mapped[int | None] = mapped_column(Integer)


# -- logs (migration 0005): the datapath's own allocation lines and the intervals they make --------


class LogIngest(Base):
    """One ingest (a file, stdin, or one chunk of a followed file); made by ``logs.ingest``."""

    __tablename__ = "log_ingests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    realm_id: Mapped[int] = mapped_column(ForeignKey("realms.id"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    by: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(Text)
    file: Mapped[str] = mapped_column(Text)
    file_identity: Mapped[str | None] = mapped_column(Text)  # "device:inode"; None for stdin
    offset_from: Mapped[int] = mapped_column(BigInteger)
    offset_to: Mapped[int] = mapped_column(BigInteger)
    bytes_sha256: Mapped[str] = mapped_column(String(64))
    lines_read: Mapped[int] = mapped_column(BigInteger)
    events_stored: Mapped[int] = mapped_column(BigInteger)
    duplicates: Mapped[int] = mapped_column(BigInteger)
    refused: Mapped[int] = mapped_column(BigInteger)
    log_hold: Mapped[timedelta | None] = mapped_column(Interval)
    log_interim: Mapped[timedelta | None] = mapped_column(Interval)  # migration 0008
    months: Mapped[dict[str, Any]] = mapped_column(JSONB)  # "YYYY-MM" -> [count, sha256]
    # migration 0012: SHA-256 of the file's first head_bytes bytes as read (min(1024, offset_to)),
    # for --follow to tell the file it read from another under the same identity; None: stdin
    head_sha256: Mapped[str | None] = mapped_column(String(64))
    head_bytes: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index(None, "realm_id", "file_identity"),
        CheckConstraint(
            "(head_sha256 IS NULL) = (head_bytes IS NULL) AND head_bytes BETWEEN 0 AND offset_to",
            name="head_read",
        ),
    )


class LogPrune(Base):
    """The months of a realm's events dropped by ``detnat logs prune``."""

    __tablename__ = "log_prunes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    realm_id: Mapped[int] = mapped_column(ForeignKey("realms.id"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    by: Mapped[str] = mapped_column(Text)
    before: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    months: Mapped[list[str]] = mapped_column(JSONB)


class LogEvent(Base):
    """One allocate / interim / release line (partitioned by realm, then by month of ``at``)."""

    __tablename__ = "log_events"

    realm_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    line_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    ingest_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(Text)
    inside: Mapped[str] = mapped_column(Text)
    public: Mapped[int] = mapped_column(BigInteger)
    port_first: Mapped[int] = mapped_column(Integer)
    port_last: Mapped[int] = mapped_column(Integer)
    port_step: Mapped[int] = mapped_column(Integer)
    protocol: Mapped[str] = mapped_column(Text)  # "all" when the line names none
    file: Mapped[str] = mapped_column(Text)
    line: Mapped[int] = mapped_column(BigInteger)
    raw: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("kind IN ('allocate', 'interim', 'release')", name="known_kind"),
        Index(None, "realm_id", "public"),
        {"postgresql_partition_by": "LIST (realm_id)"},
    )


class LogInterval(Base):
    """Derived: an allocation as an interval, rebuilt from ``log_events`` (never edited)."""

    __tablename__ = "log_intervals"

    realm_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    port_first: Mapped[int] = mapped_column(Integer, primary_key=True)
    port_last: Mapped[int] = mapped_column(Integer, primary_key=True)
    port_step: Mapped[int] = mapped_column(Integer, primary_key=True)
    protocol: Mapped[str] = mapped_column(Text, primary_key=True)
    inside: Mapped[str] = mapped_column(Text, primary_key=True)
    during: Mapped[Range[datetime]] = mapped_column(TSTZRANGE, primary_key=True)
    ports: Mapped[Range[int]] = mapped_column(INT8RANGE)
    open: Mapped[bool] = mapped_column(Boolean)
    unknown_start: Mapped[bool] = mapped_column(Boolean)
    conflict: Mapped[bool] = mapped_column(Boolean)
    lines: Mapped[list[Any]] = mapped_column(JSONB)
    # migration 0008: open, and it ends at its next interim deadline
    interim_deadline: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))

    __table_args__ = (
        CheckConstraint(
            "ports = int8range(public * 65536 + port_first, public * 65536 + port_last + 1)",
            name="ports_of_block",
        ),
        Index("ix_log_intervals_ports_during", "ports", "during", postgresql_using="gist"),
        # migration 0010: the batch's walk to the intervals holding a port (store.logs.DECIDING)
        Index(
            "ix_log_intervals_block_time",
            "realm_id",
            text("(port_last - port_first)"),
            "public",
            "port_first",
            text("coalesce(lower(during), '-infinity'::timestamptz)"),
            text("coalesce(upper(during), 'infinity'::timestamptz)"),
        ),
    )


class DirectoryInterval(Base):
    """``directory_intervals`` (migration 0006): who held an inside prefix over a span of time.

    Append-only (UPDATE, DELETE and TRUNCATE refused). ``ingest`` is the ``seq`` of the
    ``directory.ingest`` audit entry that made the row and ``n`` its place in that ingest, so
    ``audit verify`` can hold the rows of each ingest against the entry's count and digest.
    """

    __tablename__ = "directory_intervals"

    ingest: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    n: Mapped[int] = mapped_column(Integer, primary_key=True)
    prefix: Mapped[Any] = mapped_column(CIDR)
    during: Mapped[Range[datetime]] = mapped_column(TSTZRANGE)
    account: Mapped[str] = mapped_column(Text)
    closed: Mapped[str] = mapped_column(Text)
    # migration 0011: the canonical JSON text the ingest wrote and hashed (JSONB before)
    sources: Mapped[str] = mapped_column(Text)
    # migration 0007: the realm the ingest declared (NULL: none named)
    realm_id: Mapped[int | None] = mapped_column(ForeignKey("realms.id"), nullable=True)

    # migration 0009: a B-tree (the GiST of 0006 cost 30-45 µs per row ingested)
    __table_args__ = (
        Index("ix_directory_intervals_prefix_start", "prefix", text("lower(during)")),
    )
