"""The AFTR binding table: ports only from the B4's deterministic set, RFC timers, TCP states."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detnat.datapath.dslite.nat import (
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    BindingTable,
    NoBinding,
    PortSet,
    TcpState,
    Timeouts,
)
from detnat.datapath.dslite.packets import ICMP, TCP, UDP
from detnat.engine import Mapper, Status, compile_plan
from detnat.engine.addresses import parse_address, parse_prefix
from detnat.errors import QueryError
from detnat.planfile import plan_from_text
from tests.datapath.plans import DSLITE, MAP, SPLIT_BLOCKS

HOST = 0xC0A8010A  # 192.168.1.10: every B4's host, on purpose


def _v6(text: str) -> int:
    return parse_address(text)[1]


def _mapper(text: str) -> Mapper:
    return compile_plan(plan_from_text(text))


B4A, B4B = _v6("2001:db8:b4::1"), _v6("2001:db8:b4::2")


def test_two_b4s_whose_hosts_share_an_address_get_ports_of_their_own_sets() -> None:
    mapper = _mapper(DSLITE)
    table = BindingTable(mapper)
    a = table.outbound(B4A, HOST, 40000, UDP, now=0.0)
    b = table.outbound(B4B, HOST, 40000, UDP, now=0.0)
    assert a.public_ip == b.public_ip and a.public_port != b.public_port
    for binding, b4 in ((a, "2001:db8:b4::1"), (b, "2001:db8:b4::2")):
        answer = mapper.reverse(binding.public_ip, binding.public_port)
        assert answer.status is Status.MATCH
        assert answer.allocation is not None
        assert answer.allocation.subscriber == parse_prefix(b4)


@settings(max_examples=50, deadline=None)
@given(
    plan=st.sampled_from([DSLITE, MAP]),
    inner_ports=st.lists(st.integers(1, 65535), min_size=1, max_size=80),
    protocol=st.sampled_from([TCP, UDP, ICMP]),
)
def test_every_public_port_lies_in_the_b4s_allocation(
    plan: str, inner_ports: list[int], protocol: int
) -> None:
    mapper = _mapper(plan)
    b4 = _v6("2001:db8:b4::1") if plan == DSLITE else _v6("2001:db8:12:3400::1")
    allocation = mapper.forward(
        parse_prefix("2001:db8:b4::1" if plan == DSLITE else "2001:db8:12:3400::1")
    )
    table = BindingTable(mapper)
    ports = set()
    for port in inner_ports:
        try:
            binding = table.outbound(b4, HOST, port, protocol, now=0.0)
        except NoBinding as exc:
            assert exc.reason == "port_set_exhausted"
            assert len(ports) == allocation.port_count
            continue
        assert binding.public_ip == allocation.public_ip
        assert allocation.holds(binding.public_port)
        ports.add((port, binding.public_port))
    # One binding per inner endpoint, and no public port handed out twice.
    assert len({p for p, _ in ports}) == len({q for _, q in ports})


def test_an_inner_port_in_the_set_is_kept() -> None:
    table = BindingTable(_mapper(DSLITE))
    assert table.outbound(B4A, HOST, 2500, UDP, now=0.0).public_port == 2500
    assert table.outbound(B4B, HOST, 2500, UDP, now=0.0).public_port == 3024


def test_the_same_inner_endpoint_keeps_its_binding_whatever_the_destination() -> None:
    # Endpoint-independent mapping (RFC 4787 REQ-1): the key has no destination in it.
    table = BindingTable(_mapper(DSLITE))
    first = table.outbound(B4A, HOST, 40000, UDP, now=0.0)
    assert table.outbound(B4A, HOST, 40000, UDP, now=5.0) is first
    assert table.inbound(UDP, first.public_ip, first.public_port, now=6.0) is first
    assert table.inbound(UDP, first.public_ip, first.public_port + 1, now=6.0) is None
    assert table.inbound(TCP, first.public_ip, first.public_port, now=6.0) is None


def test_a_full_port_set_refuses_new_bindings_and_frees_ports_as_they_expire() -> None:
    tiny = DSLITE.replace("block: {size: 1000}", "block: {size: 2}").replace(
        "last: 5023", "last: 1031"
    )
    table = BindingTable(_mapper(tiny))
    ports = {table.outbound(B4A, HOST, p, UDP, now=0.0).public_port for p in (1, 2)}
    assert ports == {1026, 1027}
    with pytest.raises(NoBinding, match="port_set_exhausted"):
        table.outbound(B4A, HOST, 3, UDP, now=1.0)
    assert table.outbound(B4A, HOST, 3, TCP, now=1.0).public_port == 1026  # per protocol
    assert table.expire(241.0) == 1  # the TCP binding never saw a SYN-ACK: transitory
    assert table.expire(300.0) == 2
    assert table.outbound(B4A, HOST, 3, UDP, now=300.0).public_port in ports


def test_a_b4_outside_the_plan_gets_no_binding() -> None:
    table = BindingTable(_mapper(DSLITE))
    with pytest.raises(NoBinding, match="not_a_subscriber"):
        table.outbound(_v6("2001:db8:ffff::1"), HOST, 1, UDP, now=0.0)


def test_a_nat44_plan_is_not_an_aftr_plan() -> None:
    with pytest.raises(QueryError, match="B4 IPv6 addresses"):
        BindingTable(_mapper(SPLIT_BLOCKS))


def test_a_static_subscriber_gets_its_whole_address_but_never_port_zero() -> None:
    plan = DSLITE + 'static: [{subscriber: "2001:db8:b4::3", address: "198.51.100.9"}]\n'
    table = BindingTable(_mapper(plan))
    b4 = _v6("2001:db8:b4::3")
    assert table.outbound(b4, HOST, 0, UDP, now=0.0).public_port != 0
    assert table.outbound(b4, HOST, 5060, UDP, now=0.0).public_ip == 0xC6336409


# -- timers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("protocol", "lifetime"), [(UDP, 300.0), (ICMP, 60.0)])
def test_udp_and_icmp_bindings_live_their_rfc_lifetime_after_the_last_outbound_packet(
    protocol: int, lifetime: float
) -> None:
    table = BindingTable(_mapper(DSLITE))
    b = table.outbound(B4A, HOST, 1, protocol, now=0.0)
    table.outbound(B4A, HOST, 1, protocol, now=10.0)  # refreshed (RFC 4787 REQ-6)
    table.inbound(protocol, b.public_ip, b.public_port, now=20.0)  # inbound does not refresh
    assert table.expire(10.0 + lifetime - 0.001) == 0
    assert table.expire(10.0 + lifetime) == 1
    assert table.inbound(protocol, b.public_ip, b.public_port, now=10.0 + lifetime) is None


def test_tcp_is_transitory_until_established_then_long_lived_until_closed() -> None:
    t = Timeouts()
    table = BindingTable(_mapper(DSLITE))
    b = table.outbound(B4A, HOST, 5, TCP, now=0.0, tcp_flags=TCP_SYN)
    assert (b.tcp, b.expires) == (TcpState.OPENING, t.tcp_transitory)
    table.inbound(TCP, b.public_ip, b.public_port, now=1.0, tcp_flags=TCP_SYN | TCP_ACK)
    assert (b.tcp, b.expires) == (TcpState.ESTABLISHED, 1.0 + t.tcp_established)
    table.outbound(B4A, HOST, 5, TCP, now=2.0, tcp_flags=TCP_FIN | TCP_ACK)
    assert b.tcp == TcpState.CLOSING and b.expires == 2.0 + t.tcp_established
    table.inbound(TCP, b.public_ip, b.public_port, now=3.0, tcp_flags=TCP_FIN | TCP_ACK)
    assert (b.tcp, b.expires) == (TcpState.CLOSED, 3.0 + t.tcp_transitory)
    assert table.expire(3.0 + t.tcp_transitory) == 1


def test_a_reset_makes_an_established_binding_transitory() -> None:
    table = BindingTable(_mapper(DSLITE))
    b = table.outbound(B4A, HOST, 5, TCP, now=0.0, tcp_flags=TCP_SYN)
    table.inbound(TCP, b.public_ip, b.public_port, now=1.0, tcp_flags=TCP_SYN | TCP_ACK)
    table.inbound(TCP, b.public_ip, b.public_port, now=2.0, tcp_flags=TCP_RST)
    assert b.tcp == TcpState.CLOSED and b.expires == 2.0 + 240.0


def test_an_unsolicited_inbound_syn_finds_no_binding() -> None:
    table = BindingTable(_mapper(DSLITE))
    assert table.inbound(TCP, 0xC0000201, 2024, now=0.0, tcp_flags=TCP_SYN) is None


def test_a_port_set_is_numbered_across_its_ranges() -> None:
    ports = PortSet(((1232, 1235), (2256, 2259)))
    assert ports.count == 8
    assert [ports.port_at(i) for i in (0, 3, 4, 7)] == [1232, 1235, 2256, 2259]
    assert ports.index_of(2257) == 5 and ports.index_of(1236) is None


def test_refreshing_a_busy_binding_does_not_grow_the_timer_heap() -> None:
    table = BindingTable(_mapper(DSLITE))
    for n in range(10_000):
        table.outbound(B4A, HOST, 1, UDP, now=n * 0.01)
    assert table.timer_count == 1
    assert table.expire(299.0) == 0 and table.timer_count == 1  # re-armed at its new expiry
    assert table.expire(99.99 + 300.0) == 1 and table.timer_count == 0
