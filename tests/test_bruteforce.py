"""The engine against a deliberately naive reference, on whole tables of small plans.

The reference below is written from the design text ("The engine" in the design document) and
RFC 7597 section 5.1 only. It reads a plan's canonical content (plain strings and numbers), uses
nothing of the engine, and does everything the slow, obvious way: it lists every subscriber with
:mod:`ipaddress`, lists the usable addresses and the usable ports, cuts the port list into
blocks, hands them out sequentially or staggered; for MAP it spells out every port of every PSID.
The result is the complete answer for every (pool address, port 0..65535).

The engine must agree completely: forward of every subscriber, the vectorised reverse of every
(pool address, port) pair, and the scalar reverse of every pair in a window of ports (the whole
usable range when it is small).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detnat.engine import (
    REASON_CODES,
    STATUS_CODES,
    Block,
    Inside,
    Mapper,
    MapRule,
    Outside,
    Plan,
    Ports,
    StaticBinding,
    compile_plan,
    parse_address,
    parse_prefix,
)
from detnat.errors import QueryError
from tests.strategies import block_plans, map_plans

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Answer = tuple[str, str | None, int]  # status, reason, reference subscriber number (-1: none)

RESERVED: Answer = ("no_mapping", "reserved_port", -1)
UNALLOCATED: Answer = ("no_mapping", "unallocated", -1)
DYNAMIC: Answer = ("not_deterministic", "dynamic_block", -1)
EXCLUDED: Answer = ("no_mapping", "excluded_address", -1)
NOT_IN_POOL: Answer = ("no_mapping", "not_in_pool", -1)

SCALAR_ROWS = 2500  # scalar reverse calls per plan; the vectorised path covers every port


# -- the reference ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Reference:
    subscribers: list[Network]  # in numbering order
    forward: list[tuple[int, list[tuple[int, int]]]]  # per subscriber: (address, port ranges)
    table: dict[int, list[Answer]]  # per pool address: the answer for each port 0..65535
    outside: list[Network]  # the networks answers outside the pool are judged against
    excluded: set[int]  # addresses in an outside prefix but excluded
    static: dict[int, int]  # static address -> subscriber number

    def answer(self, address: int, port: int) -> Answer:
        if address in self.static:
            return ("match", None, self.static[address])
        if address in self.table:
            return self.table[address][port]
        if address in self.excluded:
            return EXCLUDED
        return NOT_IN_POOL

    def row(self, address: int) -> list[Answer]:
        """The answers for ports 0..65535 of ``address``; outside the pool, all ports alike."""
        if address in self.table and address not in self.static:
            return self.table[address]
        return [self.answer(address, 0)] * 65536


def as_ranges(ports: list[int]) -> list[tuple[int, int]]:
    """Sorted ports as inclusive ranges, adjacent ones merged."""
    out: list[tuple[int, int]] = []
    for port in sorted(ports):
        if out and out[-1][1] + 1 == port:
            out[-1] = (out[-1][0], port)
        else:
            out.append((port, port))
    return out


def statics_of(content: dict[str, Any], subscribers: list[Network]) -> dict[int, int]:
    """Subscriber number -> static address."""
    out = {}
    for binding in content["static"]:
        number = subscribers.index(ipaddress.ip_network(binding["subscriber"]))
        out[number] = int(ipaddress.ip_address(binding["address"]))
    return out


def reference_block(content: dict[str, Any]) -> Reference:
    inside, outside = content["inside"], content["outside"]
    ports, block = content["ports"], content["block"]

    # Subscribers: across the prefixes in list order, ascending inside each, exclusions skipped.
    length = inside["subscriber_prefix_length"]
    skipped = [ipaddress.ip_network(p) for p in inside["exclude"]]
    subscribers = [
        subscriber
        for prefix in inside["prefixes"]
        for subscriber in ipaddress.ip_network(prefix).subnets(new_prefix=length)
        if not any(subscriber.subnet_of(ex) for ex in skipped)
    ]

    # Usable addresses: in list order, ascending, exclusions skipped.
    outside_nets = [ipaddress.ip_network(p) for p in outside["prefixes"]]
    never = [ipaddress.ip_network(p) for p in outside["exclude"]]
    pool: list[int] = []
    excluded: set[int] = set()
    for net in outside_nets:
        for address in net:
            if any(address in ex for ex in never):
                excluded.add(int(address))
            else:
                pool.append(int(address))

    # Usable ports: first..last less the excluded ones, ascending.
    reserved: set[int] = set()
    for text in ports["exclude"]:
        low, _, high = text.partition("-")
        reserved.update(range(int(low), int(high or low) + 1))
    usable = [p for p in range(ports["first"], ports["last"] + 1) if p not in reserved]

    if "size" in block:
        size = block["size"]
        blocks = len(usable) // size
    else:
        blocks = block["ratio"]
        size = len(usable) // blocks
    deterministic = blocks - block["dynamic_blocks"]
    cut = [usable[b * size : (b + 1) * size] for b in range(blocks)]

    static = statics_of(content, subscribers)
    table: dict[int, list[Answer]] = {}
    for address in pool:
        row = [RESERVED] * 65536
        for port in usable:
            row[port] = UNALLOCATED  # the tail, and blocks nobody owns, unless overwritten
        for b in range(deterministic, blocks):
            for port in cut[b]:
                row[port] = DYNAMIC
        table[address] = row

    forward: list[tuple[int, list[tuple[int, int]]]] = []
    count = len(pool)
    for i in range(len(subscribers)):
        if block["assignment"] == "sequential":
            a, b = i // deterministic, i % deterministic
        else:
            a, b = i % count, i // count
        assert a < count and b < deterministic, "the reference found the plan over capacity"
        if i in static:
            forward.append((static[i], [(0, 65535)]))
            continue
        for port in cut[b]:
            assert table[pool[a]][port] == UNALLOCATED, "the reference handed out a port twice"
            table[pool[a]][port] = ("match", None, i)
        forward.append((pool[a], as_ranges(cut[b])))
    return Reference(
        subscribers,
        forward,
        table,
        outside_nets,
        excluded,
        {address: i for i, address in static.items()},
    )


def reference_map(content: dict[str, Any]) -> Reference:
    rule = content["map"]
    rule6 = ipaddress.ip_network(rule["rule_ipv6_prefix"])
    rule4 = ipaddress.ip_network(rule["rule_ipv4_prefix"])
    ea_bits, a = rule["ea_bits_length"], rule["psid_offset"]
    suffix_bits = 32 - rule4.prefixlen
    k = ea_bits - suffix_bits  # PSID length
    m = 16 - a - k

    subscribers = list(rule6.subnets(new_prefix=rule6.prefixlen + ea_bits))
    static = statics_of(content, subscribers)
    table: dict[int, list[Answer]] = {}
    for address in rule4:
        row = [UNALLOCATED] * 65536
        if a > 0:
            # Port-set index 0 (ports 0 .. 2^(16-a) - 1) is never used.
            row[: 1 << (16 - a)] = [RESERVED] * (1 << (16 - a))
        table[int(address)] = row

    forward: list[tuple[int, list[tuple[int, int]]]] = []
    for i, subscriber in enumerate(subscribers):
        # The EA bits follow the rule IPv6 prefix in the subscriber's prefix.
        ea = (int(subscriber.network_address) >> (128 - rule6.prefixlen - ea_bits)) & (
            (1 << ea_bits) - 1
        )
        suffix, psid = ea >> k, ea & ((1 << k) - 1)
        address = int(rule4.network_address) + suffix
        # RFC 7597 5.1: port = A (a bits) | PSID (k bits) | j (m bits), A > 0 when a > 0.
        ports = [
            (index << (16 - a)) + (psid << m) + j
            for index in range(1 if a > 0 else 0, 1 << a)
            for j in range(1 << m)
        ]
        if i in static:
            forward.append((static[i], [(0, 65535)]))
            continue
        row = table[address]
        for port in ports:
            assert row[port] == UNALLOCATED, "the reference handed out a port twice"
            row[port] = ("match", None, i)
        forward.append((address, as_ranges(ports)))
    return Reference(
        subscribers,
        forward,
        table,
        [rule4],
        set(),
        {address: i for i, address in static.items()},
    )


def reference(content: dict[str, Any]) -> Reference:
    return reference_block(content) if content["algorithm"] == "block" else reference_map(content)


# -- comparing ------------------------------------------------------------------------------------


def engine_answer(mapper: Mapper, address: int, port: int) -> Answer:
    answer = mapper.reverse(address, port)
    reason = None if answer.reason is None else answer.reason.value
    number = -1
    if answer.allocation is not None:
        number = mapper.subscriber_number(answer.allocation.subscriber)
        assert answer.allocation == mapper.allocation_of(number)
    return answer.status.value, reason, number


def compare(
    plan: Plan, data: st.DataObject | None = None, *, scalar_rows: int = SCALAR_ROWS
) -> None:
    mapper = compile_plan(plan)
    ref = reference(plan.to_dict())

    # The same subscribers, numbered alike.
    assert mapper.subscriber_count == len(ref.subscribers)
    for i, subscriber in enumerate(ref.subscribers):
        assert str(mapper.subscriber_at(i)) == subscriber.with_prefixlen

    # Forward of every subscriber, asked as its prefix and as an address inside it.
    for i, (subscriber, (address, ranges)) in enumerate(
        zip(ref.subscribers, ref.forward, strict=True)
    ):
        allocation = mapper.forward(subscriber.with_prefixlen)
        got = (str(allocation.subscriber), allocation.public_ip, list(allocation.port_ranges))
        assert got == (subscriber.with_prefixlen, address, ranges), i
        assert allocation.static == (i in ref.static.values())
        if i % 7 == 0:
            assert mapper.forward(str(subscriber[-1])) == allocation

    # Forward refuses what is not a subscriber: excluded keys, and the keys next to each prefix.
    for key in not_subscribers(plan.to_dict(), set(ref.subscribers)):
        with pytest.raises(QueryError):
            mapper.forward(key.with_prefixlen)

    # Every (address, port) pair for pool, excluded, static and neighbouring addresses.
    neighbours = {int(n.network_address) - 1 for n in ref.outside}
    neighbours |= {int(n.broadcast_address) + 1 for n in ref.outside}
    neighbours = {
        a for a in neighbours if not any(ipaddress.ip_address(a) in n for n in ref.outside)
    }
    every = sorted({*ref.table, *ref.excluded, *ref.static, *neighbours})
    answers = mapper.reverse_many(
        np.repeat(np.array(every, dtype=np.int64), 65536),
        np.tile(np.arange(65536, dtype=np.int64), len(every)),
    )
    status_of = {s.value: code for code, s in enumerate(STATUS_CODES) if s is not None}
    reason_of = {r.value if r is not None else None: code for code, r in enumerate(REASON_CODES)}
    for row, address in enumerate(every):
        expected = ref.row(address)
        window = slice(row * 65536, (row + 1) * 65536)
        if expected.count(expected[0]) == len(expected):  # one answer for every port
            status, reason, number = expected[0]
            want_status = np.full(65536, status_of[status], dtype=np.uint8)
            want_reason = np.full(65536, reason_of[reason], dtype=np.uint8)
            want_subscriber = np.full(65536, number, dtype=np.int64)
        else:
            want_status = np.array([status_of[s] for s, _, _ in expected], dtype=np.uint8)
            want_reason = np.array([reason_of[r] for _, r, _ in expected], dtype=np.uint8)
            want_subscriber = np.array([n for _, _, n in expected], dtype=np.int64)
        for got, want, what in (
            (answers.status[window], want_status, "status"),
            (answers.reason[window], want_reason, "reason"),
            (answers.subscriber[window], want_subscriber, "subscriber"),
        ):
            if not np.array_equal(got, want):
                port = int(np.flatnonzero(got != want)[0])
                raise AssertionError(
                    f"{ipaddress.ip_address(address)}:{port} {what}: engine {got[port]}, "
                    f"reference {want[port]} ({expected[port]})"
                )

    # Scalar reverse of the same addresses over a window of ports.
    for port in scalar_ports(plan, data, max(1, scalar_rows // len(every))):
        for address in every:
            assert engine_answer(mapper, address, port) == ref.answer(address, port), (
                f"{ipaddress.ip_address(address)}:{port}"
            )


def not_subscribers(content: dict[str, Any], subscribers: set[Network]) -> list[Network]:
    """Prefixes of one subscriber's length that the plan does not number."""
    if content["algorithm"] == "block":
        nets = [ipaddress.ip_network(p) for p in content["inside"]["prefixes"]]
        length = content["inside"]["subscriber_prefix_length"]
    else:
        rule6 = ipaddress.ip_network(content["map"]["rule_ipv6_prefix"])
        nets = [rule6]
        length = rule6.prefixlen + content["map"]["ea_bits_length"]
    out = []
    for net in nets:
        host_bits = net.max_prefixlen - length
        out += [key for key in net.subnets(new_prefix=length) if key not in subscribers][:16]
        for neighbour in (int(net.network_address) - 1, int(net.broadcast_address) + 1):
            if 0 <= neighbour < 1 << net.max_prefixlen:
                key = type(net)((neighbour >> host_bits << host_bits, length))
                if not any(key.overlaps(n) for n in nets):
                    out.append(key)
    return out


