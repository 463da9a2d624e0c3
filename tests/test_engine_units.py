"""Focused examples of the engine: every status and reason, plan checks naming their field, and
strict parsing of addresses, prefixes and ports (the bad inputs of the shared list)."""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detnat.engine import (
    INVALID,
    MATCH,
    NO_MAPPING,
    NOT_DETERMINISTIC,
    REASON_CODES,
    Allocation,
    Block,
    Inside,
    Mapper,
    MapRule,
    Outside,
    Plan,
    Ports,
    Prefix,
    Reason,
    StaticBinding,
    Status,
    check_port,
    compile_plan,
    format_address,
    format_ipv4,
    parse_address,
    parse_prefix,
    parse_public_address,
)
from detnat.errors import InvalidInput, PlanError, QueryError


def p(*texts: str) -> tuple[Prefix, ...]:
    return tuple(parse_prefix(t) for t in texts)


def ip(text: str) -> int:
    return parse_public_address(text)


# A small block plan where every answer occurs. Worked by hand from the design:
# subscribers 10.0.0.1 .. 10.0.0.6 are numbers 0 .. 5 (10.0.0.0 and 10.0.0.7 excluded);
# usable addresses 192.0.2.1, .2, .3 (192.0.2.0 excluded);
# usable ports 1000-1049, 1051-1059, 1062-1099: U = 97; size 20 gives B = 4 blocks and a tail of
# 17 ports (1083-1099); the last block (1063-1082) is dynamic, so 3 deterministic blocks:
#   block 0 = 1000-1019, block 1 = 1020-1039, block 2 = 1040-1049, 1051-1059, 1062;
# sequential: subscriber i gets address i // 3, block i % 3; subscriber 5 (10.0.0.6) is static.
SMALL = Plan(
    "block",
    inside=Inside(p("10.0.0.0/29"), 32, p("10.0.0.7/32", "10.0.0.0/32")),
    outside=Outside(p("192.0.2.0/30"), p("192.0.2.0/32")),
    ports=Ports(1000, 1099, ((1060, 1061), (1050, 1050))),
    block=Block(size=20, dynamic_blocks=1),
    static=(StaticBinding(parse_prefix("10.0.0.6"), ip("203.0.113.5")),),
)
RFC7599 = Plan("map", map=MapRule(parse_prefix("2001:db8::/40"), parse_prefix("192.0.2.0/24"), 16))


@pytest.fixture(scope="module")
def small() -> Mapper:
    return compile_plan(SMALL)


@pytest.fixture(scope="module")
def rfc7599() -> Mapper:
    return compile_plan(RFC7599)


# -- forward ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "public_ip", "port_ranges"),
    [
        ("10.0.0.1", "192.0.2.1", ((1000, 1019),)),
        ("10.0.0.2/32", "192.0.2.1", ((1020, 1039),)),
        ("10.0.0.3", "192.0.2.1", ((1040, 1049), (1051, 1059), (1062, 1062))),
        ("10.0.0.4", "192.0.2.2", ((1000, 1019),)),
        ("10.0.0.5", "192.0.2.2", ((1020, 1039),)),
    ],
)
def test_forward_cuts_blocks_from_usable_ports(
    small: Mapper, query: str, public_ip: str, port_ranges: tuple[tuple[int, int], ...]
) -> None:
    allocation = small.forward(query)
    assert allocation == Allocation(
        parse_prefix(query.split("/")[0]), ip(public_ip), port_ranges, False
    )


