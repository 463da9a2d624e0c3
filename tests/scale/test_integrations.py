"""Spark, Dask, DuckDB and Polars annotate the same rows into byte-identical answer columns,
and every one of them refuses a snapshot with one byte changed.

They run for real (PySpark in local mode, a ``distributed`` LocalCluster of two workers). Where
an engine is not installed the test says so and is skipped; CI installs them all (``.[dev]``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from detnat.errors import InvalidInput
from detnat.snapshot.annotate import OUTPUT_COLUMNS
from tests.scale.conftest import tampered

ANSWER = ["id", *OUTPUT_COLUMNS]


def need(module: str) -> None:
    """Skip, loudly, where ``module`` (or Java, for Spark) is missing; fail in CI
    (``DETNAT_REQUIRE_SCALE=1``, set by .ci/run, which installs them)."""
    missing = importlib.util.find_spec(module) is None
    what = f"{module} is not installed (pip install 'detnat[dev]')"
    if not missing and module == "pyspark" and shutil.which("java") is None:
        missing, what = True, "Spark needs Java 17 or later on the PATH"
    if missing:
        if os.environ.get("DETNAT_REQUIRE_SCALE"):
            pytest.fail(f"{what}; DETNAT_REQUIRE_SCALE=1 says this run must have it")
        pytest.skip(f"SKIPPED LOUDLY: {what}")


def _pandas(table: pa.Table):  # type: ignore[no-untyped-def]
    """Arrow-backed pandas columns: integer columns with nulls stay integers."""
    import pandas as pd

    return table.to_pandas(types_mapper=pd.ArrowDtype)


def _same(got: pa.Table, expected: pa.Table) -> None:
    got = got.select(ANSWER).sort_by("id")
    for name in OUTPUT_COLUMNS:
        want = expected.column(name).combine_chunks()
        have = got.column(name).combine_chunks().cast(want.type)
        assert have.equals(want), name
        # byte-identical: the same values and nulls, written out the same way
        assert (
            pa.Table.from_arrays([have], [name]).to_pylist()
            == pa.Table.from_arrays([want], [name]).to_pylist()
        )


def test_polars_lazy_and_eager_agree_with_the_annotator(
    snapshot_path: Path, flow_table: pa.Table, expected: pa.Table
) -> None:
    need("polars")
    import polars as pl

    from detnat.integrations import polars as detnat_polars

    frame = pl.from_arrow(flow_table)
    lazy = detnat_polars.annotate_lazy(frame.lazy(), snapshot_path).collect()
    _same(lazy.to_arrow(), expected)
    eager, summary = detnat_polars.annotate(frame, snapshot_path, case="JOB-P")
    _same(eager.to_arrow(), expected)
    assert summary.output_rows == len(flow_table)
    assert sum(summary.counts.values()) == len(flow_table)


def test_duckdb_agrees_with_the_annotator(
    snapshot_path: Path, flow_table: pa.Table, expected: pa.Table
) -> None:
    need("duckdb")
    import duckdb

    from detnat.integrations import duckdb as detnat_duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    relation = con.from_arrow(flow_table)
    table, summary = detnat_duckdb.annotate(relation, snapshot_path, case="JOB-D")
    _same(table, expected)
    assert summary.engine == "duckdb" and summary.input_rows == len(flow_table)


def test_dask_on_two_workers_agrees_with_the_annotator(
    snapshot_path: Path, flow_table: pa.Table, expected: pa.Table
) -> None:
    need("distributed")
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    from detnat.integrations import dask as detnat_dask

    frame = dd.from_pandas(_pandas(flow_table), npartitions=4)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        annotated = detnat_dask.annotate(frame, snapshot_path)
        got = pa.Table.from_pandas(annotated.compute(), preserve_index=False)
        summary = detnat_dask.summarize(annotated, case="JOB-K", snapshot=snapshot_path)
    _same(got, expected)
    assert summary.partitions == 4 and summary.output_rows == len(flow_table)


# PySpark 4.x warns that it does not fully support pandas 3 yet; mapInArrow does not use pandas.
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_spark_map_in_arrow_agrees_with_the_annotator(
    snapshot_path: Path,
    flow_table: pa.Table,
    expected: pa.Table,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    need("pyspark")
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)  # workers run this interpreter
    from pyspark.sql import SparkSession

    from detnat.integrations import spark as detnat_spark

    session = (
        SparkSession.builder.master("local[2]")
        .appName("detnat-test")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "3")
        .getOrCreate()
    )
    try:
        frame = session.createDataFrame(flow_table).repartition(3)  # an Arrow table (Spark 4)
        annotated = detnat_spark.annotate(frame, snapshot_path)
        got = annotated.toArrow()
        summary = detnat_spark.summarize(annotated, case="JOB-S", snapshot=snapshot_path)
        with pytest.raises(InvalidInput, match="snapshot"):
            detnat_spark.annotate(frame, tampered(snapshot_path, tmp_path, 300))
    finally:
        session.stop()
    _same(got, expected)
    assert summary.engine == "spark" and summary.output_rows == len(flow_table)


def test_a_snapshot_changed_by_one_byte_is_refused_by_every_entry_point(
    snapshot_path: Path, flow_table: pa.Table, tmp_path: Path
) -> None:
    from detnat.snapshot import file

    size = len(snapshot_path.read_bytes())
    for at in (0, 30, 70, size // 2, size - 2, size - 1):
        bad = tampered(snapshot_path, tmp_path, at)
        with pytest.raises(InvalidInput):
            file.read(str(bad))
        for module in ("polars", "duckdb", "dask"):
            if importlib.util.find_spec(module) is None:
                continue
            integration = __import__(f"detnat.integrations.{module}", fromlist=["annotate"])
            with pytest.raises(InvalidInput, match="snapshot"):
                if module == "polars":
                    import polars as pl

                    integration.annotate(pl.from_arrow(flow_table), bad, case="X")
                elif module == "duckdb":
                    import duckdb

                    integration.annotate(duckdb.connect().from_arrow(flow_table), bad, case="X")
                else:
                    import dask.dataframe as dd

                    integration.annotate(dd.from_pandas(_pandas(flow_table), npartitions=1), bad)


def test_workers_refuse_snapshot_bytes_that_are_not_what_the_driver_checked(
    snapshot_path: Path, tmp_path: Path
) -> None:
    from detnat.integrations.shared import annotator_for
    from detnat.snapshot import file
    from detnat.snapshot.annotate import Columns

    good = file.read(str(snapshot_path))
    other = tampered(snapshot_path, tmp_path, 100).read_bytes()
    with pytest.raises(InvalidInput):
        annotator_for(lambda: other, good.sha256 + "x", Columns(), 0)
