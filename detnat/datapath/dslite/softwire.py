"""The DS-Lite AFTR and B4 (RFC 6333) as packet functions: packets in, packets out, no I/O.

:class:`Aftr` terminates IPv4-in-IPv6 softwires (next header 4) from B4s and translates:

- **outbound** (IPv6 from a B4 -> IPv4 to the Internet): reassemble the tunnel packet if the B4
  fragmented it, decapsulate, reassemble IPv4 fragments, find or make the binding of (B4, inner
  source, port or ICMP identifier, protocol), rewrite the source to the B4's public address and a
  port of its deterministic set, fix the checksums (incrementally), decrement TTL;
- **inbound** (IPv4 to a public address -> IPv6 to the B4): find the binding by (protocol, public
  address, port), rewrite the destination back, encapsulate towards *that* B4.

ICMP errors in both directions have their quoted packet translated too (RFC 5508), so path MTU
discovery and traceroute work through the AFTR. MTU (RFC 6333 section 5.3, RFC 2473): the
encapsulated IPv4 packet is never fragmented; the tunnel packet is fragmented (IPv6 Fragment
header) when it exceeds the path MTU towards that B4, which an ICMPv6 Packet Too Big lowers
(never below 1280); the tunnel exit reassembles. A decapsulated packet larger than the IPv4 MTU is
answered with ICMP "fragmentation needed" (DF set, RFC 1191) from 192.0.0.1, the AFTR's
well-known address (RFC 6333 section 5.7), or fragmented (DF clear).

:class:`B4` is the other end for tests and labs: it encapsulates whatever its hosts send to the
AFTR and decapsulates what comes back; it does no NAT (DS-Lite's B4 does not).

One module at this size: the user-space AFTR and B4 softwire, one datapath.
"""

from __future__ import annotations

import struct
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from detnat.datapath.dslite.nat import BindingTable, NoBinding, Timeouts
from detnat.datapath.dslite.packets import (
    ICMP,
    ICMP_ECHO,
    ICMP_ECHO_REPLY,
    ICMP_ERRORS,
    ICMP_TIME_EXCEEDED,
    ICMP_UNREACHABLE,
    ICMPV6,
    ICMPV6_PACKET_TOO_BIG,
    IPIP,
    IPV6_FRAGMENT,
    IPV6_HEADER,
    IPV6_MIN_MTU,
    TCP,
    UDP,
    UNREACHABLE_FRAGMENTATION_NEEDED,
    IPv4,
    PacketError,
    adjust,
    checksum,
    fragment_ipv4,
    fragment_ipv6,
    icmpv4_error,
    ipv4_header,
    is_icmp_error_about_icmp_error,
    parse_fragment,
    parse_ipv4,
    parse_ipv6,
    pseudo_header_sum,
    refresh_ipv4_checksum,
)
from detnat.datapath.dslite.reassembly import Reassembler
from detnat.engine import Mapper

AFTR_IPV4 = 0xC0000001  # 192.0.0.1, RFC 6333 section 5.7
IPV4_REASSEMBLY_TIMEOUT = 30.0  # seconds (RFC 791 suggests 15 s as a lower bound)
IPV6_REASSEMBLY_TIMEOUT = 60.0  # RFC 8200 section 4.5
HOP_LIMIT = 64


def _owned_addresses(mapper: Mapper) -> Callable[[int], bool]:
    """Whether an IPv4 address is one of the plan's public addresses (pool or static)."""
    ranges = mapper.plan.public_ranges()
    firsts = [first for first, _ in ranges]

    def owned(ip: int) -> bool:
        at = bisect_right(firsts, ip) - 1
        return at >= 0 and ip <= ranges[at][1]

    return owned


