"""What an ingest stores, pinned: for a varied input of every format (refused and duplicate
records, IPv4 and IPv6 keys, open rows, a realm or none, odd bytes), the parse's counts and
refused records, the COPY lines and the rows' SHA-256 (the audit entry's ``rows_sha256``) are
byte for byte what they were before the client's parse and row building were made faster
(issue 14). The pinned values were computed by the code before that change; a change here is a
change of what detnat stores and audits, and must be one on purpose."""

from __future__ import annotations

import hashlib
import re
import socket
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detnat.directory import parse, radius
from detnat.directory.model import network_text
from detnat.service import directory
from tests.directory.samples import DETAIL, KEA_2, KEA_3, KEA_LEGAL_DOC, KEA_OLD


def _radius(
    when: str, status: str, sid: str, *attrs: str, nas: str = "NAS-IP-Address = 192.0.2.10"
) -> str:
    lines = [when, f"\tAcct-Status-Type = {status}", f"\t{nas}"]
    if sid:
        lines.append(f'\tAcct-Session-Id = "{sid}"')
    return "\n".join(lines + [f"\t{a}" for a in attrs]) + "\n\n"


_P = "Delegated-IPv6-Prefix = 2001:db8:1:100::/56"
_USER = 'User-Name = "bob@isp.example"'

RADIUS = [
    ("detail-20260630", DETAIL),
    (
        "detail-mixed",
        # epoch, printed and no Event-Timestamp; IPv4 and IPv6 keys; a retransmission; a second
        # Start; a takeover; a Stop without its Start (with and without Acct-Session-Time); an
        # Interim-Update whose Start was lost; a NAS reboot; records refused for many reasons
        _radius("Thu Jan  1 10:00:30 2026", "Start", "s1", _USER, _P, "Acct-Delay-Time = 30")
        + _radius("Thu Jan  1 10:00:30 2026", "Start", "s1", _USER, _P, "Acct-Delay-Time = 30")
        + _radius(
            "Thu Jan  1 10:05:00 2026",
            "Start",
            "s1",
            _USER,
            _P,
            "Event-Timestamp = 1767261900",
        )
        + _radius(
            "Thu Jan  1 11:00:00 2026",
            "Start",
            "s2",
            'User-Name = "carol"',
            _P,
            "Framed-IP-Address = 100.64.0.7",
            "Framed-IPv6-Prefix = 2001:db8:2::/64",
            'Event-Timestamp = "Jan  1 2026 11:00:00 UTC"',
        )
        + _radius(
            "Thu Jan  1 12:00:00 2026",
            "Stop",
            "s3",
            "User-Name = dave\\tx",
            "Framed-IPv6-Address = 2001:DB8:3::1",
            "Acct-Session-Time = 600",
            "Timestamp = 1767268800",
        )
        + _radius("Thu Jan  1 12:00:01 2026", "Stop", "s4", _USER, _P)
        + _radius(
            "Thu Jan  1 12:30:00 2026",
            "Interim-Update",
            "s5",
            'Calling-Station-Id = "00-11-22-33-44-55"',
            "Framed-IP-Address = 198.51.100.9",
            "Acct-Session-Time = 120",
        )
        + _radius("Thu Jan  1 13:00:00 2026", "Accounting-On", "")
        + _radius("Thu Jan  1 13:00:00 2026", "Start", "s6", 'User-Name = "\u00e9l\u00e8ve"', _P)
        + _radius(
            "Thu Jan  1 13:10:00 2026",
            "Start",
            "s7",
            _USER,
            "Framed-IP-Address = 10.1.2.3",
            nas="NAS-Identifier = bras-1",
        )
        + _radius("Thu Jan  1 13:20:00 2026", "Bogus", "s8", _USER, _P)
        + _radius("Thu Jan  1 13:20:00 2026", "Start", "", _USER, _P)
        + _radius("Thu Jan  1 13:20:00 2026", "Start", "s9", _P)
        + _radius("Thu Jan  1 13:20:00 2026", "Start", "s9", _USER, "Framed-IP-Address = 1.2.3")
        + _radius("Thu Jan  1 13:20:00 2026", "Start", "s9", _USER, "Framed-IPv6-Prefix = ::1/64")
        + _radius("Thu Jan  1 13:20:00 2026", "Start", "s9", _USER, "Acct-Delay-Time = soon")
        + _radius("Thu Jan  1 13:20:00 2026", "Start", "s9", _USER, "Timestamp = 1")
        + _radius("Thu Jan  1 13:20:00 2026", "Start", "s9", _USER, "Event-Timestamp = later")
        + _radius("Thu Jan 41 13:20:00 2026", "Start", "s9", _USER, _P)
        + _radius("Thursday", "Start", "s9", _USER, _P)
        + _radius("Thu Jan  1 13:20:00 2026", "Start", "s9", _USER, _P, nas="Something = x")
        + "\tAcct-Status-Type = Start\n\tUser-Name = stray\n\n"
        + "Thu Jan  1 14:00:00 2026\n\tAcct-Status-Type = Start\n\tUser-Name = x\n"
        + '\tAcct-Session-Id = "s10"\n\tNAS-IP-Address = 192.0.2.11\n\tno equals sign\n'
        + f"\t{_P}\n\n"
        + _radius("Thu Jan  1 14:30:00 2026", "Start", "s11", _USER, "Framed-IP-Address = 10.9.9.9")
        + _radius(
            "Thu Jan  1 14:40:00 2026",
            "Start",
            "s12",
            'User-Name = "other"',
            "Framed-IP-Address = 10.9.9.9",
        ),
    ),
    (
        "detail-crlf",
        # CRLF line ends, whitespace-only lines as separators, several blank lines, a record
        # in Berlin's autumn hour (Event-Timestamp with its abbreviation), a NUL in a value
        (
            _radius(
                "Sun Oct 25 02:30:00 2026",
                "Start",
                "b1",
                'User-Name = "nul\x00byte"',
                "Framed-IPv6-Prefix = 2001:db8:9::/48",
                'Event-Timestamp = "Oct 25 2026 02:30:00 CET"',
            )
            + " \t\n\n\n"
            + _radius(
                "Sun Mar 29 02:30:00 2026",
                "Start",
                "b2",
                _USER,
                "Framed-IPv6-Prefix = 2001:db8:a::/48",
            )
            + _radius(
                "Sun Oct 25 03:30:00 2026",
                "Stop",
                "b1",
                'User-Name = "nul\x00byte"',
                "Framed-IPv6-Prefix = 2001:db8:9::/48",
                'Event-Timestamp = "Oct 25 2026 03:30:00 CEST"',
            )
        ).replace("\n", "\r\n"),
    ),
]

