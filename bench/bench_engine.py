"""Engine speed: forward and reverse per call, beside what a user would write; bulk reverse.

Run by hand (not part of the tests)::

    .venv/bin/python bench/bench_engine.py [--calls 20000] [--bulk 10000000] [--passes 3] [--cpu]

For the block plan (bench/plans/block.yaml, NAT44: 49 148 subscribers, 1016 public addresses)
and the MAP plan (bench/plans/map.yaml, RFC 7597 shape: 65 536 CEs on a /24) it prints:

- forward and reverse in microseconds per call through :class:`Mapper` (wall time, or with
  ``--cpu`` the process's CPU time; best of ``--passes``), beside a plain
  implementation on :mod:`ipaddress` of the kind an operator writes in an afternoon (dicts for
  the pool and the ports, a walk over the inside prefixes), and the ratio; both are checked to
  give the same answers on every query timed;
- :meth:`Mapper.reverse_many` throughput on ``--bulk`` random queries (target: 10 M lookups/s).
"""

from __future__ import annotations

import argparse
import ipaddress
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

HERE = Path(__file__).resolve().parent
PLANS = HERE / "plans"
sys.path.insert(0, str(HERE.parent))  # this checkout's detnat, not whichever is installed

from detnat.engine import Mapper  # noqa: E402
from detnat.planfile import load_mapper  # noqa: E402

# -- what a user would write -----------------------------------------------------------------


class PlainBlock:
    """RFC 7422 block NAT with ipaddress objects: the straightforward reading of the plan."""

    def __init__(self, plan: dict[str, Any]) -> None:
        inside = plan["inside"]
        self.inside = [ipaddress.ip_network(p) for p in inside["prefixes"]]
        self.length = inside["subscriber_prefix_length"]
        self.excluded = sorted(ipaddress.ip_network(p) for p in inside.get("exclude", []))
        outside = plan["outside"]
        skip = [ipaddress.ip_network(p) for p in outside.get("exclude", [])]
        self.pool = [
            a
            for net in map(ipaddress.ip_network, outside["prefixes"])
            for a in net
            if not any(a in s for s in skip)
        ]
        self.pool_index = {a: i for i, a in enumerate(self.pool)}
        ports = plan.get("ports", {})
        bad = set()
        for item in ports.get("exclude", []):
            lo, _, hi = str(item).partition("-")
            bad.update(range(int(lo), int(hi or lo) + 1))
        self.ports = [
            p for p in range(ports.get("first", 1024), ports.get("last", 65535) + 1) if p not in bad
        ]
        self.port_index = {p: i for i, p in enumerate(self.ports)}
        block = plan["block"]
        self.size = block["size"]
        self.blocks = len(self.ports) // self.size
        self.det = self.blocks - block.get("dynamic_blocks", 0)
        self.sequential = block.get("assignment", "sequential") == "sequential"
        # Per inside prefix: (first key, subscribers, excluded (first key, count) in order).
        shift = 32 - self.length
        self.spans = []
        for net in self.inside:
            holes = sorted(
                (int(ex.network_address) >> shift, ex.num_addresses >> shift)
                for ex in self.excluded
                if ex.subnet_of(net)
            )
            size = (net.num_addresses >> shift) - sum(n for _, n in holes)
            self.spans.append((net, int(net.network_address) >> shift, size, holes))
        self.count = sum(size for _, _, size, _ in self.spans)

    def _index(self, address: ipaddress.IPv4Address) -> int:
        key = int(address) >> (32 - self.length)
        base = 0
        for net, first, size, holes in self.spans:
            if address in net:
                if any(start <= key < start + n for start, n in holes):
                    break
                return base + key - first - sum(n for start, n in holes if start < key)
            base += size
        raise ValueError(f"{address} is not a subscriber")

    def _subscriber(self, index: int) -> str:
        for _, first, size, holes in self.spans:
            if index < size:
                key = first + index
                for start, n in holes:
                    if start <= key:
                        key += n
                return str(ipaddress.ip_network((key << (32 - self.length), self.length)))
            index -= size
        raise ValueError("no such subscriber")

    def forward(self, query: str) -> tuple[str, tuple[tuple[int, int], ...]]:
        index = self._index(ipaddress.ip_address(query))
        if self.sequential:
            address, block = divmod(index, self.det)
        else:
            block, address = divmod(index, len(self.pool))
        ports = self.ports[block * self.size : (block + 1) * self.size]
        ranges: list[tuple[int, int]] = []
        for p in ports:
            if ranges and ranges[-1][1] + 1 == p:
                ranges[-1] = (ranges[-1][0], p)
            else:
                ranges.append((p, p))
        return str(self.pool[address]), tuple(ranges)

    def reverse(self, address: str, port: int) -> str | None:
        a = self.pool_index.get(ipaddress.ip_address(address))
        p = self.port_index.get(port)
        if a is None or p is None:
            return None
        block = p // self.size
        if block >= self.det:
            return None
        index = a * self.det + block if self.sequential else block * len(self.pool) + a
        return None if index >= self.count else self._subscriber(index)


