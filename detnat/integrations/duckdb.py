"""DuckDB: annotate a relation through an Arrow scan, batch by batch, and query the result.

::

    import duckdb
    from detnat.integrations import duckdb as detnat_duckdb

    con = duckdb.connect()
    flows = con.sql("SELECT src AS ip, sport AS port, ts AS time FROM 'flows/*.parquet'")
    annotated, summary = detnat_duckdb.annotate(flows, "snap.detnat", case="ABUSE-7")
    con.sql("SELECT status, count(*) FROM annotated GROUP BY status").show()

The relation is read as Arrow record batches (``to_arrow_reader``), each annotated and collected
into one Arrow table that DuckDB scans in place (a Python variable of that name is a table in
SQL). Time columns are ``TIMESTAMPTZ`` (or integers with ``time_unit``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detnat.integrations.shared import annotator_for, new_summary, read_snapshot
from detnat.snapshot.annotate import Columns
from detnat.snapshot.jobs import JobSummary, partition_part, summary_of

BATCH_ROWS = 1 << 18


def annotate(
    relation: Any,
    snapshot: str | Path,
    *,
    case: str,
    columns: Columns | None = None,
    tolerance_us: int = 0,
) -> tuple[Any, JobSummary]:
    """(an Arrow table: the relation's rows with the five answer columns, the job summary)."""
    import pyarrow as pa

    data, loaded = read_snapshot(snapshot)
    worker = annotator_for(lambda: data, loaded.sha256, columns or Columns(), tolerance_us)
    # to_arrow_reader in DuckDB 1.4 and later; fetch_record_batch before.
    fetch = getattr(relation, "to_arrow_reader", None) or relation.fetch_record_batch
    reader = fetch(BATCH_ROWS)
    done = [worker.annotate(batch) for batch in reader]
    schema = worker.output_schema(reader.schema)
    table = pa.Table.from_batches(done, schema=schema)
    part = partition_part(done, list(reader.schema.names), 0)
    return table, summary_of([part], new_summary("duckdb", case, loaded, tolerance_us))


__all__ = ["annotate"]