_KEA_ROWS = (
    "2001:db8:1::,00:03:00:01:aa,3600,1767229200,1,1800,2,1,56,0,0,,,0,\n"
    "2001:db8:1::,00:03:00:01:aa,3600,1767229200,1,1800,2,1,56,0,0,,,0,\n"  # the same row
    "2001:db8:1::,00:03:00:01:AA,3600,1767232800,1,1800,2,1,56,0,0,,,0,\n"  # a renewal
    "2001:db8:1::,00:03:00:01:aa,0,1767233000,1,1800,2,1,56,0,0,,,0,\n"  # deleted
    "2001:db8:2::,00:03:00:01:bb,3600,1767229200,1,1800,2,7,56,0,0,,,3,\n"  # released
    "2001:db8:3::,00:03:00:01:cc,3600,1767229200,1,1800,2,7,56,0,0,,,0,\n"  # still held
    "2001:db8:3::,00:03:00:01:cc,3600,1767300000,1,1800,2,7,56,0,0,,,0,\n"  # a gap: new
    "2001:db8:4::5,00:03:00:01:dd,3600,1767229200,1,1800,0,1,128,0,0,,,0,\n"  # IA_NA
    "2001:db8:5::,00:03:00:01:ee,3600,1767229200,1,1800,2,1,56\n"  # short (an old writer)
    "2001:db8:6::,,3600,1767229200,1,1800,2,1,56,0,0,,,0,\n"  # no DUID
    "2001:db8:7::1,00:03:00:01:ff,3600,1767229200,1,1800,2,1,56,0,0,,,0,\n"  # host bits
    "2001:db8:8::,00:03:00:01:ff,soon,1767229200,1,1800,2,1,56,0,0,,,0,\n"  # not a number
    "2001:db8:9::,00:03:00:01:ff,3600,1767229200,1,1800,2,1,56,0,0,,,0,,,,,,,\n"  # too wide
    '2001:db8:a::,00:03:00:01:ab,3600,1767229200,1,1800,2,1,56,0,0,"a,b",,0,\n'  # quoted
    "2001:db8:b::,00:03:00:01:ac,3600,1767229200,1,1800,2,1,56,0,0,,,0,\r\n"  # CRLF
    "1,2\n"
)

