"""One ``detnat reverse A:P --at T --case C`` against the store, warm, as an operator runs it.

Run by hand (not part of the tests)::

    .venv/bin/python bench/bench_store_cli.py [--runs 7] [--versions 3] [--breakdown]
    .venv/bin/python bench/bench_store_cli.py --batch [--rows 1000000] [--times offset|naive]
    .venv/bin/python bench/bench_store_cli.py --readers [--rows 1000000]

Creates a throwaway database on the Postgres of ``DETNAT_TEST_DATABASE_URL`` (default the local
one, 127.0.0.1:5432), upgrades it and publishes ``plans/block.yaml`` into one realm ``--versions``
times through the CLI, then times the CLI as a subprocess (this checkout's code, whatever is
installed): ``detnat --version`` (start-up alone) and the audited reverse lookup (target: 0.6 s).
The first lookup warms the OS caches and the bytecode and is not counted; the best and the median
of the others are printed, in wall time and in the child's CPU time (user + system: on a shared
machine the steadier figure), with the load average. The database is dropped at the end.

``--breakdown``: where one lookup's time goes, in a fresh child each: the phases (imports,
settings, the timeline snapshot on its own connection, answer, logs/directory check, case, the
audit entry committed by the store's writer, the printed line: the CLI's lookup path) in wall and
CPU milliseconds, best of ``--runs``; then the self time of the imports (``python -X
importtime``) summed by package, largest first.

``--batch``: the store batch instead. Writes ``--rows`` rows of ``ip,port,time`` (addresses of the
plan's pool, times spread over the realm's versions; ``--times offset`` writes them with ``Z`` or
``+01:00``, ``--times naive`` without an offset and passes ``--tz UTC``) and times ``detnat reverse
--batch IN.csv --case C -o OUT.csv`` end to end (a subprocess, audit included) and
``reverse_csv_at`` in-process (this checkout's code, one snapshot), in rows/s, best of ``--runs``;
for each end-to-end run also the child's CPU time (user + system), its peak RSS and the load
average. ``--against DIR``: the CLI of another checkout (e.g. ``git archive PARENT | tar -x -C
DIR``) run end to end too, alternately with this one's, each run on the same file; their outputs
must be the same bytes.

``--readers``: no database; the same file read into line spans and ip, port and time columns by
our block reader (:func:`detnat.service.batch_lookups.file_blocks` and the numpy parsers) and, for
comparison, by pyarrow's streaming CSV reader (three string columns, nothing parsed).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import resource
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
PLAN = ROOT / "bench" / "plans" / "block.yaml"
SERVER = os.environ.get(
    "DETNAT_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
QUERY = ["reverse", "192.0.2.1:1100", "--at", "2025-06-01T00:00:00Z", "--case", "BENCH-1"]


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


def detnat(url: str, *args: str, root: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``detnat ARGS`` from this checkout (or the one at ``root``), against ``url``."""
    env = {**os.environ, "DETNAT_DATABASE_URL": url, "PYTHONPATH": str(root)}
    command = [sys.executable, "-c", "from cli.main import app; app()", *args]
    done = subprocess.run(command, env=env, cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"detnat {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return done


def timed(url: str, args: Sequence[str], runs: int) -> tuple[list[float], list[float]]:
    """Wall seconds and CPU seconds (user + system of the child) of each run."""
    detnat(url, *args)  # warm: bytecode written, files in the page cache
    times, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        detnat(url, *args)
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return times, cpu


PHASES = """
import asyncio, sys, time
marks = [("start", time.perf_counter(), time.process_time())]
def mark(name):
    marks.append((name, time.perf_counter(), time.process_time()))
from cli.main import app
from cli.commands import lookups, lookups_store
from detnat.service import audit, inquiry, mappers, timelines
from detnat.service.clock import utcnow
from detnat.settings import get_settings
from detnat.store.async_db import AsyncStore
from detnat.store.embedded import database_url
mark("imports (CLI, service, store)")
url = database_url(get_settings())
mark("settings")
snapshot = lookups_store._snapshot(url, timelines.TimelineCache())
mark("timeline snapshot (connection, revision, realms)")
kept = inquiry.Inquiries(mappers.MapperCache(), audit.CaseOwners())
actor = audit.local_operator("bench")
asked = inquiry.ReverseQuery(
    "192.0.2.1", 1100, "2025-06-01T00:00:00Z", inquiry.Identity("BENCH-1"), "cli"
)
ready = inquiry._prepare(asked, snapshot, kept, utcnow())
mark("answer (plan checked, compiled)")
async def rest():
    store = AsyncStore(url, 1)
    held = await inquiry._holds_logs_or_directory_async(store, snapshot.revision)
    mark("logs or directory? (a connection)")
    await kept.cases.claim_async(store, "BENCH-1", actor, request_id="bench")
    mark("case claimed")
    entry = await audit.record_async(
        store, actor, ready.action, revision=snapshot.revision, **ready.entry("bench")
    )
    mark("audit entry committed (the writer's connection)")
    await store.close()
    return entry
entry = asyncio.run(rest())
line = lookups_store._answer_line("192.0.2.1:1100", ready.answered(entry).to_json())
mark("answer line")
for (_, t0, c0), (name, t1, c1) in zip(marks, marks[1:]):
    print(f"{name}\t{1000 * (t1 - t0):.1f}\t{1000 * (c1 - c0):.1f}")
"""


def breakdown(url: str, runs: int) -> None:
    """The phases of one lookup (best of ``runs`` fresh children), then its imports by package."""
    env = {**os.environ, "DETNAT_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    best: dict[str, tuple[float, float]] = {}
    for _ in range(runs + 1):  # the first warms the caches
        done = subprocess.run(
            [sys.executable, "-c", PHASES], env=env, cwd=ROOT, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(f"phases failed: {done.stderr}")
        for row in done.stdout.splitlines():
            name, wall, cpu = row.split("\t")
            old = best.get(name, (float("inf"), float("inf")))
            best[name] = (min(old[0], float(wall)), min(old[1], float(cpu)))
    print(f"  phases, best of {runs} (ms):        wall      CPU")
    for name, (wall, cpu) in best.items():
        print(f"    {name:36} {wall:7.1f}  {cpu:7.1f}")
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "from cli.main import app; app()", *QUERY],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    by_package: dict[str, int] = {}
    for row in done.stderr.splitlines():
        if not row.startswith("import time:") or "self [us]" in row:
            continue
        own, _, name = row[len("import time:") :].split("|")
        name = name.strip()
        parts = name.split(".")
        key = ".".join(parts[:2]) if parts[0] in ("detnat", "cli") else parts[0]
        by_package[key] = by_package.get(key, 0) + int(own)
    total = sum(by_package.values())
    print(f"  imports by package (-X importtime self time, {total / 1000:.0f} ms in all):")
    for key, own in sorted(by_package.items(), key=lambda kv: -kv[1])[:20]:
        print(f"    {key:36} {own / 1000:7.1f}")


def write_batch(path: Path, rows: int, versions: int, naive: bool) -> None:
    """``rows`` rows of ``ip,port,time``: the four public /24s of block.yaml, times over the
    versions' years, microseconds on half of them."""
    rnd = random.Random(12)
    with path.open("w", encoding="ascii", newline="") as out:
        out.write("ip,port,time\n")
        lines = []
        for n in range(rows):
            ip = f"192.0.2.{rnd.randrange(1, 255)}"
            year = 2020 + rnd.randrange(versions)
            when = f"{year}-{rnd.randrange(1, 13):02}-{rnd.randrange(1, 29):02}T"
            when += f"{rnd.randrange(24):02}:{rnd.randrange(60):02}:{rnd.randrange(60):02}"
            if n % 2:
                when += f".{rnd.randrange(10**6):06}"
            if not naive:
                when += "Z" if n % 3 else "+01:00"
            lines.append(f"{ip},{rnd.randrange(1024, 65536)},{when}\n")
            if len(lines) == 65536:
                out.write("".join(lines))
                lines = []
        out.write("".join(lines))


def in_process(url: str, path: Path, tz: str | None) -> tuple[float, str]:
    """``reverse_csv_at`` over the file, this checkout's code; seconds and the output's digest."""
    os.environ["DETNAT_DATABASE_URL"] = url
    if str(ROOT) not in sys.path[:1]:
        sys.path.insert(0, str(ROOT))
    from detnat.service import batch_lookups, plans, timelines
    from detnat.store.db import make_engine, make_sessions, unit_of_work

    engine = make_engine(url, pool_size=1)
    try:
        with unit_of_work(make_sessions(engine)) as session:
            snapshot = timelines.TimelineCache().get(session)
        query = batch_lookups.BatchQuery(
            snapshot=snapshot, now=plans.utcnow(), mappers=plans.MapperCache(), tz=tz
        )
        with path.open(encoding="utf-8-sig", newline="") as lines:
            sink = io.StringIO()
            start = time.perf_counter()
            report = batch_lookups.reverse_csv_at(query, lines, sink.write)
            elapsed = time.perf_counter() - start
    finally:
        engine.dispose()
    return elapsed, report.output_sha256


TIME = Path("/usr/bin/time")


def end_to_end(url: str, command: Sequence[str], root: Path) -> tuple[float, float, float]:
    """One CLI run as a child: wall seconds, CPU seconds (user + system) and peak RSS (MB, by
    ``/usr/bin/time``: a forked child's own maximum starts at the size of this process; 0 without
    it)."""
    env = {**os.environ, "DETNAT_DATABASE_URL": url, "PYTHONPATH": str(root)}
    timer = [str(TIME), "-f", "peak-rss-kb %M"] if TIME.exists() else []
    start = time.perf_counter()
    child = subprocess.Popen(
        [*timer, sys.executable, "-c", "from cli.main import app; app()", *command],
        env=env,
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    assert child.stderr is not None
    message = child.stderr.read().decode()
    child.stderr.close()
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"detnat {' '.join(command)} failed ({child.returncode}): {message}")
    peaks = [line.split()[1] for line in message.splitlines() if line.startswith("peak-rss-kb ")]
    return wall, usage.ru_utime + usage.ru_stime, int(peaks[-1]) / 1024 if peaks else 0.0


def batch(url: str, args: argparse.Namespace) -> None:
    import hashlib
    import tempfile

    naive = args.times == "naive"
    tz = ["--tz", "UTC"] if naive else []
    roots = {"this checkout": ROOT}
    if args.against is not None:
        roots["--against"] = args.against.resolve()
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "in.csv"
        write_batch(source, args.rows, args.versions, naive)
        runs: dict[str, list[tuple[float, float, float, float]]] = {label: [] for label in roots}
        inside = []
        digests = set()
        for run in range(args.runs):
            for label, root in roots.items():
                target = Path(folder) / f"out{run}-{len(runs[label])}-{label[:4]}.csv"
                command = ["reverse", "--batch", str(source), "--case", "BENCH-1"]
                wall, cpu, rss = end_to_end(url, [*command, "-o", str(target), *tz], root)
                runs[label].append((wall, cpu, rss, os.getloadavg()[0]))
                with target.open("rb") as out:
                    digests.add(hashlib.file_digest(out, "sha256").hexdigest())
                if run or label != "this checkout":
                    target.unlink()
            if not args.no_in_process:
                seconds, digest = in_process(url, source, "UTC" if naive else None)
                inside.append(seconds)
                digests.add(digest)
        assert len(digests) == 1, digests
        first = next(Path(folder).glob("out0-*"))
        with first.open() as out:
            statuses = [line.rsplit(",", 3)[1] for line in list(out)[1:]]
    counted = {s: statuses.count(s) for s in sorted(set(statuses))}
    print(f"python {sys.version.split()[0]}; {args.rows} rows, times {args.times}; {counted}")
    for label, results in runs.items():
        walls, cpus, rsss, loads = zip(*results, strict=True)
        best = min(walls)
        print(
            f"  end to end ({label}): best {best:6.2f} s {args.rows / best:>11,.0f} rows/s;"
            f" CPU best {min(cpus):6.2f} s; peak RSS {max(rsss):5.0f} MB;"
            f" walls {', '.join(f'{w:.2f}' for w in walls)};"
            f" CPUs {', '.join(f'{c:.2f}' for c in cpus)};"
            f" load {min(loads):.1f}-{max(loads):.1f}"
        )
    if inside:
        best = min(inside)
        print(
            f"  in-process: best {best:6.2f} s {args.rows / best:>11,.0f} rows/s ({args.runs} runs)"
        )


def readers(args: argparse.Namespace) -> None:
    """The reader alone, ours against pyarrow's streaming CSV reader: the ``ip,port,time`` file
    to line spans and ip, port and time columns (no answers, no output)."""
    import tempfile

    import numpy as np
    import pyarrow as pa
    from pyarrow import csv as pa_csv

    if str(ROOT) not in sys.path[:1]:
        sys.path.insert(0, str(ROOT))
    from detnat.batch import parse_ipv4_many, parse_port_many
    from detnat.service import batch_lookups
    from detnat.service.times import instants_in

    def ours_split(path: Path) -> int:
        return ours(path, parse=False)

    def ours(path: Path, parse: bool = True) -> int:
        rows = 0
        with path.open("rb") as source:
            source.readline()  # the header
            for block in batch_lookups.file_blocks(source):
                text = np.frombuffer(block + bytes(40), dtype=np.uint8)
                body = text[: len(block)]
                ends = np.flatnonzero(body == 10)
                starts = np.concatenate(([0], ends[:-1] + 1))
                commas = np.flatnonzero(body == 44)
                first, _ = batch_lookups._first_commas(commas, starts, ends, 3)
                rows += len(ends)
                if not parse:
                    continue
                dots = np.flatnonzero(body == 46)
                parse_ipv4_many(body, dots, starts, commas[first])
                parse_port_many(body, commas[first] + 1, commas[first + 1])
                ts = commas[first + 1] + 1
                instants_in(text, ts, ends - ts)
        return rows

    def arrow(path: Path) -> int:
        types = {"ip": pa.string(), "port": pa.string(), "time": pa.string()}
        options = pa_csv.ConvertOptions(column_types=types)
        rows = 0
        with pa_csv.open_csv(path, convert_options=options) as reader:
            for batch in reader:
                rows += batch.num_rows
        return rows

    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "in.csv"
        write_batch(source, args.rows, args.versions, naive=False)
        print(f"python {sys.version.split()[0]}, pyarrow {pa.__version__}; {args.rows} rows")
        ways = (("ours (spans)", ours_split), ("ours (parsed)", ours), ("pyarrow (strings)", arrow))
        for label, read in ways:
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                assert read(source) == args.rows
                times.append(time.perf_counter() - start)
            best = min(times)
            print(f"  {label:18} best {best:6.2f} s  {args.rows / best:>11,.0f} rows/s")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each command")
    parser.add_argument("--versions", type=int, default=3, help="plan versions in the realm")
    parser.add_argument("--batch", action="store_true", help="time the store batch instead")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the --batch file")
    parser.add_argument("--times", choices=("offset", "naive"), default="offset")
    parser.add_argument("--readers", action="store_true", help="time the CSV readers alone")
    parser.add_argument("--breakdown", action="store_true", help="phases and imports of a lookup")
    parser.add_argument(
        "--against", type=Path, help="--batch: also run the CLI of this checkout, alternately"
    )
    parser.add_argument(
        "--no-in-process", action="store_true", help="--batch: end to end only (large --rows)"
    )
    args = parser.parse_args(argv)
    if args.readers:
        readers(args)
        return
    with throwaway_database() as url:
        detnat(url, "db", "upgrade")
        detnat(url, "realm", "create", "bench", "--single-approver")
        for n in range(args.versions):
            when = f"{2020 + n}-01-01T00:00:00Z"
            reason = f"CHG-{n + 1}"
            publish = ["plan", "publish", "bench", str(PLAN), "--effective-from", when]
            detnat(url, *publish, "--reason", reason, "--correction")
        if args.batch:
            batch(url, args)
            return
        print(f"python {sys.version.split()[0]}; realm with {args.versions} plan versions")
        print(f"  answer: {detnat(url, *QUERY).stdout.splitlines()[0]}")
        for label, command in (("detnat --version", ["--version"]), ("detnat reverse", QUERY)):
            times, cpu = timed(url, command, args.runs)
            print(
                f"  {label:17} best {min(times):5.2f} s   median {statistics.median(times):5.2f} s"
                f"   CPU best {min(cpu):5.2f} s   median {statistics.median(cpu):5.2f} s"
                f"   ({args.runs} runs; load {os.getloadavg()[0]:.1f})"
            )
        if args.breakdown:
            breakdown(url, args.runs)


if __name__ == "__main__":
    main()
