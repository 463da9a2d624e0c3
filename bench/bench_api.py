"""API benchmarks against a real ``detnat serve`` (run by hand; prints figures).

    .venv/bin/python bench/bench_api.py [--workers 2] [--seconds 5] [--batch-rows 1000000]
    .venv/bin/python bench/bench_api.py --only wrk     # the wrk figures alone
    .venv/bin/python bench/bench_api.py --only inprocess [--profile out.pstats]

Creates a throwaway database on the Postgres of ``DETNAT_TEST_DATABASE_URL`` (default the local
server, user postgres), migrates it, starts ``detnat serve`` on a free port, and measures:

- with ``wrk`` (a C client) when it is on ``PATH``: ``GET /healthz`` (no database, no audit: the
  ceiling of the HTTP stack on this machine) and audited single reverse lookups, each at 32
  connections, in the same run: requests per second, p50 and p99 (``wrk --latency``), and the
  CPU the server's processes and the database's backends spent per request (``/proc``: what a
  shared machine moves least), with the load average;
- single reverse lookups over HTTP at 1, 8 and 32 concurrent clients: throughput, p50, p99
  (a small asyncio HTTP/1.1 client with keep-alive, so the client spends little of the 2 cores);
- the batch endpoint (CSV) in rows per second;
- ``--only inprocess``: the CPU one process spends per audited reverse lookup, the app called
  directly as ASGI by 16 concurrent callers (no HTTP server, no client: the app, the service,
  the audit writer and psycopg), optionally under cProfile;
- the time to publish into a realm that already has 1,000 versions of history;
- single lookup latency with 100 realms x 100 versions against 1 realm x 1 version.

Targets (issue 3): >= 1,500 lookups/s with p99 <= 25 ms at 32 clients; batch >= 200,000 rows/s;
lookup latency with 100 x 100 versions within 10 % of 1 x 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detnat.planfile import plan_from_data  # noqa: E402
from detnat.service import plans  # noqa: E402
from detnat.service.audit import Actor  # noqa: E402
from detnat.store import migrate  # noqa: E402
from detnat.store.db import make_engine, make_sessions, normalise_url, unit_of_work  # noqa: E402

SERVER = os.environ.get(
    "DETNAT_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
EARLY = lambda: T0 - timedelta(days=365)  # noqa: E731  (publish "in the future" of this clock)


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


def plan(pool: str, ratio: int = 4096) -> dict[str, object]:
    return {
        "algorithm": "block",
        "inside": {"prefixes": ["10.0.0.0/18"], "subscriber_prefix_length": 32},
        "outside": {"prefixes": [pool]},
        "block": {"ratio": ratio},
    }


def pool_of(n: int) -> str:
    """A distinct /30 of 198.18.0.0/15 (benchmarking space) for realm ``n``."""
    return f"198.{18 + (n >> 14)}.{(n >> 6) & 255}.{(n & 63) << 2}/30"


def seed(url: str, realms: int, versions: int, *, first: int = 0) -> list[str]:
    """``realms`` realms of ``versions`` versions each, one minute apart from T0."""
    engine = make_engine(url)
    sessions = make_sessions(engine)
    names = []
    for r in range(first, first + realms):
        name = f"bench-{r}"
        names.append(name)
        with unit_of_work(sessions) as s:
            plans.create_realm(
                s,
                name,
                by=Actor("tester", "admin"),
                session_drain=timedelta(0),
                single_approver=True,
            )
        with unit_of_work(sessions) as s:
            for v in range(versions):
                ratio = 4096 if v % 2 == 0 else 8192
                data = plan(pool_of(r), ratio)
                if ratio == 8192:
                    data["inside"] = {"prefixes": ["10.0.0.0/17"], "subscriber_prefix_length": 32}
                plans.publish(
                    s,
                    name,
                    plan_from_data(data),
                    effective_from=T0 + timedelta(minutes=v),
                    reason=f"bench {v}",
                    by=Actor("bench", "admin"),
                    clock=EARLY,
                )
    engine.dispose()
    return names


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(url: str, workers: int, env_extra: dict[str, str]) -> Iterator[tuple[int, int]]:
    port = free_port()
    # This checkout's code, in the workers too (the virtualenv's install may point elsewhere).
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {
        **os.environ,
        "DETNAT_DATABASE_URL": url,
        "PYTHONPATH": os.pathsep.join(filter(None, paths)),
        **env_extra,
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from cli.main import app; app()",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("detnat serve did not start") from None
                time.sleep(0.1)
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# -- a small HTTP/1.1 client ----------------------------------------------------------------------


class Client:
    """One keep-alive connection; ``request`` returns (status, body)."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port = port
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def request(
        self, method: str, path: str, body: bytes = b"", kind: str = "application/json"
    ) -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {len(body)}\r\n{self.extra}\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length, chunked = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if not chunked:
            return status, await self.reader.readexactly(length)
        parts = []
        while True:
            size = int((await self.reader.readline()).strip(), 16)
            if size == 0:
                await self.reader.readline()
                return status, b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readline()

    def close(self) -> None:
        self.writer.close()


