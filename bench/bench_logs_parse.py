"""Log parsing speed: lines per second of each format's parser, on lines as datapaths write them.

Run by hand (not part of the tests)::

    .venv/bin/python bench/bench_logs_parse.py [--lines 200000] [--runs 3] [--format NAME]

For each format it writes ``--lines`` event lines (random subscribers, public addresses, blocks
and times; one line in ten is other syslog traffic, which a parser skips), then times
``parse_lines`` consuming them all (events built, each with its line's SHA-256) and prints the
best of ``--runs``, in lines per second of CPU time (the process's own, so that other work on a
shared machine weighs less). A "(floor)" row comes first: decode, hash and build an event of
constant fields per line, the part of the cost the event shape sets whatever the format. The
ingest target is 200,000 lines/s per core end to end (parsing, hashing and COPY into Postgres),
so parsing alone must be well above it.
"""

from __future__ import annotations

import argparse
import ipaddress
import platform
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's detnat, not whichever is installed

from detnat.logs.events import EventKind, LineRef, LogEvent  # noqa: E402
from detnat.logs.formats import FORMATS, ParseOptions, parse_lines  # noqa: E402
from tests.logs.render import (  # noqa: E402
    Event,
    render_a10,
    render_conntrack,
    render_csv,
    render_juniper_structured,
    render_juniper_text,
    render_nfdump,
    render_vpp,
)

NOISE = b"<14>Dec  7 10:00:00 host sshd[42]: Accepted publickey for ops from 192.0.2.1"
START_US = 1_765_101_600_000_000  # 2025-12-07T10:00:00Z


def juniper(event: Event, rng: random.Random) -> bytes:
    return render_juniper_structured(event) if rng.random() < 0.5 else render_juniper_text(event)


DEFAULTS = ParseOptions()


@dataclass(frozen=True)
class Spec:
    """How to write a format's lines for the benchmark, and the options to read them."""

    render: Callable[[Event, random.Random], bytes]
    block: int  # ports per event
    per_protocol: bool = True
    interim: bool = True
    resolution_us: int = 1  # what the format's time can say
    options: ParseOptions = DEFAULTS


SPECS = {
    "juniper-pba": Spec(juniper, 256, per_protocol=False, resolution_us=1_000_000),
    "a10-cef": Spec(lambda e, _: render_a10(e), 256, interim=False),
    "vpp-syslog": Spec(lambda e, _: render_vpp(e), 1, interim=False),
    "conntrack": Spec(lambda e, _: render_conntrack(e), 1),
    "nfdump-json": Spec(
        lambda e, _: render_nfdump(e),
        512,
        per_protocol=False,
        interim=False,
        resolution_us=1000,
        options=ParseOptions(tz="UTC"),
    ),
    "csv": Spec(lambda e, _: render_csv(e), 64),
}


def lines_of(name: str, count: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    spec = SPECS[name]
    kinds = list(EventKind) if spec.interim else [EventKind.ALLOCATE, EventKind.RELEASE]
    subscribers = [str(ipaddress.IPv4Address(0x64400000 + n)) for n in range(50_000)]
    publics = [str(ipaddress.IPv4Address(0xCB007100 + n)) for n in range(256)]
    out = []
    at = START_US
    for n in range(count):
        if n % 10 == 9:
            out.append(NOISE + b"\n")
            continue
        at += rng.randrange(1, 20_000)
        first = 1024 + rng.randrange((65536 - 1024) // spec.block) * spec.block
        event = Event(
            rng.choice(kinds),
            at - at % spec.resolution_us,
            rng.choice(subscribers),
            rng.choice(publics),
            first,
            first + spec.block - 1,
            rng.choice(["tcp", "udp", "icmp"]) if spec.per_protocol else None,
        )
        out.append(spec.render(event, rng) + b"\n")
    return out


def time_parse(name: str, lines: list[bytes], runs: int) -> tuple[float, int]:
    options = SPECS[name].options
    best = float("inf")
    events = 0
    for _ in range(runs):
        began = time.process_time()
        events = sum(
            1
            for item in parse_lines(name, lines, file="bench.log", options=options)
            if isinstance(item, LogEvent)
        )
        best = min(best, time.process_time() - began)
    return len(lines) / best, events


def floor(lines: list[bytes], runs: int) -> float:
    """Lines/s of what every parser must do whatever its format: decode, hash, build the event."""
    best = float("inf")
    for _ in range(runs):
        began = time.process_time()
        for number, raw in enumerate(lines, 1):
            raw.decode().rstrip("\r\n")
            LogEvent(
                EventKind.ALLOCATE,
                START_US,
                "100.64.0.1",
                "203.0.113.1",
                1024,
                1279,
                None,
                LineRef.of("bench.log", number, raw),
            )
        best = min(best, time.process_time() - began)
    return len(lines) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--format", choices=sorted(FORMATS), action="append")
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}; {args.lines:,} lines")
    print(f"{'format':<12} {'lines/s':>12} {'events':>9}")
    rate = floor(lines_of("csv", args.lines), args.runs)
    print(f"{'(floor)':<12} {rate:>12,.0f} {'':>9}  decode + LineRef + LogEvent only")
    for name in args.format or sorted(FORMATS):
        lines = lines_of(name, args.lines)
        rate, events = time_parse(name, lines, args.runs)
        print(f"{name:<12} {rate:>12,.0f} {events:>9,}")


if __name__ == "__main__":
    main()
