"""Reverse lookups answered from many stored log intervals (issue 13: 10 M intervals).

Run by hand (not part of the tests)::

    .venv/bin/python bench/bench_logs_scale.py [--intervals 10000000] [--lookups 2000]
        [--batch 1000000] [--keep] [--database URL]

Creates a throwaway database on the Postgres of ``DETNAT_TEST_DATABASE_URL`` (default the local
one), one realm without a plan (so every question is answered by the logs), a real ingest of two
lines (the realm's ingest entry, its log hold, its month partition), then ``--intervals`` intervals
generated in SQL as a month of port-block allocations would make them: addresses of 198.18.0.0/15,
126 blocks of 512 ports each (1024-65535), each block given to a random one of 100,000 inside keys
40 times over January 2026 (allocate, release), with their two lines stored in ``log_events``
(text, SHA-256: what a single answer shows) unless ``--no-events``. The indexes of the migration are
built after the load (as a restore would); nothing of the ingest path is timed here (see
``bench_logs.py``).

Then: ``EXPLAIN`` of the single lookup's query and of the batch's query (both walk the B-tree
``ix_log_intervals_block_time`` of migration 0010), ``--lookups`` single reverse lookups
(the plan answer, then :func:`detnat.service.log_answers.consult`, as a lookup does; p50/p99 in
ms), and a batch of ``--batch`` rows through ``reverse_csv_at`` with the logs asked per chunk
(rows/s, wall and CPU; the SHA-256 of its whole output, to compare two versions' answers).
``--database URL`` reuses a database a ``--keep`` run left (no generation).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's code

from detnat.logs.events import EventKind, LineRef, LogEvent  # noqa: E402
from detnat.service import audit, batch_lookups, log_answers, logs, lookups, plans  # noqa: E402
from detnat.service.timelines import TimelineCache  # noqa: E402
from detnat.store import migrate  # noqa: E402
from detnat.store.db import make_engine, make_sessions, unit_of_work  # noqa: E402

SERVER = os.environ.get(
    "DETNAT_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REALM = "scale"
START = datetime(2026, 1, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MONTH_US = 31 * 86_400 * 10**6
BLOCKS = 126  # blocks of 512 ports in 1024-65535
PER_BLOCK = 40  # allocations of one block over the month
SUBSCRIBERS = 100_000
FIRST_PUBLIC = (198 << 24) | (18 << 16)
OPS = audit.Actor("bench", "admin")

# One row per allocation: (public, block, k) -> its inside key, start and end (µs), its two lines.
GENERATE = """
CREATE UNLOGGED TABLE gen AS
SELECT public, port_first, inside, s_us, e_us,
       concat_ws(',', to_char(to_timestamp(s_us / 1e6) AT TIME ZONE 'UTC',
                 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), 'allocate', inside, host(public_ip),
                 port_first, port_first + 511) AS line_a,
       concat_ws(',', to_char(to_timestamp(e_us / 1e6) AT TIME ZONE 'UTC',
                 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), 'release', inside, host(public_ip),
                 port_first, port_first + 511) AS line_r,
       row_number() OVER () AS n
FROM (
    SELECT p AS public, '0.0.0.0'::inet + p AS public_ip, 1024 + b * 512 AS port_first,
           '100.64.0.0'::inet + (random() * {subscribers})::int AS inside,
           {t0} + k * {slot} + (random() * {slot} * 0.1)::bigint AS s_us,
           (random() * {slot} * 0.85)::bigint + 1000000 AS d_us
    FROM generate_series({first}, {first} + {addresses} - 1) p,
         generate_series(0, {blocks} - 1) b,
         generate_series(0, {per_block} - 1) k
    LIMIT {intervals}
) g, LATERAL (SELECT g.s_us + g.d_us AS e_us) e
"""
FILL = """
INSERT INTO log_intervals (realm_id, public, port_first, port_last, port_step, protocol, inside,
    during, ports, open, unknown_start, conflict, lines)
