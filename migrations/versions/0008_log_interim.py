"""A realm's declared interim period, beside its log hold; intervals that end at its deadline.

``log_ingests.log_interim`` is the interim period an ingest declared (``detnat logs ingest
--log-interim``; NULL: none declared), kept per ingest as ``log_hold`` is: the realm's period is
the one its latest ingest declaring one gave. ``log_intervals.interim_deadline`` keeps the flag
:func:`detnat.logs.intervals.derive` sets on an open interval that ends at its next interim
deadline (``logs check`` reports it as ``open_past_interim``; ``audit verify`` compares the stored
intervals with what the events make, flag included). No period could be declared before this
revision, so every existing interval is ``false``, as a rebuild would make it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("log_ingests", sa.Column("log_interim", sa.Interval(), nullable=True))
    op.add_column(
        "log_intervals",
        sa.Column(
            "interim_deadline", sa.Boolean(), nullable=False, server_default=sa.text("false")
        ),
    )


def downgrade() -> None:
    op.drop_column("log_intervals", "interim_deadline")
    op.drop_column("log_ingests", "log_interim")
