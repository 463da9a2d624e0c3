"""The table-driven fast paths of the address parsers refuse exactly what the strict rules refuse.

``parse_ipv4`` and ``parse_prefix`` answer the common spelling from lookup tables; the references
here are the rules written plainly (a regular expression for the dotted quad, the digit checks of
a prefix length). Both must agree on every text, valid or not.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detnat.engine.addresses import WIDTH, Prefix, parse_address, parse_ipv4, parse_prefix
from detnat.errors import InvalidInput

_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
REFERENCE_IPV4 = re.compile(r"\.".join([_OCTET] * 4))
REFERENCE_LENGTH = re.compile(r"0|[1-9][0-9]{0,2}")


def reference_ipv4(text: str) -> int | None:
    match = REFERENCE_IPV4.fullmatch(text)
    if match is None:
        return None
    a, b, c, d = (int(part) for part in match.groups())
    return (a << 24) | (b << 16) | (c << 8) | d


def reference_prefix(text: str) -> Prefix | None:
    address, slash, length_text = text.partition("/")
    try:
        family, network = parse_address(address)
    except InvalidInput:
        return None
    width = WIDTH[family]
    if not slash:
        return Prefix(family, network, width)
    if REFERENCE_LENGTH.fullmatch(length_text) is None or int(length_text) > width:
        return None
    length = int(length_text)
    if network & ((1 << (width - length)) - 1):
        return None
    return Prefix(family, network, length)


octets = st.one_of(
    st.integers(0, 255).map(str),
    st.integers(0, 999).map(str),
    st.sampled_from(
        ["", "00", "01", "007", "256", "-1", "+1", " 1", "1 ", "٣", "１", "0x1", "1e2"]
    ),
    st.text(alphabet="0123456789.:/ ab", max_size=4),
)
quads = st.lists(octets, min_size=1, max_size=6).map(".".join)
texts = st.one_of(quads, st.text(max_size=20), st.text(alphabet="0123456789.", max_size=16))


def parsed(parse: object, text: str) -> object:
    assert callable(parse)
    try:
        return parse(text)
    except InvalidInput:
        return None


@settings(max_examples=3000, deadline=None)
@given(texts)
def test_parse_ipv4_agrees_with_the_plain_rule(text: str) -> None:
    assert parsed(parse_ipv4, text) == reference_ipv4(text)


lengths = st.one_of(
    st.integers(0, 140).map(str),
    st.sampled_from(["", "00", "01", "032", "+8", " 8", "٣", "1000", "-0"]),
    st.text(alphabet="0123456789", max_size=4),
)
addresses = st.one_of(
    st.integers(0, 2**32 - 1).map(
        lambda v: f"{v >> 24}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}"
    ),
    st.sampled_from(["2001:db8::", "2001:db8:12:3400::", "::", "fe80::1", "::ffff:192.0.2.1"]),
    quads,
)


@settings(max_examples=3000, deadline=None)
@given(addresses, st.sampled_from(["/", ""]), lengths)
def test_parse_prefix_agrees_with_the_plain_rule(address: str, slash: str, length: str) -> None:
    text = f"{address}{slash}{length}" if slash else address
    assert parsed(parse_prefix, text) == reference_prefix(text)


@pytest.mark.parametrize("text", ["1.2.3.4", "0.0.0.0", "255.255.255.255"])
def test_parse_ipv4_of_canonical_quads(text: str) -> None:
    assert parse_ipv4(text) == reference_ipv4(text)