async def _load(
    port: int, headers: dict[str, str], bodies: list[bytes], clients: int, seconds: float
) -> tuple[int, list[float], dict[int, int]]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    stop = time.perf_counter() + seconds

    async def one(k: int) -> None:
        client = Client(port, headers)
        await client.open()
        n = k
        while time.perf_counter() < stop:
            t = time.perf_counter()
            status, _ = await client.request("POST", "/v1/lookups/reverse", bodies[n % len(bodies)])
            latencies.append(time.perf_counter() - t)
            statuses[status] = statuses.get(status, 0) + 1
            n += clients
        client.close()

    await asyncio.gather(*(one(k) for k in range(clients)))
    return len(latencies), latencies, statuses


def lookups_over_http(
    port: int, headers: dict[str, str], bodies: list[bytes], clients: int, seconds: float
) -> dict[str, float]:
    asyncio.run(_load(port, headers, bodies, clients, 0.5))  # warm the workers' caches
    count, latencies, statuses = asyncio.run(_load(port, headers, bodies, clients, seconds))
    latencies.sort()
    return {
        "clients": clients,
        "per_second": round(count / seconds),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "non_200": sum(n for s, n in statuses.items() if s != 200),
    }


# -- wrk -------------------------------------------------------------------------------------------

# wrk's Lua: each request takes the next of the bodies, with the bearer header.
_WRK_LUA = """
local bodies = {%(bodies)s}
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = %(auth)s
request = function()
  n = n %% #bodies + 1
  return wrk.format(nil, "/v1/lookups/reverse", nil, bodies[n])
end
"""
_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string of ASCII is a valid Lua string literal


def run_wrk(
    port: int, path: str, connections: int, seconds: float, script: str | None = None
) -> dict[str, float]:
    """``wrk --latency`` with 2 threads: requests/s, p50 and p99 (ms), responses not 2xx/3xx."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    if script is not None:
        command += ["-s", script]
    out = subprocess.run(
        [*command, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True
    ).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    done = re.search(r"(\d+) requests in", out)
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    assert rate and done and p50 and p99, out
    return {
        "connections": connections,
        "requests": int(done[1]),
        "per_second": round(float(rate[1])),
        "p50_ms": round(float(p50[1]) * _UNIT[p50[2]], 2),
        "p99_ms": round(float(p99[1]) * _UNIT[p99[2]], 2),
        "non_2xx": int(bad[1]) if bad else 0,
        "socket_errors": errors[0] if errors else "",
    }


# -- CPU of the server and of Postgres, from /proc -------------------------------------------------

_TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")


def _ticks(pid: int) -> int:
    """User + system CPU of one process, in clock ticks (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))


