"""An ingest's CPU per daily file, day after day: does day N cost what day 1 costs?

Run by hand (not part of the tests)::

    .venv/bin/python bench/make_month_logs.py /tmp/month --subscribers 5000 --days 10 \\
        --addresses 64 --questions 10
    .venv/bin/python bench/bench_logs_days.py /tmp/month [--days 10] [--log-hold 24]

One throwaway database, one realm without a plan; the generator's daily ``csv`` files ingested in
order with the realm's log hold (hours), as ``detnat logs ingest`` would, each in its own
transaction. Per file: lines, wall, this process's CPU and its Postgres backend's CPU
(``/proc/PID/stat``), in µs per line.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_logs import OPS, backend_cpu, throwaway_database  # noqa: E402

from detnat.logs.formats import parse_lines  # noqa: E402
from detnat.service import logs, plans  # noqa: E402
from detnat.store import migrate  # noqa: E402
from detnat.store.db import make_engine, make_sessions, unit_of_work  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--log-hold", type=int, default=24, help="hours")
    args = parser.parse_args()
    files = sorted(args.folder.glob("pba-*.csv"))[: args.days]
    with throwaway_database() as url:
        migrate.upgrade(url)
        engine = make_engine(url, pool_size=1)
        sessions = make_sessions(engine)
        with unit_of_work(sessions) as s:
            plans.create_realm(s, "month", session_drain=timedelta(0), by=OPS)
            backend = int(s.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar())
        print(f"{'file':<20} {'lines':>9} {'wall s':>8} {'µs/line client':>15} {'server':>8}")
        for file in files:
            reading = logs.Reading.open(str(file))
            server, cpu, wall = backend_cpu(backend), time.process_time(), time.perf_counter()
            try:
                with unit_of_work(sessions) as s:
                    summary = logs.ingest(
                        s, "month", parse_lines("csv", reading.lines(), file=reading.name),
                        reading, fmt="csv", by=OPS, request_id="bench",
                        log_hold=timedelta(hours=args.log_hold),
                    )  # fmt: skip
            finally:
                reading.close()
            wall = time.perf_counter() - wall
            cpu = time.process_time() - cpu
            server = backend_cpu(backend) - server
            n = summary.lines_read
            print(
                f"{file.name:<20} {n:>9,} {wall:>8.1f} {cpu / n * 1e6:>15.1f} "
                f"{server / n * 1e6:>8.1f}",
                flush=True,
            )
        engine.dispose()


if __name__ == "__main__":
    main()