SELECT {realm}, public, port_first, port_first + 511, 1, 'all', host(inside),
       tstzrange(to_timestamp(0) + s_us * interval '1 microsecond',
                 to_timestamp(0) + e_us * interval '1 microsecond'),
       int8range(public * 65536 + port_first, public * 65536 + port_first + 512),
       false, false, false,
       jsonb_build_array(
           jsonb_build_array('allocate', s_us, 'month.csv', 2 * n,
                             encode(sha256(line_a::bytea), 'hex')),
           jsonb_build_array('release', e_us, 'month.csv', 2 * n + 1,
                             encode(sha256(line_r::bytea), 'hex')))
FROM gen
"""
EVENTS = """
INSERT INTO log_events (realm_id, at, line_sha256, ingest_id, kind, inside, public, port_first,
    port_last, port_step, protocol, file, line, raw)
SELECT {realm}, to_timestamp(0) + at_us * interval '1 microsecond',
       encode(sha256(raw::bytea), 'hex'), {ingest}, kind, host(inside), public, port_first,
       port_first + 511, 1, 'all', 'month.csv', line, raw
FROM gen, LATERAL (VALUES (s_us, 'allocate', 2 * n, line_a), (e_us, 'release', 2 * n + 1, line_r))
     AS v(at_us, kind, line, raw)
"""


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(False)


@contextmanager
def database(reuse: str | None, keep: bool) -> Iterator[tuple[str, bool]]:
    if reuse:
        yield reuse, False
        return
    name = f"detnat_scale_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_libpq(SERVER), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(SERVER).set(database=name).render_as_string(False)
    try:
        yield url, True
    finally:
        if keep:
            print(f"kept: --database {url}")
        else:
            with psycopg.connect(_libpq(SERVER), autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _step(label: str, began: float) -> float:
    now = time.perf_counter()
    print(f"  {label}: {now - began:.1f} s", flush=True)
    return now


def generate(url: str, intervals: int, events: bool) -> None:
    """The realm, a real two-line ingest, then ``intervals`` generated rows (module docstring)."""
    migrate.upgrade(url)
    engine = make_engine(url, pool_size=1)
    sessions = make_sessions(engine)
    with unit_of_work(sessions) as s:
        plans.create_realm(s, REALM, session_drain=timedelta(0), by=OPS)
        public = "198.18.255.255"  # outside the generated addresses
        at = (START - EPOCH) // timedelta(microseconds=1)
        ref = LineRef("seed.csv", 1, "0" * 64)
        seed = [
            LogEvent(EventKind.ALLOCATE, at, "100.127.0.1", public, 1024, 1535, None, ref),
            LogEvent(
                EventKind.RELEASE,
                at + 10**6,
                "100.127.0.1",
                public,
                1024,
                1535,
                None,
                LineRef("seed.csv", 2, "1" * 64),
            ),
        ]
        import io

        reading = logs.Reading(io.BytesIO(b""), name="seed.csv")
        logs.ingest(
            s,
            REALM,
            seed,
            reading,
            fmt="bench",
            by=OPS,
            request_id="seed",
            log_hold=timedelta(hours=24),
        )
        realm_id = plans.get_realm(s, REALM).id
        ingest_id = int(s.scalar(text("SELECT max(id) FROM log_ingests")) or 0)
    engine.dispose()
    addresses = -(-intervals // (BLOCKS * PER_BLOCK))
    params = {
        "subscribers": SUBSCRIBERS,
        "t0": (START - EPOCH) // timedelta(microseconds=1),
        "slot": MONTH_US // PER_BLOCK,
        "first": FIRST_PUBLIC,
        "addresses": addresses,
        "blocks": BLOCKS,
        "per_block": PER_BLOCK,
        "intervals": intervals,
        "realm": realm_id,
        "ingest": ingest_id,
    }
    print(f"generating {intervals:,} intervals on {addresses:,} addresses", flush=True)
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET work_mem = '256MB'")
        conn.execute("SELECT setseed(0.13)")
        t = time.perf_counter()
        conn.execute(GENERATE.format(**params))
        t = _step("generated (unlogged table)", t)
        conn.execute("ALTER TABLE log_intervals DROP CONSTRAINT pk_log_intervals")
        conn.execute("DROP INDEX ix_log_intervals_ports_during")
        # the other indexes of the migrations, built again after the load
        others = [
            row[0]
            for row in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'log_intervals' "
                "AND indexname <> 'pk_log_intervals'"
            )
        ]
        for name in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'log_intervals' "
            "AND indexname <> 'pk_log_intervals'"
        ).fetchall():
            conn.execute(f"DROP INDEX {name[0]}")
        conn.execute(FILL.format(**params))
        t = _step("log_intervals filled", t)
        conn.execute(
            "ALTER TABLE log_intervals ADD CONSTRAINT pk_log_intervals PRIMARY KEY (realm_id, "
            "public, port_first, port_last, port_step, protocol, inside, during)"
        )
        t = _step("primary key built", t)
        conn.execute(
            "CREATE INDEX ix_log_intervals_ports_during ON log_intervals USING gist (ports, during)"
        )
        t = _step("GiST index built", t)
        for made in others:
            conn.execute(made)
            t = _step(f"built again: {made}", t)
        if events:
            for month in ("2026-01-01", "2026-02-01"):
                conn.execute(f"SELECT log_events_partition({realm_id}, '{month}T00:00:00Z')")
            conn.execute(EVENTS.format(**params))
            t = _step("log_events filled (2 lines per interval)", t)
        conn.execute("DROP TABLE gen")
        conn.execute("VACUUM ANALYZE log_intervals")
        conn.execute("ANALYZE log_events")
        t = _step("vacuum analyze", t)
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        print(f"  database size: {size.fetchone()[0]}", flush=True)  # type: ignore[index]


def backend_cpu(session: Any) -> float | None:
    """CPU seconds the session's Postgres backend has used (None: not a local server)."""
    pid = session.scalar(text("SELECT pg_backend_pid()"))
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_text(before: float | None, after: float | None, per: int) -> str:
    if before is None or after is None:
        return "server CPU n/a"
    return f"server CPU {(after - before) / per * 1e6:,.0f} µs per question"


