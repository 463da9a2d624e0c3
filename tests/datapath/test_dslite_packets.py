"""Packets: checksums (RFC 1071/1624), fragmentation and reassembly, ICMP errors."""

from __future__ import annotations

import struct

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from detnat.datapath.dslite.packets import (
    DF,
    ICMP,
    IPIP,
    IPV6_FRAGMENT,
    UDP,
    PacketError,
    adjust,
    checksum,
    fragment_ipv4,
    fragment_ipv6,
    icmpv4_error,
    ipv4_header,
    parse_fragment,
    parse_ipv4,
    parse_ipv6,
)
from detnat.datapath.dslite.reassembly import Reassembler

A, B = 0xC0000201, 0xCB007101


def test_checksum_of_the_rfc_1071_example() -> None:
    # RFC 1071 section 3: the sum of 0001 f203 f4f5 f6f7 is ddf2, so the checksum is 220d.
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


def test_checksum_of_odd_length_data_pads_with_a_zero_byte() -> None:
    assert checksum(b"\x01\x02\x03") == checksum(b"\x01\x02\x03\x00")


@settings(max_examples=200)
@given(
    data=st.binary(min_size=8, max_size=200).filter(lambda b: len(b) % 2 == 0),
    at=st.integers(0, 100),
    new=st.binary(min_size=6, max_size=6),
)
def test_incremental_update_equals_recomputing(data: bytes, at: int, new: bytes) -> None:
    at = (at % (len(data) - 5)) // 2 * 2
    changed = data[:at] + new + data[at + 6 :]
    # All-zero data is the one case eqn. 3 answers +0 for -0 (RFC 1624 section 3); packets
    # always hold non-zero addresses.
    assume(any(changed))
    fixed = adjust(checksum(data), data[at : at + 6], new)
    # 0x0000 and 0xFFFF are the same number in ones' complement: either is right.
    assert fixed == checksum(changed) or {fixed, checksum(changed)} == {0, 0xFFFF}
    assert checksum(changed + struct.pack("!H", fixed)) == 0


def test_an_ipv4_header_parses_back() -> None:
    head = ipv4_header(
        src=A, dst=B, protocol=UDP, payload_length=12, ttl=7, ident=99, flags_fragment=DF
    )
    ip = parse_ipv4(head + bytes(12))
    assert (ip.src, ip.dst, ip.protocol, ip.ttl, ip.ident) == (A, B, UDP, 7, 99)
    assert ip.dont_fragment and not ip.is_fragment and ip.total_length == 32
    assert checksum(head) == 0


@pytest.mark.parametrize(
    "packet",
    [
        b"",
        b"\x45" + bytes(10),
        b"\x60" + bytes(30),
        ipv4_header(src=A, dst=B, protocol=UDP, payload_length=50),
    ],
)
def test_truncated_or_wrong_version_packets_are_refused(packet: bytes) -> None:
    with pytest.raises(PacketError):
        parse_ipv4(packet)


@settings(max_examples=100)
@given(size=st.integers(1, 4000), mtu=st.integers(68, 1500), order=st.randoms())
def test_ipv4_fragments_fit_the_mtu_and_reassemble_in_any_order(
    size: int, mtu: int, order: object
) -> None:
    payload = bytes(range(256)) * (size // 256 + 1)
    packet = ipv4_header(src=A, dst=B, protocol=UDP, payload_length=size, ident=7) + payload[:size]
    fragments = fragment_ipv4(packet, mtu)
    assert all(len(f) <= mtu and checksum(f[:20]) == 0 for f in fragments)
    order.shuffle(fragments)  # type: ignore[attr-defined]
    r = Reassembler(timeout=30)
    done = [
        r.add(
            "k", parse_ipv4(f).fragment_offset, f[20:], more=parse_ipv4(f).more_fragments, now=0.0
        )
        for f in fragments
    ]
    whole = [d for d in done if d is not None]
    assert whole == [payload[:size]]


def test_a_dont_fragment_packet_is_not_fragmented() -> None:
    packet = ipv4_header(
        src=A, dst=B, protocol=UDP, payload_length=1000, flags_fragment=DF
    ) + bytes(1000)
    with pytest.raises(PacketError, match="DF"):
        fragment_ipv4(packet, 576)


@settings(max_examples=100)
@given(size=st.integers(1, 5000), mtu=st.integers(1280, 1500))
def test_ipv6_tunnel_fragments_fit_the_mtu_and_reassemble(size: int, mtu: int) -> None:
    payload = bytes(i & 255 for i in range(size))
    packets = fragment_ipv6(src=1, dst=2, next_header=IPIP, payload=payload, mtu=mtu, ident=5)
    assert all(len(p) <= mtu for p in packets)
    if len(packets) == 1:
        assert parse_ipv6(packets[0]).next_header == IPIP
        return
    r = Reassembler(timeout=60)
    out = []
    for p in reversed(packets):
        assert parse_ipv6(p).next_header == IPV6_FRAGMENT
        frag = parse_fragment(p[40:])
        assert frag.next_header == IPIP and frag.ident == 5
        out.append(r.add(frag.ident, frag.offset, frag.data, more=frag.more, now=0.0))
    assert out[-1] == payload and all(x is None for x in out[:-1])


def test_overlapping_fragments_drop_the_whole_packet() -> None:
    # RFC 5722: overlapping IPv6 fragments are an attack, not a packet.
    r = Reassembler(timeout=60)
    assert r.add("k", 0, bytes(16), more=True, now=0.0) is None
    assert r.add("k", 8, bytes(16), more=False, now=0.0) is None
    assert r.dropped == 1 and len(r) == 0


def test_an_incomplete_packet_is_forgotten_after_the_timeout() -> None:
    r = Reassembler(timeout=60)
    r.add("k", 0, bytes(8), more=True, now=0.0)
    r.expire(59.9)
    assert len(r) == 1
    r.expire(60.0)
    assert len(r) == 0 and r.dropped == 1


def test_pending_reassemblies_are_bounded() -> None:
    r = Reassembler(timeout=60, max_pending=2)
    for n in range(3):
        r.add(n, 0, bytes(8), more=True, now=0.0)
    assert len(r) == 2 and r.dropped == 1


def test_an_icmp_error_quotes_the_packet_and_carries_the_next_hop_mtu() -> None:
    offending = ipv4_header(
        src=B, dst=A, protocol=UDP, payload_length=1400, flags_fragment=DF
    ) + bytes(1400)
    error = icmpv4_error(kind=3, code=4, src=0xC0000001, offending=offending, mtu=1280)
    ip = parse_ipv4(error)
    assert (ip.src, ip.dst, ip.protocol) == (0xC0000001, B, ICMP)
    assert len(error) <= 576
    body = error[20:]
    assert checksum(body) == 0
    kind, code, _, unused, mtu = struct.unpack_from("!BBHHH", body)
    assert (kind, code, unused, mtu) == (3, 4, 0, 1280)
    assert body[8:28] == offending[:20]
