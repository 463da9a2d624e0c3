"""Postgres CPU per question of the batch's logs statement alone (issue 13).

Run by hand against a database ``bench_logs_scale.py --keep`` left (not part of the tests)::

    .venv/bin/python bench/bench_logs_probe.py URL [--questions 100000] [--runs 3]
        [--uniform] [--hide INDEX]

Sends ``--questions`` questions through :func:`detnat.store.logs.deciding` (realm ``scale``), as
``BatchLogs`` does (sorted, JIT off), ``--runs`` times, and prints the CPU its Postgres backend
used per question (from /proc: a local server), the wall time per question, and the buffers of an
``EXPLAIN (ANALYZE, BUFFERS)`` of the first 20,000. Questions are a random port and instant of
intervals sampled as ``bench_logs_scale.py`` samples them (``TABLESAMPLE``: a few thousand pages
of the table, so a small hot set), or with ``--uniform`` any address, port and instant of the
generated month (every page of the store equally likely). ``--hide INDEX`` drops that index
inside the transaction (rolled back after each run), to compare two indexes on one database.
Runs the statement of the checkout it is started from.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's code

from detnat.store import logs as store

FIRST_PUBLIC = (198 << 24) | (18 << 16)
T0_US = 1_767_225_600 * 10**6  # 2026-01-01T00:00:00Z
MONTH_US = 31 * 86_400 * 10**6


def backend_cpu(conn: psycopg.Connection[Any]) -> float:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    fields = Path(f"/proc/{row[0]}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url", help="libpq URL of a bench_logs_scale.py database")
    parser.add_argument("--questions", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--uniform", action="store_true")
    parser.add_argument("--hide", help="an index to drop (rolled back) during each run")
    args = parser.parse_args()
    with psycopg.connect(args.url) as conn:
        addresses = int(
            conn.execute("SELECT count(DISTINCT public) FROM log_intervals").fetchone()[0]
        )  # type: ignore[index]
        picked = conn.execute(
            "SELECT public, port_first, (extract(epoch FROM lower(during)) * 1e6)::bigint, "
            "(extract(epoch FROM upper(during)) * 1e6)::bigint FROM log_intervals "
            "TABLESAMPLE SYSTEM (0.5) REPEATABLE (13) LIMIT 50000"
        ).fetchall()
        conn.rollback()
        for run in range(args.runs):
            rnd = random.Random(100 + run)
            asked = []
            for _ in range(args.questions):
                if args.uniform:
                    public = FIRST_PUBLIC + rnd.randrange(addresses - 1)
                    port = 1024 + rnd.randrange(64512)
                    asked.append((public * 65536 + port, T0_US + rnd.randrange(MONTH_US)))
                else:
                    public, first, start, end = picked[rnd.randrange(len(picked))]
                    key = public * 65536 + first + rnd.randrange(512)
                    asked.append((key, rnd.randrange(start, end)))
            asked.sort()
            keys = np.array([k for k, _ in asked], dtype=np.int64)
            at = np.array([a for _, a in asked], dtype=np.int64)
            store.without_jit(conn)
            if args.hide:
                conn.execute(f"DROP INDEX {args.hide}")
            cpu, wall = backend_cpu(conn), time.perf_counter()
            found = store.deciding(conn, "scale", keys, at, at)
            cpu, wall = backend_cpu(conn) - cpu, time.perf_counter() - wall
            with store.with_arrays(conn.cursor()) as cur:
                some = slice(0, 20_000)
                cur.execute(
                    "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) " + store.DECIDING_IN_REALM,
                    store.deciding_params("scale", keys[some], at[some], at[some]),
                )
                buffers = next(r[0].strip() for r in cur.fetchall() if "Buffers" in r[0])
            conn.rollback()
            print(
                f"run {run}: {len(found.n):,} intervals found for {len(asked):,} questions; "
                f"Postgres CPU {cpu / len(asked) * 1e6:.2f} µs, wall {wall / len(asked) * 1e6:.2f} "
                f"µs per question; 20,000 questions: {buffers}",
                flush=True,
            )


if __name__ == "__main__":
    main()
