"""A store-wide revision number, bumped in the same transaction as every timeline change.

Workers cache realms' timelines (versions are immutable, timelines small); one cheap read of
``store_revision`` per request tells them whether anything was published since. The counter is a
single row updated under its row lock, so a reader that sees revision N sees every change that
produced it (a ``max(id)`` would not: ids are handed out before commit, out of commit order).

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BUMP = """
CREATE FUNCTION store_revision_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE store_revision SET revision = revision + 1 WHERE id = 1;
    RETURN NULL;
END;
$$;
CREATE TRIGGER realms_bump_revision
    AFTER INSERT OR UPDATE OR DELETE ON realms
    FOR EACH STATEMENT EXECUTE FUNCTION store_revision_bump();
CREATE TRIGGER plan_versions_bump_revision
    AFTER INSERT OR UPDATE OR DELETE ON plan_versions
    FOR EACH STATEMENT EXECUTE FUNCTION store_revision_bump();
"""


def upgrade() -> None:
    op.create_table(
        "store_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_store_revision_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_store_revision")),
    )
    op.execute("INSERT INTO store_revision (id, revision) VALUES (1, 1)")
    op.execute(BUMP)


def downgrade() -> None:
    op.execute("DROP TRIGGER plan_versions_bump_revision ON plan_versions")
    op.execute("DROP TRIGGER realms_bump_revision ON realms")
    op.execute("DROP FUNCTION store_revision_bump()")
    op.drop_table("store_revision")
