"""Logs: the datapath's own port-block allocation lines, stored as the truth they are.

- ``log_ingests``: one row per ingest (a file, stdin, or one chunk of a followed file): the realm,
  the format, the file's name and identity (device:inode, for ``--follow`` to resume), the byte
  offsets read, the SHA-256 of those bytes, the counts, the log hold declared, and per month the
  number and digest of the events it stored. Append-only, TRUNCATE refused; each is made by the
  audited action ``logs.ingest`` whose entry records the row.
- ``log_events``: every allocate / interim / release line, with the line itself (file, line
  number, SHA-256, raw text) so an answer and an evidence file can show it. Partitioned by realm,
  then by month of the event's instant (partitions live in schema ``log_partitions``, made when
  the first event of a realm's month is stored: ``log_events_partition(realm, instant)``).
  Unique per realm on ``(instant, line SHA-256)``: the same line ingested twice is a duplicate,
  stored once. Append-only (UPDATE/DELETE refused on every partition, TRUNCATE on the table and
  on each partition); the only removal is ``detnat logs prune``, which drops a realm's whole
  months (audited ``logs.prune``, row in ``log_prunes``).
- ``log_prunes``: the months of a realm dropped by a prune. Append-only.
- An ingest or a prune bumps ``store_revision``: a lookup knows without a query whether the store
  had any logs at the revision its snapshot was read at.
- ``log_intervals``: derived. Allocations as intervals ``[from, to)`` with their flags and the
  lines behind them, rebuilt from ``log_events`` by every ingest and prune for the public
  addresses it touched (``detnat.logs.intervals`` is the one rule). Not a trust table: ``audit
  verify`` recomputes it from the events and names any row that differs. ``ports`` is
  ``int8range(public * 65536 + first, public * 65536 + last + 1)``, so one GiST index over
  ``(ports, during)`` finds the intervals that hold an address and port in a window (no
  ``btree_gist`` needed).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

KINDS = "kind IN ('allocate', 'interim', 'release')"
PORTS = "ports = int8range(public * 65536 + port_first, public * 65536 + port_last + 1)"

FUNCTIONS = """
CREATE SCHEMA log_partitions;