def test_forward_of_a_static_subscriber_is_its_address_with_every_port(small: Mapper) -> None:
    allocation = small.forward("10.0.0.6")
    assert allocation.static
    assert allocation.to_json() == {
        "subscriber": "10.0.0.6/32",
        "public_ip": "203.0.113.5",
        "port_ranges": [[0, 65535]],
    }


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("10.0.0.0", "excluded by inside.exclude[1]"),
        ("10.0.0.7", "excluded by inside.exclude[0]"),
        ("10.0.0.8", "not in the plan's inside key space"),
        ("10.0.0.0/29", "covers several subscribers"),
        ("2001:db8::1", "IPv6"),
        ("10.0.0.01", "leading zero"),
        ("10.0.0.1/33", "longer than 32"),
    ],
)
def test_forward_refuses_what_is_not_one_subscriber(small: Mapper, query: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        small.forward(query)
    assert caught.value.field == "query"
    assert words in caught.value.message


def test_forward_of_ipv6_spellings_of_one_subscriber_is_one_answer(rfc7599: Mapper) -> None:
    spellings = [
        "2001:db8:12:3400::",
        "2001:DB8:12:3400::",
        "2001:0db8:0012:3400:0000:0000:0000:0000",
        "2001:db8:12:34ff:ffff:ffff:ffff:ffff",
        "2001:db8:12:3400::/56",
        "2001:db8:12:3400::/64",
    ]
    answers = {rfc7599.forward(s) for s in spellings}
    assert len(answers) == 1
    (allocation,) = answers
    assert str(allocation.subscriber) == "2001:db8:12:3400::/56"
    assert format_ipv4(allocation.public_ip) == "192.0.2.18"
    assert allocation.port_ranges[:2] == ((1232, 1235), (2256, 2259))
    assert allocation.port_ranges[-1] == (64720, 64723)
    assert len(allocation.port_ranges) == 63


# -- reverse: every status and reason ------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "port", "status", "reason", "subscriber"),
    [
        ("192.0.2.1", 1000, Status.MATCH, None, "10.0.0.1/32"),
        ("192.0.2.1", 1062, Status.MATCH, None, "10.0.0.3/32"),
        ("192.0.2.2", 1039, Status.MATCH, None, "10.0.0.5/32"),
        ("203.0.113.5", 0, Status.MATCH, None, "10.0.0.6/32"),  # static address: every port
        ("203.0.113.5", 65535, Status.MATCH, None, "10.0.0.6/32"),
        ("192.0.2.1", 999, Status.NO_MAPPING, Reason.RESERVED_PORT, None),  # below first
        ("192.0.2.1", 1100, Status.NO_MAPPING, Reason.RESERVED_PORT, None),  # above last
        ("192.0.2.1", 0, Status.NO_MAPPING, Reason.RESERVED_PORT, None),
        ("192.0.2.1", 1050, Status.NO_MAPPING, Reason.RESERVED_PORT, None),  # excluded port
        ("192.0.2.3", 1061, Status.NO_MAPPING, Reason.RESERVED_PORT, None),  # excluded range
        ("192.0.2.1", 1063, Status.NOT_DETERMINISTIC, Reason.DYNAMIC_BLOCK, None),
        ("192.0.2.3", 1082, Status.NOT_DETERMINISTIC, Reason.DYNAMIC_BLOCK, None),
        ("192.0.2.1", 1083, Status.NO_MAPPING, Reason.UNALLOCATED, None),  # tail
        ("192.0.2.1", 1099, Status.NO_MAPPING, Reason.UNALLOCATED, None),  # tail
        ("192.0.2.2", 1040, Status.NO_MAPPING, Reason.UNALLOCATED, None),  # the static's block
        ("192.0.2.2", 1062, Status.NO_MAPPING, Reason.UNALLOCATED, None),
        ("192.0.2.3", 1000, Status.NO_MAPPING, Reason.UNALLOCATED, None),  # nobody's block
        ("192.0.2.0", 1000, Status.NO_MAPPING, Reason.EXCLUDED_ADDRESS, None),
        ("192.0.2.4", 1000, Status.NO_MAPPING, Reason.NOT_IN_POOL, None),
        ("8.8.8.8", 1000, Status.NO_MAPPING, Reason.NOT_IN_POOL, None),
    ],
)
def test_reverse_answers_every_status_and_reason(
    small: Mapper,
    address: str,
    port: int,
    status: Status,
    reason: Reason | None,
    subscriber: str | None,
) -> None:
    answer = small.reverse(address, port)
    assert (answer.status, answer.reason) == (status, reason)
    if subscriber is None:
        assert answer.allocation is None
        assert answer.to_json() == {"status": status.value, "reason": reason and reason.value}
    else:
        assert answer.allocation == small.forward(subscriber)
        assert answer.to_json()["subscriber"] == subscriber
    bulk = small.reverse_many([ip(address)], [port])
    assert int(bulk.status[0]) == {Status.MATCH: MATCH, Status.NO_MAPPING: NO_MAPPING}.get(
        status, NOT_DETERMINISTIC
    )
    assert REASON_CODES[int(bulk.reason[0])] is reason


