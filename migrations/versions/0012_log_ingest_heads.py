"""The start of a followed file beside its position: ``log_ingests.head_sha256`` / ``head_bytes``.

``--follow`` resumed at the stored offset of the file's identity (device:inode) alone, so a file
truncated in place (logrotate ``copytruncate``) or a new file that reuses a freed inode was read
from the old offset: its first lines lost, the next one read from its middle. An ingest of a file
with an identity now also records the SHA-256 of the file's first bytes as it read them (the first
``min(1024, offset_to)`` bytes: ``head_bytes`` of them, all of them when the file was shorter), and
a follow resumes at a stored offset only if the file still starts with those bytes and is at
least that long; otherwise it is another file, read from its start (see ``docs/logs.md``).

Rows made before this revision have neither (NULL): a follow resumes them as it did (the identity
and the file's length), and their audit records, which have no such keys, still match them.

Postgres holds the pair together: both or neither, and no more bytes than the ingest had read.

Downgrading drops both columns, and with them the fingerprints of the rows ingested at 0012,
which their audit entries record: ``audit verify`` names those rows from then on (``head_bytes,
head_sha256 differs from audit entry N``), as it does the interim periods a downgrade below 0008
drops. A follow resumes such rows as it did before 0012. Downgrade only to undo an upgrade that
no ingest has used yet.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("log_ingests", sa.Column("head_sha256", sa.String(length=64), nullable=True))
    op.add_column("log_ingests", sa.Column("head_bytes", sa.Integer(), nullable=True))
    op.create_check_constraint(
        op.f("ck_log_ingests_head_read"),
        "log_ingests",
        "(head_sha256 IS NULL) = (head_bytes IS NULL) AND head_bytes BETWEEN 0 AND offset_to",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_log_ingests_head_read"), "log_ingests", type_="check")
    op.drop_column("log_ingests", "head_bytes")
    op.drop_column("log_ingests", "head_sha256")
