"""Integrity: every row that decides an answer is append-only, and the audit log says who made it.

What this revision closes (issue 10; the threat model is in ``docs/trust.md``):

- ``realms`` are immutable: UPDATE, DELETE and TRUNCATE are refused (a realm's session drain and
  four-eyes setting decide answers; they are recorded once, by the audited ``realm.create``).
- ``plan_versions.superseded`` can no longer be set by hand: only the INSERT of the correction that
  supersedes a version at the same instant sets it (trigger ``plan_versions_supersede``), in the
  same statement.
- TRUNCATE is refused on ``plan_approvals``, ``cases``, ``audit_checkpoints``, ``audit_head``,
  ``plan_version_ranges`` and ``store_revision``; ``store_revision`` only counts up; appending to
  the audit log without its head row fails with a clear message instead of a NULL key.
- ``cases`` belong to one role (``role``): a case opened by an abuse desk is not a legal case.
- ``api_tokens`` name the person who holds them (``person``, unique names among tokens not revoked)
  and the token that created them (``created_by_token``), so four eyes can refuse an approval by the
  publisher under another of their tokens or under a token the publisher made.
- ``plan_approvals.approved_by_token``: the token an approval was given with.
- ``audit_checkpoints.plan_heads``: each realm's newest version and record hash at the checkpoint.

Rows that exist when this revision runs are recorded in one audit entry, ``store.baseline``, so that
``detnat audit verify`` can hold every row of those tables against the audit entry that made it.
Downgrading removes the columns and triggers; audit entries stay (the log is append-only).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ROLES = "role IN ('abuse', 'legal', 'planner', 'admin', 'auditor')"

TRIGGERS = """
CREATE TRIGGER realms_append_only BEFORE UPDATE OR DELETE ON realms
    FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER realms_no_truncate BEFORE TRUNCATE ON realms
    FOR EACH STATEMENT EXECUTE FUNCTION append_only();
CREATE TRIGGER plan_approvals_no_truncate BEFORE TRUNCATE ON plan_approvals
    FOR EACH STATEMENT EXECUTE FUNCTION append_only();
CREATE TRIGGER cases_no_truncate BEFORE TRUNCATE ON cases
    FOR EACH STATEMENT EXECUTE FUNCTION append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION append_only();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION append_only();
CREATE TRIGGER plan_version_ranges_no_truncate BEFORE TRUNCATE ON plan_version_ranges
    FOR EACH STATEMENT EXECUTE FUNCTION append_only();
CREATE TRIGGER store_revision_no_truncate BEFORE TRUNCATE ON store_revision
    FOR EACH STATEMENT EXECUTE FUNCTION append_only();

CREATE FUNCTION store_revision_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR NEW.id <> OLD.id OR NEW.revision <= OLD.revision THEN
        RAISE EXCEPTION 'store_revision only counts up'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER store_revision_guard BEFORE UPDATE OR DELETE ON store_revision
    FOR EACH ROW EXECUTE FUNCTION store_revision_guard();

CREATE OR REPLACE FUNCTION plan_versions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
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
    -- The one change: the INSERT of a correction at the same instant marks its predecessor
    -- (trigger plan_versions_supersede, one level down). Nothing else, by nobody else.
    probe := NEW;
    probe.superseded := OLD.superseded;
    IF probe IS DISTINCT FROM OLD OR OLD.superseded OR NOT NEW.superseded
            OR pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'plan versions are append-only: update refused (version %)', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE FUNCTION plan_versions_supersede() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.supersedes_id IS NOT NULL THEN
        UPDATE plan_versions SET superseded = true
            WHERE id = NEW.supersedes_id AND realm_id = NEW.realm_id
              AND effective_from = NEW.effective_from AND NOT superseded;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER plan_versions_supersede BEFORE INSERT ON plan_versions
    FOR EACH ROW EXECUTE FUNCTION plan_versions_supersede();

CREATE OR REPLACE FUNCTION audit_log_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head audit_head;
BEGIN
    SELECT * INTO head FROM audit_head WHERE id = 1 FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the audit head row is missing: the audit log cannot be appended to'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    NEW.seq := head.seq + 1;
    NEW.prev_sha256 := head.sha256;
    NEW.entry_sha256 := encode(sha256(convert_to(
        NEW.seq::text || ':' || head.sha256 || ':' || NEW.content_sha256, 'UTF8')), 'hex');
    UPDATE audit_head SET seq = NEW.seq, sha256 = NEW.entry_sha256 WHERE id = 1;
    RETURN NEW;
