"""Annotating files on one machine: Parquet or CSV in, Parquet or CSV out, streamed.

Parquet to Parquet, the input's column chunks are copied into the output untouched and only the
answer columns are encoded, a row group at a time on every core (:mod:`.parquet_copy`); other
inputs go through the pipeline below.

:func:`annotate_file` reads the input a batch at a time (Parquet: row group by row group; CSV:
blocks of about 16 MiB), annotates batches on a few threads while the next are read, and writes
them in order on one more thread; a bounded number of batches is in flight, so memory stays flat
whatever the size of the file. The input and output bytes are hashed as they pass (the job
summary's ``input_sha256`` / ``output_sha256``).

Parquet output keeps the answer columns as dictionaries while writing (see :class:`_ParquetOut`)
but reads back with the documented schema (strings).

CSV: the header names the columns; the address and time columns are read as text (times as
RFC 3339 with an offset, or epoch numbers with ``Columns.time_unit``), the port column as an
integer. In CSV output, text cells that a spreadsheet would run as a formula (``= + - @`` or a
control character first) are written with a leading ``'``, as every CSV detnat writes.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from detnat.errors import InvalidInput
from detnat.snapshot import parquet_copy
from detnat.snapshot.annotate import ENCODED_FIELDS, OUTPUT_COLUMNS, Annotator
from detnat.snapshot.jobs import JobSummary

BATCH_ROWS = 1 << 18
CSV_BLOCK = 16 << 20
WRITES_AHEAD = 2  # annotated batches waiting to be written
DICTIONARY_SHARE = 16  # a column of the first batch with at most 1/16 distinct values
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
        # A reader per row group: one reader over the whole file keeps ~12 MB per million rows
        # read until it is closed (1.5 GB at 100 M rows); per row group, memory stays flat.
        for group in range(source.metadata.num_row_groups):
            yield from source.iter_batches(batch_size=BATCH_ROWS, row_groups=[group])
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
    threads: int | None = None,
    copy_chunks: bool = True,
) -> JobSummary:
    """Annotate the file ``source`` into ``sink``; fills in ``summary`` (rows, counts, hashes).

    Parquet to Parquet, the input's column chunks are copied as they are and only the answers
    encoded (:mod:`detnat.snapshot.parquet_copy`), unless ``copy_chunks`` is false or the input
    cannot be copied; otherwise every column is decoded and encoded again, as below.

    ``threads`` batches are annotated at once (default: the cores this process may use) while
    this thread reads the next ones and one more writes the finished ones in order; Arrow and
    numpy do their work without the GIL, so the three steps overlap. At most
    ``threads + WRITES_AHEAD + 1`` batches are in flight: memory stays flat.
    """
    kind = format_of(source)
    workers = max(1, threads or len(os.sched_getaffinity(0)))
    if copy_chunks and kind == "parquet" and out_format == "parquet":
        copying = parquet_copy.copyable(source)
        if copying is not None:
            return _annotate_copying(
                annotator, copying, sink, summary=summary, progress=progress, workers=workers
            )
    dictionary = out_format == "parquet"  # Parquet keeps dictionaries; CSV neutralises words
    hashing = _Hashing(sink)
    out = pa.PythonFile(hashing, mode="w")
    writer: Any = None
    with (
        ThreadPoolExecutor(max_workers=workers + 1, thread_name_prefix="detnat-annotate") as pool,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="detnat-write") as writing,
    ):
        input_digest = pool.submit(_file_sha256, source)  # one more sequential pass, alongside
        annotating: deque[Future[pa.RecordBatch]] = deque()
        written: deque[Future[None]] = deque()

        def write(done: pa.RecordBatch) -> None:  # in the one writing thread: in order
            nonlocal writer
            if writer is None:
                writer = _writer(out, done, out_format, annotator)
            writer.write_batch(done if out_format == "parquet" else neutralised(done))
            summary.output_rows += done.num_rows
            summary.note(done.column("status"))
            if progress is not None:
                progress(summary.output_rows)

        def hand_over(keep: int) -> None:
            while len(annotating) > keep:
                written.append(writing.submit(write, annotating.popleft().result()))
                while len(written) > WRITES_AHEAD:
                    written.popleft().result()

        for batch in _batches(source, kind, annotator):
            annotating.append(pool.submit(annotator.annotate, batch, dictionary=dictionary))
            summary.input_rows += batch.num_rows
            hand_over(workers)
        hand_over(0)
        while written:
            written.popleft().result()
        summary.input_sha256 = input_digest.result()
    if writer is None:
        raise InvalidInput("no rows and no header", field=source)
    writer.close()
    out.flush()
    summary.output_sha256 = hashing.sha256.hexdigest()
    summary.partitions = 1
    return summary


# The answer columns of a copied file: dictionary pages for the words and the version seqs;
# statistics only where they are cheap (min/max of the status and reason words of a row group
# prune nothing and cost a third of their encoding).
ANSWER_DICTIONARY = ["subscriber", "status", "reason", "realm", "version"]
ANSWER_STATISTICS = ["realm", "version"]


def _annotate_copying(
    annotator: Annotator,
    source: parquet_copy.Input,
    sink: BinaryIO,
    *,
    summary: JobSummary,
    progress: Callable[[int], None] | None,
    workers: int,
) -> JobSummary:
    """Parquet to Parquet, the input's column chunks copied (:mod:`.parquet_copy`): each row
    group is read (its three chosen columns only), annotated and its answers encoded on one of
    ``workers`` threads, then written in order, after its copied chunks, on one more."""
    plain = annotator.output_schema(source.arrow_schema)  # refuses a taken or a missing column
    chosen = annotator.columns
    names = list(dict.fromkeys((chosen.ip, chosen.port, chosen.time)))
    answers_schema = pa.schema(ENCODED_FIELDS)
    hashing = _Hashing(sink)
    writer = parquet_copy.Writer(hashing, source)  # type: ignore[arg-type]

    def annotated(group: parquet_copy.Group) -> tuple[bytes, parquet_copy.Answers, pa.Array]:
        reader = pq.ParquetFile(source.path, metadata=source.metadata)
        rows = reader.read_row_group(group.index, columns=names, use_threads=False)
        columns = rows.combine_chunks()
        added = annotator.answer(
            columns.column(chosen.ip).chunk(0),
            columns.column(chosen.port).chunk(0),
            columns.column(chosen.time).chunk(0),
            dictionary=True,
            subscriber_dictionary=True,
        )
        answers = parquet_copy.encode_answers(
            pa.Table.from_arrays(added, schema=answers_schema),
            use_dictionary=ANSWER_DICTIONARY,
            statistics=ANSWER_STATISTICS,
        )
        copied = os.pread(fd, group.end - group.start, group.start)
        return copied, answers, added[OUTPUT_COLUMNS.index("status")]

    def write(
        group: parquet_copy.Group, done: tuple[bytes, parquet_copy.Answers, pa.Array]
    ) -> None:
        copied, answers, status = done
        writer.write_group(group, copied, answers)
        summary.output_rows += group.rows
        summary.note(status)
        if progress is not None:
            progress(summary.output_rows)

    with (
        open(source.path, "rb") as raw,
        ThreadPoolExecutor(max_workers=workers + 1, thread_name_prefix="detnat-annotate") as pool,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="detnat-write") as writing,
    ):
        fd = raw.fileno()
        input_digest = pool.submit(_file_sha256, source.path)
        annotating: deque[tuple[parquet_copy.Group, Future[Any]]] = deque()
        written: deque[Future[None]] = deque()

        def hand_over(keep: int) -> None:
            while len(annotating) > keep:
                group, future = annotating.popleft()
                written.append(writing.submit(write, group, future.result()))
                while len(written) > WRITES_AHEAD:
                    written.popleft().result()

        for group in source.groups:
            annotating.append((group, pool.submit(annotated, group)))
            summary.input_rows += group.rows
            hand_over(workers)
        hand_over(0)
        while written:
            written.popleft().result()
        summary.input_sha256 = input_digest.result()
    writer.close(_arrow_metadata(plain))
    summary.output_sha256 = hashing.sha256.hexdigest()
    summary.partitions = 1
    return summary


def _arrow_metadata(plain: pa.Schema) -> dict[str, str]:
    """A Parquet file's key-value metadata for the Arrow schema ``plain``: its own metadata and
    the schema itself (``ARROW:schema``, as pyarrow stores it), so readers get strings."""
    stored = base64.b64encode(plain.serialize().to_pybytes()).decode()
    extra = {k.decode(): v.decode() for k, v in (plain.metadata or {}).items()}
    return {**extra, "ARROW:schema": stored}


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as raw:
        while chunk := raw.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


class _ParquetOut:
    """A Parquet writer for batches with dictionary-typed answer columns, whose file reads back
    with the plain schema (:meth:`Annotator.output_schema`): the Arrow schema stored in the
    file is that one, so readers get strings as before, while the writer keeps the dictionaries
    (no hashing of a word per row).

    Dictionary pages are used where they pay: the answer columns (a handful of words, the
    version seqs) and each other column whose first batch has few distinct values (at most one
    in DICTIONARY_SHARE); near-distinct columns (times, ports, most subscribers) are written
    plain, as building a dictionary only to drop it is most of their write. Compression: Parquet's
    default, Snappy (zstd level 1 is ~15 % smaller for ~5 % more time; see docs/scale-out.md).
    """

    def __init__(self, out: pa.NativeFile, first: pa.RecordBatch, annotator: Annotator) -> None:
        added = len(OUTPUT_COLUMNS)
        inputs = pa.schema(list(first.schema)[:-added], metadata=first.schema.metadata)
        self.plain = annotator.output_schema(inputs)
        encoded = [
            name
            for name, column in zip(first.schema.names, first.columns, strict=True)
            if pa.types.is_dictionary(column.type) or name == "version" or _few_distinct(column)
        ]
        self.writer = pq.ParquetWriter(
            out,
            first.schema,
            use_dictionary=encoded,
            # min/max of near-random texts prune nothing; computing them is ~15 % of the column
            write_statistics=[n for n in first.schema.names if n != "subscriber"],
            store_schema=False,
        )

    def write_batch(self, batch: pa.RecordBatch) -> None:
        self.writer.write_batch(batch)

    def close(self) -> None:
        self.writer.add_key_value_metadata(_arrow_metadata(self.plain))
        self.writer.close()


def _few_distinct(column: pa.Array) -> bool:
    """At most one value in DICTIONARY_SHARE distinct (nested columns: no, nothing to count)."""
    if pa.types.is_nested(column.type):
        return False
    return bool(pc.count_distinct(column).as_py() * DICTIONARY_SHARE <= max(len(column), 1))


def _writer(
    out: pa.NativeFile, first: pa.RecordBatch, out_format: str, annotator: Annotator
) -> Any:
    if out_format == "parquet":
        return _ParquetOut(out, first, annotator)
    return pacsv.CSVWriter(out, first.schema)


def count_rows(path: str) -> int | None:
    """Rows of a Parquet file from its footer (for a progress bar); None for CSV."""
    if format_of(path) != "parquet":
        return None
    return int(pq.ParquetFile(path).metadata.num_rows)


__all__ = ["FORMATS", "annotate_file", "count_rows", "format_of", "neutralised"]
