"""The specialised per-call paths answer exactly what the general ones answer.

``BlockMapper`` and ``MapMapper`` override :meth:`Mapper.forward` and :meth:`Mapper.reverse` with
their arithmetic inlined (issue 12: a call in a few integer operations). The general methods stay
on :class:`Mapper`, written once for every algorithm; here both are asked the same queries on
generated plans of both algorithms, and must give equal answers of the same types, or refuse
with the same error, message and field. The queries mix what the fast paths answer (subscribers
and their ports) with everything they hand over (other spellings, errors, excluded and foreign
addresses, reserved, tail and dynamic ports, static bindings).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detnat.engine import Mapper, Plan, Prefix, compile_plan, format_address, format_ipv4
from detnat.errors import DetnatError
from tests.strategies import POOL_BASES, STATIC_BASE, plans

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Spellings and values the fast paths must hand over to the general path, which refuses or
# explains them (never a different answer).
ODD_ADDRESSES: tuple[object, ...] = (
    "192.0.2.01",
    "192.0.2",
    "192.0.2.1.",
    " 192.0.2.1",
    "192.0.2.256",
    "::ffff:192.0.2.1",
    "64:ff9b::c000:201",
    "",
    "10.0.0.1",
    "100.64.0.1",
    "8.8.8.8",
    b"192.0.2.1",
    3221225985,
    -1,
    True,
    None,
)
ODD_PORTS: tuple[object, ...] = (-1, 65536, True, "80", 80.0, None)


def outcome(call: Callable[..., object], *args: object) -> tuple[object, ...]:
    """What a call gives, comparable: the answer with its type, or the refusal's words."""
    try:
        answer = call(*args)
    except DetnatError as exc:
        return ("refused", type(exc), exc.message, exc.field)
    return ("answer", type(answer), repr(answer), answer)


class _Text(str):
    """A str subclass: the fast paths check the exact type and hand it over."""


def subscriber_queries(mapper: Mapper, data: st.DataObject) -> list[str | Prefix]:
    count = mapper.subscriber_count
    indexes = {0, count - 1, *data.draw(st.lists(st.integers(0, count - 1), max_size=12))}
    width = 32 if mapper.family == 4 else 128
    host_bits = width - mapper.subscriber_prefix_length
    queries: list[str | Prefix] = []
    for index in sorted(indexes):
        prefix = mapper.subscriber_at(index)
        queries.append(str(prefix))
        queries.append(prefix)
        inside = prefix.network | data.draw(st.integers(0, (1 << host_bits) - 1), label="host")
        queries.append(format_address(prefix.family, inside))
        if host_bits:
            queries.append(f"{format_address(prefix.family, prefix.network)}/{width}")
            shorter = prefix.length - 1
            queries.append(f"{format_address(prefix.family, prefix.network)}/{shorter}")
            queries.append(f"{format_address(prefix.family, inside | 1)}/{prefix.length}")
        # Other spellings of the subscriber itself, with its own length: the MAP fast path
        # parses "address/length" inline and must hand these over or read them alike.
        text = str(prefix)
        exploded = ipaddress.ip_network(text).exploded
        queries += [text.upper(), exploded, f"{text.partition('/')[0]}/0{prefix.length}"]
        queries += [f" {text}", f"{text} ", _Text(text)]
        # The neighbours of a subscriber: excluded keys, the gaps between inside prefixes.
        for step in (-1, 1):
            neighbour = prefix.network + (step << host_bits)
            if 0 <= neighbour < 1 << width:
                queries.append(format_address(prefix.family, neighbour))
    queries += ["192.0.2.1", "2001:db8::/32", "2001:db8::1", "not an address", "10.0.0.0/33"]
    length = mapper.subscriber_prefix_length
    queries += [
        f"{spelling}/{length}"
        for spelling in ("", "::", "192.0.2.1", "::ffff:192.0.2.1", "fe80::1%eth0", "2001:db8::g")
    ]
    return queries


def reverse_queries(mapper: Mapper, data: st.DataObject) -> list[tuple[object, object]]:
    count = mapper.subscriber_count
    queries: list[tuple[object, object]] = []
    for index in data.draw(st.lists(st.integers(0, count - 1), min_size=1, max_size=8)):
        allocation = mapper.allocation_of(index)
        for first, last in allocation.port_ranges[:3]:
            port = data.draw(st.integers(first, last), label="held port")
            queries.append((format_ipv4(allocation.public_ip), port))
    # Every address near the pools and the static addresses, with any port: pool addresses,
    # excluded ones, ones in no pool; reserved, tail, dynamic and unowned ports.
    bases = st.sampled_from((*POOL_BASES, STATIC_BASE))
    for _ in range(24):
        address = data.draw(bases, label="base") + data.draw(st.integers(0, 255), label="host")
        port = data.draw(st.one_of(st.integers(0, 65535), st.sampled_from((0, 1023, 1024, 65535))))
        queries.append((format_ipv4(address), port))
    for static in mapper.plan.static:
        queries.append((format_ipv4(static.address), data.draw(st.integers(0, 65535))))
    queries += [(address, 2000) for address in ODD_ADDRESSES]
    queries += [("192.0.2.1", port) for port in ODD_PORTS]
    return queries


@SETTINGS
@given(plans(), st.data())
def test_specialised_forward_answers_what_the_general_forward_answers(
    plan: Plan, data: st.DataObject
) -> None:
    mapper = compile_plan(plan)
    assert type(mapper).forward is not Mapper.forward  # the path under test is specialised
    for query in subscriber_queries(mapper, data):
        fast = outcome(mapper.forward, query)
        general = outcome(Mapper.forward, mapper, query)
        assert fast == general, query


@SETTINGS
@given(plans(), st.data())
def test_specialised_reverse_answers_what_the_general_reverse_answers(
    plan: Plan, data: st.DataObject
) -> None:
    mapper = compile_plan(plan)
    assert type(mapper).reverse is not Mapper.reverse
    for address, port in reverse_queries(mapper, data):
        fast = outcome(mapper.reverse, address, port)
        general = outcome(Mapper.reverse, mapper, address, port)
        assert fast == general, (address, port)
