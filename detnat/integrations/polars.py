"""Polars: annotate a LazyFrame with ``map_batches``, or a DataFrame at once with its summary.

::

    import polars as pl
    from detnat.integrations import polars as detnat_polars

    flows = pl.scan_parquet("flows/*.parquet")
    annotated = detnat_polars.annotate_lazy(flows, "snap.detnat").collect()
    frame, summary = detnat_polars.annotate(flows.collect(), "snap.detnat", case="ABUSE-7")

Frames go to Arrow without copying (``to_arrow``) and the answers come back as Polars columns
(``String``, ``Int32``). Time columns are ``Datetime`` with a time zone (or integers with
``time_unit``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detnat.integrations.shared import annotator_for, new_summary, read_snapshot
from detnat.snapshot.annotate import OUTPUT_COLUMNS, Columns
from detnat.snapshot.jobs import JobSummary, partition_part, summary_of


def _frame(frame: Any, data: bytes, sha256: str, columns: Columns, tolerance_us: int) -> Any:
    import polars as pl

    worker = annotator_for(lambda: data, sha256, columns, tolerance_us)
    table = frame.to_arrow()
    added = worker.answer(
        table.column(columns.ip), table.column(columns.port), table.column(columns.time)
    )
    return frame.with_columns([pl.Series(n, a) for n, a in zip(OUTPUT_COLUMNS, added, strict=True)])


def annotate_lazy(
    frame: Any, snapshot: str | Path, *, columns: Columns | None = None, tolerance_us: int = 0
) -> Any:
    """A LazyFrame with the five answer columns (``map_batches``)."""
    import polars as pl

    data, loaded = read_snapshot(snapshot)
    chosen = columns or Columns()
    schema = dict(frame.collect_schema())
    schema.update(
        subscriber=pl.String, status=pl.String, reason=pl.String, realm=pl.String, version=pl.Int32
    )

    def run(batch: Any) -> Any:
        return _frame(batch, data, loaded.sha256, chosen, tolerance_us)

    return frame.map_batches(run, schema=pl.Schema(schema))


def annotate(
    frame: Any,
    snapshot: str | Path,
    *,
    case: str,
    columns: Columns | None = None,
    tolerance_us: int = 0,
) -> tuple[Any, JobSummary]:
    """(a DataFrame with the five answer columns, the job summary)."""
    data, loaded = read_snapshot(snapshot)
    chosen = columns or Columns()
    out = _frame(frame, data, loaded.sha256, chosen, tolerance_us)
    part = partition_part(out.to_arrow().to_batches(), list(frame.columns), 0)
    return out, summary_of([part], new_summary("polars", case, loaded, tolerance_us))


__all__ = ["annotate", "annotate_lazy"]