def test_reverse_of_a_match_carries_the_whole_port_set(small: Mapper) -> None:
    assert small.reverse("192.0.2.1", 1055).to_json() == {
        "status": "match",
        "subscriber": "10.0.0.3/32",
        "public_ip": "192.0.2.1",
        "port_ranges": [[1040, 1049], [1051, 1059], [1062, 1062]],
    }


@pytest.mark.parametrize(
    ("address", "port", "status", "reason"),
    [
        ("192.0.2.18", 1232, Status.MATCH, None),
        ("192.0.2.18", 64723, Status.MATCH, None),
        ("192.0.2.18", 1023, Status.NO_MAPPING, Reason.RESERVED_PORT),  # port-set index 0
        ("192.0.2.18", 0, Status.NO_MAPPING, Reason.RESERVED_PORT),
        ("192.0.3.0", 1232, Status.NO_MAPPING, Reason.NOT_IN_POOL),
    ],
)
def test_map_reverse_statuses(
    rfc7599: Mapper, address: str, port: int, status: Status, reason: Reason | None
) -> None:
    answer = rfc7599.reverse(address, port)
    assert (answer.status, answer.reason) == (status, reason)
    if status is Status.MATCH:
        assert answer.allocation is not None
        assert str(answer.allocation.subscriber) == "2001:db8:12:3400::/56"


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("10.0.0.1", "private address space"),
        ("100.64.0.1", "shared address space"),
        ("127.0.0.1", "loopback"),
        ("169.254.0.1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "'this network'"),
    ],
)
def test_reverse_refuses_addresses_that_are_never_public(
    small: Mapper, address: str, words: str
) -> None:
    with pytest.raises(QueryError) as caught:
        small.reverse(address, 1000)
    assert caught.value.field == "address"
    assert words in caught.value.message
    assert int(small.reverse_many([ip(address)], [1000]).status[0]) == INVALID


def test_a_never_public_address_inside_the_pool_is_answered() -> None:
    plan = Plan(
        "block",
        inside=Inside(p("10.0.0.0/30"), 32),
        outside=Outside(p("100.64.0.0/31")),
        block=Block(ratio=2),
    )
    mapper = compile_plan(plan)
    assert mapper.reverse("100.64.0.1", 1024).status is Status.MATCH
    assert int(mapper.reverse_many([ip("100.64.0.1")], [1024]).status[0]) == MATCH


def test_reverse_many_marks_out_of_range_rows_invalid_and_answers_the_rest(small: Mapper) -> None:
    rows = [(ip("192.0.2.1"), -1), (ip("192.0.2.1"), 65536), (-1, 1000), (1 << 32, 1000)]
    rows.append((ip("192.0.2.1"), 1000))
    bulk = small.reverse_many([a for a, _ in rows], [port for _, port in rows])
    assert bulk.status.tolist() == [INVALID] * 4 + [MATCH]
    assert bulk.reason.tolist() == [0] * 5
    assert bulk.subscriber.tolist() == [-1] * 4 + [0]


