"""Times beyond what a timestamp column's unit can say in microseconds are not queries.

Found by an attacker's review: the annotator multiplied second and millisecond timestamps into
microseconds with numpy's int64, which wraps without a word. A row of year 586,000 (a garbage
time, 18,448,455,073,710 s) came out as 2024-03-21 -- and was answered with whoever held the port
then; ``detnat reverse --at`` refuses such a time. Integer columns were bounded; timestamps not.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from detnat.snapshot import file
from detnat.snapshot.annotate import Annotator

US = {"s": 1_000_000, "ms": 1_000}


def _wrapping_to(at_us: int, unit: str) -> int:
    """A value of ``unit`` that, times its microseconds in int64, wraps to ``at_us`` (or just
    after it, within the unit)."""
    scale = US[unit]
    target = 2**64 + at_us
    return (target + (-target) % scale) // scale


@pytest.mark.parametrize("unit", ["s", "ms"])
def test_a_time_that_wraps_around_int64_microseconds_is_invalid_not_answered(
    snapshot_path: Path, flow_table: pa.Table, unit: str
) -> None:
    annotator = Annotator(file.read(str(snapshot_path)))
    answered = annotator.annotate(flow_table.to_batches()[0])
    row = answered.column("status").to_pylist().index("match")
    at_us = flow_table.column("time").cast(pa.int64())[row].as_py()
    far = _wrapping_to(at_us - at_us % US[unit], unit)  # a whole unit: the row's own instant
    batch = pa.RecordBatch.from_pydict(
        {
            "ip": [flow_table.column("ip")[row].as_py()],
            "port": [flow_table.column("port")[row].as_py()],
            "time": pa.array([far], pa.timestamp(unit, tz="UTC")),
        }
    )
    out = annotator.annotate(batch)
    got = (out.column("status")[0].as_py(), out.column("reason")[0].as_py())
    assert got == ("error", "invalid_query"), (far, got, out.column("subscriber")[0].as_py())
