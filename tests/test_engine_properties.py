"""Properties of the engine over generated plans of both algorithms (see ``strategies``).

What holds for every plan, whatever its parameters:

- forward and reverse are inverse: every port of a subscriber's allocation reverses to it;
- no (address, port) is held by two subscribers, and every usable port of every pool address is
  exactly one subscriber's, or dynamic (``not_deterministic``), or ``unallocated``;
- reserved ports, excluded and out-of-pool addresses, tails, dynamic blocks, static blocks and
  static addresses get the status and reason of the design;
- the vectorised ``reverse_many`` answers what ``reverse`` answers, row by row;
- a plan's canonical content reads back, through the plan-file validator, to an equal plan.

The test-side figures (pool addresses, usable ports, block size) are computed here from the plan's
canonical content with :mod:`ipaddress`, never taken from the mapper.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detnat.engine import (
    INVALID,
    MATCH,
    NO_MAPPING,
    NOT_DETERMINISTIC,
    REASON_CODES,
    STATUS_CODES,
    Allocation,
    Mapper,
    Plan,
    Reason,
    Status,
    compile_plan,
    format_ipv4,
)
from detnat.errors import QueryError
from detnat.planfile import canonical_json, plan_from_data
from tests.strategies import block_plans, map_plans, plans

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ALL_PORTS = np.arange(65536, dtype=np.int64)
# Addresses that are never public: reverse refuses them when they are in no pool of the plan.
NON_PUBLIC = (
    "0.0.0.0",
    "10.0.0.1",
    "10.255.255.255",
    "100.64.0.1",
    "100.127.255.254",
    "127.0.0.1",
    "169.254.1.1",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "224.0.0.1",
    "255.255.255.255",
)
# Public addresses in no pool a generated plan can have (pools are in 192.0.2/24, 198.51.100/24).
ELSEWHERE = ("8.8.8.8", "1.1.1.1", "192.0.3.0", "198.51.101.7", "203.0.114.1", "223.255.255.255")
EXHAUSTIVE_SUBSCRIBERS = 4096


# -- test-side figures, from the plan's canonical content ----------------------------------------


@dataclasses.dataclass
class Figures:
    pool: list[int]  # usable addresses in numbering order
    excluded: list[int]  # excluded addresses inside the outside prefixes
    spans: list[tuple[int, int]]  # the outside prefixes (or the MAP IPv4 rule prefix)
    usable: np.ndarray  # bool per port 0..65535
    usable_list: list[int]  # usable ports ascending
    size: int = 0  # block: S
    blocks: int = 0  # block: B
    dynamic: int = 0  # block: D


def figures(plan: Plan) -> Figures:
    content = plan.to_dict()
    usable = np.zeros(65536, dtype=bool)
    if plan.algorithm == "map":
        rule = content["map"]
        assert isinstance(rule, dict)
        net = ipaddress.ip_network(rule["rule_ipv4_prefix"])
        pool = [int(a) for a in net]
        offset = rule["psid_offset"]
        usable[(1 << (16 - offset)) if offset > 0 else 0 :] = True
        return Figures(
            pool, [], [(pool[0], pool[-1])], usable, [int(p) for p in np.flatnonzero(usable)]
        )
    outside = content["outside"]
    ports = content["ports"]
    block = content["block"]
    assert isinstance(outside, dict) and isinstance(ports, dict) and isinstance(block, dict)
    nets = [ipaddress.ip_network(p) for p in outside["prefixes"]]
    excludes = [ipaddress.ip_network(p) for p in outside["exclude"]]
    pool, excluded = [], []
    for net in nets:
        for address in net:
            (excluded if any(address in ex for ex in excludes) else pool).append(int(address))
    usable[ports["first"] : ports["last"] + 1] = True
    for text in ports["exclude"]:
        low, _, high = text.partition("-")
        usable[int(low) : int(high or low) + 1] = False
    usable_list = [int(p) for p in np.flatnonzero(usable)]
    count = len(usable_list)
    if "size" in block:
        size, blocks = block["size"], count // block["size"]
    else:
        size, blocks = count // block["ratio"], block["ratio"]
    spans = [(int(n.network_address), int(n.broadcast_address)) for n in nets]
    return Figures(
        pool, excluded, spans, usable, usable_list, size, blocks, block["dynamic_blocks"]
    )


def statics(plan: Plan) -> dict[int, str]:
    """Static address -> subscriber prefix text."""
    return {s.address: str(s.subscriber) for s in plan.static}


def sample(count: int, limit: int, data: st.DataObject) -> list[int]:
    """All of 0..count-1 when few, else both ends, evenly spaced ones and some drawn at random."""
    if count <= limit:
        return list(range(count))
    spread = [round(i * (count - 1) / (limit - 1)) for i in range(limit)]
    drawn = data.draw(st.lists(st.integers(0, count - 1), max_size=8), label="sampled")
    return sorted({*spread, *drawn})


def sample_ports(allocation: Allocation, limit: int = 24) -> list[int]:
    ranges = allocation.port_ranges
    step = max(1, len(ranges) // limit)
    picked = [*ranges[::step], ranges[-1]]
    return sorted({p for first, last in picked for p in (first, last, (first + last) // 2)})


# -- plan content ----------------------------------------------------------------------------------


@SETTINGS
@given(plans())
def test_plan_content_reads_back_to_an_equal_plan(plan: Plan) -> None:
    content = plan.to_dict()
    assert plan_from_data(content) == plan
    # Through JSON text too (what the store keeps), and the canonical text is a fixed point.
    assert plan_from_data(json.loads(canonical_json(plan))) == plan
    assert canonical_json(plan_from_data(content)) == canonical_json(plan)


# -- forward and reverse are inverse --------------------------------------------------------------


@SETTINGS
@given(plans(), st.data())
def test_every_port_of_an_allocation_reverses_to_its_subscriber(
    plan: Plan, data: st.DataObject
) -> None:
    mapper = compile_plan(plan)
    for index in sample(mapper.subscriber_count, 48, data):
        subscriber = mapper.subscriber_at(index)
        allocation = mapper.forward(str(subscriber))
        assert allocation.subscriber == subscriber
        assert mapper.subscriber_number(str(subscriber)) == index
        # Any address inside the subscriber's prefix identifies it.
        last = ipaddress.ip_network(str(subscriber))[-1]
        assert mapper.forward(str(last)) == allocation
        assert allocation.port_ranges == tuple(sorted(allocation.port_ranges))
        for (_, a), (b, _) in zip(allocation.port_ranges, allocation.port_ranges[1:], strict=False):
            assert a + 1 < b, f"ranges not merged: {allocation.port_ranges}"
        for port in sample_ports(allocation):
            answer = mapper.reverse(format_ipv4(allocation.public_ip), port)
            assert answer.status is Status.MATCH, (index, port, answer)
            assert answer.reason is None
            assert answer.allocation == allocation
            assert mapper.reverse(allocation.public_ip, port) == answer


@SETTINGS
@given(plans(), st.data())
def test_every_usable_port_is_one_subscribers_or_dynamic_or_unallocated(
    plan: Plan, data: st.DataObject
) -> None:
    mapper = compile_plan(plan)
    fig = figures(plan)
    rows = len(fig.pool)
    answers = mapper.reverse_many(np.repeat(np.array(fig.pool), 65536), np.tile(ALL_PORTS, rows))
    status = answers.status.reshape(rows, 65536)
    reason = answers.reason.reshape(rows, 65536)
    got = np.where(status == MATCH, answers.subscriber.reshape(rows, 65536), -1)
    assert (answers.subscriber.reshape(rows, 65536)[status != MATCH] == -1).all()
    assert (reason[status == MATCH] == 0).all()
    static_subscribers = {mapper.subscriber_number(s) for s in statics(plan).values()}
    row_of = {address: row for row, address in enumerate(fig.pool)}

    if mapper.subscriber_count <= EXHAUSTIVE_SUBSCRIBERS:
        # Build the whole table from forward: nobody may hold a port twice, and reverse must give
        # back exactly that table.
        owner = np.full((rows, 65536), -1, dtype=np.int64)
        for index in range(mapper.subscriber_count):
            if index in static_subscribers:
                continue
            allocation = mapper.allocation_of(index)
            row = row_of[allocation.public_ip]
            for first, last in allocation.port_ranges:
                held = owner[row, first : last + 1]
                assert (held == -1).all(), (
                    f"{format_ipv4(allocation.public_ip)} ports {first}-{last} of subscriber "
                    f"{index} already held by {sorted(set(held[held >= 0].tolist()))}"
                )
                assert fig.usable[first : last + 1].all(), "allocated a reserved port"
                held[:] = index
        assert np.array_equal(got, owner)
    else:
        counts = np.bincount(got[got >= 0], minlength=mapper.subscriber_count)
        for index in sample(mapper.subscriber_count, 32, data):
            if index in static_subscribers:
                assert counts[index] == 0
                continue
            allocation = mapper.allocation_of(index)
            row = row_of[allocation.public_ip]
            assert counts[index] == allocation.port_count
            for first, last in allocation.port_ranges:
                assert (got[row, first : last + 1] == index).all()

    # Every port is exactly one thing: reserved, or a subscriber's, dynamic, or unallocated.
    reserved = REASON_CODES.index(Reason.RESERVED_PORT)
    unallocated = REASON_CODES.index(Reason.UNALLOCATED)
    dynamic = REASON_CODES.index(Reason.DYNAMIC_BLOCK)
    usable = np.broadcast_to(fig.usable, status.shape)
    assert ((status == NO_MAPPING) & (reason == reserved) == ~usable).all()
    free = usable & (status != MATCH)
    is_dynamic = (status == NOT_DETERMINISTIC) & (reason == dynamic)
    is_unallocated = (status == NO_MAPPING) & (reason == unallocated)
    assert (free == (is_dynamic | is_unallocated)).all()
    if plan.algorithm == "block":
        per_address = is_dynamic.sum(axis=1)
        assert (per_address == fig.dynamic * fig.size).all()
        tail = len(fig.usable_list) - fig.blocks * fig.size
        owned = (got >= 0).sum()
        assert (
            is_unallocated.sum() == rows * (len(fig.usable_list) - fig.dynamic * fig.size) - owned
        )
        assert is_unallocated.sum(axis=1).min() >= tail
    else:
        # MAP has no dynamic ports, and every subscriber but the static ones holds ports.
        assert not is_dynamic.any()
        held = np.unique(got[got >= 0])
        assert len(held) == mapper.subscriber_count - len(static_subscribers)


# -- statuses and reasons ------------------------------------------------------------------------


def expect(mapper: Mapper, address: int | str, port: int, status: Status, reason: Reason) -> None:
    answer = mapper.reverse(address, port)
    assert (answer.status, answer.reason) == (status, reason), (address, port, answer)
    assert answer.allocation is None


@SETTINGS
@given(block_plans())
def test_block_statuses_of_reserved_tail_dynamic_excluded_and_foreign_addresses(
    plan: Plan,
) -> None:
    mapper = compile_plan(plan)
    fig = figures(plan)
    assert plan.ports is not None
    ports = plan.ports
    for address in {fig.pool[0], fig.pool[-1]}:
        for port in {0, ports.first - 1, ports.last + 1, 65535}:
            if 0 <= port <= 65535 and not fig.usable[port]:
                expect(mapper, address, port, Status.NO_MAPPING, Reason.RESERVED_PORT)
        for low, high in ports.exclude:
            for port in (low, high):
                expect(mapper, address, port, Status.NO_MAPPING, Reason.RESERVED_PORT)
        deterministic_end = (fig.blocks - fig.dynamic) * fig.size
        dynamic_end = fig.blocks * fig.size
        for position in {deterministic_end, dynamic_end - 1}:
            if fig.dynamic:
                port = fig.usable_list[position]
                expect(mapper, address, port, Status.NOT_DETERMINISTIC, Reason.DYNAMIC_BLOCK)
        for position in range(dynamic_end, len(fig.usable_list)):
            port = fig.usable_list[position]
            expect(mapper, address, port, Status.NO_MAPPING, Reason.UNALLOCATED)
    for address in fig.excluded:
        for port in (0, ports.first, ports.last, 65535):
            expect(mapper, address, port, Status.NO_MAPPING, Reason.EXCLUDED_ADDRESS)
    expect_foreign_addresses(mapper, plan, fig)


@SETTINGS
@given(map_plans())
def test_map_statuses_of_reserved_ports_and_foreign_addresses(plan: Plan) -> None:
    mapper = compile_plan(plan)
    fig = figures(plan)
    assert plan.map is not None
    offset = plan.map.psid_offset
    for address in {fig.pool[0], fig.pool[-1]}:
        if offset > 0:
            for port in {0, (1 << (16 - offset)) - 1, (1 << (15 - offset)) if offset < 16 else 0}:
                expect(mapper, address, port, Status.NO_MAPPING, Reason.RESERVED_PORT)
        # The first port of port-set 1 (or port 0 when a = 0) is not reserved.
        first_usable = 1 << (16 - offset) if offset > 0 else 0
        for port in (first_usable, 65535):
            assert mapper.reverse(address, port).reason is not Reason.RESERVED_PORT
    expect_foreign_addresses(mapper, plan, fig)


def expect_foreign_addresses(mapper: Mapper, plan: Plan, fig: Figures) -> None:
    static = statics(plan)
    neighbours = {lo - 1 for lo, _ in fig.spans} | {hi + 1 for _, hi in fig.spans}
    foreign = {int(ipaddress.ip_address(a)) for a in ELSEWHERE} | neighbours
    for address in sorted(foreign):
        if any(lo <= address <= hi for lo, hi in fig.spans) or address in static:
            continue
        for port in (0, 1024, 65535):
            expect(mapper, address, port, Status.NO_MAPPING, Reason.NOT_IN_POOL)
    for address in NON_PUBLIC:
        with pytest.raises(QueryError) as caught:
            mapper.reverse(address, 1024)
        assert caught.value.field == "address"


@SETTINGS
@given(plans(), st.data())
def test_static_subscribers_hold_their_whole_address_and_leave_their_block_unallocated(
    plan: Plan, data: st.DataObject
) -> None:
    mapper = compile_plan(plan)
    without = compile_plan(dataclasses.replace(plan, static=()))
    bound = {mapper.subscriber_number(str(s.subscriber)): s for s in plan.static}
    for index, binding in bound.items():
        allocation = mapper.forward(str(binding.subscriber))
        assert allocation == Allocation(binding.subscriber, binding.address, ((0, 65535),), True)
        for port in (0, 1, 1023, 1024, 32768, 65535):
            answer = mapper.reverse(format_ipv4(binding.address), port)
            assert answer.status is Status.MATCH
            assert answer.allocation == allocation
        # Its place in the numbering stays, but nobody gets its block.
        would_be = without.allocation_of(index)
        for port in sample_ports(would_be):
            expect(mapper, would_be.public_ip, port, Status.NO_MAPPING, Reason.UNALLOCATED)
    # Nobody else moves.
    for index in sample(mapper.subscriber_count, 64, data):
        if index not in bound:
            assert mapper.allocation_of(index) == without.allocation_of(index)


# -- the vectorised path ---------------------------------------------------------------------------


def interesting_ports(plan: Plan, fig: Figures) -> set[int]:
    ports = {0, 1, 1023, 1024, 1025, 32767, 32768, 65534, 65535}
    if plan.algorithm == "map":
        assert plan.map is not None
        for bit in range(17):
            ports |= {(1 << bit) - 1, min(1 << bit, 65535)}
        return ports
    assert plan.ports is not None
    ports |= {plan.ports.first - 1, plan.ports.first, plan.ports.last, plan.ports.last + 1}
    for low, high in plan.ports.exclude:
        ports |= {low - 1, low, high, high + 1}
    count = len(fig.usable_list)
    for block in range(fig.blocks + 1):
        for position in (block * fig.size - 1, block * fig.size):
            if 0 <= position < count:
                ports.add(fig.usable_list[position])
    return {p for p in ports if 0 <= p <= 65535}


@SETTINGS
@given(plans(), st.data())
def test_reverse_many_answers_what_reverse_answers(plan: Plan, data: st.DataObject) -> None:
    mapper = compile_plan(plan)
    fig = figures(plan)
    ports = interesting_ports(plan, fig)
    ports |= set(data.draw(st.lists(st.integers(0, 65535), max_size=16), label="ports"))
    rows = [(a, p) for a in fig.pool for p in sorted(ports)]
    # Elsewhere every port answers alike: a few of them suffice.
    others = {*fig.excluded, *statics(plan)}
    others |= {lo - 1 for lo, _ in fig.spans} | {hi + 1 for _, hi in fig.spans}
    others |= {int(ipaddress.ip_address(a)) for a in (*ELSEWHERE, *NON_PUBLIC)}
    few = sorted(ports)[:: max(1, len(ports) // 6)]
    rows += [(a, p) for a in sorted(others) for p in few]
    # Rows reverse refuses outright: out-of-range ports and addresses.
    rows += [(fig.pool[0], -1), (fig.pool[0], 65536), (-1, 1024), (1 << 32, 1024)]
    answers = mapper.reverse_many(
        np.array([a for a, _ in rows], dtype=np.int64), np.array([p for _, p in rows])
    )
    for n, (address, port) in enumerate(rows):
        status, reason, subscriber = (
            int(answers.status[n]),
            int(answers.reason[n]),
            int(answers.subscriber[n]),
        )
        try:
            answer = mapper.reverse(address, port)
        except QueryError:
            assert (status, reason, subscriber) == (INVALID, 0, -1), (address, port)
            continue
        where = (format_ipv4(address), port, answer)
        assert STATUS_CODES[status] is answer.status, where
        assert REASON_CODES[reason] is answer.reason, where
        if answer.allocation is None:
            assert subscriber == -1, where
        else:
            assert mapper.subscriber_at(subscriber) == answer.allocation.subscriber, where
