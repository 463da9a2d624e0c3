"""IPv4 and IPv6 packets as bytes: headers, Internet checksums, fragmentation, ICMP errors.

Pure functions over ``bytes``/``bytearray``; addresses are ints, as in the engine. Checksums follow
RFC 1071 (the ones' complement sum, byte-order independent, so it is summed in native 16-bit
words) and RFC 1624 (incremental update ``HC' = ~(~HC + ~m + m')``), so a packet damaged before it
reached us stays detectably damaged after we rewrite it.

>>> header = ipv4_header(src=0xC0000201, dst=0xCB007101, protocol=UDP, payload_length=8, ttl=64)
>>> checksum(header)  # a header with its checksum filled in sums to zero
0
"""

from __future__ import annotations

import struct
import sys
from array import array
from typing import NamedTuple

ICMP, IPIP, TCP, UDP = 1, 4, 6, 17
IPV6_FRAGMENT, ICMPV6, IPV6_NO_NEXT = 44, 58, 59
IPV4_HEADER, IPV6_HEADER, FRAGMENT_HEADER = 20, 40, 8
DF, MF = 0x4000, 0x2000

ICMP_ECHO_REPLY, ICMP_UNREACHABLE, ICMP_ECHO, ICMP_TIME_EXCEEDED, ICMP_PARAMETER = 0, 3, 8, 11, 12
ICMP_ERRORS = (ICMP_UNREACHABLE, ICMP_TIME_EXCEEDED, ICMP_PARAMETER)
UNREACHABLE_FRAGMENTATION_NEEDED = 4  # RFC 792 / RFC 1191: with the next-hop MTU
ICMPV6_PACKET_TOO_BIG = 2
IPV6_MIN_MTU = 1280  # RFC 8200 section 5
ICMP_ERROR_MAX = 576  # RFC 1812 section 4.3.2.3: an ICMP error carries as much as fits in 576

_LITTLE = sys.byteorder == "little"


class PacketError(ValueError):
    """A packet too short, of the wrong version, or otherwise not what its headers claim."""


# -- checksums -------------------------------------------------------------------------------------


def ones_sum(data: bytes | bytearray | memoryview) -> int:
    """The 16-bit ones' complement sum of ``data`` (padded with a zero byte when odd)."""
    raw = bytes(data)
    if len(raw) % 2:
        raw += b"\0"
    total = sum(array("H", raw))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    if _LITTLE:
        total = ((total & 0xFF) << 8) | (total >> 8)
    return total


def checksum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """The Internet checksum of ``data``; ``initial`` adds a pseudo-header sum."""
    total = ones_sum(data) + initial
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def adjust(csum: int, old: bytes, new: bytes) -> int:
    """RFC 1624 eqn. 3: the checksum once the covered bytes ``old`` became ``new`` (even length)."""
    total = (~csum & 0xFFFF) + (~ones_sum(old) & 0xFFFF) + ones_sum(new)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def pseudo_header_sum(src: int, dst: int, protocol: int, length: int, *, v6: bool = False) -> int:
    """The ones' complement sum of the TCP/UDP/ICMPv6 pseudo-header (RFC 793, RFC 8200 8.1)."""
    if v6:
        head = (
            src.to_bytes(16, "big")
            + dst.to_bytes(16, "big")
            + struct.pack("!IxxxB", length, protocol)
        )
    else:
        head = struct.pack("!IIxBH", src, dst, protocol, length)
    return ones_sum(head)


# -- IPv4 ------------------------------------------------------------------------------------------


class IPv4(NamedTuple):
    """The fields of an IPv4 header that translation needs."""

    header_length: int
    total_length: int
    ident: int
    flags_fragment: int
    ttl: int
    protocol: int
    src: int
    dst: int

    @property
    def dont_fragment(self) -> bool:
        return bool(self.flags_fragment & DF)

    @property
    def is_fragment(self) -> bool:
        return bool(self.flags_fragment & (MF | 0x1FFF))

    @property
    def fragment_offset(self) -> int:
        return (self.flags_fragment & 0x1FFF) * 8

    @property
    def more_fragments(self) -> bool:
        return bool(self.flags_fragment & MF)