def _family(pid: int) -> list[int]:
    """``pid`` and its descendants (``detnat serve``, uvicorn's supervisor, its workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def _backends(url: str) -> list[int]:
    with psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(False)) as c:
        rows = c.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(r[0]) for r in rows]


class CpuMeter:
    """CPU spent by the server's processes and by the database's backends between ``start`` and
    ``stop``: the figure the shared machine moves least (wall-clock rates move with the load)."""

    def __init__(self, server_pid: int, url: str) -> None:
        self.server_pid, self.url = server_pid, url

    def start(self) -> None:
        self.server = {p: _ticks(p) for p in _family(self.server_pid)}
        self.postgres = {p: _ticks(p) for p in _backends(self.url)}
        self.load = os.getloadavg()[0]

    def stop(self, requests: int) -> dict[str, float]:
        server = sum(_ticks(p) - self.server.get(p, 0) for p in _family(self.server_pid))
        postgres = sum(_ticks(p) - self.postgres.get(p, 0) for p in _backends(self.url))
        n = max(1, requests)
        return {
            "server_cpu_us_per_request": round(server * _TICK_US / n, 1),
            "postgres_cpu_us_per_request": round(postgres * _TICK_US / n, 1),
            "load_average": round(max(self.load, os.getloadavg()[0]), 1),
        }


def measured_wrk(
    meter: CpuMeter | None,
    port: int,
    path: str,
    connections: int,
    seconds: float,
    script: str | None = None,
) -> dict[str, object]:
    """:func:`run_wrk`, with the CPU the server and Postgres spent on the run's requests."""
    if meter is None:
        return dict(run_wrk(port, path, connections, seconds, script))
    meter.start()
    figures: dict[str, object] = dict(run_wrk(port, path, connections, seconds, script))
    figures.update(meter.stop(int(figures["requests"])))  # type: ignore[call-overload]
    return figures


def lookups_with_wrk(
    port: int,
    headers: dict[str, str],
    bodies: list[bytes],
    connections: int,
    seconds: float,
    meter: CpuMeter | None = None,
) -> dict[str, object]:
    """``/healthz`` (the ceiling) and audited reverse lookups, back to back, with ``wrk``."""
    with TemporaryDirectory() as folder:
        script = Path(folder, "lookups.lua")
        script.write_text(
            _WRK_LUA
            % {
                "bodies": ",".join(_lua_string(b.decode()) for b in bodies),
                "auth": _lua_string(headers["Authorization"]),
            }
        )
        run_wrk(port, "/healthz", connections, 1)  # warm both workers
        run_wrk(port, "/", connections, 1, str(script))
        return {
            "healthz": measured_wrk(meter, port, "/healthz", connections, seconds),
            "reverse": measured_wrk(meter, port, "/", connections, seconds, str(script)),
        }


def lookup_bodies(realms: list[str], versions: int, n: int = 2000) -> list[bytes]:
    rnd = random.Random(1)
    out = []
    for _ in range(n):
        r = rnd.randrange(len(realms))
        pool = pool_of(int(realms[r].split("-")[1]))
        ip = pool.split("/")[0].rsplit(".", 1)
        at = T0 + timedelta(minutes=rnd.randrange(versions), seconds=rnd.randrange(1, 59))
        body = {
            "ip": f"{ip[0]}.{int(ip[1]) + rnd.randrange(4)}",
            "port": rnd.randrange(1024, 65536),
            "time": at.isoformat(),
            "case": "BENCH-1",
        }
        out.append(json.dumps(body).encode())
    return out


