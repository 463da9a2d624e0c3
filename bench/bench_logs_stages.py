"""Where a log ingest's CPU goes, per stage, client and server apart, and how it grows with history.

Run by hand (not part of the tests)::

    .venv/bin/python bench/bench_logs_stages.py [--subscribers 20000] [--blocks 4] [--parts 2]

One throwaway database, one realm without a plan, the log of ``bench_logs.write_log`` (each inside
key allocated and released ``--blocks`` blocks of 512 ports over a month) cut by time into
``--parts`` files ingested one after the other, as daily files are: every part touches most
addresses, so each ingest re-derives the intervals of the parts before it too. Per ingest: lines,
wall, this process's CPU and its Postgres backend's CPU (``/proc/PID/stat``), in µs per line.

Then, on the full store, each stage of the rebuild run alone, one after the other on one thread
(so the backend's CPU of each is its own), inside a transaction rolled back: reading the events
back (server cursor), turning rows into events, deriving, writing interval rows, deleting the old
intervals, ``COPY``-ing the new ones; and the events' own path (``COPY`` into the staging table,
the insert with duplicates skipped) measured on a fresh realm. µs per event / per interval.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_logs import OPS, backend_cpu, parse, throwaway_database, write_log  # noqa: E402

from detnat.logs.intervals import derive  # noqa: E402
from detnat.service import logs, plans  # noqa: E402
from detnat.store import logs as store  # noqa: E402
from detnat.store import migrate  # noqa: E402
from detnat.store.db import make_engine, make_sessions, unit_of_work  # noqa: E402


class Meter:
    """Client and backend CPU seconds of what runs between two reads."""

    def __init__(self, backend: int) -> None:
        self.backend = backend

    def __call__(self, work: Callable[[], Any]) -> tuple[Any, float, float, float]:
        server, cpu, wall = backend_cpu(self.backend), time.process_time(), time.perf_counter()
        out = work()
        return (
            out,
            time.perf_counter() - wall,
            time.process_time() - cpu,
            backend_cpu(self.backend) - server,
        )


def _split(path: Path, parts: int, folder: Path) -> list[Path]:
    """The time-ordered lines cut into ``parts`` files of as many lines each."""
    lines = path.read_bytes().splitlines(keepends=True)
    size = -(-len(lines) // parts)
    files = [folder / f"part-{n}.log" for n in range(parts)]
    for n, file in enumerate(files):
        file.write_bytes(b"".join(lines[n * size : (n + 1) * size]))
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--parts", type=int, default=2)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, throwaway_database() as url:
        whole = Path(tmp) / "month.log"
        write_log(whole, args.subscribers, args.blocks, args.seed)
        files = _split(whole, args.parts, Path(tmp))
        migrate.upgrade(url)
        engine = make_engine(url, pool_size=1)
        sessions = make_sessions(engine)
        with unit_of_work(sessions) as s:
            plans.create_realm(s, "bench", session_drain=timedelta(0), by=OPS)
            plans.create_realm(s, "events-only", session_drain=timedelta(0), by=OPS)
            backend = int(s.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar())
        meter = Meter(backend)
        print(f"{'ingest':<10} {'lines':>9} {'wall s':>8} {'µs/line client':>15} {'server':>8}")
        for file in files:

            def one(file: Path = file) -> logs.IngestSummary:
                reading = logs.Reading.open(str(file))
                try:
                    with unit_of_work(sessions) as s:
                        return logs.ingest(
                            s, "bench", parse(reading.lines(), reading.name), reading,
                            fmt="bench", by=OPS, request_id="bench", log_hold=timedelta(hours=24),
                        )  # fmt: skip
                finally:
                    reading.close()

            summary, wall, cpu, server = meter(one)
            n = summary.lines_read
            print(
                f"{file.name:<10} {n:>9,} {wall:>8.1f} {cpu / n * 1e6:>15.1f} "
                f"{server / n * 1e6:>8.1f}"
            )
        with sessions() as s:
            realm_id = plans.get_realm(s, "bench").id
            publics = None
            rows: list[tuple[int, list[tuple[Any, ...]]]] = []

            def read() -> None:
                rows.extend(store.event_rows(s, realm_id, publics))

            stages: list[tuple[str, int, float, float]] = []
            _, _, cpu, server = meter(read)
            events = sum(len(r) for _, r in rows)
            stages.append(("read events back (server cursor)", events, cpu, server))
            made: list[Any] = []
            _, _, cpu, server = meter(
                lambda: made.extend((p, logs._events_of(p, r)) for p, r in rows)
            )
            stages.append(("rows -> events", events, cpu, server))
            derived: list[Any] = []
            _, _, cpu, server = meter(
                lambda: derived.extend(
                    (p, derive(e, hold_us=86_400_000_000, interim_us=None)) for p, e in made
                )
            )
            intervals = sum(len(d) for _, d in derived)
            stages.append(("derive", intervals, cpu, server))
            texts: list[str] = []
            files_memo: dict[str, str] = {}
            _, _, cpu, server = meter(
                lambda: texts.extend(
                    logs.interval_row(realm_id, p, i, files_memo) for p, d in derived for i in d
                )
            )
            stages.append(("interval rows (text)", intervals, cpu, server))
            _, _, cpu, server = meter(lambda: store.delete_intervals(s, realm_id, None))
            stages.append(("delete old intervals", intervals, cpu, server))
            conn = store.raw_connection(s)
            _, _, cpu, server = meter(lambda: store.copy_intervals(conn, texts))
            stages.append(("COPY intervals (GiST, PK)", intervals, cpu, server))
            s.rollback()
        with sessions() as s:
            realm_id = plans.get_realm(s, "events-only").id
            staged = []
            reading = logs.Reading.open(str(files[0]))
            for e in parse(reading.lines(), reading.name):
                assert not isinstance(e, logs.Refused)
                text = reading.raw(e.source.line)
                staged.append(
                    f"{realm_id}\t1\t{logs._bound(e.at_us)}\t{e.source.sha256}\t{e.kind}\t"
                    f"{e.inside}\t{logs._Publics()[e.public]}\t{e.port_first}\t{e.port_last}\t"
                    f"{e.port_step}\tall\t{e.source.file}\t{e.source.line}\t{text}\n"
                )
            reading.close()
            chunk = "".join(staged).encode()
            _, _, cpu, server = meter(lambda: store.stage(s, [chunk]))
            stages.append(("COPY events into staging", len(staged), cpu, server))
            _, _, cpu, server = meter(lambda: store.ensure_partitions(s, realm_id))
            stages.append(("month partitions", len(staged), cpu, server))
            _, _, cpu, server = meter(lambda: store.insert_staged(s, realm_id, 1))
            stages.append(("INSERT … ON CONFLICT into log_events", len(staged), cpu, server))
            s.rollback()
        with sessions() as s:
            # the same rows the way a chunk with no duplicate goes: a range probe, straight in
            months = sorted({line.split("\t")[2][:7] for line in staged})
            _, _, cpu, server = meter(
                lambda: store.stored_between(s, realm_id, -(1 << 53) + 1, (1 << 53) - 1)
            )
            stages.append(("probe for stored events (range)", len(staged), cpu, server))
            _, _, cpu, server = meter(lambda: store.ensure_months(s, realm_id, months))
            stages.append(("month partitions (from Python)", len(staged), cpu, server))
            _, _, cpu, server = meter(lambda: store.copy_events(s, [chunk]))
            stages.append(("COPY events into log_events", len(staged), cpu, server))
            s.rollback()
        print(f"\n{'stage, alone':<40} {'rows':>10} {'µs/row client':>14} {'server':>8}")
        for name, count, cpu, server in stages:
            print(
                f"{name:<40} {count:>10,} {cpu / count * 1e6:>14.1f} {server / count * 1e6:>8.1f}"
            )
        engine.dispose()


if __name__ == "__main__":
    main()
