"""Trust: API tokens (hashes only), cases, the hash-chained audit log, four-eyes approvals.

- ``api_tokens``: SHA-256 of each token, never the token; rows are never deleted, and the only
  change allowed is revoking (``revoked_at`` from NULL to a time).
- ``cases``: who opened each case reference (an abuse token sees only its own cases' answers).
- ``audit_log``: append-only (UPDATE/DELETE/TRUNCATE refused). A BEFORE INSERT trigger assigns
  ``seq`` and chains the entry to the previous one under the row lock of ``audit_head``:
  ``entry_sha256 = sha256(seq || ':' || prev_sha256 || ':' || content_sha256)``, where
  ``content_sha256`` is the SHA-256 of the entry's canonical JSON, computed by detnat.
  ``audit_head`` can only be changed by that trigger.
- ``audit_checkpoints``: heads exported for keeping outside the database.
- ``plan_approvals``: the second admin's approval of a version, bound to its content hash; a
  trigger refuses an approval by the publisher or for another content hash. ``realms``
  gain ``single_approver`` (a lab realm's explicit opt-out of four-eyes).

Versions published before this revision are recorded as approved by ``migration 0003``, so
lookups answer as before the upgrade.

Revision ID: 0003
Revises: 0002
Create Date: 2026-05-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ROLES = "role IN ('abuse', 'legal', 'planner', 'admin', 'auditor')"

TRIGGERS = """
CREATE FUNCTION api_tokens_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    probe api_tokens;
BEGIN
    IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'api tokens are never deleted (revoke them)'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    probe := NEW;
    probe.revoked_at := OLD.revoked_at;
    probe.revoked_by := OLD.revoked_by;
    IF OLD.revoked_at IS NOT NULL OR NEW.revoked_at IS NULL OR probe IS DISTINCT FROM OLD THEN
        RAISE EXCEPTION 'api tokens: the only change allowed is revoking (token %)', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER api_tokens_guard BEFORE UPDATE OR DELETE ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION api_tokens_guard();
CREATE TRIGGER api_tokens_no_truncate BEFORE TRUNCATE ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION api_tokens_guard();
CREATE TRIGGER api_tokens_bump_revision AFTER INSERT OR UPDATE ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION store_revision_bump();

CREATE FUNCTION append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, lower(TG_OP)
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION append_only();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER plan_approvals_append_only BEFORE UPDATE OR DELETE ON plan_approvals
    FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER cases_append_only BEFORE UPDATE OR DELETE ON cases
    FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER plan_approvals_bump_revision AFTER INSERT ON plan_approvals
    FOR EACH STATEMENT EXECUTE FUNCTION store_revision_bump();

CREATE FUNCTION audit_head_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'audit_head is moved only by appending to audit_log'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER audit_head_guard BEFORE UPDATE OR DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_guard();

CREATE FUNCTION audit_log_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head audit_head;
BEGIN
    SELECT * INTO head FROM audit_head WHERE id = 1 FOR UPDATE;
    NEW.seq := head.seq + 1;
    NEW.prev_sha256 := head.sha256;
    NEW.entry_sha256 := encode(sha256(convert_to(
        NEW.seq::text || ':' || head.sha256 || ':' || NEW.content_sha256, 'UTF8')), 'hex');
    UPDATE audit_head SET seq = NEW.seq, sha256 = NEW.entry_sha256 WHERE id = 1;
    RETURN NEW;
END;
$$;
CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_chain();

CREATE FUNCTION plan_approvals_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v plan_versions;
BEGIN
    SELECT * INTO v FROM plan_versions WHERE id = NEW.version_id;
    SELECT single_approver INTO NEW.single_approver FROM realms WHERE id = v.realm_id;
    IF v.content_sha256 IS DISTINCT FROM NEW.content_sha256 THEN
        RAISE EXCEPTION 'approval for content % but version % has content %',
            NEW.content_sha256, v.id, v.content_sha256
            USING ERRCODE = 'check_violation', CONSTRAINT = 'approval_bound_to_content';
    END IF;
    IF v.published_by = NEW.approved_by AND NOT NEW.single_approver THEN
        RAISE EXCEPTION 'version % was published by %; a different admin must approve it',
            v.id, v.published_by
            USING ERRCODE = 'check_violation', CONSTRAINT = 'approval_by_another_admin';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER plan_approvals_check BEFORE INSERT ON plan_approvals
    FOR EACH ROW EXECUTE FUNCTION plan_approvals_check();
"""


def upgrade() -> None:
    op.add_column(
        "realms",
        sa.Column("single_approver", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.Text(), nullable=True),
        sa.CheckConstraint(ROLES, name=op.f("ck_api_tokens_known_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_api_tokens_token_sha256")),
    )
    op.create_table(
        "cases",
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ref", name=op.f("pk_cases")),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_head_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.execute(f"INSERT INTO audit_head (id, seq, sha256) VALUES (1, 0, '{'0' * 64}')")
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("case_ref", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("code_version", sa.Text(), nullable=False),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("prev_sha256", sa.String(length=64), nullable=False),
        sa.Column("entry_sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_case_ref"), "audit_log", ["case_ref"])
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    op.create_table(
        "plan_approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=True),
        sa.Column("approved_by", sa.Text(), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("single_approver", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["plan_versions.id"],
            name=op.f("fk_plan_approvals_version_id_plan_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_approvals")),
        sa.UniqueConstraint("version_id", name=op.f("uq_plan_approvals_version_id")),
    )
    op.execute(
        "INSERT INTO plan_approvals (version_id, content_sha256, approved_by, approved_at, "
        "single_approver) SELECT id, content_sha256, 'migration 0003', now(), false "
        "FROM plan_versions"
    )
    op.execute(TRIGGERS)


def downgrade() -> None:
    for table, trigger in [
        ("plan_approvals", "plan_approvals_check"),
        ("audit_log", "audit_log_chain"),
        ("audit_head", "audit_head_guard"),
        ("plan_approvals", "plan_approvals_bump_revision"),
        ("cases", "cases_append_only"),
        ("plan_approvals", "plan_approvals_append_only"),
        ("audit_checkpoints", "audit_checkpoints_append_only"),
        ("audit_log", "audit_log_no_truncate"),
        ("audit_log", "audit_log_append_only"),
        ("api_tokens", "api_tokens_bump_revision"),
        ("api_tokens", "api_tokens_no_truncate"),
        ("api_tokens", "api_tokens_guard"),
    ]:
        op.execute(f"DROP TRIGGER {trigger} ON {table}")
    for function in (
        "plan_approvals_check",
        "audit_log_chain",
        "audit_head_guard",
        "append_only",
        "api_tokens_guard",
    ):
        op.execute(f"DROP FUNCTION {function}()")
    op.drop_table("plan_approvals")
    op.drop_table("audit_checkpoints")
    op.drop_index(op.f("ix_audit_log_case_ref"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("audit_head")
    op.drop_table("cases")
    op.drop_table("api_tokens")
    op.drop_column("realms", "single_approver")