def batch_over_http(
    port: int, headers: dict[str, str], realms: list[str], rows: int
) -> dict[str, float]:
    rnd = random.Random(2)
    lines = ["ip,port,time"]
    for _ in range(rows):
        pool = pool_of(int(rnd.choice(realms).split("-")[1]))
        ip = pool.split("/")[0].rsplit(".", 1)
        at = T0 + timedelta(seconds=rnd.randrange(1, 59), microseconds=rnd.randrange(10**6))
        lines.append(
            f"{ip[0]}.{int(ip[1]) + rnd.randrange(4)},{rnd.randrange(1024, 65536)},"
            f"{at.isoformat().replace('+00:00', 'Z')}"
        )
    body = ("\n".join(lines) + "\n").encode()

    async def run() -> tuple[int, bytes, float]:
        client = Client(port, headers)
        await client.open()
        t = time.perf_counter()
        status, answer = await client.request(
            "POST", "/v1/lookups/reverse/batch?case=BENCH-1", body, "text/csv"
        )
        elapsed = time.perf_counter() - t
        client.close()
        return status, answer, elapsed

    status, answer, elapsed = asyncio.run(run())
    assert status == 200, answer[:300]
    return {
        "rows": rows,
        "mib_in": round(len(body) / 2**20, 1),
        "seconds": round(elapsed, 2),
        "rows_per_second": round(rows / elapsed),
    }