CREATE FUNCTION log_events_partition(realm integer, instant timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    first timestamptz := date_trunc('month', instant AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    parent text := 'log_events_r' || realm;
    name text := parent || '_' || to_char(first AT TIME ZONE 'UTC', 'YYYY"m"MM');
BEGIN
    IF to_regclass('log_partitions.' || parent) IS NULL THEN
        EXECUTE format(
            'CREATE TABLE log_partitions.%I PARTITION OF log_events FOR VALUES IN (%s) '
            'PARTITION BY RANGE (at)', parent, realm);
        EXECUTE format(
            'CREATE TRIGGER %I BEFORE TRUNCATE ON log_partitions.%I '
            'FOR EACH STATEMENT EXECUTE FUNCTION append_only()', parent || '_no_truncate', parent);
    END IF;
    IF to_regclass('log_partitions.' || name) IS NULL THEN
        EXECUTE format(
            'CREATE TABLE log_partitions.%I PARTITION OF log_partitions.%I '
            'FOR VALUES FROM (%L) TO (%L)', name, parent, first, first + interval '1 month');
        EXECUTE format(
            'CREATE TRIGGER %I BEFORE TRUNCATE ON log_partitions.%I '
            'FOR EACH STATEMENT EXECUTE FUNCTION append_only()', name || '_no_truncate', name);
    END IF;
    RETURN name;
END;
$$;

CREATE TRIGGER log_events_append_only BEFORE UPDATE OR DELETE ON log_events
    FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER log_events_no_truncate BEFORE TRUNCATE ON log_events
    FOR EACH STATEMENT EXECUTE FUNCTION append_only();
CREATE TRIGGER log_ingests_append_only BEFORE UPDATE OR DELETE ON log_ingests
    FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER log_ingests_no_truncate BEFORE TRUNCATE ON log_ingests
    FOR EACH STATEMENT EXECUTE FUNCTION append_only();
CREATE TRIGGER log_prunes_append_only BEFORE UPDATE OR DELETE ON log_prunes
    FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER log_prunes_no_truncate BEFORE TRUNCATE ON log_prunes
    FOR EACH STATEMENT EXECUTE FUNCTION append_only();
CREATE TRIGGER log_ingests_bump_revision AFTER INSERT ON log_ingests
    FOR EACH STATEMENT EXECUTE FUNCTION store_revision_bump();
CREATE TRIGGER log_prunes_bump_revision AFTER INSERT ON log_prunes
    FOR EACH STATEMENT EXECUTE FUNCTION store_revision_bump();
"""


def upgrade() -> None:
    op.create_table(
        "log_ingests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("realm_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by", sa.Text(), nullable=False),
        sa.Column("format", sa.Text(), nullable=False),
        sa.Column("file", sa.Text(), nullable=False),
        sa.Column("file_identity", sa.Text(), nullable=True),
        sa.Column("offset_from", sa.BigInteger(), nullable=False),
        sa.Column("offset_to", sa.BigInteger(), nullable=False),
        sa.Column("bytes_sha256", sa.String(length=64), nullable=False),
        sa.Column("lines_read", sa.BigInteger(), nullable=False),
        sa.Column("events_stored", sa.BigInteger(), nullable=False),
        sa.Column("duplicates", sa.BigInteger(), nullable=False),
        sa.Column("refused", sa.BigInteger(), nullable=False),
        sa.Column("log_hold", sa.Interval(), nullable=True),
        sa.Column("months", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["realm_id"], ["realms.id"], name=op.f("fk_log_ingests_realm_id_realms")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_ingests")),
    )
    op.create_index(
        op.f("ix_log_ingests_realm_id_file_identity"), "log_ingests", ["realm_id", "file_identity"]
    )
    op.create_table(
        "log_prunes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("realm_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by", sa.Text(), nullable=False),
        sa.Column("before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("months", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["realm_id"], ["realms.id"], name=op.f("fk_log_prunes_realm_id_realms")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_prunes")),
    )
    op.create_table(
        "log_events",
        sa.Column("realm_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("line_sha256", sa.String(length=64), nullable=False),
        sa.Column("ingest_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("inside", sa.Text(), nullable=False),
        sa.Column("public", sa.BigInteger(), nullable=False),
        sa.Column("port_first", sa.Integer(), nullable=False),
        sa.Column("port_last", sa.Integer(), nullable=False),
        sa.Column("port_step", sa.Integer(), nullable=False),
        sa.Column("protocol", sa.Text(), nullable=False),
        sa.Column("file", sa.Text(), nullable=False),
        sa.Column("line", sa.BigInteger(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.CheckConstraint(KINDS, name=op.f("ck_log_events_known_kind")),
        sa.PrimaryKeyConstraint("realm_id", "at", "line_sha256", name=op.f("pk_log_events")),
        postgresql_partition_by="LIST (realm_id)",
    )
    op.create_index(op.f("ix_log_events_realm_id_public"), "log_events", ["realm_id", "public"])
    op.create_table(
        "log_intervals",
        sa.Column("realm_id", sa.Integer(), nullable=False),
        sa.Column("public", sa.BigInteger(), nullable=False),
        sa.Column("port_first", sa.Integer(), nullable=False),
        sa.Column("port_last", sa.Integer(), nullable=False),
        sa.Column("port_step", sa.Integer(), nullable=False),
        sa.Column("protocol", sa.Text(), nullable=False),
        sa.Column("inside", sa.Text(), nullable=False),
        sa.Column("during", postgresql.TSTZRANGE(), nullable=False),
        sa.Column("ports", postgresql.INT8RANGE(), nullable=False),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.Column("unknown_start", sa.Boolean(), nullable=False),
        sa.Column("conflict", sa.Boolean(), nullable=False),
        sa.Column("lines", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.CheckConstraint(PORTS, name=op.f("ck_log_intervals_ports_of_block")),
        sa.PrimaryKeyConstraint(
            "realm_id",
            "public",
            "port_first",
            "port_last",
            "port_step",
            "protocol",
            "inside",
            "during",
            name=op.f("pk_log_intervals"),
        ),
    )
    op.create_index(
        "ix_log_intervals_ports_during",
        "log_intervals",
        ["ports", "during"],
        postgresql_using="gist",
    )
    op.execute(FUNCTIONS)


def downgrade() -> None:
    op.execute("DROP TABLE log_intervals")
    op.execute("DROP TABLE log_events CASCADE")  # and its partitions
    op.execute("DROP SCHEMA log_partitions CASCADE")
    op.execute("DROP FUNCTION log_events_partition(integer, timestamptz)")
    op.drop_table("log_prunes")
    op.drop_index(op.f("ix_log_ingests_realm_id_file_identity"), table_name="log_ingests")
    op.drop_table("log_ingests")
