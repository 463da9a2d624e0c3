"""Annotating files on one machine: Parquet or CSV in, Parquet or CSV out, streamed.

:func:`annotate_file` reads the input a batch at a time (Parquet: row group by row group; CSV:
blocks of about 16 MiB), annotates each batch and writes it before reading the next, so memory
stays flat whatever the size of the file. The input and output bytes are hashed as they pass (the
job summary's ``input_sha256`` / ``output_sha256``).

CSV: the header names the columns; the address and time columns are read as text (times as
RFC 3339 with an offset, or epoch numbers with ``Columns.time_unit``), the port column as an
integer. In CSV output, text cells that a spreadsheet would run as a formula (``= + - @`` or a
control character first) are written with a leading ``'``, as every CSV detnat writes.
"""

from __future__ import annotations

import hashlib
import io
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from detnat.errors import InvalidInput
from detnat.snapshot.annotate import Annotator
from detnat.snapshot.jobs import JobSummary

BATCH_ROWS = 1 << 18
CSV_BLOCK = 16 << 20
WRITES_AHEAD = 2
FORMATS = ("parquet", "csv")
_FORMULA = r"^(?:[=+\-@\x00-\x1f\x7f]|\x{ff1d}|\x{ff0b}|\x{ff0d}|\x{ff20})"  # RE2 syntax


def format_of(name: str) -> str:
    """``parquet`` or ``csv``, from a file name's extension."""
    lower = name.lower()
    if lower.endswith((".parquet", ".pq")):
        return "parquet"
    if lower.endswith(".csv"):
        return "csv"
    raise InvalidInput("want a .parquet (.pq) or .csv file", field=name)


class _Hashing(io.RawIOBase):
    """A binary file that hashes what is read from or written to it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.done = 0

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        self.sha256.update(memoryview(buffer)[:n])
        self.done += n
        return int(n)

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.sha256.update(data)
        self.done += len(data)
        return self.raw.write(data)

    def tell(self) -> int:
        return self.done


def _batches(path: str, kind: str, annotator: Annotator) -> Iterator[pa.RecordBatch]:
    if kind == "parquet":
        try:
            source = pq.ParquetFile(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise InvalidInput(f"not a Parquet file ({exc})", field=path) from None
        yield from source.iter_batches(batch_size=BATCH_ROWS)
        return
    columns = annotator.columns
    types = {columns.ip: pa.string(), columns.port: pa.int64()}
    types[columns.time] = pa.int64() if columns.time_unit else pa.string()
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=CSV_BLOCK),
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True),
        )
    except (OSError, pa.ArrowInvalid) as exc:
        raise InvalidInput(f"cannot read CSV ({exc})", field=path) from None
    try:
        yield from reader
    except pa.ArrowInvalid as exc:
        raise InvalidInput(f"bad CSV ({exc})", field=path) from None


def neutralised(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Text cells that start like a formula, with a leading ``'`` (CSV output)."""
    columns = []
    for column in batch.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            risky = pc.match_substring_regex(column, _FORMULA)
            if pc.any(risky).as_py():
                column = pc.if_else(risky, pc.binary_join_element_wise("'", column, ""), column)
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=batch.schema)


def annotate_file(
    annotator: Annotator,
    source: str,
    sink: BinaryIO,
    *,
    out_format: str,
    summary: JobSummary,
    progress: Callable[[int], None] | None = None,
) -> JobSummary:
    """Annotate the file ``source`` into ``sink``; fills in ``summary`` (rows, counts, hashes)."""
    kind = format_of(source)
    with open(source, "rb") as raw:  # the input's hash: one sequential pass
        digest = hashlib.sha256()
        while chunk := raw.read(1 << 22):
            digest.update(chunk)
    summary.input_sha256 = digest.hexdigest()
    hashing = _Hashing(sink)
    out = pa.PythonFile(hashing, mode="w")
    writer: Any = None
    # Batch k is written (Arrow encodes without the GIL) while batch k + 1 is annotated; at most
    # WRITES_AHEAD batches wait, so memory stays flat.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="detnat-write") as writing:
        pending: deque[Future[None]] = deque()
        for batch in _batches(source, kind, annotator):
            done = annotator.annotate(batch)
            if writer is None:
                writer = _writer(out, done.schema, out_format)
            out_batch = done if out_format == "parquet" else neutralised(done)
            pending.append(writing.submit(writer.write_batch, out_batch))
            while len(pending) > WRITES_AHEAD:
                pending.popleft().result()
            summary.input_rows += batch.num_rows
            summary.output_rows += done.num_rows
            summary.note(done.column("status"))
            if progress is not None:
                progress(summary.input_rows)
        while pending:
            pending.popleft().result()
    if writer is None:
        raise InvalidInput("no rows and no header", field=source)
    writer.close()
    out.flush()
    summary.output_sha256 = hashing.sha256.hexdigest()
    summary.partitions = 1
    return summary


def _writer(out: pa.NativeFile, schema: pa.Schema, out_format: str) -> Any:
    if out_format == "parquet":
        # Dictionary pages for every column but the subscriber: its values are nearly all
        # distinct, and building a dictionary only to drop it is most of the write.
        plain = [n for n in schema.names if n != "subscriber"]
        return pq.ParquetWriter(out, schema, use_dictionary=plain)
    return pacsv.CSVWriter(out, schema)


def count_rows(path: str) -> int | None:
    """Rows of a Parquet file from its footer (for a progress bar); None for CSV."""
    if format_of(path) != "parquet":
        return None
    return int(pq.ParquetFile(path).metadata.num_rows)


__all__ = ["FORMATS", "annotate_file", "count_rows", "format_of", "neutralised"]