def _ports_offset(ip: IPv4, packet: bytes | bytearray) -> tuple[int, int] | None:
    """(source port or echo identifier, destination port or identifier) of a whole packet."""
    at = ip.header_length
    if ip.protocol in (TCP, UDP) and ip.total_length >= at + 8:
        sport, dport = struct.unpack_from("!HH", packet, at)
        return sport, dport
    if ip.protocol == ICMP and ip.total_length >= at + 8:
        ident = struct.unpack_from("!H", packet, at + 4)[0]
        return ident, ident
    return None


def _rewrite(
    packet: bytearray,
    ip: IPv4,
    *,
    src: int | None = None,
    sport: int | None = None,
    dst: int | None = None,
    dport: int | None = None,
    ttl_decrement: int = 1,
) -> None:
    """Rewrite addresses and ports of a whole IPv4 packet in place, checksums adjusted."""
    at = ip.header_length
    old_src, old_dst = packet[12:16], packet[16:20]
    if src is not None:
        packet[12:16] = src.to_bytes(4, "big")
    if dst is not None:
        packet[16:20] = dst.to_bytes(4, "big")
    packet[8] = ip.ttl - ttl_decrement
    refresh_ipv4_checksum(packet, at)
    if ip.protocol in (TCP, UDP):
        where = at + (16 if ip.protocol == TCP else 6)
        old = bytes(old_src + old_dst + packet[at : at + 4])
        if sport is not None:
            struct.pack_into("!H", packet, at, sport)
        if dport is not None:
            struct.pack_into("!H", packet, at + 2, dport)
        new = bytes(packet[12:20] + packet[at : at + 4])
        csum = struct.unpack_from("!H", packet, where)[0]
        if ip.protocol == UDP and csum == 0:
            return  # no checksum: leave it so (RFC 768)
        csum = adjust(csum, old, new)
        if ip.protocol == UDP and csum == 0:
            csum = 0xFFFF
        struct.pack_into("!H", packet, where, csum)
    elif ip.protocol == ICMP and (sport is not None or dport is not None):
        ident = sport if sport is not None else dport
        assert ident is not None
        old = bytes(packet[at + 4 : at + 6])
        struct.pack_into("!H", packet, at + 4, ident)
        csum = struct.unpack_from("!H", packet, at + 2)[0]
        struct.pack_into("!H", packet, at + 2, adjust(csum, old, bytes(packet[at + 4 : at + 6])))


@dataclass(frozen=True)
class _Quoted:
    """The packet quoted inside an ICMP error: where it starts, its header, its ports."""

    start: int
    ip: IPv4
    sport: int
    dport: int


def _quoted(packet: bytes | bytearray, ip: IPv4) -> _Quoted | None:
    start = ip.header_length + 8
    try:
        inner = parse_ipv4(memoryview(packet)[start : ip.total_length], quoted=True)
    except PacketError:
        return None
    at = start + inner.header_length
    if inner.protocol in (TCP, UDP) and ip.total_length >= at + 4:
        sport, dport = struct.unpack_from("!HH", packet, at)
    elif inner.protocol == ICMP and ip.total_length >= at + 6:
        sport = dport = struct.unpack_from("!H", packet, at + 4)[0]
    else:
        return None
    return _Quoted(start, inner, sport, dport)


