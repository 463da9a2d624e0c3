"""Subscriber directory benchmarks (run by hand; prints figures).

    .venv/bin/python bench/bench_directory.py [--records 200000] [--lookups 2000]

On a throwaway database of the Postgres of ``DETNAT_TEST_DATABASE_URL`` (default the local
server, user postgres):

- ingest of each format, records per second: parsing alone, and parse + COPY + audit entry
  (what ``detnat directory ingest`` does);
- single reverse lookups (``inquiry.ask``, one commit each) over a plan of 16,384 subscribers,
  with accounts (role legal, a directory of every subscriber, three owners each over time)
  against without (role planner: the lookup path stops before the directory), alternating in
  rounds (best and median round);
- a batch of complaints (``complaints.answer_records``, 16,384 by default: random ports and
  times over the directory's three days) with accounts against without, alternating.

Wall-clock figures move with the machine's load: CPU seconds of this process are printed beside
them, and the CPU seconds of the database's backends (``/proc/PID/stat`` of every server process
connected to the benchmark's database, read from beside it: the server must run on this machine).

Targets (issue 14): ingest >= 100,000 records/s; lookups with accounts <= 1.2x without.
"""

from __future__ import annotations

import argparse
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

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detnat.complaints import Complaint, Ref  # noqa: E402
from detnat.complaints.records import to_us  # noqa: E402
from detnat.directory import parse  # noqa: E402
from detnat.planfile import plan_from_data  # noqa: E402
from detnat.service import complaints, directory, inquiry, plans, timelines  # noqa: E402
from detnat.service.audit import Actor  # noqa: E402
from detnat.service.batch_lookups import BatchQuery  # noqa: E402
from detnat.service.clock import utcnow  # noqa: E402
from detnat.service.times import format_instant  # noqa: E402
from detnat.store import migrate  # noqa: E402
from detnat.store.db import make_engine, make_sessions, normalise_url, unit_of_work  # noqa: E402

SERVER = os.environ.get(
    "DETNAT_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
E0 = int(T0.timestamp())
OPS = Actor("bench", "admin")


def _admin() -> str:
    return make_url(normalise_url(SERVER)).set(drivername="postgresql").render_as_string(False)


@contextmanager
def throwaway_database() -> Iterator[str]:
    name = f"detnat_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_admin(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(normalise_url(SERVER)).set(database=name).render_as_string(False)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        with psycopg.connect(_admin(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class ServerCpu:
    """CPU seconds (user + system) of the Postgres backends connected to one database, read from
    ``/proc/PID/stat`` (the server runs on this machine); this watcher's own backend left out."""

    def __init__(self, url: str) -> None:
        self.name = make_url(url).database
        self.conn = psycopg.connect(_admin(), autocommit=True)
        self.tick = os.sysconf("SC_CLK_TCK")

    def __call__(self) -> float:
        return sum(self.each().values())

    def each(self) -> dict[int, float]:
        """CPU seconds per backend (pid)."""
        pids = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (self.name,),
        ).fetchall()
        found = {}
        for (pid,) in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            found[pid] = (int(fields[11]) + int(fields[12])) / self.tick  # utime, stime
        return found

    def close(self) -> None:
        self.conn.close()