def parse_ipv4(packet: bytes | bytearray | memoryview, *, quoted: bool = False) -> IPv4:
    """The header of an IPv4 packet; ``quoted``: the truncated copy inside an ICMP error."""
    if len(packet) < IPV4_HEADER or packet[0] >> 4 != 4:
        raise PacketError("not an IPv4 packet")
    header_length = (packet[0] & 0x0F) * 4
    total, ident, frag, ttl, protocol, _, src, dst = struct.unpack_from("!HHHBBHII", packet, 2)
    if header_length < IPV4_HEADER or total < header_length or header_length > len(packet):
        raise PacketError("IPv4 lengths do not fit the packet")
    if total > len(packet) and not quoted:
        raise PacketError("IPv4 total length exceeds the packet")
    return IPv4(header_length, total, ident, frag, ttl, protocol, src, dst)


def ipv4_header(
    *,
    src: int,
    dst: int,
    protocol: int,
    payload_length: int,
    ttl: int = 64,
    ident: int = 0,
    flags_fragment: int = 0,
    tos: int = 0,
) -> bytes:
    """A 20-byte IPv4 header with its checksum."""
    head = bytearray(
        struct.pack(
            "!BBHHHBBHII",
            0x45,
            tos,
            IPV4_HEADER + payload_length,
            ident,
            flags_fragment,
            ttl,
            protocol,
            0,
            src,
            dst,
        )
    )
    struct.pack_into("!H", head, 10, checksum(head))
    return bytes(head)


def refresh_ipv4_checksum(packet: bytearray, header_length: int) -> None:
    struct.pack_into("!H", packet, 10, 0)
    struct.pack_into("!H", packet, 10, checksum(memoryview(packet)[:header_length]))


