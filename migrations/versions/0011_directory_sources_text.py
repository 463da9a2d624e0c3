"""A directory row's source lines are stored as the JSON text its digest hashes, not as JSONB.

``directory_intervals.sources`` (JSONB, migration 0006) made Postgres parse every row's sources
into its binary form on COPY: a RADIUS row carries its session's two ~12-line records (~1 KB),
and that parse was about 40% of the server's share of a RADIUS ingest (issue 14). The column is
now ``text`` holding the canonical JSON (``[{"file":…,"line":…,"sha256":…,"text":…}]``: keys
sorted, no spaces, non-ASCII as is, ``json.dumps(…, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)``) exactly as the ingest wrote and hashed it: ``audit verify`` hashes the
stored text itself, not a re-rendering of it. Readers decode the JSON.

Upgrading renders each row's JSONB as that canonical text, which is what its digest already
covered (``audit verify`` hashed the canonical JSON of the JSONB), so every ingest verifies as it
did. The rendering is written for the shape ingests store (an array of objects with exactly the
keys ``file``, ``line`` (an integer), ``sha256`` and ``text``, string values otherwise); Postgres
escapes strings in JSON as Python's encoder does (``\\"``, ``\\\\``, ``\\b``, ``\\f``, ``\\n``,
``\\r``, ``\\t``, other control characters ``\\u00xx``, everything else as is). A row of another
shape stops the upgrade rather than change what its digest covers.

Downgrading casts the text back to JSONB (the same JSON; its canonical form is the text).

Revision ID: 0011
Revises: 0010 (0011 when merged beside it)
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_ODD = """
DO $$
DECLARE odd text;
BEGIN
  SELECT format('ingest %s row %s', ingest, n) INTO odd FROM directory_intervals
  WHERE jsonb_typeof(sources) <> 'array' OR EXISTS (
    SELECT 1 FROM jsonb_array_elements(sources) AS e(v)
    WHERE jsonb_typeof(v) <> 'object'
       OR (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(v) AS o(k))
          <> ARRAY['file', 'line', 'sha256', 'text']
       OR jsonb_typeof(v -> 'file') <> 'string' OR jsonb_typeof(v -> 'sha256') <> 'string'
       OR jsonb_typeof(v -> 'text') <> 'string' OR jsonb_typeof(v -> 'line') <> 'number'
       OR (v ->> 'line') !~ '^-?[0-9]+$')
  LIMIT 1;
  IF odd IS NOT NULL THEN
    RAISE EXCEPTION 'directory_intervals %: sources not of the shape ingests store', odd;
  END IF;
END $$
"""
# What ingests hashed as a row's sources: its canonical JSON (a function for the ALTER's USING,
# which takes no subquery; dropped after it)
_CANONICAL = """
CREATE FUNCTION directory_sources_0011(sources jsonb) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
SELECT '[' || coalesce(string_agg(
    '{"file":' || to_json(v ->> 'file')::text || ',"line":' || (v ->> 'line')
    || ',"sha256":' || to_json(v ->> 'sha256')::text || ',"text":' || to_json(v ->> 'text')::text
    || '}', ',' ORDER BY k), '') || ']'
FROM jsonb_array_elements(sources) WITH ORDINALITY AS e(v, k)
$$
"""


def upgrade() -> None:
    op.execute(_ODD)
    op.execute(_CANONICAL)
    op.execute(
        "ALTER TABLE directory_intervals ALTER COLUMN sources TYPE text "
        "USING directory_sources_0011(sources)"
    )
    op.execute("DROP FUNCTION directory_sources_0011(jsonb)")
    # nothing filters on the source lines: ANALYZE gathers no statistics of them
    op.execute("ALTER TABLE directory_intervals ALTER COLUMN sources SET STATISTICS 0")


def downgrade() -> None:
    op.execute("ALTER TABLE directory_intervals ALTER COLUMN sources SET STATISTICS -1")
    op.execute(
        "ALTER TABLE directory_intervals ALTER COLUMN sources TYPE jsonb "
        "USING CAST(sources AS jsonb)"
    )
