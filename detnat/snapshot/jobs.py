"""Job summaries: what one annotation job did, in the shape the audit log records.

Every entry point (``detnat annotate``, Spark, Dask, DuckDB, Polars) ends a job with a
:class:`JobSummary`: the case, the snapshot's SHA-256 (and the case it was exported for), rows in
and out, rows per status, and SHA-256 digests of the input and output. ``detnat annotate`` hashes
its files; the distributed entry points hash the Arrow data (:class:`ArrowDigest`: per column, the
validity, value lengths and value bytes, so it does not depend on how rows are cut into
batches) per partition, and combine the partitions' digests in partition order. The CLI records a
summary itself; for the others, ``detnat audit record-job SUMMARY.json`` does
(:func:`parse_summary` checks the file strictly).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from detnat import strictjson
from detnat.errors import InvalidInput

FORMAT = "detnat-job/1"
ENGINES = ("cli", "spark", "dask", "duckdb", "polars", "python")


@dataclass
class JobSummary:
    """One annotation job (see the module docstring)."""

    engine: str
    case: str
    snapshot_sha256: str
    snapshot_case: str
    input_rows: int = 0
    output_rows: int = 0
    input_sha256: str | None = None
    output_sha256: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    partitions: int = 0
    tolerance_us: int = 0
    source: str | None = None
    destination: str | None = None

    def note(self, statuses: pa.Array) -> None:
        """Count the statuses of one annotated batch."""
        counted = statuses.value_counts()
        values, n = counted.field(0).to_pylist(), counted.field(1).to_pylist()
        for value, count in zip(values, n, strict=True):
            self.counts[value] = self.counts.get(value, 0) + count

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self), "counts": dict(sorted(self.counts.items()))}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, indent=1) + "\n"


_TYPES: dict[str, tuple[type, ...]] = {
    "format": (str,),
    "engine": (str,),
    "case": (str,),
    "snapshot_sha256": (str,),
    "snapshot_case": (str,),
    "input_rows": (int,),
    "output_rows": (int,),
    "input_sha256": (str, type(None)),
    "output_sha256": (str, type(None)),
    "counts": (dict,),
    "partitions": (int,),
    "tolerance_us": (int,),
    "source": (str, type(None)),
    "destination": (str, type(None)),
}


def parse_summary(data: bytes, *, field: str = "summary") -> JobSummary:
    """A job summary file, strictly: every key, the right types, nothing else."""
    value = strictjson.loads(data, field=field)
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        raise InvalidInput(f"not a {FORMAT} job summary", field=field)
    if set(value) != set(_TYPES):
        odd = ", ".join(sorted(set(value) ^ set(_TYPES)))
        raise InvalidInput(f"unexpected or missing keys: {odd}", field=field)
    for key, allowed in _TYPES.items():
        item = value[key]
        if isinstance(item, bool) or not isinstance(item, allowed):
            raise InvalidInput(f"{key} has the wrong type", field=field)
    if value["engine"] not in ENGINES:
        raise InvalidInput(
            f"engine {value['engine']!r} is not one of {', '.join(ENGINES)}", field=field
        )
    for key in ("snapshot_sha256", "input_sha256", "output_sha256"):
        digest = value[key]
        if digest is not None and (len(digest) != 64 or set(digest) - set("0123456789abcdef")):
            raise InvalidInput(f"{key} is not a SHA-256 in hex", field=field)
    counts = value["counts"]
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts.values()):
        raise InvalidInput("counts must be whole numbers", field=field)
    if sum(counts.values()) != value["output_rows"]:
        raise InvalidInput("counts do not add up to output_rows", field=field)
    del value["format"]
    return JobSummary(**value)


class ArrowDigest:
    """SHA-256 of Arrow columns that does not depend on how the rows are cut into batches.

    One hash per column, fed batch by batch with the validity bytes, the value lengths (strings)
    or values (numbers, nulls as 0) and the value bytes; the digest is the SHA-256 of the column
    names and their hashes.
    """

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self._hashes = {name: (hashlib.sha256(), hashlib.sha256()) for name in names}
        self.rows = 0

    def update(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        for name in self.names:
            column = batch.column(name)
            if isinstance(column, pa.ChunkedArray):
                column = column.combine_chunks()
            meta, values = self._hashes[name]
            valid = column.is_valid().to_numpy(zero_copy_only=False).astype(np.uint8)
            meta.update(valid.tobytes())
            kind = column.type
            if pa.types.is_string(kind) or pa.types.is_large_string(kind):
                text = column.cast(pa.large_string()).fill_null("")
                _, offsets_buffer, data = text.buffers()
                offsets = np.frombuffer(offsets_buffer, np.int64)[
                    text.offset : text.offset + len(text) + 1
                ]
                meta.update(np.diff(offsets).tobytes())
                if data is not None and len(offsets):
                    values.update(memoryview(data)[int(offsets[0]) : int(offsets[-1])])
            else:
                numbers = column.fill_null(0).cast(pa.int64()).to_numpy(zero_copy_only=False)
                values.update(np.ascontiguousarray(numbers, dtype="<i8").tobytes())

    def hexdigest(self) -> str:
        top = hashlib.sha256()
        for name in self.names:
            meta, values = self._hashes[name]
            top.update(f"{name}:{meta.hexdigest()}:{values.hexdigest()}\n".encode())
        return top.hexdigest()


def partition_part(
    batches: Iterable[pa.RecordBatch], input_names: list[str], partition: int
) -> dict[str, Any]:
    """What one partition adds to a job summary: rows, statuses, digests of input and output."""
    inputs = ArrowDigest(input_names)
    outputs: ArrowDigest | None = None
    counts: Counter[str] = Counter()
    for batch in batches:
        if outputs is None:
            outputs = ArrowDigest(list(batch.schema.names))
        inputs.update(batch)
        outputs.update(batch)
        counted = batch.column("status").value_counts()
        counts.update(
            dict(zip(counted.field(0).to_pylist(), counted.field(1).to_pylist(), strict=True))
        )
    return {
        "partition": partition,
        "rows": inputs.rows,
        "counts": dict(counts),
        "input_sha256": inputs.hexdigest(),
        "output_sha256": outputs.hexdigest() if outputs is not None else "",
    }


def summary_of(parts: list[dict[str, Any]], summary: JobSummary) -> JobSummary:
    """``summary`` completed from its partitions' parts (in partition order)."""
    parts = sorted(parts, key=lambda p: int(p["partition"]))
    summary.partitions = len(parts)
    summary.input_rows = summary.output_rows = sum(int(p["rows"]) for p in parts)
    summary.counts = merge_counts([p["counts"] for p in parts])
    summary.input_sha256 = combine([p["input_sha256"] for p in parts if p["rows"]])
    summary.output_sha256 = combine([p["output_sha256"] for p in parts if p["rows"]])
    return summary


def combine(digests: list[str]) -> str:
    """The digest of a job from its partitions' digests, in partition order."""
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


def merge_counts(parts: list[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for part in parts:
        total.update(part)
    return dict(sorted(total.items()))


__all__ = [
    "ENGINES",
    "FORMAT",
    "ArrowDigest",
    "JobSummary",
    "combine",
    "merge_counts",
    "parse_summary",
]
