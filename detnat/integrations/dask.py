"""Dask: annotate a dask DataFrame with ``map_partitions``, on a ``distributed`` cluster or not.

::

    import dask.dataframe as dd
    from distributed import Client
    from detnat.integrations import dask as detnat_dask

    client = Client("scheduler:8786")
    flows = dd.read_parquet("s3://flows/2026-03-14/")
    annotated = detnat_dask.annotate(flows, "snap.detnat")
    annotated.to_parquet("s3://flows-annotated/2026-03-14/")
    summary = detnat_dask.summarize(annotated, case="ABUSE-7", snapshot="snap.detnat")

The snapshot's bytes travel in the task graph (one copy per graph; each worker process loads
and checks it once against the driver's SHA-256). Partitions go to Arrow and back: the answer
columns come back as Arrow-backed pandas columns (``string[pyarrow]``, ``int32[pyarrow]``), so
nulls stay nulls. Time columns are ``datetime64[ns, tz]`` (or integers with ``time_unit``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detnat.integrations.shared import annotator_for, new_summary, read_snapshot
from detnat.snapshot.annotate import OUTPUT_COLUMNS, OUTPUT_FIELDS, Columns
from detnat.snapshot.jobs import JobSummary, partition_part, summary_of


def _annotate_partition(
    frame: Any, data: bytes, sha256: str, columns: Columns, tolerance_us: int
) -> Any:
    import pandas as pd
    import pyarrow as pa

    worker = annotator_for(lambda: data, sha256, columns, tolerance_us)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    added = worker.answer(
        table.column(columns.ip), table.column(columns.port), table.column(columns.time)
    )
    out = frame.copy()
    for name, array in zip(OUTPUT_COLUMNS, added, strict=True):
        out[name] = pd.Series(pd.arrays.ArrowExtensionArray(array), index=frame.index, name=name)
    return out


def annotate(
    frame: Any, snapshot: str | Path, *, columns: Columns | None = None, tolerance_us: int = 0
) -> Any:
    """``frame`` with subscriber, status, reason, realm and version (lazy)."""
    import pandas as pd

    data, loaded = read_snapshot(snapshot)
    chosen = columns or Columns()
    meta = frame._meta.copy()
    for field in OUTPUT_FIELDS:
        meta[field.name] = pd.Series([], dtype=pd.ArrowDtype(field.type))
    return frame.map_partitions(
        _annotate_partition, data, loaded.sha256, chosen, tolerance_us, meta=meta
    )


def _part(frame: Any, inputs: list[str], partition_info: Any = None) -> Any:
    import pandas as pd
    import pyarrow as pa

    number = partition_info["number"] if partition_info else 0
    table = pa.Table.from_pandas(frame, preserve_index=False)
    part = partition_part(table.to_batches(), inputs, number)
    return pd.DataFrame([{**part, "counts": part["counts"]}])


def summarize(
    annotated: Any, *, case: str, snapshot: str | Path, tolerance_us: int = 0
) -> JobSummary:
    """The job summary of an annotated dask DataFrame (computes it once more)."""
    import pandas as pd

    _, loaded = read_snapshot(snapshot)
    inputs = list(annotated.columns)[: -len(OUTPUT_COLUMNS)]
    meta = pd.DataFrame(
        {
            "partition": pd.Series([], dtype="int64"),
            "rows": pd.Series([], dtype="int64"),
            "counts": pd.Series([], dtype="object"),
            "input_sha256": pd.Series([], dtype="object"),
            "output_sha256": pd.Series([], dtype="object"),
        }
    )
    parts = annotated.map_partitions(_part, inputs, meta=meta).compute()
    return summary_of(parts.to_dict("records"), new_summary("dask", case, loaded, tolerance_us))


__all__ = ["annotate", "summarize"]