def fragment_ipv4(packet: bytes, mtu: int) -> list[bytes]:
    """Split an IPv4 packet (DF clear) into fragments of at most ``mtu`` bytes (RFC 791)."""
    ip = parse_ipv4(packet)
    if ip.total_length <= mtu:
        return [bytes(packet[: ip.total_length])]
    if ip.dont_fragment:
        raise PacketError("DF is set: the packet must not be fragmented")
    head = bytes(packet[: ip.header_length])
    data = bytes(packet[ip.header_length : ip.total_length])
    step = (mtu - ip.header_length) // 8 * 8
    if step <= 0:
        raise PacketError(f"MTU {mtu} cannot carry any fragment")
    base = ip.fragment_offset
    out = []
    for start in range(0, len(data), step):
        chunk = data[start : start + step]
        last = start + step >= len(data)
        more = MF if (not last or ip.more_fragments) else 0
        frag = bytearray(head + chunk)
        struct.pack_into("!H", frag, 2, len(frag))
        struct.pack_into("!H", frag, 6, more | ((base + start) // 8))
        refresh_ipv4_checksum(frag, ip.header_length)
        out.append(bytes(frag))
    return out


# -- IPv6 ------------------------------------------------------------------------------------------


class IPv6(NamedTuple):
    payload_length: int
    next_header: int
    hop_limit: int
    src: int
    dst: int
    traffic_class: int


def parse_ipv6(packet: bytes | bytearray) -> IPv6:
    if len(packet) < IPV6_HEADER or packet[0] >> 4 != 6:
        raise PacketError("not an IPv6 packet")
    first, length, next_header, hop_limit = struct.unpack_from("!IHBB", packet, 0)
    if IPV6_HEADER + length > len(packet):
        raise PacketError("IPv6 payload length exceeds the packet")
    src = int.from_bytes(packet[8:24], "big")
    dst = int.from_bytes(packet[24:40], "big")
    return IPv6(length, next_header, hop_limit, src, dst, (first >> 20) & 0xFF)


def ipv6_header(
    *, src: int, dst: int, next_header: int, payload_length: int, hop_limit: int = 64, tc: int = 0
) -> bytes:
    return (
        struct.pack("!IHBB", (6 << 28) | (tc << 20), payload_length, next_header, hop_limit)
        + src.to_bytes(16, "big")
        + dst.to_bytes(16, "big")
    )


class Fragment(NamedTuple):
    """An IPv6 Fragment header (RFC 8200 section 4.5) and the bytes after it."""

    next_header: int
    offset: int  # in bytes
    more: bool
    ident: int
    data: bytes


def parse_fragment(payload: bytes) -> Fragment:
    if len(payload) < FRAGMENT_HEADER:
        raise PacketError("truncated IPv6 fragment header")
    next_header, _, offset_flags, ident = struct.unpack_from("!BBHI", payload, 0)
    return Fragment(
        next_header, offset_flags & 0xFFF8, bool(offset_flags & 1), ident, payload[FRAGMENT_HEADER:]
    )


def fragment_ipv6(
    *,
    src: int,
    dst: int,
    next_header: int,
    payload: bytes,
    mtu: int,
    ident: int,
    hop_limit: int = 64,
    tc: int = 0,
) -> list[bytes]:
    """``payload`` in IPv6 packets of at most ``mtu`` bytes, with Fragment headers if needed."""
    if IPV6_HEADER + len(payload) <= mtu:
        return [
            ipv6_header(
                src=src,
                dst=dst,
                next_header=next_header,
                payload_length=len(payload),
                hop_limit=hop_limit,
                tc=tc,
            )
            + payload
        ]
    step = (mtu - IPV6_HEADER - FRAGMENT_HEADER) // 8 * 8
    if step <= 0:
        raise PacketError(f"MTU {mtu} cannot carry any fragment")
    out = []
    for start in range(0, len(payload), step):
        chunk = payload[start : start + step]
        more = 1 if start + step < len(payload) else 0
        frag = struct.pack("!BBHI", next_header, 0, start | more, ident)
        out.append(
            ipv6_header(
                src=src,
                dst=dst,
                next_header=IPV6_FRAGMENT,
                payload_length=FRAGMENT_HEADER + len(chunk),
                hop_limit=hop_limit,
                tc=tc,
            )
            + frag
            + chunk
        )
    return out


# -- transport -------------------------------------------------------------------------------------


def l4_checksum_offset(protocol: int) -> int | None:
    return {TCP: 16, UDP: 6, ICMP: 2}.get(protocol)


def transport_checksum_ok(packet: bytes | bytearray) -> bool:
    """Whether the TCP/UDP/ICMP checksum of a whole (unfragmented) IPv4 packet is right."""
    ip = parse_ipv4(packet)
    body = memoryview(packet)[ip.header_length : ip.total_length]
    if ip.protocol == ICMP:
        return checksum(body) == 0
    if ip.protocol == UDP and struct.unpack_from("!H", body, 6)[0] == 0:
        return True  # no checksum (RFC 768)
    return checksum(body, pseudo_header_sum(ip.src, ip.dst, ip.protocol, len(body))) == 0


def icmpv4_error(
    *, kind: int, code: int, src: int, offending: bytes, mtu: int = 0, ttl: int = 64
) -> bytes:
    """An ICMPv4 error about ``offending`` (an IPv4 packet), sent from ``src`` to its source."""
    original = parse_ipv4(offending)
    quoted = bytes(offending[: min(original.total_length, ICMP_ERROR_MAX - 28)])
    rest = (
        mtu & 0xFFFF if kind == ICMP_UNREACHABLE and code == UNREACHABLE_FRAGMENTATION_NEEDED else 0
    )
    body = bytearray(struct.pack("!BBHI", kind, code, 0, rest) + quoted)
    struct.pack_into("!H", body, 2, checksum(body))
    return (
        ipv4_header(src=src, dst=original.src, protocol=ICMP, payload_length=len(body), ttl=ttl)
        + body
    )


def is_icmp_error_about_icmp_error(packet: bytes | bytearray, ip: IPv4) -> bool:
    """RFC 1122 3.2.2: never answer an ICMP error (or a non-first fragment) with an ICMP error."""
    if ip.fragment_offset:
        return True
    if ip.protocol != ICMP or ip.total_length < ip.header_length + 1:
        return False
    return packet[ip.header_length] in ICMP_ERRORS