def explain(url: str, sample: list[tuple[int, int, int, int, str]]) -> None:
    """The plans of the single query and the batch query (both the B-tree)."""
    from detnat.store import logs as store

    public, port, s_us, e_us, _ = sample[0]
    with psycopg.connect(_libpq(url)) as conn:
        single = store.ANSWERING_ASYNC
        at = EPOCH + timedelta(microseconds=(s_us + e_us) // 2)
        plan = conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + single,
            {"key": public * 65536 + port, "start": at, "end": at, "port": port},
        ).fetchall()
        print("EXPLAIN single:\n    " + "\n    ".join(r[0] for r in plan))
        rows = sorted(sample[:20_000])
        conn.execute("SET jit = off")  # as BatchLogs does
        keys = [p * 65536 + q for p, q, *_ in rows]
        ats = [a for _, _, a, _, _ in rows]
        with conn.cursor() as cur:
            store.with_arrays(cur)
            cur.execute(
                "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + store.DECIDING_IN_REALM,
                store.deciding_params(REALM, keys, ats, ats),
            )
            plan = cur.fetchall()
        print(f"EXPLAIN batch ({len(rows)} rows):\n    " + "\n    ".join(r[0] for r in plan))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--intervals", type=int, default=10_000_000)
    parser.add_argument("--lookups", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=1_000_000, help="rows of the batch")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--database", help="reuse the database of a --keep run")
    parser.add_argument("--no-events", action="store_true", help="no log_events rows")
    parser.add_argument("--no-explain", action="store_true")
    args = parser.parse_args()
    with database(args.database, args.keep) as (url, fresh):
        if fresh:
            began = time.perf_counter()
            generate(url, args.intervals, not args.no_events)
            print(f"generation: {time.perf_counter() - began:.0f} s")
        engine = make_engine(url, pool_size=2)
        sessions = make_sessions(engine)
        with sessions() as s:
            stored = int(s.scalar(text("SELECT count(*) FROM log_intervals")) or 0)
            picked = s.execute(
                text(
                    "SELECT public, port_first, (extract(epoch FROM lower(during)) * 1e6)::bigint,"
                    " (extract(epoch FROM upper(during)) * 1e6)::bigint, inside FROM "
                    "log_intervals TABLESAMPLE SYSTEM (:pct) REPEATABLE (13) WHERE public < "
                    ":last LIMIT 50000"
                ),
                {"last": FIRST_PUBLIC + 65535, "pct": min(100.0, 6e6 / max(stored, 1))},
            ).all()
        rnd = random.Random(args.seed)
        sample = [
            (int(p), int(f) + rnd.randrange(512), rnd.randrange(int(s), int(e)), int(e), i)
            for p, f, s, e, i in picked
        ]
        rnd.shuffle(sample)
        print(f"{stored:,} intervals stored; {len(sample):,} questions sampled")
        if not args.no_explain:
            explain(url, [(p, q, a, a, i) for p, q, a, _, i in sample])
        now = datetime.now(UTC)
        times: list[float] = []
        right = 0
        cpu = time.process_time()
        with sessions() as s:
            server = backend_cpu(s)
            for public, port, at_us, _, inside in sample[: args.lookups]:
                address = logs.store.ipv4_text(public)
                at = EPOCH + timedelta(microseconds=at_us)
                t0 = time.perf_counter()
                answer = lookups.reverse_at(s, address, port, at=at, realm=REALM)
                answer = log_answers.consult(s, answer, realm=REALM, now=now)
                times.append(time.perf_counter() - t0)
                right += answer.get("subscriber") == f"{inside}/32"
            server_text = _cpu_text(server, backend_cpu(s), len(times))
        cpu = time.process_time() - cpu
        times.sort()
        p50 = statistics.median(times) * 1000
        p99 = times[int(len(times) * 0.99) - 1] * 1000
        print(
            f"single lookups: {len(times)}: p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
            f"mean CPU {cpu / len(times) * 1000:.2f} ms, {server_text}; "
            f"{right} named the allocation's inside key"
        )
        # every row its own question: a random port of a random sampled block, a random instant
        rows = ["ip,port,time\n"]
        for _ in range(args.batch):
            public, first, start_us, end_us, _ = picked[rnd.randrange(len(picked))]
            at = EPOCH + timedelta(microseconds=rnd.randrange(int(start_us), int(end_us)))
            port = int(first) + rnd.randrange(512)
            rows.append(f"{logs.store.ipv4_text(int(public))},{port},{at.isoformat()[:26]}Z\n")
        with sessions() as s:
            query = batch_lookups.BatchQuery(
                snapshot=TimelineCache().get(s),
                now=now,
                mappers=plans.MapperCache(),
                realm=REALM,
                logs=log_answers.BatchLogs(s, REALM),
            )
            out: list[str] = []
            server = backend_cpu(s)
            cpu = time.process_time()
            t0 = time.perf_counter()
            report = batch_lookups.reverse_csv_at(query, rows, out.append)
            took = time.perf_counter() - t0
            cpu = time.process_time() - cpu
            server_text = _cpu_text(server, backend_cpu(s), report.rows)
        print(
            f"batch (reverse_csv_at, logs asked per chunk): {report.rows:,} rows in {took:.2f} s "
            f"= {report.rows / took:,.0f} rows/s (this process's CPU {cpu:.2f} s, {server_text}); "
            f"{report.counts}"
        )
        written = "".join(out)
        digest = hashlib.sha256(written.encode()).hexdigest()
        print(f"batch output: {len(written):,} characters, SHA-256 {digest}")
        engine.dispose()
        print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
