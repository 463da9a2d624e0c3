"""Realms, append-only plan versions, address ranges with one realm per address at a time.

Revision ID: 0001
Revises:
Create Date: 2026-05-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

APPEND_ONLY = """
CREATE FUNCTION plan_versions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    probe plan_versions;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        RAISE EXCEPTION 'plan versions are append-only: truncate refused'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'plan versions are append-only: delete refused (version %)', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    -- The one controlled change: a correction at the same instant marks its predecessor.
    probe := NEW;
    probe.superseded := OLD.superseded;
    IF probe IS DISTINCT FROM OLD OR (OLD.superseded AND NOT NEW.superseded) THEN
        RAISE EXCEPTION 'plan versions are append-only: update refused (version %)', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER plan_versions_append_only
    BEFORE UPDATE OR DELETE ON plan_versions
    FOR EACH ROW EXECUTE FUNCTION plan_versions_append_only();
CREATE TRIGGER plan_versions_no_truncate
    BEFORE TRUNCATE ON plan_versions
    FOR EACH STATEMENT EXECUTE FUNCTION plan_versions_append_only();
"""


def upgrade() -> None:
    op.create_table(
        "realms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("session_drain", sa.Interval(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "session_drain >= interval '0'", name=op.f("ck_realms_drain_not_negative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_realms")),
        sa.UniqueConstraint("name", name=op.f("uq_realms_name")),
    )
    op.create_table(
        "plan_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("realm_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("plan", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("content_sha256", sa.String(length=64), nullable=True),
        sa.Column("prev_sha256", sa.String(length=64), nullable=True),
        sa.Column("record_sha256", sa.String(length=64), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("correction", sa.Boolean(), nullable=False),
        sa.Column("supersedes_id", sa.Integer(), nullable=True),
        sa.Column("superseded", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.CheckConstraint(
            "(plan IS NULL) = (content_sha256 IS NULL)", name=op.f("ck_plan_versions_hash_iff_plan")
        ),
        sa.CheckConstraint("seq >= 1", name=op.f("ck_plan_versions_seq_positive")),
        sa.ForeignKeyConstraint(
            ["realm_id"], ["realms.id"], name=op.f("fk_plan_versions_realm_id_realms")
        ),
        sa.ForeignKeyConstraint(
            ["supersedes_id"],
            ["plan_versions.id"],
            name=op.f("fk_plan_versions_supersedes_id_plan_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_versions")),
        sa.UniqueConstraint("realm_id", "seq", name=op.f("uq_plan_versions_realm_id_seq")),
    )
    op.create_index(
        "uq_plan_versions_in_force_effective_from",
        "plan_versions",
        ["realm_id", "effective_from"],
        unique=True,
        postgresql_where=sa.text("NOT superseded"),
    )
    op.create_table(
        "plan_version_ranges",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("realm_id", sa.Integer(), nullable=False),
        sa.Column("addresses", postgresql.INT8RANGE(), nullable=False),
        sa.Column("validity", postgresql.TSTZRANGE(), nullable=False),
        sa.ForeignKeyConstraint(
            ["realm_id"], ["realms.id"], name=op.f("fk_plan_version_ranges_realm_id_realms")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["plan_versions.id"],
            name=op.f("fk_plan_version_ranges_version_id_plan_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_version_ranges")),
        postgresql.ExcludeConstraint(
            (sa.column("addresses"), "&&"),
            (sa.column("validity"), "&&"),
            using="gist",
            name="ex_plan_version_ranges_one_realm_per_address",
        ),
    )
    op.create_index(
        op.f("ix_plan_version_ranges_version_id"), "plan_version_ranges", ["version_id"]
    )
    op.execute(APPEND_ONLY)


def downgrade() -> None:
    op.execute("DROP TRIGGER plan_versions_no_truncate ON plan_versions")
    op.execute("DROP TRIGGER plan_versions_append_only ON plan_versions")
    op.execute("DROP FUNCTION plan_versions_append_only()")
    op.drop_index(op.f("ix_plan_version_ranges_version_id"), table_name="plan_version_ranges")
    op.drop_table("plan_version_ranges")
    op.drop_index("uq_plan_versions_in_force_effective_from", table_name="plan_versions")
    op.drop_table("plan_versions")
    op.drop_table("realms")
