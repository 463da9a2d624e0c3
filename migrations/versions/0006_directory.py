"""The subscriber directory: which account held an inside prefix over which span of time.

- ``directory_intervals``: one row per interval read by ``detnat directory ingest`` (RADIUS
  sessions, DHCPv6-PD leases, a CSV export): ``prefix`` (``cidr``: a delegated /56, a B4 /128, an
  IPv4 /32), ``during`` (``tstzrange``, ``[from, to)``, no upper bound while no end was seen),
  ``account``, how it ``closed``, and the ``sources`` (file, line, SHA-256, text) it was read
  from. ``(ingest, n)`` is the key: the ``seq`` of the ``directory.ingest`` audit entry that made
  the row and its place in that ingest.
- A GiST index on ``(prefix inet_ops, during)`` answers "who held an address inside this prefix
  at T" (``prefix && subscriber AND during @> T``) without ``btree_gist``.
- Append-only like the other trust tables: UPDATE, DELETE and TRUNCATE are refused (function
  ``append_only`` of migration 0003).
- An ingest bumps ``store_revision`` (function ``store_revision_bump`` of migration 0002): a
  lookup knows without a query whether the store held a directory at its snapshot's revision.

Downgrading drops the table; its audit entries stay (the log is append-only).

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TRIGGERS = """
CREATE TRIGGER directory_intervals_append_only BEFORE UPDATE OR DELETE ON directory_intervals
    FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER directory_intervals_no_truncate BEFORE TRUNCATE ON directory_intervals
    FOR EACH STATEMENT EXECUTE FUNCTION append_only();
CREATE TRIGGER directory_intervals_bump_revision AFTER INSERT ON directory_intervals
    FOR EACH STATEMENT EXECUTE FUNCTION store_revision_bump();
"""


def upgrade() -> None:
    op.create_table(
        "directory_intervals",
        sa.Column("ingest", sa.BigInteger(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("prefix", postgresql.CIDR(), nullable=False),
        sa.Column("during", postgresql.TSTZRANGE(), nullable=False),
        sa.Column("account", sa.Text(), nullable=False),
        sa.Column("closed", sa.Text(), nullable=False),
        sa.Column("sources", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("ingest", "n", name=op.f("pk_directory_intervals")),
    )
    op.create_index(
        "ix_directory_intervals_prefix_during",
        "directory_intervals",
        ["prefix", "during"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={"prefix": "inet_ops"},
    )
    op.execute(TRIGGERS)


def downgrade() -> None:
    op.drop_table("directory_intervals")