class PlainMap:
    """RFC 7597 port sets with ipaddress objects."""

    def __init__(self, plan: dict[str, Any]) -> None:
        rule = plan["map"]
        self.rule6 = ipaddress.ip_network(rule["rule_ipv6_prefix"])
        self.rule4 = ipaddress.ip_network(rule["rule_ipv4_prefix"])
        self.ea = rule["ea_bits_length"]
        self.a = rule.get("psid_offset", 6)
        self.k = self.ea - (32 - self.rule4.prefixlen)
        self.m = 16 - self.a - self.k
        self.length = self.rule6.prefixlen + self.ea

    def forward(self, query: str) -> tuple[str, tuple[tuple[int, int], ...]]:
        net = ipaddress.ip_network(query)
        ea = (int(net.network_address) >> (128 - self.length)) & ((1 << self.ea) - 1)
        suffix, psid = ea >> self.k, ea & ((1 << self.k) - 1)
        ranges = []
        for index in range(1 if self.a else 0, 1 << self.a):
            low = (index << (16 - self.a)) | (psid << self.m)
            ranges.append((low, low + (1 << self.m) - 1))
        return str(self.rule4.network_address + suffix), tuple(ranges)

    def reverse(self, address: str, port: int) -> str | None:
        ip = ipaddress.ip_address(address)
        if ip not in self.rule4 or (self.a and port >> (16 - self.a) == 0):
            return None
        psid = (port >> self.m) & ((1 << self.k) - 1)
        ea = ((int(ip) - int(self.rule4.network_address)) << self.k) | psid
        network = int(self.rule6.network_address) | (ea << (128 - self.length))
        return str(ipaddress.ip_network((network, self.length)))


# -- timing ------------------------------------------------------------------------------------


# On a busy machine: more passes (the best is the least disturbed) and the process's CPU time
# (--cpu: time the scheduler gave to others is not counted).
PASSES = 3
CLOCK = time.perf_counter


def per_call(function: Callable[..., Any], queries: Sequence[tuple[Any, ...]]) -> float:
    """Best of ``PASSES`` passes, microseconds per call."""
    best = float("inf")
    for _ in range(PASSES):
        start = CLOCK()
        for query in queries:
            function(*query)
        best = min(best, CLOCK() - start)
    return best / len(queries) * 1e6


def dotted(value: int) -> str:
    return str(ipaddress.IPv4Address(value))


def block_queries(mapper: Mapper, calls: int, rng: random.Random) -> tuple[list[Any], list[Any]]:
    count = mapper.subscriber_count
    forward = [(dotted(mapper.subscriber_at(rng.randrange(count)).network),) for _ in range(calls)]
    reverse = []
    for _ in range(calls):
        allocation = mapper.allocation_of(rng.randrange(mapper.subscriber_count))
        first, last = allocation.port_ranges[0]
        reverse.append((dotted(allocation.public_ip), rng.randint(first, last)))
    return forward, reverse


