"""``detnat annotate`` Parquet to Parquet with the input's column chunks copied
(:mod:`detnat.snapshot.parquet_copy`): every reader sees the values the re-encoding pipeline
writes -- the input's columns and the answers -- whatever the input's encodings, compression,
page versions, page indexes, bloom filters, nested columns and row groups; statistics still
filter; the footer's Thrift is read and written back unchanged."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detnat.snapshot import file, files, parquet_copy
from detnat.snapshot.annotate import Annotator
from detnat.snapshot.jobs import JobSummary
from tests.scale.conftest import flows


def _annotated(
    annotator: Annotator, source: Path, *, copy_chunks: bool
) -> tuple[bytes, JobSummary]:
    summary = JobSummary("cli", "COPY-1", annotator.snapshot.sha256, annotator.snapshot.case)
    sink = io.BytesIO()
    files.annotate_file(
        annotator,
        str(source),
        sink,
        out_format="parquet",
        summary=summary,
        threads=2,
        copy_chunks=copy_chunks,
    )
    return sink.getvalue(), summary


def _input(n: int, seed: int) -> pa.Table:
    table = flows(n, seed=seed)
    return table.append_column(
        "proto", pa.array([("tcp", "udp", None)[k % 3] for k in range(n)])
    ).append_column(
        "tags",  # a nested column: a struct with a list inside
        pa.array(
            [{"asn": k % 7, "seen": [k, k + 1] if k % 5 else None} for k in range(n)],
            pa.struct([("asn", pa.int32()), ("seen", pa.list_(pa.int64()))]),
        ),
    )


WRITERS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "small groups, zstd, v2 pages": {
        "row_group_size": 300,
        "compression": "zstd",
        "data_page_version": "2.0",
    },
    "page index, bloom filter, no dictionary": {
        "row_group_size": 700,
        "write_page_index": True,
        "use_dictionary": False,
        "bloom_filter_options": {"id": {"ndv": 3000, "fpp": 0.05}},
    },
    "gzip, small pages, no statistics": {
        "row_group_size": 1000,
        "compression": "gzip",
        "write_statistics": False,
        "data_page_size": 512,
    },
    "uncompressed, legacy format": {"compression": "none", "version": "1.0"},
}


@pytest.mark.parametrize("how", list(WRITERS))
def test_copied_chunks_read_as_the_reencoded_file(
    snapshot_path: Path, tmp_path: Path, how: str
) -> None:
    source = tmp_path / "in.parquet"
    pq.write_table(_input(3000, seed=len(how)), source, **WRITERS[how])
    assert parquet_copy.copyable(str(source)) is not None
    annotator = Annotator(file.read(str(snapshot_path)))
    copied, by_copy = _annotated(annotator, source, copy_chunks=True)
    encoded, by_encoding = _annotated(annotator, source, copy_chunks=False)
    assert copied != encoded  # two different files ...
    (tmp_path / "copied.parquet").write_bytes(copied)
    (tmp_path / "encoded.parquet").write_bytes(encoded)
    one, other = (
        pq.read_table(tmp_path / "copied.parquet"),
        pq.read_table(tmp_path / "encoded.parquet"),
    )
    assert one.schema == other.schema and one.equals(other)  # ... with the same values
    assert by_copy.counts == by_encoding.counts
    assert by_copy.input_sha256 == by_encoding.input_sha256
    assert by_copy.output_rows == by_copy.input_rows == 3000
    chosen = pq.read_table(tmp_path / "copied.parquet", filters=[("id", ">=", 2500)])
    assert chosen.column("id").to_pylist() == list(range(2500, 3000))  # statistics, moved
    rows = pq.ParquetFile(tmp_path / "copied.parquet").metadata
    assert rows.num_rows == 3000
    assert [rows.row_group(k).num_rows for k in range(rows.num_row_groups)] == [
        pq.ParquetFile(source).metadata.row_group(k).num_rows
        for k in range(pq.ParquetFile(source).metadata.num_row_groups)
    ]


def test_other_readers_see_the_same_values(snapshot_path: Path, tmp_path: Path) -> None:
    """DuckDB and Polars read the pages and footer themselves (not through pyarrow)."""
    duckdb = pytest.importorskip("duckdb")
    polars = pytest.importorskip("polars")
    source = tmp_path / "in.parquet"
    pq.write_table(_input(3000, seed=5).drop_columns(["tags"]), source, row_group_size=800)
    annotator = Annotator(file.read(str(snapshot_path)))
    for name, copy_chunks in (("copied", True), ("encoded", False)):
        (tmp_path / f"{name}.parquet").write_bytes(
            _annotated(annotator, source, copy_chunks=copy_chunks)[0]
        )
    copied, encoded = str(tmp_path / "copied.parquet"), str(tmp_path / "encoded.parquet")
    differ = duckdb.sql(
        f"select count(*) from ((select * from '{copied}' except all select * from '{encoded}') "
        f"union all (select * from '{encoded}' except all select * from '{copied}'))"
    ).fetchall()
    assert differ == [(0,)]
    assert duckdb.sql(f"select count(*) from '{copied}' where id >= 2900").fetchall() == [(100,)]
    assert polars.read_parquet(copied).equals(polars.read_parquet(encoded))


def test_a_row_group_too_large_to_hold_is_reencoded(snapshot_path: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.parquet"
    pq.write_table(_input(3000, seed=3), source, row_group_size=1000)
    assert parquet_copy.copyable(str(source), max_group_rows=999) is None
    assert parquet_copy.copyable(str(source), max_group_rows=1000) is not None


def test_empty_row_groups_are_left_out(snapshot_path: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.parquet"
    table = _input(1000, seed=9)
    with pq.ParquetWriter(source, table.schema) as writer:
        writer.write_table(table.slice(0, 400))
        writer.write_table(table.slice(0, 0))
        writer.write_table(table.slice(400))
    annotator = Annotator(file.read(str(snapshot_path)))
    copied, _ = _annotated(annotator, source, copy_chunks=True)
    encoded, _ = _annotated(annotator, source, copy_chunks=False)
    assert pq.read_table(io.BytesIO(copied)).equals(pq.read_table(io.BytesIO(encoded)))


def test_a_footer_is_written_back_as_it_was_read(snapshot_path: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.parquet"
    pq.write_table(_input(2000, seed=1), source, row_group_size=500, write_page_index=True)
    data = source.read_bytes()
    footer, start = parquet_copy.footer_of(data)
    assert parquet_copy.write_struct(footer) == data[start:-8]


_VALUES = st.deferred(
    lambda: st.one_of(
        st.tuples(st.just(1), st.booleans()),
        st.tuples(st.just(3), st.integers(-128, 127)),
        st.tuples(st.sampled_from([4, 5, 6]), st.integers(-(2**62), 2**62)),
        st.tuples(st.just(7), st.floats(allow_nan=False)),
        st.tuples(st.just(8), st.binary(max_size=20)),
        st.tuples(st.just(9), st.tuples(st.just(6), st.lists(st.integers(-(2**40), 2**40)))),
        st.tuples(st.just(9), st.tuples(st.just(1), st.lists(st.booleans(), max_size=20))),
        st.tuples(st.just(9), st.tuples(st.just(12), st.lists(_STRUCTS, max_size=3))),
        st.tuples(st.just(12), _STRUCTS),
    )
)
_STRUCTS = st.dictionaries(st.integers(1, 40), _VALUES, max_size=5)


@settings(max_examples=300, deadline=None)
@given(_STRUCTS)
def test_compact_protocol_round_trip(fields: parquet_copy.Struct) -> None:
    encoded = parquet_copy.write_struct(fields)
    assert parquet_copy.read_struct(encoded + b"\xff") == (fields, len(encoded))


def test_a_file_that_is_not_plain_parquet_is_not_copied(tmp_path: Path) -> None:
    source = tmp_path / "in.parquet"
    pq.write_table(_input(100, seed=2), source)
    data = source.read_bytes()
    for name, broken in (
        ("cut", data[:-20]),
        ("short", b"PAR1PAR1"),
        ("footer", data[:-8] + b"\xff\xff\xff\x7fPAR1"),
    ):
        path = tmp_path / f"{name}.parquet"
        path.write_bytes(broken)
        assert parquet_copy.copyable(str(path)) is None, name
