"""An ingest leaves the planner statistics fit for the lookups, from a small sample.

The ANALYZE after an ingest's COPY samples 300 x :data:`~detnat.store.directory.ANALYZE_TARGET`
rows (issue 14: at the default target it was a third of the server's work for 100,000 RADIUS
records). What the lookups need of it: the table's size and the columns they filter on, so that a
lookup right after a large ingest reads the table through the index, not a scan per candidate.

A database of its own: its intervals must not give other tests' answers an account.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from detnat.store import directory as rows_repo
from detnat.store.db import unit_of_work
from tests.directory.lab import T0, Lab, ingest_csv, lab_store
from tests.directory.test_index import _scans

pytestmark = pytest.mark.postgres

ROWS = 20_000
DAY = "2026-03-01T00:00:00Z,2026-03-02T00:00:00Z"


def _directory(rows: int) -> str:
    """``rows`` subscribers of 10.0.0.0/8, each held by one account for a day."""
    lines = ["subscriber,account,from,to"]
    lines += [f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255},A-{n},{DAY}" for n in range(rows)]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def store() -> Iterator[Lab]:
    with lab_store() as lab:
        ingest_csv(lab, "subscriber,account,from,to\n10.255.0.1,first,2026-03-01T00:00:00Z,\n")
        # the table was analyzed at one row: the next ingest is many times its size
        assert ingest_csv(lab, _directory(ROWS)).refused == []
        yield lab


def test_an_ingest_leaves_statistics_of_the_columns_the_lookups_filter_on(store: Lab) -> None:
    with unit_of_work(store.sessions) as s:
        raw = s.connection().connection.driver_connection
        assert raw is not None
        (tuples,) = raw.execute(
            "SELECT reltuples FROM pg_class WHERE relname = 'directory_intervals'"
        ).fetchone() or (None,)
        columns = {
            name: distinct
            for name, distinct in raw.execute(
                "SELECT attname, n_distinct FROM pg_stats WHERE tablename = 'directory_intervals'"
            ).fetchall()
        }
    assert tuples == ROWS + 1
    assert {"prefix", "during", "realm_id", "ingest"} <= columns.keys()
    assert columns["prefix"] == -1  # every prefix held once: one row per probe


def test_a_lookup_right_after_a_large_ingest_reads_the_table_through_the_index(
    store: Lab,
) -> None:
    net = "10.0.3.7/32"
    params: dict[str, Any] = {
        "net": net,
        "lo": T0 + timedelta(hours=1),
        "hi": T0 + timedelta(hours=2),
        "realm": None,
        "scoped": True,
    } | rows_repo._around_lengths(net, None, rows_repo._EVERY_LENGTH)
    with unit_of_work(store.sessions) as s:
        raw = s.connection().connection.driver_connection
        assert raw is not None
        with psycopg.ClientCursor(raw) as cur:  # the planner sees the values, as a lookup's
            (plan,) = cur.execute(
                "EXPLAIN (FORMAT JSON) " + rows_repo._AROUND_PG, params
            ).fetchone() or (None,)
            found = cur.execute(rows_repo._AROUND_PG, params).fetchall()
    plan = json.loads(plan) if isinstance(plan, str) else plan
    scans = list(_scans(plan))
    assert scans and all("Seq Scan" not in node["Node Type"] for node in scans), scans
    assert [row[3] for row in found] == ["A-775"]


def test_the_sessions_statistics_target_is_left_as_it_was(store: Lab) -> None:
    with unit_of_work(store.sessions) as s:
        raw = s.connection().connection.driver_connection
        assert raw is not None
        raw.execute("SET LOCAL default_statistics_target = 77")
        rows_repo.analyze(s)
        (target,) = raw.execute("SHOW default_statistics_target").fetchone() or (None,)
    assert target == "77"