def publish_into_long_history(url: str) -> dict[str, float]:
    names = seed(url, 1, 1000, first=9000)
    engine = make_engine(url)
    sessions = make_sessions(engine)
    times = []
    for k in range(5):
        t = time.perf_counter()
        with unit_of_work(sessions) as s:
            plans.publish(
                s,
                names[0],
                plan_from_data(plan(pool_of(9000))),
                effective_from=T0 + timedelta(minutes=1000 + k),
                reason="bench",
                by=Actor("b", "admin"),
                clock=EARLY,
            )
        times.append(time.perf_counter() - t)
    engine.dispose()
    return {"versions_before": 1000, "publish_ms_median": round(statistics.median(times) * 1000, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--batch-rows", type=int, default=1_000_000)
    parser.add_argument("--connections", type=int, default=32, help="wrk's connections")
    parser.add_argument(
        "--only",
        choices=["wrk", "inprocess"],
        help="only the wrk figures (healthz and audited lookups), or only the in-process CPU",
    )
    parser.add_argument("--requests", type=int, default=4000, help="inprocess: lookups timed")
    parser.add_argument("--profile", help="inprocess: write cProfile's stats to this file")
    args = parser.parse_args()
    env = {
        "DETNAT_RATE_LIMIT_PER_SECOND": "1000000",
        "DETNAT_RATE_LIMIT_BURST": "1000000",
        "DETNAT_MAX_BATCH_ROWS": "2000000",
        "DETNAT_BATCH_ROWS_LEGAL": "2000000",
        "DETNAT_MAX_BATCH_BODY_BYTES": str(256 << 20),
    }
    results: dict[str, object] = {}
    with throwaway_database() as url:
        headers = bench_headers(url)
        small = seed(url, 1, 1)
        big = [] if args.only else seed(url, 100, 100, first=100)
        if args.only == "inprocess":
            results["inprocess"] = in_process(url, headers, small, args.requests, args.profile)
            print(json.dumps(results, indent=2))
            return
        if args.only:
            before = database_work(url)
            with serve(url, args.workers, env) as (port, pid):
                results["wrk"] = wrk_figures(port, headers, small, args, CpuMeter(pid, url))
            results["database_per_lookup"] = per_lookup(before, database_work(url))
            print(json.dumps(results, indent=2))
            return
        with serve(url, args.workers, env) as (port, pid):
            bodies = lookup_bodies(small, 1)
            results["wrk"] = wrk_figures(port, headers, small, args, CpuMeter(pid, url))
            results["single_lookups_1x1"] = [
                lookups_over_http(port, headers, bodies, c, args.seconds) for c in (1, 8, 32)
            ]
            results["latency_1_client"] = {
                "1x1": lookups_over_http(port, headers, bodies, 1, args.seconds)["p50_ms"],
                "100x100": lookups_over_http(
                    port, headers, lookup_bodies(big, 100), 1, args.seconds
                )["p50_ms"],
            }
            results["batch_csv"] = batch_over_http(port, headers, small, args.batch_rows)
        results["publish"] = publish_into_long_history(url)
    print(json.dumps(results, indent=2))


def in_process(
    url: str, headers: dict[str, str], realms: list[str], n: int, profile: str | None
) -> dict[str, float]:
    """CPU of this process per audited reverse lookup: ``create_app`` called as ASGI."""
    import cProfile

    from api.app import create_app
    from detnat.settings import Settings

    app = create_app(Settings(database_url=url, rate_limit_per_second=1e9, rate_limit_burst=1e9))
    bodies = lookup_bodies(realms, 1)
    fixed = [
        (b"host", b"bench"),
        (b"content-type", b"application/json"),
        (b"authorization", headers["Authorization"].encode()),
    ]

    async def one(body: bytes) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/lookups/reverse",
            "raw_path": b"/v1/lookups/reverse",
            "query_string": b"",
            "root_path": "",
            "headers": [*fixed, (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 1),
            "server": ("bench", 80),
            "state": {},
        }
        messages: list[dict[str, object]] = []
        given = False

        async def receive() -> dict[str, object]:
            nonlocal given
            if given:
                await asyncio.Event().wait()  # the client never disconnects
            given = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, object]) -> None:
            messages.append(message)

        await app(scope, receive, send)
        if messages[0]["status"] != 200:
            raise SystemExit(f"lookup refused: {messages}")

    async def callers(each: int) -> None:
        async def caller(k: int) -> None:
            for i in range(each):
                await one(bodies[(k * each + i) % len(bodies)])

        await asyncio.gather(*(caller(k) for k in range(16)))

    async def run() -> dict[str, float]:
        async with app.router.lifespan_context(app):
            await callers(50)  # warm: caches, the pool, the audit writer
            profiler = cProfile.Profile() if profile else None
            cpu, wall = time.process_time(), time.perf_counter()
            if profiler:
                profiler.enable()
            await callers(n // 16)
            if profiler:
                profiler.disable()
                profiler.dump_stats(profile)
            done = n // 16 * 16
            return {
                "lookups": done,
                "cpu_ms_per_lookup": round((time.process_time() - cpu) / done * 1e3, 3),
                "wall_ms_per_lookup": round((time.perf_counter() - wall) / done * 1e3, 3),
                "load_average": round(os.getloadavg()[0], 1),
            }

    return asyncio.run(run())


def wrk_figures(
    port: int,
    headers: dict[str, str],
    realms: list[str],
    args: argparse.Namespace,
    meter: CpuMeter | None = None,
) -> dict[str, object] | str:
    if not shutil.which("wrk"):
        return "not installed: the asyncio client's figures only"
    bodies = lookup_bodies(realms, 1)
    return {
        "workers": args.workers,
        **lookups_with_wrk(port, headers, bodies, args.connections, args.seconds, meter),
    }


def database_work(url: str) -> tuple[int, int]:
    """(transactions committed in the database, audited reverse lookups): read after the server
    stopped, so every backend has reported its counts."""
    with psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(False)) as c:
        xacts = c.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        lookups = c.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'lookup.reverse'"
        ).fetchone()
    assert xacts is not None and lookups is not None
    return int(xacts[0]), int(lookups[0])


def per_lookup(before: tuple[int, int], after: tuple[int, int]) -> dict[str, object]:
    """Transactions per audited lookup over the whole run (warm-ups included): a round trip each
    (a read or an append) on the lookup path, so it shows the grouping whatever the load."""
    lookups = after[1] - before[1]
    return {
        "lookups": lookups,
        "transactions": after[0] - before[0],
        "transactions_per_lookup": round((after[0] - before[0]) / max(1, lookups), 3),
    }


def bench_headers(url: str) -> dict[str, str]:
    """A legal token's bearer header (legal: no row limit below the batch's)."""
    from detnat.service.tokens import create_token

    engine = make_engine(url)
    with unit_of_work(make_sessions(engine)) as s:
        secret, _ = create_token(s, name="bench", role="legal", by=Actor("bench", "admin"))
    engine.dispose()
    return {"Authorization": f"Bearer {secret}"}


if __name__ == "__main__":
    main()