def map_queries(mapper: Mapper, calls: int, rng: random.Random) -> tuple[list[Any], list[Any]]:
    count = mapper.subscriber_count
    forward = [(str(mapper.subscriber_at(rng.randrange(count))),) for _ in range(calls)]
    reverse = []
    for _ in range(calls):
        allocation = mapper.allocation_of(rng.randrange(mapper.subscriber_count))
        first, last = rng.choice(allocation.port_ranges)
        reverse.append((dotted(allocation.public_ip), rng.randint(first, last)))
    return forward, reverse


def compare(name: str, mapper: Mapper, plain: Any, calls: int) -> None:
    rng = random.Random(1)
    make = block_queries if mapper.plan.algorithm == "block" else map_queries
    forward, reverse = make(mapper, calls, rng)
    for (query,) in forward:
        mine = mapper.forward(query)
        assert plain.forward(query) == (dotted(mine.public_ip), mine.port_ranges), query
    for address, port in reverse:
        answer = mapper.reverse(address, port)
        held = str(answer.allocation.subscriber) if answer.allocation else None
        assert plain.reverse(address, port) == held, (address, port)
    for what, queries, ours, theirs in (
        ("forward", forward, mapper.forward, plain.forward),
        ("reverse", reverse, mapper.reverse, plain.reverse),
    ):
        engine = per_call(ours, queries)
        baseline = per_call(theirs, queries)
        print(
            f"  {name:5} {what:7}  detnat {engine:7.2f} µs/call   plain ipaddress "
            f"{baseline:8.2f} µs/call   detnat is {baseline / engine:5.1f}x faster"
        )


def bulk(name: str, mapper: Mapper, lookups: int) -> None:
    rng = np.random.default_rng(2)
    if mapper.plan.algorithm == "block":
        assert mapper.plan.outside is not None
        nets = mapper.plan.outside.prefixes
    else:
        assert mapper.plan.map is not None
        nets = (mapper.plan.map.rule_ipv4_prefix,)
    which = rng.integers(0, len(nets), lookups)
    starts = np.array([n.network for n in nets], dtype=np.int64)
    sizes = np.array([1 << (32 - n.length) for n in nets], dtype=np.int64)
    addresses = starts[which] + rng.integers(0, 1 << 62, lookups) % sizes[which]
    ports = rng.integers(0, 65536, lookups)
    mapper.reverse_many(addresses[:1000], ports[:1000])
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        answers = mapper.reverse_many(addresses, ports)
        best = min(best, time.perf_counter() - start)
    matched = int((answers.status == 0).sum())
    rate = lookups / best
    verdict = "meets" if rate >= 10e6 else "BELOW"
    print(
        f"  {name:5} reverse_many  {lookups:,} lookups in {best:.3f} s = {rate / 1e6:5.1f} M/s "
        f"({verdict} the 10 M/s target; {matched / lookups:.0%} matched)"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="queries per per-call timing")
    parser.add_argument("--bulk", type=int, default=10_000_000, help="queries for reverse_many")
    parser.add_argument("--passes", type=int, default=3, help="best of how many passes")
    parser.add_argument("--cpu", action="store_true", help="per-call figures in CPU time")
    args = parser.parse_args(argv)
    global PASSES, CLOCK
    PASSES = args.passes
    CLOCK = time.process_time if args.cpu else time.perf_counter
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    for name, plain_class in (("block", PlainBlock), ("map", PlainMap)):
        path = PLANS / f"{name}.yaml"
        mapper = load_mapper(path)
        plain = plain_class(yaml.safe_load(path.read_text()))
        print(
            f"{name} plan {path.relative_to(HERE.parent)}: {mapper.subscriber_count:,} subscribers"
        )
        compare(name, mapper, plain, args.calls)
        bulk(name, mapper, args.bulk)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
