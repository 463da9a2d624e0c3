"""Addresses and prefixes as integers, parsed strictly and written in one canonical form.

Python's :mod:`ipaddress` is lenient where evidence must not be: it accepts IPv6 zone IDs
(``fe80::1%eth0``) and, through ``ip_network(strict=False)``, host bits. Everything that enters
detnat goes through :func:`parse_address` / :func:`parse_prefix`, which accept exactly one
spelling per family:

- IPv4: four decimal octets, no leading zeros, ASCII only (``192.0.2.1``);
- IPv6: RFC 4291 text without zone ID; written back in RFC 5952 form;
- a prefix: ``address/length`` with no host bits set; a bare address is a full-length prefix.

>>> str(parse_prefix("2001:DB8:0:0:1::/80"))
'2001:db8:0:0:1::/80'
>>> parse_address("192.0.2.1")
(4, 3221225985)
"""

from __future__ import annotations

import ipaddress
import socket
from typing import NamedTuple

from detnat.errors import InvalidInput

V4 = 4
V6 = 6
WIDTH = {V4: 32, V6: 128}

_DIGITS = frozenset("0123456789")
# The one spelling of each octet (ASCII digits, no leading zero): a text is a dotted quad exactly
# when it splits into four keys of this table, which is cheaper than a regular expression. The
# mappers' per-call paths read it too (a dotted quad parsed inline, without a call).
OCTET = {str(n): n for n in range(256)}
_LENGTH = {str(n): n for n in range(129)}  # prefix lengths likewise, checked against the family
_tuple = tuple.__new__  # builds a Prefix without its generated __new__ (a call less per query)
IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")


def parse_ipv4(text: str, *, field: str = "address") -> int:
    """Parse dotted-quad IPv4 text into an int; refuse every other spelling."""
    if isinstance(text, str):
        try:
            a, b, c, d = text.split(".")
            return (OCTET[a] << 24) | (OCTET[b] << 16) | (OCTET[c] << 8) | OCTET[d]
        except (ValueError, KeyError):
            pass
    # Not canonical: find the words for what is wrong.
    parts = text.split(".") if isinstance(text, str) else []
    if len(parts) != 4:
        raise InvalidInput(
            f"{text!r} is not an IPv4 address (want four decimal octets)", field=field
        )
    for part in parts:
        if not part or len(part) > 3 or not _DIGITS.issuperset(part):
            raise InvalidInput(f"{text!r} is not an IPv4 address (bad octet {part!r})", field=field)
        if len(part) > 1 and part[0] == "0":
            raise InvalidInput(f"{text!r}: octet {part!r} has a leading zero", field=field)
        if int(part) > 255:
            raise InvalidInput(f"{text!r}: octet {part} is larger than 255", field=field)
    raise AssertionError(f"{text!r} matches no rule")  # the table and these checks agree


def _parse_ipv6(text: str, field: str) -> int:
    if not IPV6_CHARS.issuperset(text):
        bad = next(c for c in text if c not in IPV6_CHARS)
        hint = " (zone IDs are not accepted)" if bad == "%" else ""
        raise InvalidInput(
            f"{text!r} is not an IPv6 address (character {bad!r}){hint}", field=field
        )
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    except OSError:
        pass  # let ipaddress have a look, and say what is wrong
    try:
        return int(ipaddress.IPv6Address(text))
    except ipaddress.AddressValueError as exc:
        raise InvalidInput(f"{text!r} is not an IPv6 address ({exc})", field=field) from None


def parse_address(text: str, *, field: str = "address") -> tuple[int, int]:
    """Parse an IPv4 or IPv6 address into ``(family, int)``."""
    if not isinstance(text, str):
        raise InvalidInput(
            f"expected an address as a string, got {type(text).__name__}", field=field
        )
    if not text:
        raise InvalidInput("empty address", field=field)
    if ":" in text:
        return V6, _parse_ipv6(text, field)
    return V4, parse_ipv4(text, field=field)


def format_ipv4(value: int) -> str:
    return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"


def format_address(family: int, value: int) -> str:
    """Canonical text: dotted quad, or RFC 5952 for IPv6 (IPv4-mapped ones as ``::ffff:a.b.c.d``,
    RFC 5952 section 5, whatever the Python version)."""
    if family == V4:
        return format_ipv4(value)
    if value >> 32 == 0xFFFF:
        return f"::ffff:{format_ipv4(value & 0xFFFFFFFF)}"
    return ipaddress.IPv6Address(value).compressed


