"""A B-tree the batch walks to the log intervals holding each port, beside the GiST.

A batch asked Postgres one GiST probe on ``log_intervals (ports, during)`` per question: 18-24 µs
of server CPU each at 10 M intervals (``bench/README.md``). This B-tree answers the same question
with a descent and a short walk along one block's history:

    (realm_id, port_last - port_first, public, port_first,
     coalesce(lower(during), '-infinity'), coalesce(upper(during), 'infinity'))

A realm's blocks come in few shapes; for each span ``d`` of ports a realm's intervals have (the
distinct values of the first two columns, found by a skip walk of the index itself, so no other
table keeps them), the intervals of span ``d`` that hold port ``p`` of an address are the range
``port_first`` in ``[p - d, p]`` of that address: exact, no interval of another span or address in
between. The two time bounds are key columns so the walk tests the window on the index entries and
reads the table only for the intervals that reach it. No row changes: the intervals' rows, their
texts and ``audit verify`` are as they were. Downgrading drops the index.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

INDEX = "ix_log_intervals_block_time"
COLUMNS = (
    "realm_id, (port_last - port_first), public, port_first, "
    "coalesce(lower(during), '-infinity'::timestamptz), "
    "coalesce(upper(during), 'infinity'::timestamptz)"
)


def upgrade() -> None:
    op.execute(f"CREATE INDEX {INDEX} ON log_intervals ({COLUMNS})")


def downgrade() -> None:
    op.execute(f"DROP INDEX {INDEX}")