def test_reverse_many_of_nothing_is_nothing(small: Mapper) -> None:
    bulk = small.reverse_many(np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    assert bulk.status.shape == bulk.reason.shape == bulk.subscriber.shape == (0,)


# -- plan checks name their field ------------------------------------------------------------------


def block_plan(**changes: object) -> Plan:
    fields: dict[str, object] = {
        "inside": Inside(p("10.0.0.0/30"), 32),
        "outside": Outside(p("192.0.2.0/31")),
        "block": Block(ratio=2),
    }
    fields.update(changes)
    return Plan("block", **fields)  # type: ignore[arg-type]


def map_plan(
    rule6: str = "2001:db8::/40", rule4: str = "192.0.2.0/24", ea: int = 16, **kw: object
) -> Plan:
    offset = kw.pop("offset", 6)
    return Plan(
        "map",
        map=MapRule(parse_prefix(rule6), parse_prefix(rule4), ea, offset),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def static(subscriber: str, address: str) -> StaticBinding:
    return StaticBinding(parse_prefix(subscriber), ip(address))


@pytest.mark.parametrize(
    ("plan", "field", "words"),
    [
        (block_plan(inside=None), "inside", "needs inside"),
        (block_plan(outside=None), "outside", "needs outside"),
        (block_plan(block=None), "block", "needs block"),
        (block_plan(inside=Inside((), 32)), "inside.prefixes", "at least one"),
        (
            block_plan(inside=Inside(p("10.0.0.0/30"), 33)),
            "inside.subscriber_prefix_length",
            "0-32",
        ),
        (block_plan(inside=Inside(p("10.0.0.0/30"), 29)), "inside.prefixes[0]", "smaller than one"),
        (
            block_plan(inside=Inside(p("10.0.0.0/30", "10.0.0.2/31"), 32)),
            "inside.prefixes[1]",
            "overlaps inside.prefixes[0]",
        ),
        (
            block_plan(inside=Inside(p("10.0.0.2/31", "10.0.0.0/30"), 32)),
            "inside.prefixes[1]",
            "overlaps inside.prefixes[0]",
        ),
        (
            block_plan(inside=Inside(p("10.0.0.0/30", "2001:db8::/126"), 32)),
            "inside.prefixes[1]",
            "one family",
        ),
        (
            block_plan(inside=Inside(p("10.0.0.0/30"), 31, p("10.0.0.0/32"))),
            "inside.exclude[0]",
            "part of one subscriber",
        ),
        (
            block_plan(inside=Inside(p("10.0.0.0/30"), 32, p("10.0.1.0/32"))),
            "inside.exclude[0]",
            "not inside any inside prefix",
        ),
        (
            block_plan(inside=Inside(p("10.0.0.0/30"), 32, p("2001:db8::/128"))),
            "inside.exclude[0]",
            "not IPv4",
        ),
        (
            block_plan(inside=Inside(p("10.0.0.0/30"), 32, p("10.0.0.0/30"))),
            "inside.exclude",
            "every subscriber",
        ),
        (block_plan(outside=Outside(())), "outside.prefixes", "at least one"),
        (
            block_plan(outside=Outside(p("192.0.2.0/31", "192.0.2.1/32"))),
            "outside.prefixes[1]",
            "overlaps outside.prefixes[0]",
        ),
        (
            block_plan(outside=Outside(p("2001:db8::/127"))),
            "outside.prefixes[0]",
            "IPv4",
        ),
        (
            block_plan(outside=Outside(p("192.0.2.0/31"), p("192.0.2.0/31"))),
            "outside.exclude",
            "every pool address",
        ),
        (
            block_plan(outside=Outside(p("192.0.2.0/31"), p("192.0.2.0/30"))),
            "outside.exclude[0]",
            "not inside any outside prefix",
        ),
        (block_plan(ports=Ports(-1, 100)), "ports.first", "0-65535"),
        (block_plan(ports=Ports(100, 65536)), "ports.last", "0-65535"),
        (block_plan(ports=Ports(100, 99)), "ports.first", "above last"),
        (block_plan(ports=Ports(100, 200, ((150, 140),))), "ports.exclude[0]", "reversed"),
        (
            block_plan(ports=Ports(100, 200, ((150, 150), (99, 100)))),
            "ports.exclude[1]",
            "outside the port range",
        ),
        (block_plan(ports=Ports(100, 101, ((100, 101),))), "ports.exclude", "every port"),
        (block_plan(block=Block()), "block", "exactly one"),
        (block_plan(block=Block(size=1, ratio=1)), "block", "exactly one"),
        (block_plan(block=Block(size=0)), "block.size", "at least 1"),
        (block_plan(block=Block(size=64513)), "block.size", "larger than the 64512"),
        (block_plan(block=Block(ratio=0)), "block.ratio", "at least 1"),
        (block_plan(block=Block(ratio=64513)), "block.ratio", "empty blocks"),
        (
            block_plan(block=Block(ratio=2, assignment="random")),  # type: ignore[arg-type]
            "block.assignment",
            "sequential or staggered",
        ),
        (block_plan(block=Block(ratio=2, dynamic_blocks=2)), "block.dynamic_blocks", "no determ"),
        (block_plan(block=Block(ratio=2, dynamic_blocks=-1)), "block.dynamic_blocks", "negative"),
        (block_plan(block=Block(ratio=1)), "block", "short by 2"),
        (
            block_plan(block=Block(ratio=2, dynamic_blocks=1)),
            "block",
            "2 addresses x 1 deterministic blocks = 2 subscribers",
        ),
        (
            block_plan(static=(static("10.0.0.1", "192.0.2.1"),)),
            "static[0].address",
            "in the pool",
        ),
        (
            block_plan(
                outside=Outside(p("192.0.2.0/30"), p("192.0.2.3/32")),
                static=(static("10.0.0.1", "192.0.2.3"),),
            ),
            "static[0].address",
            "in the pool's prefixes",
        ),
        (
            block_plan(static=(static("10.0.0.9", "203.0.113.1"),)),
            "static[0].subscriber",
            "not in the plan's inside key space",
        ),
        (
            block_plan(static=(static("10.0.0.0/31", "203.0.113.1"),)),
            "static[0].subscriber",
            "covers several subscribers",
        ),
        (
            block_plan(static=(static("2001:db8::1", "203.0.113.1"),)),
            "static[0].subscriber",
            "IPv6",
        ),
        (
            block_plan(
                inside=Inside(p("10.0.0.0/28"), 30),
                outside=Outside(p("192.0.2.0/30")),
                static=(static("10.0.0.4/32", "203.0.113.1"),),
            ),
            "static[0].subscriber",
            "not one subscriber",
        ),
        (
            block_plan(
                static=(static("10.0.0.1", "203.0.113.1"), static("10.0.0.1", "203.0.113.2"))
            ),
            "static[1]",
            "two static bindings",
        ),
        (
            block_plan(
                static=(static("10.0.0.1", "203.0.113.1"), static("10.0.0.2", "203.0.113.1"))
            ),
            "static[1].address",
            "bound to two subscribers",
        ),
        (map_plan(offset=17), "map.psid_offset", "0-16"),
        (map_plan(offset=-1), "map.psid_offset", "0-16"),
        (map_plan(offset=9), "map.ea_bits_length", "exceeds 16"),
        (map_plan(ea=7), "map.ea_bits_length", "suffix"),
        (map_plan(rule6="2001:db8::/120"), "map.ea_bits_length", "longer than 128"),
        (map_plan(rule6="192.0.2.0/24"), "map.rule_ipv6_prefix", "not IPv6"),
        (map_plan(rule4="2001:db8::/120"), "map.rule_ipv4_prefix", "not IPv4"),
        (Plan("map"), "map", "needs map"),
        (
            map_plan(static=(static("2001:db8:12:3400::/56", "192.0.2.200"),)),
            "static[0].address",
            "in the pool",
        ),
        (
            map_plan(static=(static("2001:db9::/56", "203.0.113.1"),)),
            "static[0].subscriber",
            "not inside the MAP rule prefix",
        ),
    ],
)
def test_plans_that_cannot_be_used_are_refused_naming_the_field(
    plan: Plan, field: str, words: str
) -> None:
    with pytest.raises(PlanError) as caught:
        compile_plan(plan)
    assert caught.value.field == field, str(caught.value)
    assert words in caught.value.message, str(caught.value)


@pytest.mark.parametrize(
    ("algorithm", "section"),
    [("block", "map"), ("map", "inside"), ("map", "outside"), ("map", "ports"), ("map", "block")],
)
def test_a_plan_has_no_place_for_another_algorithms_section(algorithm: str, section: str) -> None:
    # Each algorithm's plan class has its own sections only (a plan file says "not used by
    # algorithm ...": tests/test_planfile.py).
    with pytest.raises(TypeError, match=section):
        Plan(algorithm, **{section: getattr(SMALL, section, None) or RFC7599.map})


def test_the_capacity_error_says_how_to_fix_it() -> None:
    plan = Plan(
        "block",
        inside=Inside(p("10.0.0.0/18"), 32),
        outside=Outside(p("1.1.1.0/30")),
        block=Block(ratio=4095),
    )
    with pytest.raises(PlanError) as caught:
        compile_plan(plan)
    message = caught.value.message
    assert "4 addresses x 4095 deterministic blocks = 16380 subscribers" in message
    assert "16384" in message and "short by 4" in message
    assert "5 usable addresses (+1)" in message and "ratio 4096" in message


def test_map_edge_parameters_are_accepted() -> None:
    # a = 0 (every port, port 0 too), k = 0 (one subscriber per address), a + k = 16 (m = 0).
    whole = compile_plan(map_plan(rule6="2001:db8::/56", rule4="192.0.2.0/24", ea=8, offset=0))
    assert whole.forward("2001:db8:0:7::").port_ranges == ((0, 65535),)
    assert whole.reverse("192.0.2.7", 0).status is Status.MATCH
    single = compile_plan(map_plan(rule6="2001:db8::/40", rule4="192.0.2.0/24", ea=24, offset=0))
    assert single.forward("2001:db8:0:1234::").port_ranges == ((0x1234, 0x1234),)
    ports = compile_plan(map_plan(rule6="2001:db8::/64", rule4="192.0.2.1/32", ea=0, offset=16))
    assert ports.subscriber_count == 1
    assert ports.forward("2001:db8::1").port_ranges == ((1, 65535),)
    assert ports.reverse("192.0.2.1", 0).reason is Reason.RESERVED_PORT


# -- strict parsing of addresses, prefixes and ports -----------------------------------------------

MALFORMED_ADDRESSES = [
    "",
    " 1.2.3.4",
    "1.2.3.4 ",
    "1.2.3.4\n",
    "1.2.3",
    "1.2.3.4.5",
    "256.1.1.1",
    "1.2.3.-4",
    "01.2.3.4",
    "1.2.3.00",
    "127.1",
    "0x7f.0.0.1",
    "2130706433",
    "１.２.３.４",
    "1。2。3。4",
    "١.٢.٣.٤",
    "fe80::1%eth0",
    "fe80::1%1",
    "[2001:db8::1]",
    "2001:db8::1 ",
    "2001:db8:0:0:0:0:0:0:1",
    "2001:db8:::1",
    "2001:db8::g",
    "::ffff:1.2.3.04",
]


@pytest.mark.parametrize("text", MALFORMED_ADDRESSES)
def test_malformed_addresses_are_refused_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_address(text, field="outside.exclude[3]")
    assert caught.value.field == "outside.exclude[3]"
    with pytest.raises(InvalidInput):
        parse_prefix(text + "/32" if text else text)


@pytest.mark.parametrize("value", [2130706433, None, b"1.2.3.4", 1.5, ["1.2.3.4"]])
def test_addresses_must_be_strings(value: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_address(value, field="address")  # type: ignore[arg-type]
    assert "string" in caught.value.message
    with pytest.raises(InvalidInput):
        parse_prefix(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("::ffff:192.0.2.1", "IPv4-mapped; ask for 192.0.2.1"),
        ("64:ff9b::192.0.2.1", "NAT64 well-known prefix; ask for 192.0.2.1"),
        ("2001:db8::1", "use forward"),
    ],
)
def test_ipv6_spellings_of_a_public_address_are_refused_with_a_hint(text: str, words: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_public_address(text)
    assert caught.value.field == "address"
    assert words in caught.value.message


@pytest.mark.parametrize("value", [-1, 1 << 32, True])
def test_integer_public_addresses_must_be_ipv4_integers(value: int) -> None:
    with pytest.raises(QueryError):
        parse_public_address(value)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("2001:db8::1/56", "host bits set (did you mean 2001:db8::/56?)"),
        ("192.0.2.1/24", "host bits set (did you mean 192.0.2.0/24?)"),
        ("192.0.2.0/33", "longer than 32"),
        ("2001:db8::/129", "longer than 128"),
        ("192.0.2.0/-1", "decimal"),
        ("192.0.2.0/", "decimal"),
        ("192.0.2.0/+24", "decimal"),
        ("192.0.2.0/ 24", "decimal"),
        ("192.0.2.0/24 ", "decimal"),
        ("192.0.2.0/２４", "decimal"),
        ("192.0.2.0/0x18", "decimal"),
        ("192.0.2.0/024", "leading zero"),
        ("192.0.2.0/24/24", "decimal"),
        ("/24", "empty"),
    ],
)
def test_bad_prefixes_are_refused(text: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_prefix(text, field="inside.prefixes[2]")
    assert caught.value.field == "inside.prefixes[2]"
    assert words in caught.value.message


def test_prefixes_are_written_in_one_canonical_form() -> None:
    assert str(parse_prefix("2001:DB8:0:0:1::/80")) == "2001:db8:0:0:1::/80"
    assert str(parse_prefix("2001:0db8:0000::/32")) == "2001:db8::/32"
    assert str(parse_prefix("192.0.2.7")) == "192.0.2.7/32"
    assert str(parse_prefix("2001:db8::7")) == "2001:db8::7/128"
    assert parse_prefix("0.0.0.0/0") == Prefix(4, 0, 0)
    assert parse_prefix("::/0") == Prefix(6, 0, 0)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, (1 << 32) - 1))
