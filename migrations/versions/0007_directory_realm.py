"""The directory's rows may name the realm (NAT) their subscribers sit behind.

An inside IPv4 address from private or shared space (``10.0.0.0/8``, ``100.64.0.0/10`` …) is
reused behind every NAT: ``100.64.0.10`` behind one BNG's CGN and ``100.64.0.10`` behind another's
are two subscribers. A RADIUS record read without knowing which NAT it came from cannot name the
holder of such an address in one realm rather than another. ``directory_intervals.realm_id``
records the realm an ingest declared (``detnat directory ingest --realm R``); NULL for an ingest
that named none (its rows answer globally unique keys anywhere, and a non-global key only where
no other realm's plans use that inside address: ``docs/directory.md``).

The column is part of each row's digest when set, so ``audit verify`` notices a realm changed
behind detnat; rows without one keep their digests (ingests made before this revision verify as
they did).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("directory_intervals", sa.Column("realm_id", sa.Integer(), nullable=True))
    op.create_foreign_key(
        op.f("fk_directory_intervals_realm_id_realms"),
        "directory_intervals",
        "realms",
        ["realm_id"],
        ["id"],
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("fk_directory_intervals_realm_id_realms"), "directory_intervals", type_="foreignkey"
    )
    op.drop_column("directory_intervals", "realm_id")
