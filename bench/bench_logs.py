"""Log ingest and log-answered lookups against the store (issue 13).

Run by hand (not part of the tests)::

    .venv/bin/python bench/bench_logs.py [--subscribers 20000] [--blocks 4] [--lookups 2000]

Creates a throwaway database on the Postgres of ``DETNAT_TEST_DATABASE_URL`` (default the local
one, 127.0.0.1:5432), one realm, and a log of ``--subscribers`` inside keys each allocated and
released ``--blocks`` port blocks of 512 ports over a month (two lines per allocation) on a pool of
/24 addresses, written in the tests' own line format (``at_us,kind,inside,public,first,last,step,
protocol``) and read by a parser of that format defined here (the vendor parsers are timed by
their own benchmarks): what is timed is detnat's side of an ingest -- reading the file (line
count, SHA-256, raw lines kept), escaping, ``COPY`` into the staging table, the insert with
duplicates skipped, the intervals derived and ``COPY``-ed, the audit entry -- in lines/s.

Then ``--lookups`` single reverse lookups (a random address, port and instant inside some
interval: the plan answer, then :func:`detnat.service.log_answers.consult`, as a lookup does) give
p50/p99 in ms, and a batch of ``--batch`` rows of the same questions through ``reverse_csv_at``
with the logs asked per chunk (:class:`~detnat.service.log_answers.BatchLogs`) gives rows/s. The
database is dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's code

from detnat.logs.events import EventKind, LineRef, LogEvent, Refused  # noqa: E402
from detnat.service import audit, batch_lookups, log_answers, logs, lookups, plans  # noqa: E402
from detnat.service.timelines import TimelineCache  # noqa: E402
from detnat.store import migrate  # noqa: E402
from detnat.store.db import make_engine, make_sessions, unit_of_work  # noqa: E402

SERVER = os.environ.get(
    "DETNAT_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
START = datetime(2026, 1, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MONTH_US = 30 * 86_400 * 10**6
OPS = audit.Actor("bench", "admin")
KINDS = {k.value: k for k in EventKind}


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(False)


@contextmanager
def throwaway_database() -> Iterator[str]:
    name = f"detnat_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_libpq(SERVER), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(SERVER).set(database=name).render_as_string(False)
    finally:
        with psycopg.connect(_libpq(SERVER), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def parse(lines: Iterable[bytes], file: str) -> Iterator[LogEvent | Refused]:
    """The tests' line format, parsed as a vendor parser would (one LineRef per line)."""
    import hashlib

    for n, raw in enumerate(lines, start=1):
        at, kind, inside, public, first, last, step, protocol = raw.rstrip(b"\n").split(b",")
        yield LogEvent(
            KINDS[kind.decode()],
            int(at),
            inside.decode(),
            public.decode(),
            int(first),
            int(last),
            protocol.decode() or None,
            LineRef(file, n, hashlib.sha256(raw.rstrip(b"\r\n")).hexdigest()),
            int(step),
        )


