"""The annotator reads every accepted spelling of the same rows the same way, and refuses the rest.

Addresses as dotted quads or unsigned integers, ports of any integer type, times as timestamps with
a zone in any unit, epoch seconds or milliseconds declared UTC, or RFC 3339 text with an offset:
the answers are identical. Timestamps without a zone, integer times without a unit and columns of
the wrong type are refused; a nanosecond part, a naive text time, nulls are ``invalid_query`` rows.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from detnat.errors import InvalidInput
from detnat.snapshot import file
from detnat.snapshot.annotate import OUTPUT_COLUMNS, Annotator, Columns


def _answers(annotator: Annotator, table: pa.Table) -> list[tuple[object, ...]]:
    out = pa.Table.from_batches([annotator.annotate(b) for b in table.to_batches()])
    return list(zip(*(out.column(c).to_pylist() for c in OUTPUT_COLUMNS), strict=True))


def _whole_seconds(table: pa.Table) -> pa.Table:
    """The rows with a time and address, times cut to whole seconds (epoch seconds can say them)."""
    table = table.filter(pa.compute.is_valid(table.column("time")))
    table = table.filter(pa.compute.is_valid(table.column("ip")))
    table = table.filter(pa.compute.invert(pa.compute.equal(table.column("ip"), "1.2.3")))
    seconds = pa.compute.divide(table.column("time").cast(pa.int64()), 1_000_000)
    return table.set_column(
        3, "time", pa.compute.multiply(seconds, 1_000_000).cast(pa.timestamp("us", tz="UTC"))
    )


def test_every_spelling_of_the_same_rows_gets_the_same_answers(
    snapshot_path: Path, flow_table: pa.Table
) -> None:
    snap = file.read(str(snapshot_path))
    table = _whole_seconds(flow_table)
    want = _answers(Annotator(snap), table)
    assert len({w[1] for w in want}) >= 5  # several statuses among them
    times = table.column("time")
    micros = times.cast(pa.int64())
    ints = pa.array(
        [
            int.from_bytes(bytes(int(p) for p in ip.split(".")), "big")
            for ip in table.column("ip").to_pylist()
        ],
        pa.uint32(),
    )
    spellings: list[tuple[Columns, pa.Table]] = [
        (Columns(), table.set_column(1, "ip", ints)),
        (Columns(), table.set_column(2, "port", table.column("port").cast(pa.int32()))),
        (Columns(), table.set_column(3, "time", times.cast(pa.timestamp("ns", tz="UTC")))),
        (Columns(), table.set_column(3, "time", times.cast(pa.timestamp("s", tz="Asia/Tokyo")))),
        (Columns(time_unit="s"), table.set_column(3, "time", pa.compute.divide(micros, 1_000_000))),
        (Columns(time_unit="ms"), table.set_column(3, "time", pa.compute.divide(micros, 1_000))),
        (
            Columns(),
            table.set_column(
                3,
                "time",
                pa.array(
                    [t.isoformat().replace("+00:00", "Z") for t in table.column("time").to_pylist()]
                ),
            ),
        ),
        (
            Columns(ip="src", port="sport", time="ts"),
            table.rename_columns(["id", "src", "sport", "ts"]),
        ),
    ]  # fmt: skip
    for columns, spelled in spellings:
        assert _answers(Annotator(snap, columns=columns), spelled) == want, columns


def test_rows_that_are_not_queries_are_invalid_query(snapshot_path: Path) -> None:
    snap = file.read(str(snapshot_path))
    table = pa.table(
        {
            "ip": ["192.0.2.1", None, "192.0.2.1", "192.0.2.01", "192.0.2.1", "192.0.2.1"],
            "port": [1, 2000, None, 2000, 70000, 2000],
            "time": [
                "2026-03-14T20:10:00Z",
                "2026-03-14T20:10:00Z",
                "2026-03-14T20:10:00Z",
                "2026-03-14T20:10:00Z",
                "2026-03-14T20:10:00Z",
                "2026-03-14T20:10:00",  # no offset
            ],
        }
    )
    got = _answers(Annotator(snap), table)
    assert got[0][1] == "no_mapping"
    assert [g[1:3] for g in got[1:]] == [("error", "invalid_query")] * 5
    nanos = pa.table(
        {
            "ip": ["192.0.2.1"] * 2,
            "port": [2000] * 2,
            "time": pa.array(
                [1_773_519_000_000_000_000, 1_773_519_000_000_000_001],
                pa.timestamp("ns", tz="UTC"),
            ),
        }
    )
    whole, finer = _answers(Annotator(snap), nanos)
    assert whole[1] == "ambiguous" and finer[1:3] == ("error", "invalid_query")  # at a change


@pytest.mark.parametrize("name", ["ip", "port", "time"])
def test_a_column_of_nulls_alone_is_invalid_query_rows_as_nulls_are(
    snapshot_path: Path, name: str
) -> None:
    """A column whose every value is absent can come typed ``null`` (pyarrow infers it from a
    CSV block of empty fields, or a pandas column of None): its rows are ``invalid_query``, as
    the same nulls in a typed column are, not a refused batch."""
    snap = file.read(str(snapshot_path))
    rows = {"ip": ["192.0.2.1"] * 3, "port": [2000] * 3, "time": ["2026-03-14T20:10:00Z"] * 3}
    typed = pa.table(rows | {name: pa.array([None] * 3, pa.table(rows).column(name).type)})
    untyped = pa.table(rows | {name: pa.nulls(3)})
    assert untyped.column(name).type == pa.null()
    assert _answers(Annotator(snap), untyped) == _answers(Annotator(snap), typed)
    assert {a[1:3] for a in _answers(Annotator(snap), untyped)} == {("error", "invalid_query")}


@pytest.mark.parametrize(
    ("column", "columns", "message"),
    [
        (pa.array([0], pa.timestamp("us")), Columns(), "without a zone"),
        (pa.array([0], pa.int64()), Columns(), "need their unit"),
        (pa.array([0.5]), Columns(time_unit="s"), "time column is double"),
    ],
)
def test_time_columns_that_cannot_say_an_instant_are_refused(
    snapshot_path: Path, column: pa.Array, columns: Columns, message: str
) -> None:
    annotator = Annotator(file.read(str(snapshot_path)), columns=columns)
    batch = pa.RecordBatch.from_pydict({"ip": ["192.0.2.1"], "port": [2000], "time": column})
    with pytest.raises(InvalidInput, match=message):
        annotator.annotate(batch)


def test_missing_or_taken_columns_are_refused(snapshot_path: Path) -> None:
    annotator = Annotator(file.read(str(snapshot_path)))
    with pytest.raises(InvalidInput, match="no column 'time'"):
        annotator.annotate(pa.RecordBatch.from_pydict({"ip": ["192.0.2.1"], "port": [1]}))
    taken = {"ip": ["192.0.2.1"], "port": [1], "time": ["2026-03-14T20:10:00Z"], "status": ["x"]}
    with pytest.raises(InvalidInput, match="already has"):
        annotator.annotate(pa.RecordBatch.from_pydict(taken))
    with pytest.raises(InvalidInput):
        Columns.parse("ip=a,nope=b")


ADDRESS = 0xC0000201  # 192.0.2.1


@pytest.mark.parametrize(
    ("ip_type", "bad_ips", "port_type", "bad_ports"),
    [
        (pa.int64(), [-1, 1 << 32], pa.int64(), [-1, 65536]),
        (pa.uint64(), [1 << 32, (1 << 64) - 1], pa.int32(), [-1, 65536]),
        (pa.uint32(), [], pa.uint16(), []),  # nothing outside: no pass over the values
    ],
)
def test_integers_outside_an_address_or_port_are_invalid_query_whatever_their_type(
    snapshot_path: Path,
    ip_type: pa.DataType,
    bad_ips: list[int],
    port_type: pa.DataType,
    bad_ports: list[int],
) -> None:
    snap = file.read(str(snapshot_path))
    ips = [ADDRESS] * 3 + bad_ips + [ADDRESS] * len(bad_ports)
    ports = [0, 2000, 65535] + [2000] * len(bad_ips) + bad_ports
    table = pa.table(
        {
            "ip": pa.array(ips, ip_type),
            "port": pa.array(ports, port_type),
            "time": pa.array([1_773_519_000_000_000] * len(ips), pa.timestamp("us", tz="UTC")),
        }
    )
    got = _answers(Annotator(snap), table)
    assert [g[1] == "error" for g in got[:3]] == [False] * 3
    assert [g[1:3] for g in got[3:]] == [("error", "invalid_query")] * (len(ips) - 3)


def test_a_word_kept_for_the_next_batches_is_right_for_any_batch_size(
    snapshot_path: Path, flow_table: pa.Table
) -> None:
    """The ``status`` / ``realm`` of batches whose rows all say one word are slices of an array
    kept between batches: larger, smaller and equal batches after it get their own length."""
    snap = file.read(str(snapshot_path))
    annotator = Annotator(snap)
    one = flow_table.slice(0, 1).to_batches()[0]
    for n in (40, 7, 40, 100, 1, 100):
        batch = pa.RecordBatch.from_arrays(
            [pa.concat_arrays([c] * n) for c in one.columns], schema=one.schema
        )
        got = annotator.annotate(batch)
        got.validate(full=True)
        want = Annotator(snap).annotate(batch)  # nothing kept from earlier batches
        for name in OUTPUT_COLUMNS:
            assert len(got.column(name)) == n
            assert got.column(name).equals(want.column(name)), name
    assert annotator._repeats  # the words were kept
