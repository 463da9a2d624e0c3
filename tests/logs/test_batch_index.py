"""The batch's and the single lookup's statements over the B-tree of migration 0010 find what the
GiST probe found.

:data:`detnat.store.logs.DECIDING` walks ``ix_log_intervals_block_time`` (per realm and span of
ports, the range of ``port_first`` that can hold the port, the window tested on the index
entries); the statement it replaced probed the GiST on ``(ports, during)``; so did the single
lookup's (:data:`detnat.store.logs.ANSWERING`), which now walks it too. For random interval
rows -- two realms, blocks of several spans, strided ones, single ports, the whole range, bounds
missing, inclusive or not -- and random questions at and around every edge, both give the same
rows, realm named or not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from detnat.store import logs as store
from detnat.store.db import SessionFactory, make_engine, make_sessions
from tests.logs.conftest import new_realm
from tests.store.conftest import throwaway_database

pytestmark = pytest.mark.postgres

# The statement of the batch before migration 0010 (GiST probes), realm by id, as reference.
_AT = (
    "to_timestamp(0) + (q.{x} / 1000000) * interval '1 second' + (q.{x} %% 1000000) * "
    "interval '1 microsecond'"
)
_LINE_AT = "(SELECT {f}((l->>1)::bigint) FROM jsonb_array_elements(i.lines) AS l)"
REFERENCE = (
    "SELECT q.n, i.inside, i.open, i.unknown_start, i.conflict, "
    "CASE WHEN i.unknown_start OR lower_inf(i.during) THEN " + _LINE_AT.format(f="min") + " "
    "ELSE (extract(epoch FROM lower(i.during)) * 1000000)::bigint END, "
    "CASE WHEN NOT i.open AND NOT upper_inf(i.during) THEN "
    "(extract(epoch FROM upper(i.during)) * 1000000)::bigint - 1 "
    "ELSE " + _LINE_AT.format(f="max") + " END, i.realm_id "
    "FROM unnest(%(ns)s::integer[], %(keys)s::bigint[], %(starts)s::bigint[], "
    "%(ends)s::bigint[], %(ports)s::integer[]) AS q(n, key, s, e, port) "
    "JOIN log_intervals i ON i.ports @> q.key AND i.during && tstzrange("
    + _AT.format(x="s")
    + ", "
    + _AT.format(x="e")
    + ", '[]') AND (q.port - i.port_first) %% i.port_step = 0"
)
# The single lookup's statement before it walked the B-tree too (a GiST probe), as reference.
SINGLE_REFERENCE = store._SHOWN.format() + (
    "WHERE i.ports @> CAST(:key AS bigint) AND i.during && tstzrange(:start, :end, '[]') AND "
    "(:port - i.port_first) % i.port_step = 0"
)
S = 10**6
T0 = 1_773_518_400 * S  # 2026-03-14T20:00:00Z
# (first, last, step): spans 0, 3, 511, 1023, 65535; strided; blocks sharing ports
BLOCKS = [
    (1024, 1535, 1),
    (1024, 1535, 4),
    (1027, 1027, 1),
    (1500, 2523, 1),
    (1536, 2047, 1),
    (0, 65535, 1),
    (65532, 65535, 1),
]
PORTS = [0, 1023, 1024, 1025, 1027, 1028, 1535, 1536, 2047, 2523, 2524, 65532, 65535]


@pytest.fixture(scope="module")
def database() -> Iterator[tuple[SessionFactory, list[int]]]:
    """A store of this module's own (its rows are written straight into ``log_intervals`` and
    rolled back) with two realms."""
    with throwaway_database() as url:
        engine = make_engine(url, pool_size=2)
        sessions = make_sessions(engine)
        names = [new_realm(sessions), new_realm(sessions)]
        with sessions() as s:
            ids = [
                int(s.scalar(text("SELECT id FROM realms WHERE name = :n"), {"n": n}))
                for n in names
            ]
        yield sessions, ids
        engine.dispose()


def _bound(draw: st.DrawFn) -> int | None:
    return draw(st.one_of(st.none(), st.integers(-3, 12).map(lambda k: T0 + k * S)))


@st.composite
def intervals(draw: st.DrawFn, realms: int) -> list[tuple[Any, ...]]:
    rows = []
    for _ in range(draw(st.integers(0, 12))):
        first, last, step = draw(st.sampled_from(BLOCKS))
        lower, upper = _bound(draw), _bound(draw)
        if lower is not None and upper is not None and upper <= lower:
            upper = lower + draw(st.integers(1, 3 * S))
        bounds = draw(st.sampled_from(["[)", "[)", "[]", "()"]))
        lines = [
            ["allocate", T0 + draw(st.integers(-5, 15)) * S, "f", 1, "a" * 64]
            for _ in range(draw(st.integers(1, 2)))
        ]
        rows.append(
            (
                draw(st.integers(0, realms - 1)),
                draw(st.sampled_from([1, 2])),
                first,
                last,
                step,
                draw(st.sampled_from(["all", "tcp"])),
                draw(st.sampled_from(["10.0.0.1", "10.0.0.2"])),
                lower,
                upper,
                bounds,
                draw(st.booleans()),
                draw(st.booleans()),
                draw(st.booleans()),
                json.dumps(lines),
            )
        )
    return rows


@st.composite
def questions(draw: st.DrawFn) -> list[tuple[int, int, int]]:
    asked = []
    for _ in range(draw(st.integers(1, 25))):
        start = T0 + draw(st.integers(-4, 13)) * S + draw(st.sampled_from([-1, 0, 1]))
        end = start + draw(st.sampled_from([0, 1, S - 1, S, 4 * S]))
        key = draw(st.sampled_from([1, 2, 3])) * 65536 + draw(st.sampled_from(PORTS))
        asked.append((key, start, end))
    return asked


def _insert(conn: psycopg.Connection[Any], ids: list[int], rows: list[tuple[Any, ...]]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO log_intervals (realm_id, public, port_first, port_last, port_step, "
            "protocol, inside, during, ports, open, unknown_start, conflict, lines) VALUES "
            "(%s, %s, %s, %s, %s, %s, %s, tstzrange(to_timestamp(0) + %s * interval "
            "'1 microsecond', to_timestamp(0) + %s * interval '1 microsecond', %s), "
            "int8range(%s * 65536 + %s, %s * 65536 + %s + 1), %s, %s, %s, %s::jsonb) "
            "ON CONFLICT DO NOTHING",
            [
                (ids[r], p, f, la, st_, pr, i, lo, up, b, p, f, p, la, o, u, c, lines)
                for r, p, f, la, st_, pr, i, lo, up, b, o, u, c, lines in rows
            ],
        )


def _same_rows(
    sessions: SessionFactory,
    ids: list[int],
    rows: list[tuple[Any, ...]],
    asked: list[tuple[int, int, int]],
) -> int:
    """Both statements' rows for ``asked`` over ``rows``, realm named or not, are the same; how
    many rows were found."""
    keys = np.array([k for k, _, _ in asked], dtype=np.int64)
    starts = np.array([s for _, s, _ in asked], dtype=np.int64)
    ends = np.array([e for _, _, e in asked], dtype=np.int64)
    held = 0
    with sessions() as s:
        conn = store.raw_connection(s)
        conn.execute("DELETE FROM log_intervals")
        _insert(conn, ids, rows)
        names = store.realm_names(conn)
        for realm in (None, names[ids[0]], names[ids[1]]):
            found = sorted(store.deciding(conn, realm, keys, starts, ends).rows())
            with conn.cursor() as cur:
                cur.execute(
                    REFERENCE,
                    {
                        "ns": list(range(len(asked))),
                        "keys": keys.tolist(),
                        "starts": starts.tolist(),
                        "ends": ends.tolist(),
                        "ports": (keys & 0xFFFF).tolist(),
                    },
                )
                expected = sorted(
                    r for r in cur.fetchall() if realm is None or names[r[7]] == realm
                )
            assert found == expected
            held += len(found)
        for key, start, end in asked:  # the single lookup's statement: the same rows
            public, port = key >> 16, key & 0xFFFF
            window = (store.instant(start), store.instant(end))
            single = store.answering(s, public, port, *window)
            params = {"key": key, "port": port, "start": window[0], "end": window[1]}
            reference = s.execute(text(SINGLE_REFERENCE), params).all()
            assert sorted(map(repr, single)) == sorted(map(repr, reference))
        s.rollback()
    return held


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_the_b_tree_walk_finds_what_the_gist_probe_found(
    database: tuple[SessionFactory, list[int]], data: st.DataObject
) -> None:
    sessions, ids = database
    _same_rows(sessions, ids, data.draw(intervals(len(ids))), data.draw(questions()))


def test_windows_that_touch_an_interval_at_an_inclusive_bound_find_it(
    database: tuple[SessionFactory, list[int]],
) -> None:
    """A window that ends at an inclusive start, or starts at an inclusive end, holds the interval
    (the index conditions compare bounds with ``<=`` / ``>=``); at an exclusive one it does not."""
    sessions, ids = database
    lines = json.dumps([["allocate", T0, "f", 1, "a" * 64]])
    rows = [
        (0, 1, 1024, 1535, 1, "all", "10.0.0.1", T0, T0 + S, bounds, True, False, False, lines)
        for bounds in ("[]", "()")
    ]
    asked = [(65536 + 1024, T0 + S, T0 + S + 5), (65536 + 1535, T0 - 5, T0)]
    assert _same_rows(sessions, ids, rows, asked) == 4  # the "[]" row, each way, realm or none


def test_the_batch_statement_reads_the_intervals_through_the_b_tree(
    database: tuple[SessionFactory, list[int]],
) -> None:
    """Its plan (and the single lookup's) reads ``log_intervals`` through
    ``ix_log_intervals_block_time`` only, sequential scans priced out (a small table is
    otherwise read whole)."""
    sessions, ids = database
    with sessions() as s:
        conn = store.raw_connection(s)
        conn.execute("SET LOCAL enable_seqscan = off")
        conn.execute("SET LOCAL enable_bitmapscan = off")
        names = store.realm_names(conn)
        keys = np.array([65536 + 1024], dtype=np.int64)
        at = np.array([T0], dtype=np.int64)
        for realm in (None, names[ids[0]]):
            statement = store.DECIDING if realm is None else store.DECIDING_IN_REALM
            with store.with_arrays(conn.cursor()) as cur:
                cur.execute(
                    "EXPLAIN (COSTS OFF) " + statement, store.deciding_params(realm, keys, at, at)
                )
                plan = "\n".join(r[0] for r in cur.fetchall())
            scans = [line for line in plan.splitlines() if "on log_intervals" in line]
            assert scans and all("ix_log_intervals_block_time" in line for line in scans), plan
        params = {"key": 65536 + 1024, "port": 1024, "start": store.instant(T0)}
        explained = s.execute(
            text("EXPLAIN (COSTS OFF) " + store.ANSWERING), params | {"end": params["start"]}
        )
        plan = "\n".join(r[0] for r in explained)
        scans = [line for line in plan.splitlines() if "on log_intervals" in line]
        assert scans and all("ix_log_intervals_block_time" in line for line in scans), plan
        s.rollback()
