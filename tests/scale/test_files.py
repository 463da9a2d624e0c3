"""The file pipeline of ``detnat annotate`` (:func:`detnat.snapshot.files.annotate_file`): the
same bytes whatever the number of threads, batches written in input order, the answer columns
the annotator's, the Parquet file read back with the plain (string) schema, dictionary pages
only where they pay."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from detnat.snapshot import file, files
from detnat.snapshot.annotate import OUTPUT_COLUMNS, OUTPUT_FIELDS, Annotator
from detnat.snapshot.jobs import JobSummary
from tests.scale.conftest import flows


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Flow records in many small row groups (many batches), a low-cardinality column too."""
    table = flows(6000, seed=11)
    table = table.append_column("proto", pa.array([("tcp", "udp")[k % 2] for k in range(6000)]))
    path = tmp_path_factory.mktemp("files") / "flows.parquet"
    pq.write_table(table, path, row_group_size=500)
    return path


def _run(
    annotator: Annotator, source: Path, threads: int, copy_chunks: bool
) -> tuple[bytes, JobSummary]:
    summary = JobSummary("cli", "FILES-1", annotator.snapshot.sha256, annotator.snapshot.case)
    sink = io.BytesIO()
    files.annotate_file(
        annotator,
        str(source),
        sink,
        out_format="parquet",
        summary=summary,
        threads=threads,
        copy_chunks=copy_chunks,
    )
    return sink.getvalue(), summary


@pytest.mark.parametrize("copy_chunks", [True, False], ids=["chunks copied", "re-encoded"])
def test_threads_change_nothing_and_the_file_reads_back_plain(
    snapshot_path: Path, source: Path, tmp_path: Path, copy_chunks: bool
) -> None:
    annotator = Annotator(file.read(str(snapshot_path)))
    one, first = _run(annotator, source, 1, copy_chunks)
    four, second = _run(annotator, source, 4, copy_chunks)
    assert one == four
    assert first.output_sha256 == second.output_sha256
    assert (
        first.input_sha256 == second.input_sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    )
    assert first.counts == second.counts and sum(first.counts.values()) == 6000

    out = tmp_path / "out.parquet"
    out.write_bytes(one)
    result = pq.read_table(out)
    for f in OUTPUT_FIELDS:  # the documented types, not the dictionaries written
        assert result.schema.field(f.name).type == f.type
    expected = pa.Table.from_batches(
        [annotator.annotate(b) for b in pq.read_table(source).to_batches()]
    )
    assert result.column("id").to_pylist() == list(range(6000))  # input order kept
    for name in OUTPUT_COLUMNS:
        assert (
            result.column(name).combine_chunks().equals(expected.column(name).combine_chunks())
        ), name

    chunk = pq.ParquetFile(out).metadata.row_group(0)
    encodings = {
        chunk.column(k).path_in_schema: chunk.column(k).encodings for k in range(chunk.num_columns)
    }
    assert "RLE_DICTIONARY" in encodings["status"]
    assert "RLE_DICTIONARY" in encodings["proto"]  # two distinct values
    if copy_chunks:  # the input's own pages; the subscribers of a row group as a dictionary
        assert "RLE_DICTIONARY" in encodings["subscriber"]
    else:
        assert "RLE_DICTIONARY" not in encodings["id"]  # all distinct: plain