def _rewrite_quoted(
    packet: bytearray,
    q: _Quoted,
    *,
    src: int | None = None,
    sport: int | None = None,
    dst: int | None = None,
    dport: int | None = None,
) -> None:
    """Rewrite the quoted packet of an ICMP error; its transport checksum only if it is there."""
    at = q.start
    inner_at = at + q.ip.header_length
    old = bytes(packet[at + 12 : at + 20] + packet[inner_at : inner_at + 4])
    if src is not None:
        packet[at + 12 : at + 16] = src.to_bytes(4, "big")
    if dst is not None:
        packet[at + 16 : at + 20] = dst.to_bytes(4, "big")
    if q.ip.protocol in (TCP, UDP):
        if sport is not None:
            struct.pack_into("!H", packet, inner_at, sport)
        if dport is not None:
            struct.pack_into("!H", packet, inner_at + 2, dport)
        new = bytes(packet[at + 12 : at + 20] + packet[inner_at : inner_at + 4])
        where = inner_at + (16 if q.ip.protocol == TCP else 6)
        if where + 2 <= len(packet):
            csum = struct.unpack_from("!H", packet, where)[0]
            if not (q.ip.protocol == UDP and csum == 0):
                struct.pack_into("!H", packet, where, adjust(csum, old, new) or 0xFFFF)
    else:
        ident = sport if sport is not None else dport
        if ident is not None:
            old_id = bytes(packet[inner_at + 4 : inner_at + 6])
            struct.pack_into("!H", packet, inner_at + 4, ident)
            if inner_at + 4 <= len(packet):
                csum = struct.unpack_from("!H", packet, inner_at + 2)[0]
                new_id = bytes(packet[inner_at + 4 : inner_at + 6])
                struct.pack_into("!H", packet, inner_at + 2, adjust(csum, old_id, new_id))
    # The quoted IPv4 header checksum, then the ICMP checksum over the whole message.
    struct.pack_into("!H", packet, at + 10, 0)
    struct.pack_into("!H", packet, at + 10, checksum(packet[at : at + q.ip.header_length]))


def _refresh_icmp_checksum(packet: bytearray, ip: IPv4) -> None:
    at = ip.header_length
    struct.pack_into("!H", packet, at + 2, 0)
    struct.pack_into("!H", packet, at + 2, checksum(packet[at : ip.total_length]))