END;
$$;
"""

DROPPED = [
    ("realms", "realms_append_only"),
    ("realms", "realms_no_truncate"),
    ("plan_approvals", "plan_approvals_no_truncate"),
    ("cases", "cases_no_truncate"),
    ("audit_checkpoints", "audit_checkpoints_no_truncate"),
    ("audit_head", "audit_head_no_truncate"),
    ("plan_version_ranges", "plan_version_ranges_no_truncate"),
    ("store_revision", "store_revision_no_truncate"),
    ("store_revision", "store_revision_guard"),
    ("plan_versions", "plan_versions_supersede"),
]


def upgrade() -> None:
    bind = op.get_bind()
    twice = bind.execute(
        sa.text(
            "SELECT name FROM api_tokens WHERE revoked_at IS NULL GROUP BY name HAVING count(*) > 1"
        )
    ).all()
    if twice:
        names = ", ".join(repr(r[0]) for r in twice)
        raise RuntimeError(
            f"token names held by more than one active token: {names}; revoke the extra tokens "
            "(detnat token revoke ID) and run the upgrade again"
        )
    op.add_column("cases", sa.Column("role", sa.Text(), nullable=True))
    op.execute("ALTER TABLE cases DISABLE TRIGGER cases_append_only")
    op.execute(
        "UPDATE cases SET role = coalesce((SELECT t.role FROM api_tokens t "
        "WHERE cases.owner = 'token:' || t.id), 'admin')"
    )
    op.execute("ALTER TABLE cases ENABLE TRIGGER cases_append_only")
    op.alter_column("cases", "role", nullable=False)
    op.create_check_constraint(op.f("ck_cases_known_role"), "cases", ROLES)

    op.add_column("api_tokens", sa.Column("person", sa.Text(), nullable=True))
    op.add_column("api_tokens", sa.Column("created_by_token", sa.Integer(), nullable=True))
    op.execute("ALTER TABLE api_tokens DISABLE TRIGGER api_tokens_guard")
    op.execute("UPDATE api_tokens SET person = name")
    op.execute("ALTER TABLE api_tokens ENABLE TRIGGER api_tokens_guard")
    op.alter_column("api_tokens", "person", nullable=False)
    op.create_foreign_key(
        op.f("fk_api_tokens_created_by_token_api_tokens"),
        "api_tokens",
        "api_tokens",
        ["created_by_token"],
        ["id"],
    )
    op.create_index(
        "uq_api_tokens_active_name",
        "api_tokens",
        ["name"],
        unique=True,
        postgresql_where=sa.text("revoked_at IS NULL"),
    )
    op.add_column("plan_approvals", sa.Column("approved_by_token", sa.Integer(), nullable=True))
    op.add_column(
        "audit_checkpoints",
        sa.Column(
            "plan_heads",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )
    op.execute(TRIGGERS)
    _baseline(bind)


def downgrade() -> None:
    for table, trigger in DROPPED:
        op.execute(f"DROP TRIGGER {trigger} ON {table}")
    op.execute("DROP FUNCTION plan_versions_supersede()")
    op.execute("DROP FUNCTION store_revision_guard()")
    op.execute(
        "CREATE OR REPLACE FUNCTION plan_versions_append_only() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ DECLARE probe plan_versions; BEGIN "
        "IF TG_OP = 'TRUNCATE' THEN RAISE EXCEPTION 'plan versions are append-only: truncate "
        "refused' USING ERRCODE = 'integrity_constraint_violation'; END IF; "
        "IF TG_OP = 'DELETE' THEN RAISE EXCEPTION 'plan versions are append-only: delete refused "
        "(version %)', OLD.id USING ERRCODE = 'integrity_constraint_violation'; END IF; "
        "probe := NEW; probe.superseded := OLD.superseded; "
        "IF probe IS DISTINCT FROM OLD OR (OLD.superseded AND NOT NEW.superseded) THEN "
        "RAISE EXCEPTION 'plan versions are append-only: update refused (version %)', OLD.id "
        "USING ERRCODE = 'integrity_constraint_violation'; END IF; RETURN NEW; END; $$"
    )
    op.drop_column("audit_checkpoints", "plan_heads")
    op.drop_column("plan_approvals", "approved_by_token")
    op.drop_index("uq_api_tokens_active_name", table_name="api_tokens")
    op.drop_constraint(
        op.f("fk_api_tokens_created_by_token_api_tokens"), "api_tokens", type_="foreignkey"
    )
    op.drop_column("api_tokens", "created_by_token")
    op.drop_column("api_tokens", "person")
    op.drop_constraint(op.f("ck_cases_known_role"), "cases", type_="check")
    op.drop_column("cases", "role")


# -- the baseline entry: hashed here, by the rule of detnat.service.audit (frozen with this file) --


def _instant(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _rows(bind: Any, query: str) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in bind.execute(sa.text(query))]


def _baseline(bind: Any) -> None:
    realms = _rows(
        bind,
        "SELECT name AS realm, id, description, "
        "(extract(epoch FROM session_drain) * 1000000)::bigint AS session_drain_us, "
        "single_approver, created_at FROM realms ORDER BY id",
    )
    versions = _rows(
        bind,
        "SELECT r.name AS realm, v.seq AS version, v.id, v.record_sha256 FROM plan_versions v "
        "JOIN realms r ON r.id = v.realm_id ORDER BY v.id",
    )
    approvals = _rows(
        bind,
        "SELECT r.name AS realm, v.seq AS version, a.content_sha256, a.approved_by, "
        "a.approved_at, a.single_approver, a.approved_by_token FROM plan_approvals a "
        "JOIN plan_versions v ON v.id = a.version_id JOIN realms r ON r.id = v.realm_id "
        "ORDER BY a.id",
    )
    tokens = _rows(
        bind,
        "SELECT id AS token_id, name, person, role, token_sha256, created_by, created_by_token, "
        "created_at, expires_at FROM api_tokens ORDER BY id",
    )
    revocations = _rows(
        bind,
        "SELECT id AS token_id, revoked_at, revoked_by FROM api_tokens "
        "WHERE revoked_at IS NOT NULL ORDER BY id",
    )
    cases = _rows(bind, 'SELECT ref AS "case", owner, role, created_at FROM cases ORDER BY ref')
    checkpoints = _rows(
        bind,
        "SELECT id AS checkpoint, seq, sha256, at, by, plan_heads FROM audit_checkpoints "
        "ORDER BY id",
    )
    for row in cases:
        row["created_at"] = _instant(row["created_at"])
    for row in checkpoints:
        row["at"] = _instant(row["at"])
    for row in realms:
        row["created_at"] = _instant(row["created_at"])
    for row in approvals:
        row["approved_at"] = _instant(row["approved_at"])
    for row in tokens:
        row["created_at"] = _instant(row["created_at"])
        row["expires_at"] = _instant(row["expires_at"])
    for row in revocations:
        row["revoked_at"] = _instant(row["revoked_at"])
    for row in realms:
        row["session_drain_us"] = int(row["session_drain_us"])
    detail = {
        "records": {
            "realms": realms,
            "versions": versions,
            "approvals": approvals,
            "tokens": tokens,
            "revocations": revocations,
            "cases": cases,
            "checkpoints": checkpoints,
        }
    }
    from detnat import __version__

    at = datetime.now(UTC)
    content = {
        "at": _instant(at),
        "actor": "migration 0004",
        "role": "admin",
        "token_id": None,
        "action": "store.baseline",
        "case": None,
        "status": None,
        "request_id": "migration-0004",
        "code_version": __version__,
        "detail": detail,
    }
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    table = sa.table(
        "audit_log",
        *(
            sa.column(c)
            for c in (
                "seq",
                "at",
                "actor",
                "role",
                "token_id",
                "action",
                "case_ref",
                "status",
                "request_id",
                "code_version",
                "content_sha256",
                "prev_sha256",
                "entry_sha256",
            )
        ),
        sa.column("detail", postgresql.JSONB),
    )
    bind.execute(
        table.insert().values(
            seq=0,
            at=at,
            actor="migration 0004",
            role="admin",
            token_id=None,
            action="store.baseline",
            case_ref=None,
            status=None,
            request_id="migration-0004",
            code_version=__version__,
            detail=detail,
            content_sha256=digest,
            prev_sha256="",
            entry_sha256="",
        )
    )