KEA = [
    ("kea-old.csv", KEA_OLD + "\n" + _KEA_ROWS),
    ("kea-2.csv", KEA_2 + "\n" + _KEA_ROWS.replace(",0,\n", ",0,,1\n")),
    ("kea-3.csv", KEA_3 + "\n" + _KEA_ROWS.replace(",0,\n", ",0,,1,0,0\n")),
    ("kea-empty.csv", ""),
    (
        "kea-legal.log",
        "\n".join(
            [
                KEA_LEGAL_DOC,
                KEA_LEGAL_DOC,  # the same line twice
                KEA_LEGAL_DOC.replace("01:02:03 PST", "01:10:00 PST").replace(
                    "assigned", "renewed"
                ),
                KEA_LEGAL_DOC.replace("01:02:03 PST", "01:20:00 PST")
                .replace("assigned for 0 hrs 11 mins 53 secs", "released")
                .replace("Prefix:2001:db8:1::/56", "Prefix:2001:db8:1::/56"),
                KEA_LEGAL_DOC.replace("2001:db8:1::/56", "2001:db8:2::/56").split(" identified by")[
                    0
                ],  # no relay: the DUID
                KEA_LEGAL_DOC.replace("2001:db8:1::/56", "2001:db8:3::/56").replace(
                    "subscriber-id: 1a:2b:3c:4d:5e:6f", "circuit-id: 99"
                ),  # remote-id only
                "2018-07-06 01:02:03 PST Prefix:2001:db8:4::/56 has been assigned for 1 hrs "
                "0 mins 0 secs to a device with DUID: 01:02",  # PST in July: refused
                "2018-01-06 01:02:03 PST Prefix:2001:db8:5::/56 has been assigned to a device "
                "with DUID: 01:02",  # no duration
                "2018-01-06 01:02:03 PST Administrator added a lease of prefix: 2001:db8:6::/56 "
                "for 2 hrs 0 mins 0 secs to a device with DUID: 01:03",
                "2018-01-06 03:02:03 PST Administrator deleted a lease of prefix: "
                "2001:db8:6::/56 to a device with DUID: 01:03",
                "2018-01-06 01:02:03 PST Address:2001:db8::1 has been assigned for 1 hrs 0 mins "
                "0 secs to a device with DUID: 01:02",  # IA_NA: skipped
                "2018-01-06 01:02:03 PST Prefix:2001:db8:7::1/56 has been assigned for 1 hrs "
                "0 mins 0 secs to a device with DUID: 01:02",  # host bits
                "garbage",
                "",
            ]
        ),
    ),
]

CSV = [
    (
        "accounts.csv",
        "subscriber,account,from,to\n"
        "2001:db8:104d:c900::/56,CUST-1001,2026-03-01T00:00:00Z,2026-04-01T00:00:00Z\n"
        "2001:db8:104d:c900::/56,CUST-1001,2026-03-01T00:00:00Z,2026-04-01T00:00:00Z\n"
        "2001:DB8:104D:CA00::/56,CUST-1002,2026-03-01T00:00:00.250Z,\n"
        "10.0.0.5,CUST-1003,2026-03-01T01:00:00+01:00,2026-03-02T00:00:00\n"
        '100.64.0.0/30,"CUST, \u00e9\u00e8",2026-03-01T00:00:00,2026-03-01T00:00:01\n'
        '198.51.100.9,"two\nlines",2026-03-01T00:00:00Z,\n'
        "198.51.100.10,back\\slash\ttab,2026-03-01T00:00:00Z,\n"
        "10.0.0.1/24,CUST-9,2026-03-01T00:00:00Z,\n"  # host bits
        "10.0.0.0/24,,2026-03-01T00:00:00Z,\n"  # no account
        "10.0.0.0/24,CUST-9,2026-03-02T00:00:00Z,2026-03-01T00:00:00Z\n"  # to before from
        "10.0.0.0/24,CUST-9,2026-03-01T00:00:00Z\n"  # three fields
        "10.0.0.0/24,CUST-9,yesterday,\n"
        "not-an-address,CUST-9,2026-03-01T00:00:00Z,\n"
        "\n"
        ",,,\n"
        "2001:db8::/32,CUST-10,2026-10-25T02:30:00,2026-10-25T03:30:00\r\n",
    ),
    ("bad-header.csv", "prefix,account,from,to\n2001:db8::/32,X,2026-01-01T00:00:00Z,\n"),
]