def test_every_ipv4_address_has_exactly_its_dotted_quad(value: int) -> None:
    text = format_ipv4(value)
    assert text == str(ipaddress.IPv4Address(value))
    assert parse_address(text) == (4, value)


def check_ipv6_spellings(value: int) -> None:
    address = ipaddress.IPv6Address(value)
    for text in (address.exploded, address.exploded.upper(), address.compressed.upper()):
        assert parse_address(text) == (6, value)
    written = format_address(6, value)
    assert parse_address(written) == (6, value)
    if address.ipv4_mapped is None:
        assert written == address.compressed
    else:  # RFC 5952 section 5: the embedded IPv4 address in dotted quad
        assert written == f"::ffff:{address.ipv4_mapped}"


@settings(max_examples=200, deadline=None)
@given(st.integers(0, (1 << 128) - 1))
def test_every_spelling_of_an_ipv6_address_reads_as_it_and_is_written_rfc5952(value: int) -> None:
    check_ipv6_spellings(value)


@pytest.mark.parametrize("value", [0xFFFF00000000, 0xFFFFC0000201, 0xFFFFFFFFFFFF])
def test_ipv4_mapped_addresses_are_written_with_a_dotted_quad(value: int) -> None:
    check_ipv6_spellings(value)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789.x+- /", max_size=18))
