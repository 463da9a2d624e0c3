"""The store batch against the reference: the same bytes, bad rows and counts on every path.

:func:`tests.test_batch.store_reference` answers a CSV of ``ip,port,time`` one row at a time with
the csv module, the single parsers and one single lookup per row (``lookups.reverse_in`` on the
batch's snapshot). :func:`batch_lookups.reverse_csv_blocks` must write exactly its bytes whether a
block takes the numpy path or the csv module's, for blocks of any size (small ones put both kinds
side by side and cut quoted records across blocks), from a file or from decoded lines, over a
store of several realms with plan changes, drains, retirements, times before any plan, times in
the future, windows that straddle a change and rows that are not queries.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detnat.errors import InvalidInput
from detnat.service import batch_lookups, lookups
from detnat.service.plans import MapperCache
from detnat.service.timelines import TimelineCache, Timelines
from detnat.service.times import format_instant
from detnat.store.db import SessionFactory
from tests.store.conftest import T0
from tests.store.test_batch_store import NOW, world  # noqa: F401 (a fixture)
from tests.test_batch import NASTY, PLAIN, PORTS, store_reference

pytestmark = pytest.mark.postgres

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
ODD_TIMES = [
    "",
    "yesterday",
    "2026-02-30T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00.5+00:30",
    "9999-12-31T23:59:59Z",
    "2026-03-14 20:00:05Z",
    "2026-03-14t20:00:05.1234567Z",
    " 2026-03-14T20:00:05Z",
    "2026-03-14T20:00:60Z",
    "2026-03-14T20:00:05+24:00",
    "=2026-03-14T20:00:05Z",
]


@st.composite
def instants(draw: st.DrawFn, changes: list[datetime], naive: bool) -> str:
    base = draw(
        st.sampled_from(changes)
        | st.sampled_from([T0 - timedelta(days=30), NOW + timedelta(seconds=5), NOW])
        | st.integers(-3_600, 3_600).map(lambda s: T0 + timedelta(seconds=s))
    )
    at = base + timedelta(microseconds=draw(st.sampled_from([0, 1, -1, 999_999, 30_000_000])))
    shape = draw(
        st.sampled_from(["z", "offset", "naive", "odd"] if naive else ["z", "offset", "odd"])
    )
    if shape == "z":
        return format_instant(at)
    if shape == "offset":
        return at.astimezone(timezone(timedelta(hours=-1, minutes=-30))).isoformat()
    if shape == "naive":
        return at.replace(tzinfo=None).isoformat()
    return draw(st.sampled_from(ODD_TIMES))


@st.composite
def store_csv(draw: st.DrawFn, ips: list[str], changes: list[datetime], naive: bool) -> bytes:
    """A CSV of queries as abuse desks send them; ``plain`` ones have no quotes or CR."""
    plain = draw(st.booleans())
    extra_names = ["note", "=x"] if plain else ["note", "=x", "a,b", 'q"q']
    extras = draw(st.lists(st.sampled_from(extra_names), unique=True))
    header = draw(st.permutations(["ip", "port", "time", *extras]))
    text_cells = PLAIN if plain else NASTY
    rows = [header]
    for _ in range(draw(st.integers(0, 30))):
        row = []
        for name in header:
            if name == "ip":
                row.append(draw(st.sampled_from(ips) | st.sampled_from(["10.1.2.3", "1.2.3"])))
            elif name == "port":
                row.append(draw(st.sampled_from(PORTS) | st.integers(0, 65535).map(str)))
            elif name == "time":
                row.append(draw(instants(changes, naive)))
            else:
                row.append(draw(text_cells))
        shape = draw(st.sampled_from(["as is"] * 8 + ["short", "long", "empty line"]))
        if shape == "short":
            row = row[: draw(st.integers(1, len(row)))]
        elif shape == "long":
            row += draw(st.lists(text_cells, min_size=1, max_size=2))
        elif shape == "empty line":
            row = []
        rows.append(row)
    lines = []
    for row in rows:
        cells = []
        for value in row:
            special = any(c in value for c in ',"\r\n')
            if special or (not plain and draw(st.integers(0, 9)) == 0):
                cells.append('"' + value.replace('"', '""') + '"')
            else:
                cells.append(value)
        line = ",".join(cells)
        if not plain and draw(st.integers(0, 19)) == 0:
            line += '"oops'  # a stray quote, maybe opening a quoted field
        lines.append(line)
    endings = ["\n"] if plain else ["\n", "\r\n", "\r"]
    text = "".join(line + draw(st.sampled_from(endings)) for line in lines)
    if draw(st.booleans()):
        text = text.rstrip("\r\n")
    bom = "\ufeff" if draw(st.booleans()) else ""
    return (bom + text).encode()


def single(snapshot: Timelines, query: batch_lookups.BatchQuery) -> Any:
    def answer(ip: int, port: int, at: datetime) -> tuple[str, str, str]:
        found = lookups.reverse_in(
            snapshot,
            ip,
            port,
            at=at,
            tolerance=query.tolerance,
            realm=query.realm,
            now=NOW,
            mappers=query.mappers,
        )
        return (found["status"], found.get("reason", ""), found.get("subscriber", ""))

    return answer


def every_path(query: batch_lookups.BatchQuery, data: bytes) -> list[tuple[bytes, Any]]:
    """(output, report) of the file reader in blocks of several sizes, by one worker thread or
    two, and of decoded lines."""
    outputs = []
    for block_bytes, threads in ((1 << 19, 2), (1, 1), (7, 2), (64, 1), (64, 2)):
        sink = io.BytesIO()
        blocks = batch_lookups.file_blocks(io.BytesIO(data), block_bytes=block_bytes)
        report = batch_lookups.reverse_csv_blocks(query, blocks, sink.write, threads=threads)
        outputs.append((sink.getvalue(), report))
    text = data.decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    for rows in (batch_lookups.CHUNK_ROWS, 3):
        sink = io.BytesIO()
        lines = batch_lookups.line_blocks(io.StringIO(text, newline=""), rows=rows)
        report = batch_lookups.reverse_csv_blocks(query, lines, sink.write)
        outputs.append((sink.getvalue(), report))
    chunks: list[str] = []
    report = batch_lookups.reverse_csv_at(query, io.StringIO(text, newline=""), chunks.append)
    outputs.append(("".join(chunks).encode("utf-8", "surrogateescape"), report))
    return outputs


@SETTINGS
@given(data=st.data())
def test_store_batch_gives_the_reference_bytes_on_every_path(
    sessions: SessionFactory,
    world: dict[str, Any],  # noqa: F811
    data: st.DataObject,
) -> None:
    realms: list[str] = world["realms"]
    tz = data.draw(st.sampled_from([None, "UTC", "Etc/GMT-2", "Europe/Berlin"]))
    csv_bytes = data.draw(store_csv(world["ips"], world["changes"], naive=tz is not None))
    tolerance = timedelta(seconds=data.draw(st.sampled_from([0, 0, 2, 90])))
    realm = data.draw(st.sampled_from([None, None, realms[0], realms[1]]))
    with sessions() as s:
        snapshot = TimelineCache().get(s)
    query = batch_lookups.BatchQuery(
        snapshot=snapshot, now=NOW, mappers=MapperCache(), tolerance=tolerance, realm=realm, tz=tz
    )
    try:
        expected, bad, counts = store_reference(single(snapshot, query), csv_bytes, tz=tz)
    except ValueError:
        with pytest.raises(InvalidInput) as caught:
            every_path(query, csv_bytes)
        assert caught.value.field == "header"
        return
    for output, report in every_path(query, csv_bytes):
        assert output == expected
        assert report.bad_rows == bad[: batch_lookups.MAX_BAD_ROWS]
        assert report.bad_row_count == len(bad)
        assert list(report.counts.items()) == list(counts.items())
        assert report.rows == sum(counts.values())


def test_plain_rows_over_three_realms_take_the_numpy_path_and_agree(
    sessions: SessionFactory,
    world: dict[str, Any],  # noqa: F811
) -> None:
    """Many plain rows (one block of the numpy path) near every change, named realm or not."""
    ips: list[str] = world["ips"]
    changes: list[datetime] = world["changes"]
    rows = []
    for k in range(3000):
        at = changes[k % len(changes)] + timedelta(seconds=(k * 7919) % 1200 - 600)
        rows.append(f"{ips[k % len(ips)]},{(k * 104729) % 65536},{format_instant(at)}\n")
    data = ("ip,port,time\n" + "".join(rows)).encode()
    with sessions() as s:
        snapshot = TimelineCache().get(s)
    for realm in (None, world["realms"][0]):
        for seconds in (0, 30):
            query = batch_lookups.BatchQuery(
                snapshot=snapshot,
                now=NOW,
                mappers=MapperCache(),
                tolerance=timedelta(seconds=seconds),
                realm=realm,
            )
            expected, bad, counts = store_reference(single(snapshot, query), data)
            assert len(counts) >= 3
            for output, report in every_path(query, data):
                assert output == expected
                assert report.bad_rows == bad


@pytest.mark.parametrize("block_bytes", [1, 2, 5, 1 << 19])
def test_file_blocks_are_whole_lines_without_the_bom(block_bytes: int) -> None:
    data = b"\xef\xbb\xbfip,port,time\r\na\rb\r\nc\n\xef\xbb\xbfd"
    blocks = list(batch_lookups.file_blocks(io.BytesIO(data), block_bytes=block_bytes))
    assert b"".join(blocks) == data[3:]
    assert all(block.endswith((b"\n", b"\r")) for block in blocks[:-1])
    assert not any(block.startswith(b"\n") for block in blocks)  # CRLF is never cut in two


def test_file_blocks_refuse_a_line_longer_than_the_limit() -> None:
    blocks = batch_lookups.file_blocks(io.BytesIO(b"ip,port,time\n" + b"x" * 100), limit=50)
    assert next(blocks) == b"ip,port,time\n"
    with pytest.raises(InvalidInput, match="a line longer than 50 characters"):
        next(blocks)


def test_the_cli_writes_the_same_bytes_to_a_file_and_to_stdout(
    database_url: str,
    world: dict[str, Any],  # noqa: F811
    tmp_path: Path,
) -> None:
    ips: list[str] = world["ips"]
    rows = [
        f"{ips[k % len(ips)]},{1024 + 97 * k % 64000},{format_instant(T0 + timedelta(seconds=k))}\n"
        for k in range(2000)
    ]
    source = tmp_path / "in.csv"
    source.write_bytes(("\ufeffip,port,time\n" + "".join(rows) + "=1+1,80,x\n").encode())
    env = {**os.environ, "DETNAT_DATABASE_URL": database_url}
    command = [sys.executable, "-c", "from cli.main import app; app()", "reverse", "--batch"]
    root = Path(__file__).resolve().parents[2]
    to_file = subprocess.run(
        [*command, str(source), "--case", "PIPE-1", "-o", str(tmp_path / "out.csv")],
        env=env,
        cwd=root,
        capture_output=True,
    )
    to_stdout = subprocess.run(
        [*command, str(source), "--case", "PIPE-2"], env=env, cwd=root, capture_output=True
    )
    assert to_file.returncode == to_stdout.returncode == 2, to_file.stderr  # one bad row
    written = (tmp_path / "out.csv").read_bytes()
    assert to_stdout.stdout == written
    lines = written.decode().splitlines()
    assert lines[0] == "ip,port,time,status,reason,subscriber"
    assert len(lines) == 2002 and lines[-1].startswith("'=1+1,80,x,error,")
    assert f"{source}:2002:" in to_file.stderr.decode()