class Prefix(NamedTuple):
    """An aligned prefix of one family: ``network`` is the first address as an int.

    >>> p = Prefix(4, 0xC0000200, 24)
    >>> str(p), p.first, p.last - p.first + 1
    ('192.0.2.0/24', 3221225984, 256)
    """

    family: int
    network: int
    length: int

    @property
    def width(self) -> int:
        return WIDTH[self.family]

    @property
    def first(self) -> int:
        return self.network

    @property
    def last(self) -> int:
        return self.network | ((1 << (self.width - self.length)) - 1)

    def contains(self, family: int, value: int) -> bool:
        return family == self.family and self.network <= value <= self.last

    def overlaps(self, other: Prefix) -> bool:
        return (
            self.family == other.family
            and self.network <= other.last
            and other.network <= self.last
        )

    def __str__(self) -> str:
        return f"{format_address(self.family, self.network)}/{self.length}"


# Subscriber keys that may be another line behind another NAT (realm): every IPv4 key (an inside
# IPv4 address sits behind a NAT by definition, and operators reuse RFC 1918, RFC 6598,
# 240.0.0.0/4, 198.18.0.0/15 and public blocks inside); of IPv6, unique local (RFC 4193),
# link-local, IPv4-mapped and the local-use NAT64 prefix (RFC 8215). A global IPv6 prefix (a
# delegated /56, a B4 address) is one line's wherever it is seen; documentation prefixes
# (2001:db8::/32) count as global: examples use them as if they were.
_REUSED_V6 = (
    Prefix(6, 0xFC00 << 112, 7),
    Prefix(6, 0xFE80 << 112, 10),
    Prefix(6, 0xFFFF << 32, 96),
    Prefix(6, 0x0064FF9B0001 << 80, 48),
)


def reused(key: Prefix) -> bool:
    """Whether a subscriber key may name another line behind another NAT (see above).

    >>> reused(Prefix(4, 0x64400000, 10)), reused(Prefix(6, 0x20010DB8 << 96, 56))
    (True, False)
    """
    return key.family == V4 or any(key.overlaps(r) for r in _REUSED_V6)


def parse_prefix(text: str, *, field: str = "prefix") -> Prefix:
    """Parse ``address/length`` (or a bare address, a full-length prefix); host bits refused."""
    if not isinstance(text, str):
        raise InvalidInput(f"expected a prefix as a string, got {type(text).__name__}", field=field)
    address, slash, length_text = text.partition("/")
    # parse_address's dispatch and the parsers' common cases inlined (a per-query path); a text
    # they do not take goes to the parser, which refuses it saying why (or takes it).
    if ":" in address:
        family = V6
        try:
            if not IPV6_CHARS.issuperset(address):
                raise ValueError
            network = int.from_bytes(socket.inet_pton(socket.AF_INET6, address), "big")
        except (OSError, ValueError):
            network = _parse_ipv6(address, field)
    elif address:
        family = V4
        try:
            a, b, c, d = address.split(".")
            network = (OCTET[a] << 24) | (OCTET[b] << 16) | (OCTET[c] << 8) | OCTET[d]
        except (ValueError, KeyError):
            network = parse_ipv4(address, field=field)
    else:
        family, network = parse_address(address, field=field)  # refuses it, saying why
    width = WIDTH[family]
    if not slash:
        return _tuple(Prefix, (family, network, width))
    length = _LENGTH.get(length_text, width + 1)
    if length <= width and not network & ((1 << (width - length)) - 1):
        return _tuple(Prefix, (family, network, length))  # the common case; errors are below
    if not length_text or not _DIGITS.issuperset(length_text) or len(length_text) > 3:
        raise InvalidInput(f"{text!r}: prefix length must be a decimal number", field=field)
    if len(length_text) > 1 and length_text[0] == "0":
        raise InvalidInput(f"{text!r}: prefix length has a leading zero", field=field)
    length = int(length_text)
    if length > width:
        raise InvalidInput(f"{text!r}: prefix length {length} is longer than {width}", field=field)
    host_bits = network & ((1 << (width - length)) - 1)
    if host_bits:
        aligned = Prefix(family, network & ~((1 << (width - length)) - 1), length)
        raise InvalidInput(f"{text!r} has host bits set (did you mean {aligned}?)", field=field)
    return Prefix(family, network, length)
