"""One ``detnat reverse A:P --at T --case C`` against the store, warm, as an operator runs it.

Run by hand (not part of the tests)::

    .venv/bin/python bench/bench_store_cli.py [--runs 7] [--versions 3]

Creates a throwaway database on the Postgres of ``DETNAT_TEST_DATABASE_URL`` (default the local
one, 127.0.0.1:5432), upgrades it and publishes ``plans/block.yaml`` into one realm ``--versions``
times through the CLI, then times the CLI as a subprocess (this checkout's code, whatever is
installed): ``detnat --version`` (start-up alone) and the audited reverse lookup (target: 0.6 s).
The first lookup warms the OS caches and the bytecode and is not counted; the best and the median
of the others are printed. The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import os
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


def detnat(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``detnat ARGS`` from this checkout, against ``url``."""
    env = {**os.environ, "DETNAT_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", "from cli.main import app; app()", *args]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"detnat {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return done


def timed(url: str, args: Sequence[str], runs: int) -> list[float]:
    detnat(url, *args)  # warm: bytecode written, files in the page cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        detnat(url, *args)
        times.append(time.perf_counter() - start)
    return times


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each command")
    parser.add_argument("--versions", type=int, default=3, help="plan versions in the realm")
    args = parser.parse_args(argv)
    with throwaway_database() as url:
        detnat(url, "db", "upgrade")
        detnat(url, "realm", "create", "bench", "--single-approver")
        for n in range(args.versions):
            when = f"{2020 + n}-01-01T00:00:00Z"
            reason = f"CHG-{n + 1}"
            publish = ["plan", "publish", "bench", str(PLAN), "--effective-from", when]
            detnat(url, *publish, "--reason", reason, "--correction")
        print(f"python {sys.version.split()[0]}; realm with {args.versions} plan versions")
        print(f"  answer: {detnat(url, *QUERY).stdout.splitlines()[0]}")
        for label, command in (("detnat --version", ["--version"]), ("detnat reverse", QUERY)):
            times = timed(url, command, args.runs)
            print(
                f"  {label:17} best {min(times):5.2f} s   median {statistics.median(times):5.2f} s"
                f"   ({args.runs} runs)"
            )


if __name__ == "__main__":
    main()
