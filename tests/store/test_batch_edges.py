"""The store batch at the edges of its blocks, against the reference (``store_reference``).

The pipeline cuts a file into read chunks and blocks of whole lines, answers blocks on worker
threads, numbers lines only when a block is delivered, and lays each block's output rows out in a
grid (or byte by byte when one line is far wider than the others). Every case here puts one of
those cuts where it could go wrong and checks the bytes, the bad rows (with their line numbers)
and the counts against the row-by-row reference of ``tests/test_batch.py``.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Any

import pytest

from detnat.errors import InvalidInput
from detnat.service import batch_lookups
from detnat.service.plans import MapperCache
from detnat.service.timelines import TimelineCache
from detnat.service.times import format_instant
from detnat.store.db import SessionFactory
from tests.store.conftest import T0
from tests.store.test_batch_pipeline import single
from tests.store.test_batch_store import NOW, world  # noqa: F401 (a fixture)
from tests.test_batch import store_reference

pytestmark = pytest.mark.postgres

# Read sizes: one byte, a few bytes (a row cut anywhere), about a row, and whole-file reads.
READS = (1, 3, 17, 41, 64, 97, 1 << 19)


def _rows(facts: dict[str, Any], count: int, *, note: str | None = None) -> list[str]:
    ips: list[str] = facts["ips"]
    changes: list[datetime] = facts["changes"]
    rows = []
    for k in range(count):
        at = changes[k % len(changes)] + timedelta(seconds=(k * 7919) % 1200 - 600)
        row = f"{ips[k % len(ips)]},{(k * 104729) % 65536},{format_instant(at)}"
        rows.append(row if note is None else f"{row},{note}")
    return rows


def _check(sessions: SessionFactory, data: bytes, *, reads: tuple[int, ...] = READS) -> None:
    with sessions() as s:
        snapshot = TimelineCache().get(s)
    query = batch_lookups.BatchQuery(snapshot=snapshot, now=NOW, mappers=MapperCache())
    expected, bad, counts = store_reference(single(snapshot, query), data)
    for block_bytes in reads:
        for threads in (1, 2):
            sink = io.BytesIO()
            blocks = batch_lookups.file_blocks(io.BytesIO(data), block_bytes=block_bytes)
            report = batch_lookups.reverse_csv_blocks(query, blocks, sink.write, threads=threads)
            assert sink.getvalue() == expected, (block_bytes, threads)
            assert report.bad_rows == bad[: batch_lookups.MAX_BAD_ROWS], (block_bytes, threads)
            assert report.bad_row_count == len(bad)
            assert list(report.counts.items()) == list(counts.items())
            assert report.rows == sum(counts.values())


def test_a_row_cut_by_every_read_size(sessions: SessionFactory, world: dict[str, Any]) -> None:  # noqa: F811
    data = ("ip,port,time\n" + "\n".join(_rows(world, 60)) + "\n").encode()
    _check(sessions, data, reads=(*range(1, 70, 4), 1 << 19))


def test_crlf_line_ends(sessions: SessionFactory, world: dict[str, Any]) -> None:  # noqa: F811
    data = ("ip,port,time\r\n" + "\r\n".join(_rows(world, 40)) + "\r\n").encode()
    _check(sessions, data)


def test_a_quoted_field_with_a_line_break(sessions: SessionFactory, world: dict[str, Any]) -> None:  # noqa: F811
    rows = _rows(world, 30, note="plain")
    rows[11] = rows[11].removesuffix(",plain") + ',"two\nlines, and a comma"'
    rows[12] = rows[12].removesuffix(",plain") + ',"=formula\r\nafter CRLF"'
    data = ("ip,port,time,note\n" + "\n".join(rows) + "\n").encode()
    _check(sessions, data)


def test_bad_rows_on_either_side_of_a_block_boundary(
    sessions: SessionFactory,
    world: dict[str, Any],  # noqa: F811
) -> None:
    """Blocks of a few rows each (reads of about a row), a bad row first and last in many of
    them: their line numbers are counted across blocks answered by two threads."""
    rows = _rows(world, 80)
    for k in range(0, 80, 7):
        rows[k] = "10.1.2.3,99999,2026-13-01T00:00:00Z"
    for k in range(3, 80, 11):
        rows[k] = "=1+1,80,later"
    data = ("ip,port,time\n" + "\n".join(rows) + "\n").encode()
    _check(sessions, data)


def test_empty_lines_between_blocks(sessions: SessionFactory, world: dict[str, Any]) -> None:  # noqa: F811
    rows = _rows(world, 30)
    text = "ip,port,time\n\n" + "\n\n\n".join(rows) + "\n\n"
    _check(sessions, text.encode())


def test_a_line_too_long_for_the_csv_module_then_more_blocks(
    sessions: SessionFactory,
    world: dict[str, Any],  # noqa: F811
) -> None:
    """A block the numpy path hands back (a field above the csv module's limit), then bad rows
    in later blocks: their line numbers stay right."""
    rows = _rows(world, 40, note="n")
    rows[5] = rows[5].removesuffix(",n") + "," + "x" * (csv.field_size_limit() + 10)
    rows[30] = "1.2.3,80,2026-01-01T00:00:00Z,n"
    data = ("ip,port,time,note\n" + "\n".join(rows) + "\n").encode()
    _check(sessions, data, reads=(64, 1 << 19))


def test_one_wide_line_among_narrow_ones(sessions: SessionFactory, world: dict[str, Any]) -> None:  # noqa: F811
    """A line far wider than the others (the output assembled byte by byte), and a short last
    line under wide ones (the grid's windows run past the block's bytes)."""
    rows = _rows(world, 40, note="y" * 60)
    rows[7] = rows[7].removesuffix("y" * 60) + "w" * 3000
    rows[8] = rows[8].removesuffix("y" * 60) + "=cmd"
    rows[-1] = rows[-1].removesuffix("y" * 60)
    data = ("ip,port,time,note\n" + "\n".join(rows) + "\n").encode()
    _check(sessions, data)
    narrow_last = _rows(world, 40, note="y" * 60)
    narrow_last[-1] = narrow_last[-1].removesuffix("y" * 60)
    _check(sessions, ("ip,port,time,note\n" + "\n".join(narrow_last)).encode())


@pytest.mark.parametrize("ending", ["", "\n", "\r\n"])
def test_one_row(sessions: SessionFactory, world: dict[str, Any], ending: str) -> None:  # noqa: F811
    _check(sessions, ("ip,port,time\n" + _rows(world, 1)[0] + ending).encode())


def test_a_header_alone_gives_a_header_alone(
    sessions: SessionFactory,
    world: dict[str, Any],  # noqa: F811
) -> None:
    _check(sessions, b"ip,port,time\n")
    _check(sessions, b"\xef\xbb\xbfip,port,time")


def test_an_empty_file_is_refused_as_the_reference_refuses_it(
    sessions: SessionFactory,
    world: dict[str, Any],  # noqa: F811
) -> None:
    with sessions() as s:
        snapshot = TimelineCache().get(s)
    query = batch_lookups.BatchQuery(snapshot=snapshot, now=NOW, mappers=MapperCache())
    for data in (b"", b"\n\n", b"\xef\xbb\xbf"):
        with pytest.raises(ValueError):
            store_reference(single(snapshot, query), data)
        with pytest.raises(InvalidInput) as caught:
            blocks = batch_lookups.file_blocks(io.BytesIO(data))
            batch_lookups.reverse_csv_blocks(query, blocks, io.BytesIO().write)
        assert caught.value.field == "header"


def test_times_at_month_ends_and_offsets(sessions: SessionFactory, world: dict[str, Any]) -> None:  # noqa: F811
    """Dates the day table must know (month ends, 29 February in leap and century years, days
    that do not exist), with and without fractions and offsets, around the world's changes."""
    ips: list[str] = world["ips"]
    texts = []
    for year in (1, 1900, 2000, 2023, 2024, 2100, 9999):
        for month, day in ((1, 31), (2, 28), (2, 29), (2, 30), (4, 31), (12, 31), (13, 1)):
            texts.append(f"{year:04}-{month:02}-{day:02}T23:59:59Z")
            texts.append(f"{year:04}-{month:02}-{day:02}T00:00:00.000001-00:01")
    texts += [format_instant(T0 + timedelta(minutes=m)) for m in range(0, 30, 3)]
    texts += [(T0 + timedelta(minutes=12)).isoformat().replace("+00:00", "+14:00")]
    rows = [f"{ips[k % len(ips)]},{1024 + k},{t}" for k, t in enumerate(texts)]
    _check(sessions, ("ip,port,time\n" + "\n".join(rows) + "\n").encode(), reads=(1 << 19,))
