"""The annotator on a snapshot whose realm has port-block logs (issue 15 with issue 13's logs).

A realm whose plan leaves most ports to dynamic blocks, with log intervals on every address: rows
on dynamic ports are answered from the logs, one by one (detnat.snapshot.logs), the rest by the
plans' vectorised path. Prints rows/s for rows all on logged ports and for rows all on
deterministic ports of addresses without logs, side by side.

    .venv/bin/python bench/bench_annotate_logs.py --rows 200000 --addresses 256
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
import pyarrow as pa

from detnat.logs.events import EventKind, LineRef, LogEvent
from detnat.logs.intervals import derive
from detnat.service import snapshots
from detnat.service.timelines import to_us
from detnat.snapshot import file
from detnat.snapshot.annotate import Annotator
from tests.scale.timelines import T0, Change, block_plan, timelines_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--addresses", type=int, default=256, help="logged addresses (a /24 max)")
    args = parser.parse_args()
    from datetime import timedelta

    plan = block_plan("192.0.2.0/24", ratio=64, dynamic=56, static=False, first_port=1024)
    view = timelines_of([0], [Change(0, -3600, plan)])
    t0 = to_us(T0)
    events = []
    for a in range(args.addresses):  # 56 dynamic blocks of 1008 ports, each held for 13 minutes
        for b in range(56):
            first = 1024 + (8 + b) * 1008
            for kind, at in (
                (EventKind.ALLOCATE, t0 - 60_000_000),
                (EventKind.RELEASE, t0 + 720_000_000),
            ):
                raw = f"{a}:{b}:{kind}".encode()
                ref = LineRef("nat.log", len(events) + 1, hashlib.sha256(raw).hexdigest())
                inside = f"10.1.{a}.{b}"
                events.append(
                    LogEvent(kind, at, inside, f"192.0.2.{a}", first, first + 1007, None, ref, 1)
                )
    intervals = derive(events, hold_us=None)
    body = snapshots.build(
        view, ["realm-0"], start=T0 - timedelta(minutes=1), end=T0 + timedelta(minutes=10),
        now=T0 + timedelta(minutes=20), case="BENCH", logs={"realm-0": intervals},
    )  # fmt: skip
    snapshot = file.load(file.encode(body))
    annotator = Annotator(snapshot)
    rnd = np.random.default_rng(7)
    n = args.rows
    times = pa.array(t0 + rnd.integers(0, 600_000_000, n), pa.timestamp("us", tz="UTC"))
    ips = pa.array((0xC0000200 + rnd.integers(0, args.addresses, n)).astype(np.int64))
    for label, ports in (
        ("logged (dynamic) ports", 1024 + 8 * 1008 + rnd.integers(0, 56 * 1008, n)),
        ("deterministic ports", 1024 + rnd.integers(0, 8 * 1008, n)),
    ):
        batch = pa.RecordBatch.from_pydict({"ip": ips, "port": pa.array(ports), "time": times})
        start = time.perf_counter()
        out = annotator.annotate(batch)
        took = time.perf_counter() - start
        statuses = dict(zip(*np.unique(out.column("status").to_numpy(zero_copy_only=False),
                                       return_counts=True), strict=True))  # fmt: skip
        print(f"{label:<24} {n / took:>12,.0f} rows/s   {statuses}")
    print(
        f"log intervals in the snapshot: {len(intervals):,}; load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
