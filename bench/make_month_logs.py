"""A month of port-block logs for many subscribers, in the `csv` log format (issue 13's test run).

Run by hand (not part of the tests)::

    .venv/bin/python bench/make_month_logs.py OUT_DIR [--subscribers 100000] [--per-day 3]
        [--days 31] [--addresses 1024] [--questions 100000]

Writes ``OUT_DIR/pba-2026-01-DD.csv``, one file per day of January 2026 (the lines of that day, in
time order, with the format's header), as a NAT doing port-block allocation would log them:
``--subscribers`` inside keys (100.64.0.0 and up) each given ``--per-day`` blocks of 512 ports a day
on average (allocations start at random instants, last 10 minutes to 8 hours), from a pool of
``--addresses`` public addresses (198.18.0.0 and up) with 126 blocks each (1024-65535); a block is
never given to two subscribers at once (a free list, as the NAT keeps one). Also writes
``OUT_DIR/questions.csv`` (``ip,port,time``: a random port and instant inside random allocations,
for ``detnat reverse --batch``) and ``OUT_DIR/expected.csv`` (the inside key each question must
name). Prints the counts.
"""

from __future__ import annotations

import argparse
import heapq
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

START = datetime(2026, 1, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY_US = 86_400 * 10**6
BLOCKS = 126
HEADER = "time,event,subscriber,public_ip,port_first,port_last,protocol\n"


def _ipv4(value: int) -> str:
    return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"


def _time(at_us: int) -> str:
    moment = EPOCH + timedelta(microseconds=at_us)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--per-day", type=int, default=3)
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--addresses", type=int, default=1024)
    parser.add_argument("--questions", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(args.seed)
    t0 = (START - EPOCH) // timedelta(microseconds=1)
    first_public = (198 << 24) | (18 << 16)
    first_inside = (100 << 24) | (64 << 16)
    total = args.subscribers * args.per_day * args.days
    starts = sorted(
        (t0 + rnd.randrange(args.days * DAY_US), rnd.randrange(args.subscribers))
        for _ in range(total)
    )
    free = [(a, b) for a in range(args.addresses) for b in range(BLOCKS)]
    rnd.shuffle(free)
    busy: list[tuple[int, int, int]] = []  # (release instant, address, block)
    days: list[list[tuple[int, int, str]]] = [[] for _ in range(args.days + 1)]
    made: list[tuple[int, int, int, int, int]] = []  # public, first, start, end, inside
    refused = 0
    for start, subscriber in starts:
        while busy and busy[0][0] <= start:
            _, address, blk = heapq.heappop(busy)
            free.append((address, blk))
        if not free:
            refused += 1  # pool exhausted: the NAT would refuse the allocation (not logged)
            continue
        address, blk = free.pop(rnd.randrange(len(free)))
        end = start + rnd.randrange(600 * 10**6, 8 * 3600 * 10**6)
        heapq.heappush(busy, (end, address, blk))
        public, first = first_public + address, 1024 + blk * 512
        inside = _ipv4(first_inside + subscriber)
        tail = f",{inside},{_ipv4(public)},{first},{first + 511},\n"
        days[(start - t0) // DAY_US].append((start, 1, "allocate" + tail))
        day = min((end - t0) // DAY_US, args.days)
        days[day].append((end, 0, "release" + tail))
        made.append((public, first, start, end, first_inside + subscriber))
    lines = 0
    for n, day in enumerate(days):
        if not day:
            continue
        day.sort()
        name = (START + timedelta(days=n)).strftime("pba-%Y-%m-%d.csv")
        with (args.out / name).open("w") as f:
            f.write(HEADER)
            f.writelines(f"{_time(at)},{rest}" for at, _, rest in day)
        lines += len(day)
    with (args.out / "questions.csv").open("w") as q, (args.out / "expected.csv").open("w") as e:
        q.write("ip,port,time\n")
        e.write("subscriber\n")
        for _ in range(args.questions):
            public, first, start, end, inside = made[rnd.randrange(len(made))]
            at = rnd.randrange(start, end)
            q.write(f"{_ipv4(public)},{first + rnd.randrange(512)},{_time(at)}\n")
            e.write(f"{_ipv4(inside)}/32\n")
    print(
        f"{len(made):,} allocations ({refused:,} refused: pool full), {lines:,} lines in "
        f"{sum(1 for d in days if d)} files; {args.questions:,} questions"
    )


if __name__ == "__main__":
    main()