def test_an_accepted_ipv4_text_is_the_canonical_one(text: str) -> None:
    try:
        family, value = parse_address(text)
    except InvalidInput:
        return
    assert family == 4
    assert format_ipv4(value) == text


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789abcdefABCDEF:.%/ ", max_size=24))
def test_an_accepted_ipv6_text_means_what_ipaddress_says(text: str) -> None:
    try:
        family, value = parse_address(text)
    except InvalidInput:
        return
    if family == 6:
        assert "%" not in text
        assert int(ipaddress.IPv6Address(text)) == value
    else:
        assert format_ipv4(value) == text


@pytest.mark.parametrize("port", [-1, 65536, "80", 80.5, 1e3, True, False, None])
def test_bad_ports_are_refused(small: Mapper, port: object) -> None:
    with pytest.raises(QueryError) as caught:
        check_port(port)  # type: ignore[arg-type]
    assert caught.value.field == "port"
    with pytest.raises(QueryError):
        small.reverse("192.0.2.1", port)  # type: ignore[arg-type]


@pytest.mark.parametrize("port", [0, 999, 1100, 65535])
def test_ports_outside_the_plan_range_are_answers_not_errors(small: Mapper, port: int) -> None:
    answer = small.reverse("192.0.2.1", port)
    assert (answer.status, answer.reason) == (Status.NO_MAPPING, Reason.RESERVED_PORT)