class Aftr:
    """The AFTR: ``handle(packet, now)`` takes one packet from the TUN, returns what to send.

    ``address`` is the AFTR's softwire endpoint (IPv6, as an int); ``ipv6_mtu`` the MTU of the path
    towards B4s until a Packet Too Big says otherwise; ``ipv4_mtu`` that of the Internet side.
    """

    def __init__(
        self,
        mapper: Mapper,
        *,
        address: int,
        ipv4_mtu: int = 1500,
        ipv6_mtu: int = 1500,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.table = BindingTable(mapper, timeouts)
        self.address = address
        self.ipv4_mtu = ipv4_mtu
        self.ipv6_mtu = max(ipv6_mtu, IPV6_MIN_MTU)
        self.path_mtu: dict[int, int] = {}  # B4 address -> learned from Packet Too Big
        self.counters: Counter[str] = Counter()
        self._owned = _owned_addresses(mapper)
        self._tunnel = Reassembler(timeout=IPV6_REASSEMBLY_TIMEOUT)
        self._fragments = Reassembler(timeout=IPV4_REASSEMBLY_TIMEOUT)
        self._ident = 0x5EED

    # -- dispatch -------------------------------------------------------------------------------

    def handle(self, packet: bytes, now: float) -> list[bytes]:
        try:
            version = packet[0] >> 4 if packet else 0
            if version == 6:
                return self.from_b4(packet, now)
            if version == 4:
                return self.from_internet(packet, now)
            self.counters["dropped_not_ip"] += 1
        except PacketError:
            self.counters["dropped_malformed"] += 1
        return []

    def expire(self, now: float) -> int:
        self._tunnel.expire(now)
        self._fragments.expire(now)
        return self.table.expire(now)

    # -- B4 -> Internet -------------------------------------------------------------------------

    def from_b4(self, packet: bytes, now: float) -> list[bytes]:
        ip6 = parse_ipv6(packet)
        if ip6.dst != self.address:
            self.counters["dropped_not_for_aftr"] += 1
            return []
        next_header = ip6.next_header
        payload = bytes(packet[IPV6_HEADER : IPV6_HEADER + ip6.payload_length])
        if next_header == IPV6_FRAGMENT:
            frag = parse_fragment(payload)
            whole = self._tunnel.add(
                (ip6.src, ip6.dst, frag.ident), frag.offset, frag.data, more=frag.more, now=now
            )
            if whole is None:
                return []
            self.counters["reassembled_from_b4"] += 1
            next_header, payload = frag.next_header, whole
        if next_header == ICMPV6:
            self._icmpv6(ip6.src, payload)
            return []
        if next_header != IPIP:
            self.counters["dropped_not_ipip"] += 1
            return []
        self.counters["from_b4"] += 1
        return self._outbound(ip6.src, payload, now)

    def _icmpv6(self, src: int, payload: bytes) -> None:
        """Packet Too Big about a tunnel packet we sent: remember the smaller path MTU."""
        if len(payload) < 8 + IPV6_HEADER or payload[0] != ICMPV6_PACKET_TOO_BIG:
            self.counters["ignored_icmpv6"] += 1
            return
        if checksum(payload, pseudo_header_sum(src, self.address, ICMPV6, len(payload), v6=True)):
            self.counters["dropped_bad_checksum"] += 1
            return
        mtu = struct.unpack_from("!I", payload, 4)[0]
        # The quoted tunnel packet is truncated: read its addresses, not its lengths.
        quoted_src = int.from_bytes(payload[16:32], "big")
        quoted_dst = int.from_bytes(payload[32:48], "big")
        if payload[8] >> 4 != 6 or quoted_src != self.address:
            self.counters["ignored_icmpv6"] += 1
            return
        self.path_mtu[quoted_dst] = max(IPV6_MIN_MTU, min(mtu, self.ipv6_mtu))
        self.counters["packet_too_big"] += 1

    def _whole(self, key: object, packet: bytes, ip: IPv4, now: float) -> bytearray | None:
        """The packet itself, or (for a fragment) the reassembled packet once complete."""
        if not ip.is_fragment:
            return bytearray(packet[: ip.total_length])
        data = bytes(packet[ip.header_length : ip.total_length])
        whole = self._fragments.add(
            (key, ip.src, ip.dst, ip.ident, ip.protocol),
            ip.fragment_offset,
            data,
            more=ip.more_fragments,
            now=now,
        )
        if whole is None:
            return None
        head = bytearray(packet[: ip.header_length])
        struct.pack_into("!HH", head, 2, ip.header_length + len(whole), 0)
        refresh_ipv4_checksum(head, ip.header_length)
        return head + whole

    def _outbound(self, b4: int, inner: bytes, now: float) -> list[bytes]:
        ip = parse_ipv4(inner)
        packet = self._whole(("out", b4), inner, ip, now)
        if packet is None:
            return []
        ip = parse_ipv4(packet)
        if ip.ttl <= 1:
            return self._error_to_b4(b4, ICMP_TIME_EXCEEDED, 0, packet, ip, now)
        if ip.protocol == ICMP and packet[ip.header_length] in ICMP_ERRORS:
            return self._outbound_icmp_error(b4, packet, ip, now)
        ports = _ports_offset(ip, packet)
        if ports is None or (ip.protocol == ICMP and packet[ip.header_length] != ICMP_ECHO):
            self.counters["dropped_protocol"] += 1
            return []
        leaving = not self._owned(ip.dst)
        if leaving and ip.total_length > self.ipv4_mtu and ip.dont_fragment:
            # RFC 1191: quote the packet as the host sent it, so its stack recognises it.
            self.counters["fragmentation_needed"] += 1
            return self._error_to_b4(
                b4,
                ICMP_UNREACHABLE,
                UNREACHABLE_FRAGMENTATION_NEEDED,
                packet,
                ip,
                now,
                mtu=self.ipv4_mtu,
            )
        flags = packet[ip.header_length + 13] if ip.protocol == TCP else 0
        try:
            binding = self.table.outbound(
                b4, ip.src, ports[0], ip.protocol, now=now, tcp_flags=flags
            )
        except NoBinding as exc:
            self.counters[f"dropped_{exc.reason}"] += 1
            return []
        _rewrite(packet, ip, src=binding.public_ip, sport=binding.public_port)
        return self._to_internet(bytes(packet), now)

    def _outbound_icmp_error(self, b4: int, packet: bytearray, ip: IPv4, now: float) -> list[bytes]:
        """A host's ICMP error about an inbound packet: quote and source back to public terms."""
        q = _quoted(packet, ip)
        binding = None
        if q is not None:
            binding = self.table.existing(b4, q.ip.dst, q.dport, q.ip.protocol, now=now)
        if q is None or binding is None:
            self.counters["dropped_icmp_error_unbound"] += 1
            return []
        _rewrite_quoted(packet, q, dst=binding.public_ip, dport=binding.public_port)
        _rewrite(packet, ip, src=binding.public_ip)
        _refresh_icmp_checksum(packet, ip)
        return self._to_internet(bytes(packet), now)

    def _to_internet(self, packet: bytes, now: float) -> list[bytes]:
        ip = parse_ipv4(packet)
        if self._owned(ip.dst):  # hairpinning (RFC 4787 REQ-9): back in through the NAT
            self.counters["hairpinned"] += 1
            return self.from_internet(packet, now)
        self.counters["to_internet"] += 1
        if ip.total_length <= self.ipv4_mtu:
            return [packet]
        return fragment_ipv4(packet, self.ipv4_mtu)  # DF is clear: checked before translating

    # -- Internet -> B4 -------------------------------------------------------------------------

    def from_internet(self, packet: bytes, now: float) -> list[bytes]:
        ip = parse_ipv4(packet)
        if not self._owned(ip.dst):
            self.counters["dropped_not_ours"] += 1
            return []
        whole = self._whole("in", packet, ip, now)
        if whole is None:
            return []
        ip = parse_ipv4(whole)
        if ip.protocol == ICMP and whole[ip.header_length] in ICMP_ERRORS:
            return self._inbound_icmp_error(whole, ip, now)
        ports = _ports_offset(ip, whole)
        if ports is None or (ip.protocol == ICMP and whole[ip.header_length] != ICMP_ECHO_REPLY):
            self.counters["dropped_protocol"] += 1
            return []
        flags = whole[ip.header_length + 13] if ip.protocol == TCP else 0
        binding = self.table.inbound(ip.protocol, ip.dst, ports[1], now=now, tcp_flags=flags)
        if binding is None:
            self.counters["dropped_no_binding"] += 1
            return []
        if ip.ttl <= 1:
            error = self._error(ICMP_TIME_EXCEEDED, 0, ip.dst, whole, ip)
            return [error] if error is not None else []
        _rewrite(whole, ip, dst=binding.inner_ip, dport=binding.inner_port)
        self.counters["to_b4"] += 1
        return self._to_b4(binding.b4, bytes(whole), now)

    def _inbound_icmp_error(self, packet: bytearray, ip: IPv4, now: float) -> list[bytes]:
        """An ICMP error about a packet we sent out: back to the host, in its own terms."""
        q = _quoted(packet, ip)
        binding = None
        if q is not None and q.ip.src == ip.dst:
            binding = self.table.inbound(q.ip.protocol, q.ip.src, q.sport, now=now)
        if q is None or binding is None:
            self.counters["dropped_icmp_error_unbound"] += 1
            return []
        _rewrite_quoted(packet, q, src=binding.inner_ip, sport=binding.inner_port)
        _rewrite(packet, ip, dst=binding.inner_ip)
        _refresh_icmp_checksum(packet, ip)
        self.counters["to_b4"] += 1
        return self._to_b4(binding.b4, bytes(packet), now)

    # -- helpers ----------------------------------------------------------------------------------

    def _to_b4(self, b4: int, packet: bytes, now: float) -> list[bytes]:
        """Encapsulate towards ``b4``; the tunnel packet is fragmented if the path needs it."""
        self._ident = (self._ident + 1) & 0xFFFFFFFF
        out = fragment_ipv6(
            src=self.address,
            dst=b4,
            next_header=IPIP,
            payload=packet,
            mtu=self.path_mtu.get(b4, self.ipv6_mtu),
            ident=self._ident,
            hop_limit=HOP_LIMIT,
            tc=packet[1],
        )
        if len(out) > 1:
            self.counters["fragmented_to_b4"] += 1
        return out

    def _error(
        self, kind: int, code: int, src: int, packet: bytes | bytearray, ip: IPv4, *, mtu: int = 0
    ) -> bytes | None:
        """An ICMPv4 error about ``packet`` from ``src``, unless that would answer an error."""
        if is_icmp_error_about_icmp_error(packet, ip):
            self.counters["no_error_about_error"] += 1
            return None
        return icmpv4_error(kind=kind, code=code, src=src, offending=bytes(packet), mtu=mtu)

    def _error_to_b4(
        self,
        b4: int,
        kind: int,
        code: int,
        packet: bytes | bytearray,
        ip: IPv4,
        now: float,
        *,
        mtu: int = 0,
    ) -> list[bytes]:
        """An ICMPv4 error from the AFTR (192.0.0.1) to a host behind ``b4``."""
        error = self._error(kind, code, AFTR_IPV4, packet, ip, mtu=mtu)
        return self._to_b4(b4, error, now) if error is not None else []


class B4:
    """The B4: IPv4 from its hosts into the softwire to the AFTR, and back out of it."""

    def __init__(self, *, address: int, aftr: int, ipv6_mtu: int = 1500) -> None:
        self.address = address
        self.aftr = aftr
        self.path_mtu = max(ipv6_mtu, IPV6_MIN_MTU)
        self.counters: Counter[str] = Counter()
        self._tunnel = Reassembler(timeout=IPV6_REASSEMBLY_TIMEOUT)
        self._ident = 0xB4

    def handle(self, packet: bytes, now: float) -> list[bytes]:
        try:
            version = packet[0] >> 4 if packet else 0
            if version == 4:
                ip = parse_ipv4(packet)
                self._ident = (self._ident + 1) & 0xFFFFFFFF
                self.counters["to_aftr"] += 1
                return fragment_ipv6(
                    src=self.address,
                    dst=self.aftr,
                    next_header=IPIP,
                    payload=bytes(packet[: ip.total_length]),
                    mtu=self.path_mtu,
                    ident=self._ident,
                    hop_limit=HOP_LIMIT,
                    tc=packet[1],
                )
            if version == 6:
                return self._from_aftr(packet, now)
            self.counters["dropped_not_ip"] += 1
        except PacketError:
            self.counters["dropped_malformed"] += 1
        return []

    def _from_aftr(self, packet: bytes, now: float) -> list[bytes]:
        ip6 = parse_ipv6(packet)
        if ip6.dst != self.address:
            self.counters["dropped_not_for_b4"] += 1
            return []
        next_header = ip6.next_header
        payload = bytes(packet[IPV6_HEADER : IPV6_HEADER + ip6.payload_length])
        if next_header == IPV6_FRAGMENT:
            frag = parse_fragment(payload)
            whole = self._tunnel.add(
                (ip6.src, frag.ident), frag.offset, frag.data, more=frag.more, now=now
            )
            if whole is None:
                return []
            next_header, payload = frag.next_header, whole
        if next_header == ICMPV6 and len(payload) >= 8 and payload[0] == ICMPV6_PACKET_TOO_BIG:
            mtu = struct.unpack_from("!I", payload, 4)[0]
            self.path_mtu = max(IPV6_MIN_MTU, min(mtu, self.path_mtu))
            return []
        if next_header != IPIP or ip6.src != self.aftr:
            self.counters["dropped_not_from_aftr"] += 1
            return []
        self.counters["from_aftr"] += 1
        return [payload]


def ipv4_packet(*, src: int, dst: int, protocol: int, payload: bytes, **fields: int) -> bytes:
    """A whole IPv4 packet with a valid header (for tests and the benchmark)."""
    return (
        ipv4_header(src=src, dst=dst, protocol=protocol, payload_length=len(payload), **fields)
        + payload
    )
