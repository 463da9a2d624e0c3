"""The directory's rows are found through a B-tree on ``(prefix, lower(during))``, not a GiST.

Postgres spent 30-45 µs per row maintaining the GiST on ``(prefix inet_ops, during)`` (migration
0006), which held a directory ingest to at most ~22,000-33,000 rows/s of server time. A B-tree
answers the same questions:

- the rows whose prefix lies inside the subscriber (``prefix <<= subscriber``, a B4 /128 in a
  delegated /56) are one range of the B-tree's order, from ``network(subscriber)`` to its last
  address at full length;
- the rows whose prefix holds the subscriber are equality probes on its supernets, at the prefix
  lengths the directory holds (:func:`detnat.store.directory.prefix_lengths`);
- the start of the row that ends an open row (a later row of the same prefix) is the first entry
  after it in ``(prefix, lower(during))``.

The time overlap is checked on the row itself. Downgrading builds the GiST again.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_directory_intervals_prefix_during", table_name="directory_intervals")
    op.create_index(
        "ix_directory_intervals_prefix_start",
        "directory_intervals",
        ["prefix", sa.text("lower(during)")],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_directory_intervals_prefix_start", table_name="directory_intervals")
    op.create_index(
        "ix_directory_intervals_prefix_during",
        "directory_intervals",
        ["prefix", "during"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={"prefix": "inet_ops"},
    )