def scalar_ports(plan: Plan, data: st.DataObject | None, width: int) -> list[int]:
    """All ports around the usable range when it fits in ``width``; else a window of them."""
    lowest, highest = 0, 65535
    ports = getattr(plan, "ports", None)  # map plans have no ports section
    if ports is not None:
        lowest, highest = max(0, ports.first - 1), min(65535, ports.last + 1)
    if highest - lowest + 1 <= width:
        return list(range(lowest, highest + 1))
    if data is not None:
        start = data.draw(st.integers(lowest, highest - width + 1), label="window start")
        return list(range(start, start + width))
    # No randomness at hand: the low end in full, and a stride across the rest.
    stride = max(1, 2 * (highest - lowest) // width)
    return sorted({*range(lowest, lowest + width // 2), *range(lowest, highest + 1, stride)})


# -- generated plans -------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(block_plans(max_usable_ports=2000), st.data())
def test_block_plans_agree_with_the_reference(plan: Plan, data: st.DataObject) -> None:
    compare(plan, data)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(map_plans(max_ea_bits=10), st.data())
def test_map_plans_agree_with_the_reference(plan: Plan, data: st.DataObject) -> None:
    compare(plan, data)


# -- hand-picked corners ---------------------------------------------------------------------------


def prefixes(*texts: str) -> tuple[Any, ...]:
    return tuple(parse_prefix(t) for t in texts)


def ipv4(text: str) -> int:
    return parse_address(text)[1]


def map_plan(rule6: str, rule4: str, ea_bits: int, offset: int, *static: tuple[str, str]) -> Plan:
    return Plan(
        "map",
        map=MapRule(parse_prefix(rule6), parse_prefix(rule4), ea_bits, offset),
        static=tuple(StaticBinding(parse_prefix(s), ipv4(a)) for s, a in static),
    )


@pytest.mark.parametrize(
    "plan",
    [
        pytest.param(map_plan("2001:db8::/56", "192.0.2.0/30", 2, 0), id="a=0,k=0"),
        pytest.param(map_plan("2001:db8::/62", "192.0.2.4/32", 2, 14), id="a=14,k=2"),
        pytest.param(map_plan("2001:db8::/54", "192.0.2.0/31", 1, 16), id="a=16,k=0"),
        pytest.param(map_plan("2001:db8::/48", "198.51.100.0/32", 16, 0), id="a=0,k=16"),
        pytest.param(map_plan("2001:db8::/117", "198.51.100.4/30", 11, 7), id="a=7,k=9,/128"),
        pytest.param(
            map_plan("2001:db8::/54", "192.0.2.0/30", 10, 6, ("2001:db8:0:c0::/64", "203.0.113.9")),
            id="a=6,k=8,/64,static",
        ),
    ],
)
def test_map_corners_agree_with_the_reference(plan: Plan) -> None:
    compare(plan, scalar_rows=70000)


@pytest.mark.parametrize(
    "plan",
    [
        pytest.param(
            Plan(
                "block",
                inside=Inside(prefixes("100.64.0.0/29"), 32),
                outside=Outside(prefixes("192.0.2.1/32", "192.0.2.2/32")),
                ports=Ports(40000, 60000),
                block=Block(size=5000),
            ),
            id="vyos-size-with-tail",
        ),
        pytest.param(
            Plan(
                "block",
                inside=Inside(prefixes("10.1.0.0/28", "10.0.0.0/29"), 30, prefixes("10.0.0.4/30")),
                outside=Outside(
                    prefixes("198.51.100.8/31", "192.0.2.0/30"), prefixes("192.0.2.0/32")
                ),
                block=Block(ratio=3, assignment="staggered", dynamic_blocks=1),
                static=(StaticBinding(parse_prefix("10.1.0.8/30"), ipv4("203.0.113.1")),),
            ),
            id="v4-/30-keys-default-ports-staggered-dynamic-static",
        ),
        pytest.param(
            Plan(
                "block",
                inside=Inside(prefixes("2001:db8:ff00::/54", "2001:db8:1200::/52"), 56),
                outside=Outside(prefixes("192.0.2.128/30"), prefixes("192.0.2.130/31")),
                ports=Ports(0, 65535, ((1723, 1723), (5060, 5061), (0, 1023))),
                block=Block(size=2000, dynamic_blocks=2),
            ),
            id="v6-/56-keys-excluded-ports",
        ),
    ],
)
def test_block_corners_agree_with_the_reference(plan: Plan) -> None:
    compare(plan, scalar_rows=70000)