def write_log(path: Path, subscribers: int, blocks: int, seed: int) -> list[tuple]:
    """The log file; the allocations as (public, first, start_us, end_us, inside)."""
    rnd = random.Random(seed)
    start_us = (START - EPOCH) // timedelta(microseconds=1)
    addresses = max(1, subscribers * blocks // 120)  # ~120 blocks of 512 in use per address
    made = []
    lines = []
    slot_free: dict[tuple[int, int], int] = {}
    for n in range(subscribers):
        inside = f"100.{64 + (n >> 16)}.{(n >> 8) & 255}.{n & 255}"
        for _ in range(blocks):
            public = rnd.randrange(addresses)
            slot = rnd.randrange(120)
            free = slot_free.get((public, slot), start_us)
            begin = free + rnd.randrange(1, MONTH_US // (blocks * 4))
            end = begin + rnd.randrange(10**6, MONTH_US // (blocks * 2))
            slot_free[(public, slot)] = end
            address = f"198.18.{public >> 8}.{public & 255}"
            first = 1024 + slot * 512
            lines.append((begin, f"{begin},allocate,{inside},{address},{first},{first + 511},1,\n"))
            lines.append((end, f"{end},release,{inside},{address},{first},{first + 511},1,\n"))
            made.append((address, first, begin, end, inside))
    lines.sort()
    with path.open("w") as f:
        f.writelines(text for _, text in lines)
    return made


def backend_cpu(pid: int) -> float:
    """CPU seconds (user + system) the Postgres backend ``pid`` has used, when it runs on this
    machine (a server elsewhere: 0, and the figures are this process's alone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ingest_formats(names: list[str], count: int, profile: str | None) -> None:
    """End to end per vendor format: the file read, parsed by the format's own parser, stored
    (COPY, duplicates, intervals, audit), as `detnat logs ingest` does; then the same file again
    (every line a duplicate). Lines/s of wall time, of this process's CPU time, and of the CPU
    time of this process and its Postgres backend together (what one core does: the figure of
    the target, and the one that load on a shared machine moves least)."""
    import cProfile

    from bench_logs_parse import SPECS, lines_of

    from detnat.logs.formats import parse_lines

    with tempfile.TemporaryDirectory() as tmp, throwaway_database() as url:
        migrate.upgrade(url)
        engine = make_engine(url, pool_size=1)
        sessions = make_sessions(engine)
        print(
            f"{'format':<12} {'pass':<6} {'lines/s wall':>13} {'python cpu':>11} "
            f"{'+ postgres':>11} {'events':>8} {'dupes':>8} {'refused':>8}"
        )
        for name in names:
            path = Path(tmp) / f"{name}.log"
            path.write_bytes(b"".join(lines_of(name, count)))
            realm = f"bench-{name}"
            with unit_of_work(sessions) as s:
                plans.create_realm(s, realm, session_drain=timedelta(0), by=OPS)
                backend = int(s.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar())
            for round_ in ("first", "again"):
                reading = logs.Reading.open(str(path))
                prof = cProfile.Profile() if profile and round_ == "first" else None
                server = backend_cpu(backend)
                wall, cpu = time.perf_counter(), time.process_time()
                if prof:
                    prof.enable()
                with unit_of_work(sessions) as s:
                    items = parse_lines(
                        name, reading.lines(), file=reading.name, options=SPECS[name].options
                    )
                    summary = logs.ingest(
                        s,
                        realm,
                        items,
                        reading,
                        fmt=name,
                        by=OPS,
                        request_id=f"bench-{round_}",
                        log_hold=timedelta(hours=24),
                    )
                if prof:
                    prof.disable()
                    prof.dump_stats(f"{profile}.{name}")
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                server = backend_cpu(backend) - server
                reading.close()
                lines = summary.lines_read
                print(
                    f"{name:<12} {round_:<6} {lines / wall:>13,.0f} {lines / cpu:>11,.0f} "
                    f"{lines / (cpu + server):>11,.0f} {summary.events_stored:>8,} "
                    f"{summary.duplicates:>8,} {summary.refused:>8,}"
                )
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--lookups", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=100_000, help="rows of the batch")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--format",
        action="append",
        help="time the ingest only, end to end, of --lines lines of this vendor format (repeat)",
    )
    parser.add_argument("--lines", type=int, default=200_000, help="lines per --format")
    parser.add_argument("--profile", help="with --format: write a cProfile of the ingest here")
    args = parser.parse_args()
    if args.format:
        ingest_formats(args.format, args.lines, args.profile)
        return
    with tempfile.TemporaryDirectory() as tmp, throwaway_database() as url:
        path = Path(tmp) / "pba.log"
        made = write_log(path, args.subscribers, args.blocks, args.seed)
        lines = 2 * len(made)
        print(f"{lines} lines, {len(made)} allocations, {path.stat().st_size >> 20} MiB")
        migrate.upgrade(url)
        engine = make_engine(url, pool_size=2)
        sessions = make_sessions(engine)
        with unit_of_work(sessions) as s:
            plans.create_realm(s, "bench", session_drain=timedelta(0), by=OPS)
        reading = logs.Reading.open(str(path))
        began = time.perf_counter()
        with unit_of_work(sessions) as s:
            summary = logs.ingest(
                s,
                "bench",
                parse(reading.lines(), reading.name),
                reading,
                fmt="bench",
                by=OPS,
                request_id="bench",
                log_hold=timedelta(hours=24),
            )
        took = time.perf_counter() - began
        reading.close()
        print(
            f"ingest: {summary.lines_read} lines, {summary.events_stored} events in {took:.1f} s "
            f"= {summary.lines_read / took:,.0f} lines/s (parser, COPY, intervals, audit)"
        )
        reading = logs.Reading.open(str(path))
        began = time.perf_counter()
        with unit_of_work(sessions) as s:
            again = logs.ingest(
                s,
                "bench",
                parse(reading.lines(), reading.name),
                reading,
                fmt="bench",
                by=OPS,
                request_id="bench-2",
            )
        took = time.perf_counter() - began
        reading.close()
        print(
            f"same file again: {again.duplicates} duplicates, "
            f"{again.lines_read / took:,.0f} lines/s"
        )

        rnd = random.Random(args.seed + 1)
        questions = []
        for _ in range(args.lookups):
            address, first, begin, end, inside = rnd.choice(made)
            at = EPOCH + timedelta(microseconds=rnd.randrange(begin, end))
            questions.append((address, first + rnd.randrange(512), at, inside))
        now = datetime.now(UTC)
        times = []
        right = 0
        with sessions() as s:
            for address, port, at, inside in questions:
                t0 = time.perf_counter()
                answer = lookups.reverse_at(s, address, port, at=at, realm="bench")
                answer = log_answers.consult(s, answer, realm="bench", now=now)
                times.append(time.perf_counter() - t0)
                right += answer.get("subscriber") == f"{inside}/32"
        times.sort()
        p50 = statistics.median(times) * 1000
        p99 = times[int(len(times) * 0.99) - 1] * 1000
        print(
            f"single lookups: {len(times)} against {summary.events_stored // 2} intervals: "
            f"p50 {p50:.2f} ms, p99 {p99:.2f} ms; {right} named the allocation's inside key"
        )
        rows = [
            f"{address},{port},{at.isoformat().replace('+00:00', 'Z')}\n"
            for address, port, at, _ in questions * max(1, args.batch // len(questions))
        ]
        with sessions() as s:
            query = batch_lookups.BatchQuery(
                snapshot=TimelineCache().get(s),
                now=now,
                mappers=plans.MapperCache(),
                realm="bench",
                logs=log_answers.BatchLogs(s, "bench"),
            )
            out: list[str] = []
            t0 = time.perf_counter()
            report = batch_lookups.reverse_csv_at(query, ["ip,port,time\n", *rows], out.append)
            took = time.perf_counter() - t0
        print(
            f"batch (reverse_csv_at, logs asked per chunk): {report.rows} rows in {took:.2f} s = "
            f"{report.rows / took:,.0f} rows/s; {report.counts}"
        )
        engine.dispose()


if __name__ == "__main__":
    main()
