"""The AFTR and B4 as packet functions: translation, checksums, ICMP, MTU rules, hairpinning."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detnat.datapath.dslite.packets import (
    DF,
    ICMP,
    ICMPV6,
    IPIP,
    TCP,
    UDP,
    checksum,
    fragment_ipv4,
    ipv6_header,
    parse_ipv4,
    parse_ipv6,
    pseudo_header_sum,
    transport_checksum_ok,
)
from detnat.datapath.dslite.softwire import AFTR_IPV4, B4, Aftr, ipv4_packet
from detnat.engine import Mapper, Status, compile_plan
from detnat.engine.addresses import parse_address, parse_prefix
from detnat.planfile import plan_from_text
from tests.datapath.plans import DSLITE, MAP


def _v6(text: str) -> int:
    return parse_address(text)[1]


HOST, SERVER, PUBLIC = 0xC0A8010A, 0xCB007101, 0xC0000201
AFTR6, B4A, B4B = _v6("2001:db8:af::1"), _v6("2001:db8:b4::1"), _v6("2001:db8:b4::2")


def _mapper(text: str = DSLITE) -> Mapper:
    return compile_plan(plan_from_text(text))


def udp(src: int, dst: int, sport: int, dport: int, data: bytes = b"hello", **ip: int) -> bytes:
    length = 8 + len(data)
    seg = bytearray(struct.pack("!HHHH", sport, dport, length, 0) + data)
    struct.pack_into(
        "!H", seg, 6, checksum(seg, pseudo_header_sum(src, dst, UDP, length)) or 0xFFFF
    )
    return ipv4_packet(src=src, dst=dst, protocol=UDP, payload=bytes(seg), **ip)


def tcp(src: int, dst: int, sport: int, dport: int, flags: int, data: bytes = b"") -> bytes:
    seg = bytearray(
        struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0) + data
    )
    struct.pack_into("!H", seg, 16, checksum(seg, pseudo_header_sum(src, dst, TCP, len(seg))))
    return ipv4_packet(src=src, dst=dst, protocol=TCP, payload=bytes(seg))


def icmp(src: int, dst: int, kind: int, ident: int, rest: bytes = b"ping", **ip: int) -> bytes:
    body = bytearray(struct.pack("!BBHHH", kind, 0, 0, ident, 1) + rest)
    struct.pack_into("!H", body, 2, checksum(body))
    return ipv4_packet(src=src, dst=dst, protocol=ICMP, payload=bytes(body), **ip)


def ports(packet: bytes) -> tuple[int, int]:
    ip = parse_ipv4(packet)
    sport, dport = struct.unpack_from("!HH", packet, ip.header_length)
    return sport, dport


class Lab:
    """An AFTR and two B4s wired back to back, no kernel involved."""

    def __init__(self, plan: str = DSLITE, **aftr: int) -> None:
        self.mapper = _mapper(plan)
        self.aftr = Aftr(self.mapper, address=AFTR6, **aftr)
        self.b4 = {B4A: B4(address=B4A, aftr=AFTR6), B4B: B4(address=B4B, aftr=AFTR6)}

    def send(self, b4: int, packet: bytes, now: float = 0.0) -> list[bytes]:
        """A host behind ``b4`` sends ``packet``: what leaves the AFTR (either side)."""
        out: list[bytes] = []
        for tunnel in self.b4[b4].handle(packet, now):
            out += self.aftr.handle(tunnel, now)
        return out

    def deliver(self, tunnel_packets: list[bytes], now: float = 0.0) -> dict[int, list[bytes]]:
        """IPv6 from the AFTR, to whichever B4 it is addressed: what each B4 gives its hosts."""
        got: dict[int, list[bytes]] = {}
        for packet in tunnel_packets:
            b4 = parse_ipv6(packet).dst
            got.setdefault(b4, []).extend(self.b4[b4].handle(packet, now))
        return got


def test_udp_out_and_back_with_the_b4s_public_port_and_valid_checksums() -> None:
    lab = Lab()
    (out,) = lab.send(B4A, udp(HOST, SERVER, 40000, 53))
    ip = parse_ipv4(out)
    sport, dport = ports(out)
    assert (ip.src, ip.dst, dport, ip.ttl) == (PUBLIC, SERVER, 53, 63)
    assert lab.mapper.forward(parse_prefix("2001:db8:b4::1")).holds(sport)
    assert checksum(out[:20]) == 0 and transport_checksum_ok(out)

    back = lab.deliver(lab.aftr.handle(udp(SERVER, PUBLIC, 53, sport, b"answer"), 1.0))
    (home,) = back[B4A]
    assert (parse_ipv4(home).dst, ports(home)) == (HOST, (53, 40000))
    assert transport_checksum_ok(home) and home.endswith(b"answer")


def test_a_udp_datagram_without_checksum_stays_without() -> None:
    packet = bytearray(udp(HOST, SERVER, 40000, 53))
    struct.pack_into("!H", packet, 26, 0)
    (out,) = Lab().send(B4A, bytes(packet))
    assert struct.unpack_from("!H", out, 26)[0] == 0


def test_tcp_translation_keeps_the_checksum_valid_both_ways() -> None:
    lab = Lab()
    (syn,) = lab.send(B4A, tcp(HOST, SERVER, 50000, 80, 0x02))
    assert transport_checksum_ok(syn)
    sport, _ = ports(syn)
    (synack,) = lab.deliver(lab.aftr.handle(tcp(SERVER, PUBLIC, 80, sport, 0x12, b"x" * 99), 0.5))[
        B4A
    ]
    assert ports(synack) == (80, 50000) and transport_checksum_ok(synack)
    (binding,) = lab.aftr.table.bindings()
    assert binding.tcp.name == "ESTABLISHED"


def test_icmp_echo_identifiers_come_from_the_port_set() -> None:
    lab = Lab()
    (out,) = lab.send(B4A, icmp(HOST, SERVER, 8, 0x7001))
    ident = struct.unpack_from("!H", out, 24)[0]
    assert lab.mapper.forward(parse_prefix("2001:db8:b4::1")).holds(ident)
    assert checksum(out[20:]) == 0
    (reply,) = lab.deliver(lab.aftr.handle(icmp(SERVER, PUBLIC, 0, ident), 1.0))[B4A]
    assert struct.unpack_from("!H", reply, 24)[0] == 0x7001 and checksum(reply[20:]) == 0


def test_the_same_inner_address_behind_two_b4s_reverses_to_each_b4() -> None:
    lab = Lab()
    for b4, text in ((B4A, "2001:db8:b4::1"), (B4B, "2001:db8:b4::2")):
        (out,) = lab.send(b4, udp(HOST, SERVER, 40000, 53))
        answer = lab.mapper.reverse(parse_ipv4(out).src, ports(out)[0])
        assert answer.status is Status.MATCH and answer.allocation is not None
        assert answer.allocation.subscriber == parse_prefix(text)


def test_a_map_plan_gives_ports_of_the_b4s_psid() -> None:
    lab = Lab(MAP)
    ce = _v6("2001:db8:12:3400::1")
    lab.b4[ce] = B4(address=ce, aftr=AFTR6)
    (out,) = lab.send(ce, udp(HOST, SERVER, 40000, 53))
    assert parse_ipv4(out).src == 0xC0000212  # 192.0.2.18
    assert (ports(out)[0] >> 2) & 0xFF == 0x34  # PSID 0x34 (RFC 7599 appendix A)


def test_what_the_aftr_does_not_own_or_know_is_dropped_and_counted() -> None:
    lab = Lab()
    assert lab.aftr.handle(udp(SERVER, PUBLIC, 53, 2500), 0.0) == []
    assert lab.aftr.handle(udp(SERVER, 0xC0000299, 53, 2500), 0.0) == []
    stranger = B4(address=_v6("2001:db8:ffff::9"), aftr=AFTR6)
    (tunnel,) = stranger.handle(udp(HOST, SERVER, 1, 2), 0.0)
    assert lab.aftr.handle(tunnel, 0.0) == []
    not_ipip = ipv6_header(src=B4A, dst=AFTR6, next_header=UDP, payload_length=8) + bytes(8)
    assert lab.aftr.handle(not_ipip, 0.0) == []
    counters = lab.aftr.counters
    assert counters["dropped_no_binding"] == 1 and counters["dropped_not_ours"] == 1
    assert counters["dropped_not_a_subscriber"] == 1 and counters["dropped_not_ipip"] == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.sampled_from([0x45, 0x60, 0x00]))
def test_garbage_never_raises(data: bytes, first: int) -> None:
    lab = Lab()
    assert isinstance(lab.aftr.handle(bytes([first]) + data, 0.0), list)
    assert isinstance(lab.b4[B4A].handle(bytes([first]) + data, 0.0), list)


# -- MTU (RFC 6333 section 5.3) --------------------------------------------------------------------


def test_a_dont_fragment_packet_too_big_for_the_internet_side_gets_fragmentation_needed() -> None:
    lab = Lab(ipv4_mtu=1400)
    big = udp(HOST, SERVER, 40000, 53, bytes(1472), flags_fragment=DF)
    (error,) = lab.deliver(lab.send(B4A, big))[B4A]
    ip = parse_ipv4(error)
    assert (ip.src, ip.dst, ip.protocol) == (AFTR_IPV4, HOST, ICMP)
    kind, code, _, _, mtu = struct.unpack_from("!BBHHH", error, 20)
    assert (kind, code, mtu) == (3, 4, 1400) and checksum(error[20:]) == 0
    assert error[28 : 28 + 28] == big[:28]  # quoted as the host sent it
    assert len(lab.aftr.table) == 0


def test_a_packet_too_big_for_the_internet_side_without_df_is_fragmented() -> None:
    lab = Lab(ipv4_mtu=576)
    out = lab.send(B4A, udp(HOST, SERVER, 40000, 53, bytes(1400)))
    assert len(out) == 3 and all(len(f) <= 576 for f in out)
    assert {parse_ipv4(f).src for f in out} == {PUBLIC}


def test_fragments_from_a_host_are_reassembled_before_translation() -> None:
    lab = Lab()
    fragments = fragment_ipv4(udp(HOST, SERVER, 40000, 53, bytes(range(200)) * 4), 300)
    out = [p for f in reversed(fragments) for p in lab.send(B4A, f)]
    (whole,) = out
    assert parse_ipv4(whole).src == PUBLIC and transport_checksum_ok(whole)


def test_a_big_reply_crosses_the_softwire_in_ipv6_fragments_never_ipv4_ones() -> None:
    lab = Lab()
    (out,) = lab.send(B4A, udp(HOST, SERVER, 40000, 53))
    reply = udp(SERVER, PUBLIC, 53, ports(out)[0], bytes(1472), flags_fragment=DF)
    tunnel = lab.aftr.handle(reply, 1.0)
    assert len(tunnel) == 2 and all(len(p) <= 1500 for p in tunnel)
    (home,) = lab.deliver(tunnel)[B4A]
    assert len(home) == 1500 and transport_checksum_ok(home)
    assert not parse_ipv4(home).is_fragment


def _packet_too_big(mtu: int, about_b4: int, *, corrupt: bool = False) -> bytes:
    quoted = ipv6_header(src=AFTR6, dst=about_b4, next_header=IPIP, payload_length=1460)
    body = bytearray(struct.pack("!BBHI", 2, 0, 0, mtu) + quoted + bytes(100))
    router = _v6("2001:db8:a::99")
    sum_ = pseudo_header_sum(router, AFTR6, ICMPV6, len(body), v6=True)
    struct.pack_into("!H", body, 2, checksum(body, sum_) ^ (1 if corrupt else 0))
    return ipv6_header(src=router, dst=AFTR6, next_header=ICMPV6, payload_length=len(body)) + body


def test_packet_too_big_lowers_the_path_mtu_of_that_b4_only_and_never_below_1280() -> None:
    lab = Lab()
    (out,) = lab.send(B4A, udp(HOST, SERVER, 40000, 53))
    sport = ports(out)[0]
    assert lab.aftr.handle(_packet_too_big(1300, B4A, corrupt=True), 0.0) == []
    assert lab.aftr.path_mtu == {}
    lab.aftr.handle(_packet_too_big(1300, B4A), 0.0)
    assert lab.aftr.path_mtu == {B4A: 1300}
    tunnel = lab.aftr.handle(udp(SERVER, PUBLIC, 53, sport, bytes(1260)), 1.0)
    assert len(tunnel) == 2 and max(map(len, tunnel)) <= 1300
    lab.aftr.handle(_packet_too_big(600, B4A), 0.0)
    assert lab.aftr.path_mtu == {B4A: 1280}


# -- ICMP errors (RFC 5508), hairpinning (RFC 4787 REQ-9), TTL -------------------------------------


def test_an_icmp_error_from_the_internet_reaches_the_host_in_its_own_terms() -> None:
    lab = Lab()
    (out,) = lab.send(B4A, udp(HOST, SERVER, 40000, 53))
    body = bytearray(struct.pack("!BBHI", 3, 3, 0, 0) + out[:28])  # port unreachable, quoting
    struct.pack_into("!H", body, 2, checksum(body))
    error = ipv4_packet(src=SERVER, dst=PUBLIC, protocol=ICMP, payload=bytes(body))
    (home,) = lab.deliver(lab.aftr.handle(error, 1.0))[B4A]
    assert parse_ipv4(home).dst == HOST and checksum(home[20:]) == 0
    quoted = home[28:]
    assert parse_ipv4(quoted, quoted=True).src == HOST and checksum(quoted[:20]) == 0
    assert struct.unpack_from("!H", quoted, 20)[0] == 40000


def test_a_hosts_icmp_error_about_an_inbound_packet_leaves_in_public_terms() -> None:
    lab = Lab()
    (out,) = lab.send(B4A, udp(HOST, SERVER, 40000, 53))
    (inbound,) = lab.deliver(lab.aftr.handle(udp(SERVER, PUBLIC, 53, ports(out)[0]), 1.0))[B4A]
    body = bytearray(struct.pack("!BBHI", 3, 3, 0, 0) + inbound[:28])
    struct.pack_into("!H", body, 2, checksum(body))
    (error,) = lab.send(B4A, ipv4_packet(src=HOST, dst=SERVER, protocol=ICMP, payload=bytes(body)))
    assert parse_ipv4(error).src == PUBLIC and checksum(error[20:]) == 0
    quoted = parse_ipv4(error[28:], quoted=True)
    assert quoted.dst == PUBLIC and struct.unpack_from("!H", error, 28 + 22)[0] == ports(out)[0]


def test_a_host_reaching_another_b4s_public_port_is_hairpinned() -> None:
    lab = Lab()
    (out,) = lab.send(B4A, udp(HOST, SERVER, 40000, 53))
    a_port = ports(out)[0]
    tunnel = lab.send(B4B, udp(HOST, PUBLIC, 41000, a_port))
    (home,) = lab.deliver(tunnel)[B4A]
    src = parse_ipv4(home).src
    sport, dport = ports(home)
    assert (src, dport) == (PUBLIC, 40000) and transport_checksum_ok(home)
    assert lab.mapper.reverse(src, sport).allocation.subscriber == parse_prefix("2001:db8:b4::2")  # type: ignore[union-attr]


def test_a_packet_with_ttl_one_gets_time_exceeded_from_the_aftr() -> None:
    lab = Lab()
    (error,) = lab.deliver(lab.send(B4A, udp(HOST, SERVER, 40000, 53, ttl=1)))[B4A]
    assert parse_ipv4(error).src == AFTR_IPV4 and error[20] == 11


@pytest.mark.parametrize("mtu", [1280, 1500])
def test_the_b4_fragments_its_tunnel_packets_to_its_path_mtu(mtu: int) -> None:
    b4 = B4(address=B4A, aftr=AFTR6, ipv6_mtu=mtu)
    tunnel = b4.handle(udp(HOST, SERVER, 1, 2, bytes(1472)), 0.0)
    assert all(len(p) <= mtu for p in tunnel) and len(tunnel) == 2


def test_the_aftr_process_reports_bad_input_without_a_traceback(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.yaml")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "detnat.datapath.dslite",
            "aftr",
            "--plan",
            missing,
            "--tun",
            "x0",
            "--address",
            "2001:db8:af::1",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("detnat: error:") and "Traceback" not in done.stderr