def radius_text(records: int) -> str:
    """Start/Stop pairs, one /56 and one /128 per session, 12 attribute lines per record."""
    out = []
    for n in range(records // 2):
        start = E0 + n
        for status, at in (("Start", start), ("Stop", start + 3600)):
            moment = datetime.fromtimestamp(at, UTC)
            out.append(
                f"{moment:%a %b} {moment.day:2d} {moment:%H:%M:%S %Y}\n"
                f'\tAcct-Session-Id = "S{n:08x}"\n'
                f"\tAcct-Status-Type = {status}\n"
                "\tAcct-Authentic = RADIUS\n"
                f'\tUser-Name = "user{n % 50000}@isp.example"\n'
                f"\tNAS-IP-Address = 192.0.2.{n % 8}\n"
                '\tCalling-Station-Id = "00-11-22-33-44-55"\n'
                f"\tDelegated-IPv6-Prefix = 2001:db8:{n >> 8 & 0xFFFF:x}:{(n & 0xFF) << 8:x}::/56\n"
                f"\tFramed-IPv6-Address = 2001:db8:ffff:{n & 0xFFFF:x}::1\n"
                f"\tEvent-Timestamp = {at}\n"
                "\tAcct-Delay-Time = 0\n"
                f"\tTimestamp = {at}\n\n"
            )
    return "".join(out)


def kea_text(records: int) -> str:
    header = (
        "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,prefix_len,"
        "fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,hwtype,hwaddr_source,pool_id\n"
    )
    rows = [
        f"2001:db8:{n >> 8 & 0xFFFF:x}:{(n & 0xFF) << 8:x}::,00:03:00:01:{n & 0xFF:02x},"
        f"3600,{E0 + n + 3600},1,1800,2,1,56,0,0,,,0,,1,0,0\n"
        for n in range(records)
    ]
    return header + "".join(rows)


def csv_text(records: int) -> str:
    rows = [
        f"2001:db8:{n >> 8 & 0xFFFF:x}:{(n & 0xFF) << 8:x}::/56,CUST-{n},"
        f"2026-01-01T00:00:00Z,2026-02-01T00:00:00Z\n"
        for n in range(records)
    ]
    return "subscriber,account,from,to\n" + "".join(rows)


def bench_ingest(url: str, records: int) -> None:
    engine = make_engine(url)
    sessions = make_sessions(engine)
    server = ServerCpu(url)
    with sessions() as s:  # the pool's connection, so that the server's CPU is read from it
        s.execute(text("SELECT 1"))
    for fmt, make, tz in (
        ("freeradius-detail", radius_text, "UTC"),
        ("kea-lease6", kea_text, None),
        ("csv", csv_text, None),
    ):
        data = make(records)
        t, c = time.perf_counter(), time.process_time()
        parsed = parse(fmt, [("bench", data)], tz=tz)
        parse_s, parse_c = time.perf_counter() - t, time.process_time() - c
        raw = data.encode()
        t, c, sv = time.perf_counter(), time.process_time(), server()
        with unit_of_work(sessions) as s:
            done = directory.ingest(
                s, OPS, fmt, [directory.InputFile("bench", raw)], tz=tz, request_id="bench"
            )
        wall, cpu, server_s = time.perf_counter() - t, time.process_time() - c, server() - sv
        print(
            f"{fmt:18} {parsed.records:>8} records ({done.intervals} intervals): "
            f"parse {parsed.records / parse_s:>9,.0f}/s wall {parsed.records / parse_c:>9,.0f}/s "
            f"cpu | ingest {done.records / wall:>9,.0f}/s wall, client cpu {cpu:6.2f} s "
            f"({done.records / cpu:>9,.0f}/s), server cpu {server_s:6.2f} s "
            f"({done.records / max(server_s, 0.01):>9,.0f}/s)"
        )
    server.close()
    engine.dispose()


def setup_lookups(url: str) -> None:
    """Realm ``bench`` (16,384 subscribers on 198.18.0.0/30) and a directory of three owners
    over time for each subscriber (49,152 intervals)."""
    engine = make_engine(url)
    sessions = make_sessions(engine)
    plan = plan_from_data(
        {
            "algorithm": "block",
            "inside": {"prefixes": ["10.0.0.0/18"], "subscriber_prefix_length": 32},
            "outside": {"prefixes": ["198.18.0.0/30"]},
            "block": {"ratio": 4096},
        }
    )
    with unit_of_work(sessions) as s:
        plans.create_realm(s, "bench", by=OPS, session_drain=timedelta(0), single_approver=True)
        plans.publish(
            s,
            "bench",
            plan,
            effective_from=T0,
            reason="B",
            by=OPS,
            clock=lambda: T0 - timedelta(days=1),
        )
    rows = ["subscriber,account,from,to"]
    for n in range(16384):
        ip = f"10.0.{n >> 8}.{n & 255}"
        rows += [
            f"{ip},A-{n},2026-01-01T00:00:00Z,2026-01-02T00:00:00Z",
            f"{ip},B-{n},2026-01-02T00:00:00Z,2026-01-03T00:00:00Z",
            f"{ip},C-{n},2026-01-03T00:00:00Z,",
        ]
    with unit_of_work(sessions) as s:
        directory.ingest(
            s,
            OPS,
            "csv",
            [directory.InputFile("d.csv", "\n".join(rows).encode())],
            tz=None,
            request_id="bench",
        )
    engine.dispose()


def _spread(label: str, rounds: list[tuple[float, float]], unit: float, name: str) -> str:
    wall = sorted(w for w, _ in rounds)
    cpu = sorted(c for _, c in rounds)
    return (
        f"{label:17} wall best {wall[0] * unit:7.2f} median {statistics.median(wall) * unit:7.2f} "
        f"{name}, cpu best {cpu[0] * unit:7.2f} median {statistics.median(cpu) * unit:7.2f} {name}"
    )


def bench_lookups(url: str, lookups: int, rounds: int) -> None:
    engine = make_engine(url)
    sessions = make_sessions(engine)
    kept = inquiry.Inquiries()
    cache = timelines.TimelineCache()
    with sessions() as s:
        snap = cache.get(s)
    roles = {"without accounts": Actor("p", "planner"), "with accounts": Actor("l", "legal")}
    results: dict[str, list[tuple[float, float]]] = {label: [] for label in roles}
    served: dict[str, float] = {label: 0.0 for label in roles}
    server = ServerCpu(url)
    per_round = max(1, lookups // rounds)
    n = 0
    for r in range(rounds + 1):  # the first round warms up (connections, prepared statements)
        for label, actor in roles.items():
            t, c, sv = time.perf_counter(), time.process_time(), server()
            for _ in range(per_round):
                query = inquiry.ReverseQuery(
                    f"198.18.0.{n & 3}",
                    1024 + (n * 7919) % 64000,
                    "2026-01-02T12:00:00Z",
                    inquiry.Identity(f"BENCH-{actor.role}"),
                    "cli",
                )
                n += 1
                with unit_of_work(sessions) as s:
                    answered = inquiry.ask(
                        s, actor, query, snapshot=snap, kept=kept, now=utcnow(), request_id="b"
                    )
                if label == "with accounts":
                    assert (
                        answered.answer.get("account") is not None
                        or answered.answer["status"] != "match"
                    )
            if r:
                took = (time.perf_counter() - t, time.process_time() - c)
                results[label].append((took[0] / per_round, took[1] / per_round))
                served[label] += server() - sv
    for label, found in results.items():
        each = served[label] / (per_round * rounds) * 1e3
        print("lookups " + _spread(label, found, 1e3, "ms") + f", server cpu {each:5.2f} ms")
    server.close()
    base = statistics.median(w for w, _ in results["without accounts"])
    withacc = statistics.median(w for w, _ in results["with accounts"])
    print(f"lookups: with / without accounts, median wall: {withacc / base:.2f}x")
    engine.dispose()


def bench_lookups_lean(url: str, lookups: int, rounds: int, concurrency: int) -> None:
    """The same comparison on the lookup path the API and the CLI answer through
    (:func:`inquiry.ask_async` on psycopg alone, entries group-committed), ``concurrency``
    lookups in flight at once (1: one after the other, as the CLI asks)."""
    import asyncio

    from detnat.store.async_db import AsyncStore
    from detnat.store.lean import libpq_url

    with psycopg.connect(libpq_url(url)) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        snap = timelines.TimelineCache().load(conn)
    kept = inquiry.Inquiries()
    roles = {"without accounts": Actor("p", "planner"), "with accounts": Actor("l", "legal")}
    results: dict[str, list[tuple[float, float]]] = {label: [] for label in roles}
    served: dict[str, float] = {label: 0.0 for label in roles}
    written: dict[str, float] = {label: 0.0 for label in roles}  # the audit writer's backend
    server = ServerCpu(url)
    per_round = max(concurrency, lookups // rounds)
    counter = iter(range(10**9))

    def writer_pid(store: AsyncStore) -> int | None:
        conn = store.audit._conn
        return None if conn is None else conn.info.backend_pid

    async def one(store: AsyncStore, actor: Actor, label: str) -> None:
        n = next(counter)
        query = inquiry.ReverseQuery(
            f"198.18.0.{n & 3}",
            1024 + (n * 7919) % 64000,
            "2026-01-02T12:00:00Z",
            inquiry.Identity(f"BENCH-{actor.role}"),
            "api",
        )
        answered = await inquiry.ask_async(
            store, actor, query, snapshot=snap, kept=kept, now=utcnow(), request_id="b"
        )
        if label == "with accounts":
            assert (
                answered.answer.get("account") is not None or answered.answer["status"] != "match"
            )

    async def run() -> None:
        store = AsyncStore(url, concurrency)
        try:
            for r in range(rounds + 1):  # the first round warms up
                for label, actor in roles.items():
                    pid = writer_pid(store)
                    t, c, sv = time.perf_counter(), time.process_time(), server.each()
                    for _ in range(per_round // concurrency):
                        await asyncio.gather(
                            *(one(store, actor, label) for _ in range(concurrency))
                        )
                    if r:
                        took = (time.perf_counter() - t, time.process_time() - c)
                        results[label].append((took[0] / per_round, took[1] / per_round))
                        now = server.each()
                        served[label] += sum(now.values()) - sum(sv.values())
                        if pid is not None and pid == writer_pid(store):
                            written[label] += now.get(pid, 0.0) - sv.get(pid, 0.0)
        finally:
            await store.close()

    asyncio.run(run())
    for label, found in results.items():
        each = served[label] / (per_round * rounds) * 1e3
        line = f"lean c={concurrency} " + _spread(label, found, 1e3, "ms")
        writer = written[label] / (per_round * rounds) * 1e3
        print(line + f", server cpu {each:5.2f} ms (audit writer's {writer:5.2f})")
    server.close()
    base = statistics.median(w for w, _ in results["without accounts"])
    withacc = statistics.median(w for w, _ in results["with accounts"])
    print(f"lean c={concurrency}: with / without accounts, median wall: {withacc / base:.2f}x")


def bench_batch(url: str, complaints_n: int, rounds: int) -> None:
    engine = make_engine(url)
    sessions = make_sessions(engine)
    rnd = random.Random(14)
    records = []
    for k in range(complaints_n):
        at = T0 + timedelta(seconds=rnd.randrange(3 * 86400))
        ip, port = f"198.18.0.{rnd.randrange(4)}", rnd.randrange(1024, 65536)
        stamp = format_instant(at)
        records.append(
            Complaint(Ref("bench"), "csv", f"c{k}", ip, port, "source", to_us(at), stamp, "Z", "x")
        )
    roles = {"without accounts": Actor("p", "planner"), "with accounts": Actor("l", "legal")}
    results: dict[str, list[tuple[float, float]]] = {label: [] for label in roles}
    served: dict[str, list[float]] = {label: [] for label in roles}
    server = ServerCpu(url)
    cache = timelines.TimelineCache()
    for r in range(rounds + 1):
        for label, actor in roles.items():
            out: list[str] = []
            with unit_of_work(sessions) as s:
                query = BatchQuery(snapshot=cache.get(s), now=utcnow(), mappers=plans.MapperCache())
                t, c, sv = time.perf_counter(), time.process_time(), server()
                query = complaints.with_accounts(s, actor, query)
                report = complaints.answer_records(query, records, out.append)
                took = (time.perf_counter() - t, time.process_time() - c)
                used = server() - sv
            assert sum(report.counts.values()) == complaints_n
            if r:
                results[label].append(took)
                served[label].append(used)
    for label, found in results.items():
        median = statistics.median(served[label])
        print(
            f"batch of {complaints_n} " + _spread(label, found, 1, "s") + f", server {median:.2f} s"
        )
    server.close()
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--complaints", type=int, default=16384)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=["ingest", "lookups", "lean", "batch"])
    parser.add_argument(
        "--concurrency", type=int, default=1, help="lookups in flight at once on the lean path"
    )
    args = parser.parse_args()
    with throwaway_database() as url:
        if args.only in (None, "ingest"):
            bench_ingest(url, args.records)
        if args.only in (None, "lookups", "lean", "batch"):
            setup_lookups(url)
        if args.only in (None, "lookups"):
            bench_lookups(url, args.lookups, args.rounds)
        if args.only in (None, "lean"):
            bench_lookups_lean(url, args.lookups, args.rounds, args.concurrency)
        if args.only in (None, "batch"):
            bench_batch(url, args.complaints, args.rounds)


if __name__ == "__main__":
    main()