def _digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode("utf-8", "surrogatepass")).hexdigest()


CASES = {
    # name: (format, files, tz, interim µs, realm id)
    "radius": ("freeradius-detail", RADIUS, "Europe/Berlin", None, None),
    "radius-utc-realm": ("freeradius-detail", RADIUS, "UTC", None, 7),
    "radius-interim": ("freeradius-detail", RADIUS, "UTC", 1_800_000_000, None),
    "kea": ("kea-lease6", KEA, "America/Los_Angeles", None, None),
    "kea-realm": ("kea-lease6", KEA, "America/Los_Angeles", None, 3),
    "csv": ("csv", CSV, "Europe/Berlin", None, None),
    "csv-realm": ("csv", CSV, "Europe/Berlin", None, 12),
}

# (records, duplicates, refused, rows, SHA-256 of the refused records' text, rows_sha256,
# SHA-256 of the COPY lines), as the code before issue 14's client work gave them; since changed
# on purpose for rows Postgres could not keep as hashed (tests/directory/test_ingest_stream.py):
# the RADIUS cases lost a session that ended at the instant it began (it held nothing), the kea
# cases refuse two older rows of a lease read after a newer one (they set the interval's end
# before its start)
PINNED: dict[str, tuple[int, int, int, int, str, str, str]] = {
    "csv": (
        14,
        1,
        7,
        7,
        "7edac467c298c3e5a5fdac04ec032f88356d264622ffa3ca4c4906f6a66f0b16",
        "e2b969422f1ccfa91bc7db5a60a210c36525cd32d30a00c44ac4ac36c0f937d4",
        "6921120152e644af4ff83f886444862c4226cbae6cf06eebfe86f98b4b6e21a3",
    ),
    "csv-realm": (
        14,
        1,
        7,
        7,
        "7edac467c298c3e5a5fdac04ec032f88356d264622ffa3ca4c4906f6a66f0b16",
        "00a4275e1cb3b74364678c08b4dc0e0c2c8dc75d0caa9f6835088c62cb7d541b",
        "5ec2793c173cdc3e1cc59a5d72e218a5b6d82c76b42f5d6ce9b31d55f2a211cc",
    ),
    "kea": (
        61,
        8,
        24,
        11,
        "a389b299d4fc901ccb769c5923d7dd35809dd616cdbab27c3f4148c39509863e",
        "318a3b1cfcad0dd77d23d7a0f737c1d65ffc0ec07424740cf1e06bbadad34329",
        "7fdf3b99ac02c2091307cbd0a3266dcaffd3df28ac15c821737fec1b91b2d9da",
    ),
    "kea-realm": (
        61,
        8,
        24,
        11,
        "a389b299d4fc901ccb769c5923d7dd35809dd616cdbab27c3f4148c39509863e",
        "9471bcb4f41ce2c8bb880dc6a1001f20d3233319dec51917988e94d7ea3aa962",
        "9192ece464d8dcc64b3f7530abd3fcadd68ee168e5a2f60078684e6c5038ea44",
    ),
    "radius": (
        30,
        2,
        16,
        12,
        "4ee7964f2bc212ab654779eb561728ad618e9659f08c3eec5756c7800204f7c2",
        "656dd450b9341426e2384da0322657a598a11e492b507212e5b01cea48985be0",
        "949df5c39d10dc9f4d2cfd85debdf300de34209d385326a5205a77f8b8c0a9a6",
    ),
    "radius-interim": (
        30,
        2,
        18,
        11,
        "331d45b6f88a332ffff5b15e584e1fe410b2d17b69c9f5f9aaa3c7f875f4ddce",
        "586493743ac8e6088f9d12ff3df130d1a3dd1a0d5b14657e0ade46c2ab5b75a5",
        "896c56977772f76e888883336857a9aef6b227748a9f347f234fb2f123fe66c9",
    ),
    "radius-utc-realm": (
        30,
        2,
        18,
        11,
        "331d45b6f88a332ffff5b15e584e1fe410b2d17b69c9f5f9aaa3c7f875f4ddce",
        "7f23d8ce2dc3ec5e21eb4cc690ebe5c83fe0909dd7a1b75cca7aa2edc7d58d65",
        "3d26d34c4f2740174a42e7f1f9f7200d0bceb426bd30c02cb149905202b252a9",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_ingest_stores_and_audits_what_it_did_before(case: str) -> None:
    fmt, files, tz, interim_us, realm_id = CASES[case]
    # as directory.ingest reads files: bytes decoded with replacement, NUL replaced
    texts = [(name, directory._safe(text)) for name, text in files]
    parsed = parse(fmt, texts, tz=tz, interim_us=interim_us)
    digest, lines = directory._rows(parsed.intervals, realm_id)
    got = (
        parsed.records,
        parsed.duplicates,
        len(parsed.refused),
        len(lines),
        _digest([str(r) for r in parsed.refused]),
        digest,
        hashlib.sha256("".join(lines).encode("utf-8", "surrogatepass")).hexdigest(),
    )
    assert got == PINNED[case]


# The attribute pattern the RADIUS parser had (a lazy value): the faster one reads the same.
_LAZY_ATTR = re.compile(r'^[ \t]+([^ \t=]+) = "?(.*?)"?[ \t]*$', re.M)
_PIECES = st.sampled_from(
    ["a", "b", " ", "\t", '"', "\n", "=", "\r", " = ", "\t\n", '\tx = "', "\u00e9"]
)


@given(st.lists(_PIECES, max_size=30).map("".join))
def test_attribute_lines_read_as_the_lazy_pattern_read_them(body: str) -> None:
    assert radius._ATTR.findall(body) == _LAZY_ATTR.findall(body)


def _network_text_before(text: str) -> str:
    """:func:`network_text` as it was written before issue 14's client work."""
    address, slash, length = text.strip().partition("/")
    family, bits = (socket.AF_INET6, 128) if ":" in address else (socket.AF_INET, 32)
    try:
        packed = socket.inet_pton(family, address)
    except OSError:
        raise ValueError(f"{text.strip()!r} is not an IP address or prefix") from None
    if slash and not (length.isascii() and length.isdigit() and len(length) <= 3):
        raise ValueError(f"{text.strip()!r}: the prefix length is not a number")
    size = int(length) if slash else bits
    if size > bits:
        raise ValueError(f"{text.strip()!r}: a prefix length above {bits}")
    if int.from_bytes(packed, "big") & ((1 << (bits - size)) - 1):
        raise ValueError(f"{text.strip()!r} has host bits set")
    return f"{socket.inet_ntop(family, packed)}/{size}"


def _said(read: Callable[[str], str], text: str) -> str:
    try:
        return "ok " + read(text)
    except ValueError as exc:
        return f"refused {exc}"


_ADDRESSES = st.one_of(
    st.ip_addresses().map(str),
    st.sampled_from(
        ["2001:DB8::", "::", "0.0.0.0", "1.2.3", "x", "", " 10.0.0.0 ", "::ffff:1.2.3.4"]
    ),
)
_LENGTHS = st.one_of(
    st.just(""),
    st.integers(0, 140).map(lambda n: f"/{n}"),
    st.sampled_from(["/", "/x", "/0056", "/+5", "/\u0665", "/1 "]),
)


@given(_ADDRESSES, _LENGTHS)
def test_network_text_reads_and_refuses_as_it_did(address: str, length: str) -> None:
    text = address + length
    assert _said(network_text, text) == _said(_network_text_before, text)
    assert _said(network_text, text) == _said(_network_text_before, text)  # and once known
