"""Spark: annotate a DataFrame with ``mapInArrow``; the snapshot goes to executors by ``addFile``.

::

    from pyspark.sql import SparkSession
    from detnat.integrations import spark as detnat_spark

    session = SparkSession.builder.getOrCreate()
    flows = session.read.parquet("s3://flows/2026-03-14/")
    chosen = Columns(ip="src", port="sport", time="ts")
    annotated = detnat_spark.annotate(flows, "snap.detnat", columns=chosen)
    annotated.write.parquet("s3://flows-annotated/2026-03-14/")
    summary = detnat_spark.summarize(annotated, case="ABUSE-7", snapshot="snap.detnat")
    open("job.json", "w").write(summary.dumps())       # then: detnat audit record-job job.json

The driver checks the snapshot once; ``SparkContext.addFile`` copies it to every executor, where
each Python worker loads it once (checked again against the driver's SHA-256: a file changed on
the way is refused, the task fails). Time columns are Spark timestamps (instants: Arrow hands them
over in UTC); ``summarize`` runs one more pass over the annotated DataFrame (cache it first if
recomputing costs more than reading).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from detnat.integrations.shared import annotator_for, new_summary, read_snapshot
from detnat.snapshot.annotate import Columns
from detnat.snapshot.jobs import JobSummary, partition_part, summary_of


def output_fields() -> list[Any]:
    from pyspark.sql.types import IntegerType, StringType, StructField

    return [
        StructField("subscriber", StringType()),
        StructField("status", StringType()),
        StructField("reason", StringType()),
        StructField("realm", StringType()),
        StructField("version", IntegerType()),
    ]


def annotate(
    frame: Any,
    snapshot: str | Path,
    *,
    columns: Columns | None = None,
    tolerance_us: int = 0,
) -> Any:
    """``frame`` with subscriber, status, reason, realm and version (a lazy DataFrame)."""
    from pyspark.sql.types import StructType

    _, loaded = read_snapshot(snapshot)
    frame.sparkSession.sparkContext.addFile(os.fspath(snapshot))
    name = os.path.basename(os.fspath(snapshot))
    sha256 = loaded.sha256
    chosen = columns or Columns()
    schema = StructType([*frame.schema.fields, *output_fields()])

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        from pyspark import SparkFiles

        def data() -> bytes:
            return Path(SparkFiles.get(name)).read_bytes()

        worker = annotator_for(data, sha256, chosen, tolerance_us)
        for batch in batches:
            yield worker.annotate(batch)

    return frame.mapInArrow(run, schema)


def summarize(
    annotated: Any, *, case: str, snapshot: str | Path, tolerance_us: int = 0
) -> JobSummary:
    """The job summary of an annotated DataFrame (rows, statuses, digests per partition)."""
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    _, loaded = read_snapshot(snapshot)
    inputs = [f.name for f in annotated.schema.fields][: -len(output_fields())]
    schema = StructType(
        [
            StructField("partition", LongType()),
            StructField("rows", LongType()),
            StructField("counts", StringType()),
            StructField("input_sha256", StringType()),
            StructField("output_sha256", StringType()),
        ]
    )

    def digest(batches: Iterator[Any]) -> Iterator[Any]:
        import json

        import pyarrow as pa
        from pyspark import TaskContext

        context = TaskContext.get()
        part = partition_part(batches, inputs, context.partitionId() if context else 0)
        part["counts"] = json.dumps(part["counts"], sort_keys=True)
        yield pa.RecordBatch.from_pylist([part])

    import json

    rows = annotated.mapInArrow(digest, schema).collect()
    parts = [{**row.asDict(), "counts": json.loads(row["counts"])} for row in rows]
    return summary_of(parts, new_summary("spark", case, loaded, tolerance_us))


__all__ = ["annotate", "output_fields", "summarize"]
