"""Each log format on the lines the field publishes (source named on each), on lines we make, and
on the lines a parser must refuse (with the reason) or skip (saying nothing)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from detnat.errors import InvalidInput
from detnat.logs.events import EventKind, LogEvent, Refused
from detnat.logs.formats import FORMATS, ParseOptions, parse_lines
from tests.logs import made_format

ALLOCATE, INTERIM, RELEASE = EventKind.ALLOCATE, EventKind.INTERIM, EventKind.RELEASE


def us(text: str) -> int:
    """UTC microseconds of an ISO time with its offset."""
    delta = datetime.fromisoformat(text) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def read(name: str, *lines: bytes | str, **options: object) -> tuple[list[LogEvent], list[Refused]]:
    raw = [line.encode() if isinstance(line, str) else line for line in lines]
    out = list(parse_lines(name, raw, file="f.log", options=ParseOptions(**options)))  # type: ignore[arg-type]
    events = [item for item in out if isinstance(item, LogEvent)]
    refused = [item for item in out if isinstance(item, Refused)]
    return events, refused


def shape(event: LogEvent) -> tuple[object, ...]:
    return (
        event.kind,
        event.at_us,
        event.inside,
        event.public,
        event.port_first,
        event.port_last,
        event.protocol,
        event.port_step,
    )


def ev(*fields: object) -> tuple[object, ...]:
    """An expected event's shape (kind, at_us, inside, public, first, last, protocol, step)."""
    return fields


def one_refusal(name: str, line: bytes | str, **options: object) -> str:
    events, refused = read(name, line, **options)
    assert events == [] and len(refused) == 1, (events, refused)
    assert refused[0].line == 1 and refused[0].file == "f.log"
    return refused[0].reason


# -- juniper-pba -------------------------------------------------------------------------------

# Published in veesix-networks/cgn-ec-consumer, cgn_ec_consumer/handlers/juniper.py (comment
# citing docs.nfware.com/en/6.3/nat/logging.html): the SRX structured-data form.
JUNIPER_SD = [
    'RT_NAT - RT_SRC_NAT_PBA_ALLOC [internal-ip="10.0.10.10" block-used="1" '
    'block-max-per-host="4" block-port-low="48640" block-port-high="48895" '
    'reflexive-ip="1.2.84.172" nat-pool-name="guest" logical-system-id="0" '
    'epoch-time-64="624b0492"]',
    'RT_NAT - RT_SRC_NAT_PBA_INTERIM [internal-ip="10.0.10.10" block-used="1" '
    'block-max-per-host="4" block-port-low="48640" block-port-high="48895" '
    'reflexive-ip="1.2.84.172" nat-pool-name="guest" logical-system-id="0" '
    'epoch-time-64="624b0492"]',
    'RT_NAT - RT_SRC_NAT_PBA_RELEASE [internal-ip="10.0.10.10" block-used="0" '
    'block-max-per-host="4" block-port-low="48640" block-port-high="48895" '
    'reflexive-ip="1.2.84.172" nat-pool-name="guest" logical-system-id="0" '
    'epoch-time-64="624b0cc7"]',
]
# Published (sanitised) in imrankhan-coder/ipdr-cgnat-compliance, scripts/nat_parser.py: the MX
# BSD text form. The header is local time (22:44:25, UTC+5); the epoch says 17:44:26 UTC.
JUNIPER_MX_ALLOC = (
    "<14>Jun 30 22:44:25 SITE-B-BNG-01 RT_NAT: RT_SRC_NAT_PBA_ALLOC: Subscriber 100.64.60.74 "
    "used/maximum [10/15] blocks, allocates port block [24064-24191] from 203.0.113.100 in source "
    "pool EXAMPLE_POOL lsys_id: 0 epoch 0x6a44007a"
)
# The same file's release example, with its addresses sanitised to "100.64.x.x".
JUNIPER_MX_RELEASE_SANITISED = (
    "RT_SRC_NAT_PBA_RELEASE: Subscriber 100.64.x.x used/maximum [5/15] blocks, releases port "
    "block [1024-1151] from 203.0.113.x in source pool EXAMPLE_POOL"
)


def test_juniper_structured_samples_allocate_refresh_and_release_one_block() -> None:
    events, refused = read("juniper-pba", *JUNIPER_SD)
    assert refused == []
    block = ("10.0.10.10", "1.2.84.172", 48640, 48895, None, 1)
    assert [shape(event) for event in events] == [
        (ALLOCATE, us("2022-04-04T14:45:38+00:00"), *block),
        (INTERIM, us("2022-04-04T14:45:38+00:00"), *block),
        (RELEASE, us("2022-04-04T15:20:39+00:00"), *block),
    ]
    assert [event.source.line for event in events] == [1, 2, 3]
    assert events[0].source.sha256 == hashlib.sha256(JUNIPER_SD[0].encode()).hexdigest()


def test_juniper_mx_text_sample_takes_its_time_from_the_epoch_not_the_yearless_header() -> None:
    events, refused = read("juniper-pba", JUNIPER_MX_ALLOC)  # no --year, no --tz needed
    assert refused == []
    assert [shape(event) for event in events] == [
        ev(
            ALLOCATE,
            us("2026-06-30T17:44:26+00:00"),
            "100.64.60.74",
            "203.0.113.100",
            24064,
            24191,
            None,
            1,
        )
    ]


def test_juniper_text_without_epoch_is_timed_by_its_header_with_year_and_zone() -> None:
    line = JUNIPER_MX_ALLOC.removesuffix(" epoch 0x6a44007a")
    events, _ = read("juniper-pba", line, year=2026, tz="Asia/Karachi")
    assert [event.at_us for event in events] == [us("2026-06-30T22:44:25+05:00")]
    assert one_refusal("juniper-pba", line) == (
        "the syslog time 'Jun 30 22:44:25' has no year: give --year"
    )
    assert one_refusal("juniper-pba", line, year=2026) == (
        "the time 'Jun 30 22:44:25' has no zone: give --tz"
    )


def test_juniper_sanitised_release_sample_is_refused_for_its_address() -> None:
    reason = one_refusal("juniper-pba", JUNIPER_MX_RELEASE_SANITISED, year=2026, tz="UTC")
    assert reason == "the subscriber '100.64.x.x' is not an IP address"


def test_juniper_release_and_interim_wordings_and_ipv6_subscribers() -> None:
    lines = [
        "<14>Jun 30 22:44:25 BNG RT_NAT: RT_SRC_NAT_PBA_RELEASE: Subscriber 2001:DB8:0:0::1 "
        "used/maximum [0/15] blocks, releases port block [1024-1151] from 203.0.113.1 in source "
        "pool P lsys_id: 0 epoch 0x6a44007a",
        "<14>Jun 30 22:44:25 BNG RT_NAT: RT_SRC_NAT_PBA_INTERIM: Subscriber 100.64.0.1 "
        "used/maximum [1/15] blocks, port block [1024-1151] from 203.0.113.1 in source pool P "
        "lsys_id: 0 epoch 0x6a44007a",
    ]
    events, refused = read("juniper-pba", *lines)
    assert refused == []
    assert [(e.kind, e.inside) for e in events] == [
        (RELEASE, "2001:db8::1"),
        (INTERIM, "100.64.0.1"),
    ]


def test_juniper_structured_with_rfc5424_header_and_no_epoch_uses_the_header_offset() -> None:
    line = (
        "<14>1 2026-12-07T10:00:00.5+01:00 srx RT_NAT - RT_SRC_NAT_PBA_ALLOC "
        '[junos@2636.1.1.1.2.129 internal-ip="10.0.0.1" block-port-low="1024" '
        'block-port-high="1087" reflexive-ip="192.0.2.9"]'
    )
    events, refused = read("juniper-pba", line)
    assert refused == [] and events[0].at_us == us("2026-12-07T09:00:00.5+00:00")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            'RT_SRC_NAT_PBA_ALLOC [internal-ip="10.0.0.1" block-port-low="1024" '
            'reflexive-ip="192.0.2.9" epoch-time-64="624b0492"]',
            "RT_SRC_NAT_PBA_ALLOC without block-port-high",
        ),
        (
            'RT_SRC_NAT_PBA_ALLOC [internal-ip="10.0.0.1" block-port-low="2000" '
            'block-port-high="1000" reflexive-ip="192.0.2.9" epoch-time-64="624b0492"]',
            "port block 2000-1000 ends before it starts",
        ),
        (
            'RT_SRC_NAT_PBA_ALLOC [internal-ip="10.0.0.1" block-port-low="1024" '
            'block-port-high="70000" reflexive-ip="192.0.2.9" epoch-time-64="624b0492"]',
            "block-port-high '70000' is not a port (0..65535)",
        ),
        (
            'RT_SRC_NAT_PBA_ALLOC [internal-ip="10.0.0.1" block-port-low="1024" '
            'block-port-high="1087" reflexive-ip="2001:db8::1" epoch-time-64="624b0492"]',
            "the public address '2001:db8::1' is not an IPv4 address",
        ),
        (
            'RT_SRC_NAT_PBA_ALLOC [internal-ip="10.0.0.1" block-port-low="1024" '
            'block-port-high="1087" reflexive-ip="192.0.2.9" epoch-time-64="zz"]',
            "epoch 'zz' is not hexadecimal seconds (0x624b0492)",
        ),
        (
            'RT_SRC_NAT_PBA_ALLOC [internal-ip="10.0.0.1" block-port-low="1024" '
            'block-port-high="1087" reflexive-ip="192.0.2.9" epoch-time-64="0"]',
            "epoch 0 is not a time a datapath logs",
        ),
        (
            "RT_SRC_NAT_PBA_ALLOC: Subscriber 10.0.0.1 allocated something",
            'RT_SRC_NAT_PBA_ALLOC in neither Juniper form: no [key="value" ...] and no '
            "'Subscriber A used/maximum [u/m] blocks, ... port block [lo-hi] from P'",
        ),
        (
            'RT_SRC_NAT_PBA_ALLOC [internal-ip="10.0.0.1" block-port-low="1024" '
            'block-port-high="1087" reflexive-ip="192.0.2.9"]',
            "no time: the line has no epoch field and no syslog time at its head",
        ),
    ],
)
def test_juniper_malformed_lines_are_refused_with_the_reason(line: str, reason: str) -> None:
    assert one_refusal("juniper-pba", line) == reason


def test_juniper_other_syslog_lines_are_skipped() -> None:
    lines = [
        "<14>Jun 30 22:44:25 BNG RT_FLOW: RT_FLOW_SESSION_CREATE: session created 10.0.0.1/1",
        "<14>Jun 30 22:44:25 BNG RT_NAT: RT_SRC_NAT_PBA_OUTOF_BLOCKS: pool P",
        "",
    ]
    assert read("juniper-pba", *lines) == ([], [])


# -- a10-cef -----------------------------------------------------------------------------------

# Published in veesix-networks/cgn-ec-consumer's tests of its A10 CEF handler (test data as
# syslog-ng wrote it: an RFC 3339 time, the sender, the host): batches (CGN 106 / 107) among
# single ports (CGN 100 / 101), which are skipped.
A10_SAMPLE = [
    "2025-05-02T11:34:56.87+00:00 10.254.254.57 cgn0.thn2/cgn-demo  CEF:0|A10|CFW|6.0.0-P1|"
    "CGN 106|Nat Port Batch Pool Allocated|5|proto=UDP src=100.65.140.73 "
    "sourceTranslatedAddress=99.99.99.12 sourceTranslatedPort=22016 cn3=22271 "
    "cn3Label=Last Nat Port",
    "2025-05-02T11:35:00.62+00:00 10.254.254.57 cgn0.thn2/cgn-demo  CEF:0|A10|CFW|6.0.0-P1|"
    "CGN 100|Nat Port Allocated|5|proto=ICMP src=100.65.161.0 spt=48856 "
    "sourceTranslatedAddress=99.99.99.13 sourceTranslatedPort=48856 dst=8.8.8.8 dpt=0",
    "2025-05-02T11:35:00.62+00:00 10.254.254.57 cgn0.thn2/cgn-demo  CEF:0|A10|CFW|6.0.0-P1|"
    "CGN 101|Nat Port Freed|5|proto=ICMP src=100.65.150.5 spt=37892 "
    "sourceTranslatedAddress=99.99.99.8 sourceTranslatedPort=37892",
    "2025-05-02T11:35:00.87+00:00 10.254.254.57 cgn0.thn2/cgn-demo  CEF:0|A10|CFW|6.0.0-P1|"
    "CGN 107|Nat Port Batch Pool Freed|5|proto=UDP src=100.65.140.73 "
    "sourceTranslatedAddress=99.99.99.12 sourceTranslatedPort=22016 cn3=22271 "
    "cn3Label=Last Nat Port",
]


def test_a10_published_batches_allocate_and_free_and_single_ports_are_skipped() -> None:
    events, refused = read("a10-cef", *A10_SAMPLE)
    assert refused == []
    block = ("100.65.140.73", "99.99.99.12", 22016, 22271, "udp", 1)
    assert [shape(event) for event in events] == [
        (ALLOCATE, us("2025-05-02T11:34:56.87+00:00"), *block),
        (RELEASE, us("2025-05-02T11:35:00.87+00:00"), *block),
    ]
    assert [event.source.line for event in events] == [1, 4]


def test_a10_rt_field_wins_over_the_header_in_each_of_its_forms() -> None:
    cef = (
        "CEF:0|A10|CFW|6.0.0-P1|CGN 106|Nat Port Batch Pool Allocated|5|proto=TCP "
        "src=100.64.0.1 sourceTranslatedAddress=192.0.2.1 sourceTranslatedPort=1024 cn3=1535 "
    )
    header = "2025-05-02T11:34:56+00:00 host cgn  "
    cases = {
        "rt=1765101600250": us("2025-12-07T10:00:00.25+00:00"),
        "rt=Dec 07 2025 10:00:00": us("2025-12-07T10:00:00+01:00"),  # --tz Europe/Berlin
        "rt=Dec 07 2025 10:00:00.5 UTC": us("2025-12-07T10:00:00.5+00:00"),
        "rt=Dec 07 2025 10:00:00 +0200": us("2025-12-07T10:00:00+02:00"),
        "rt=Dec 07 2025 10:00:00 America/New_York": us("2025-12-07T10:00:00-05:00"),
        "rt=Dec 07 10:00:00": us("2025-12-07T10:00:00+01:00"),  # --year 2025
    }
    for rt, expected in cases.items():
        events, refused = read("a10-cef", header + cef + rt, year=2025, tz="Europe/Berlin")
        assert refused == [] and [event.at_us for event in events] == [expected], rt


def test_a10_bsd_header_needs_year_and_zone() -> None:
    line = "<190>Dec  7 10:00:00 cgn " + A10_SAMPLE[0].split("  ", 1)[1]
    assert one_refusal("a10-cef", line) == (
        "the syslog time 'Dec 7 10:00:00' has no year: give --year"
    )
    assert one_refusal("a10-cef", line, year=2025) == (
        "the time 'Dec 7 10:00:00' has no zone: give --tz"
    )
    events, _ = read("a10-cef", line, year=2025, tz="UTC")
    assert [event.at_us for event in events] == [us("2025-12-07T10:00:00+00:00")]


@pytest.mark.parametrize(
    ("swap", "reason"),
    [
        (("proto=UDP ", ""), "no proto: A10 port batches are per protocol"),
        (("proto=UDP", "proto=GRE"), "proto 'GRE' is not TCP, UDP or ICMP"),
        (("cn3=22271 ", ""), "CGN 106 without cn3"),
        (("cn3=22271", "cn3=22000"), "port block 22016-22000 ends before it starts"),
        (("src=100.65.140.73", "src=bogus"), "src 'bogus' is not an IP address"),
        (
            ("2025-05-02T11:34:56.87+00:00 ", ""),
            "no time: the line has no epoch field and no syslog time at its head",
        ),
        (
            ("cn3Label=Last Nat Port", "cn3Label=Last Nat Port rt=yesterday"),
            "rt 'yesterday' is neither epoch milliseconds nor 'MMM dd yyyy HH:mm:ss'",
        ),
        (
            ("cn3Label=Last Nat Port", "cn3Label=Last Nat Port rt=Dec 07 2025 10:00:00 Mars/Base"),
            "rt 'Dec 07 2025 10:00:00 Mars/Base': 'Mars/Base' is not a time zone",
        ),
    ],
)
def test_a10_malformed_lines_are_refused_with_the_reason(
    swap: tuple[str, str], reason: str
) -> None:
    assert one_refusal("a10-cef", A10_SAMPLE[0].replace(*swap)) == reason


def test_a10_escaped_extension_values_are_read() -> None:
    line = A10_SAMPLE[0].replace("cn3Label=Last Nat Port", r"cs1=a\=b c\\d cn3Label=Last Nat Port")
    events, refused = read("a10-cef", line)
    assert refused == [] and events[0].port_last == 22271


# -- vpp-syslog --------------------------------------------------------------------------------

# No published line: written as FDio/vpp writes it, src/vnet/syslog/syslog.c (header
# "<%d>1 %Y-%m-%dT%H:%M:%S.%06dZ src app procid msgid") and src/plugins/nat/lib/nat_syslog.c
# (SD-ID napmap, parameters in this order; SV6ENC instead of SVLAN for DS-Lite).
VPP_NAT44 = (
    '<134>1 2026-12-07T10:00:00.123456Z 172.16.2.2 NAT 10484 APMADD [napmap SSUBIX="0" '
    'SVLAN="0" IATYP="IPv4" ISADDR="10.0.0.1" ISPORT="1234" XATYP="IPv4" XSADDR="203.0.113.1" '
    'XSPORT="1025" PROTO="6"]'
)
VPP_DSLITE = (
    '<134>1 2026-12-07T10:05:00.000001Z 172.16.2.2 NAT 10484 APMDEL [napmap SSUBIX="0" '
    'SV6ENC="2001:db8:0:0:0:0:0:1" IATYP="IPv4" ISADDR="192.168.1.2" ISPORT="1234" '
    'XATYP="IPv4" XSADDR="203.0.113.1" XSPORT="1026" PROTO="1"]'
)


def test_vpp_nat44_and_dslite_mappings_one_port_each_keyed_by_the_b4_for_dslite() -> None:
    events, refused = read(
        "vpp-syslog",
        VPP_NAT44,
        VPP_DSLITE,
        '<134>1 2026-12-07T10:00:00.1Z 172.16.2.2 NAT 10484 SADD [nsess SSUBIX="0"]',
    )
    assert refused == []
    assert [shape(event) for event in events] == [
        ev(
            ALLOCATE,
            us("2026-12-07T10:00:00.123456+00:00"),
            "10.0.0.1",
            "203.0.113.1",
            1025,
            1025,
            "tcp",
            1,
        ),
        ev(
            RELEASE,
            us("2026-12-07T10:05:00.000001+00:00"),
            "2001:db8::1",
            "203.0.113.1",
            1026,
            1026,
            "icmp",
            1,
        ),
    ]


@pytest.mark.parametrize(
    ("swap", "reason", "options"),
    [
        (('PROTO="6"', 'PROTO="47"'), "PROTO '47' is not 1 (icmp), 6 (tcp) or 17 (udp)", {}),
        ((' XSPORT="1025"', ""), "APMADD without XSPORT", {}),
        (('XSPORT="1025"', 'XSPORT="65536"'), "XSPORT '65536' is not a port (0..65535)", {}),
        (
            ("2026-12-07T10:00:00.123456Z", "-"),
            "no time: the RFC 5424 timestamp is '-' (nil)",
            {},
        ),
        (
            ("2026-12-07T10:00:00.123456Z", "2026-12-07T10:00:00"),
            "the time '2026-12-07T10:00:00' has no zone: give --tz",
            {},
        ),
        (
            ("2026-12-07T10:00:00.123456Z", "yesterday"),
            "'yesterday' is not an ISO-8601 time (2026-12-07T10:00:00+01:00)",
            {},
        ),
        (
            ('SVLAN="0"', 'SV6ENC="10.1.1.1"'),
            "SV6ENC '10.1.1.1' is not an IPv6 address (the B4's)",
            {},
        ),
        (
            ("[napmap SSUBIX", "[napmop SSUBIX"),
            "an APMADD/APMDEL line without the RFC 5424 header and [napmap ...]",
            {},
        ),
    ],
)
def test_vpp_malformed_lines_are_refused_with_the_reason(
    swap: tuple[str, str], reason: str, options: dict[str, object]
) -> None:
    assert one_refusal("vpp-syslog", VPP_NAT44.replace(*swap), **options) == reason


def test_vpp_naive_timestamp_is_read_in_the_zone_given() -> None:
    line = VPP_NAT44.replace("2026-12-07T10:00:00.123456Z", "2026-12-07T10:00:00")
    events, _ = read("vpp-syslog", line, tz="Europe/Paris")
    assert [event.at_us for event in events] == [us("2026-12-07T10:00:00+01:00")]


# -- conntrack ---------------------------------------------------------------------------------

# A published `conntrack -E -o timestamp` line (quoted in the project's format notes, 1.2, beside
# conntrack(8)): a flow with no source NAT (the reply comes back to its original src): no event.
CONNTRACK_UNNATTED = (
    "[1757235600.250000]\t    [NEW] tcp      6 120 SYN_SENT src=10.8.0.11 dst=10.0.1.20 "
    "sport=51234 dport=443 [UNREPLIED] src=10.0.1.20 dst=10.8.0.11 sport=443 dport=51234"
)


def test_conntrack_published_line_without_nat_is_skipped_silently() -> None:
    assert read("conntrack", CONNTRACK_UNNATTED) == ([], [])


def test_conntrack_snat_flows_new_update_destroy_for_tcp_udp_and_icmp() -> None:
    lines = [
        "[1757235600.250000]\t    [NEW] tcp      6 120 SYN_SENT src=10.8.0.11 dst=10.0.1.20 "
        "sport=51234 dport=443 [UNREPLIED] src=10.0.1.20 dst=203.0.113.7 sport=443 dport=40001",
        "[1757235601.5]\t [UPDATE] tcp      6 60 SYN_RECV src=10.8.0.11 dst=10.0.1.20 "
        "sport=51234 dport=443 src=10.0.1.20 dst=203.0.113.7 sport=443 dport=40001",
        "[1757235700.000001]\t[DESTROY] udp      17 src=10.8.0.12 dst=192.0.2.53 sport=5353 "
        "dport=53 src=192.0.2.53 dst=203.0.113.7 sport=53 dport=40002 [ASSURED] mark=0 use=1",
        "[1757235800.000000]\t    [NEW] ipv4     2 icmp     1 30 src=10.8.0.13 dst=192.0.2.1 "
        "type=8 code=0 id=77 [UNREPLIED] src=192.0.2.1 dst=203.0.113.7 type=0 code=0 id=40003",
        "[1757235800.000000]\t    [NEW] gre      47 180 src=10.8.0.13 dst=192.0.2.1 srckey=0x0 "
        "dstkey=0x0 [UNREPLIED] src=192.0.2.1 dst=203.0.113.7 srckey=0x0 dstkey=0x0",
        "conntrack v1.4.7 (conntrack-tools): 5 flow events have been shown.",
    ]
    events, refused = read("conntrack", *lines)
    assert refused == []
    assert [shape(event) for event in events] == [
        (ALLOCATE, 1757235600_250000, "10.8.0.11", "203.0.113.7", 40001, 40001, "tcp", 1),
        (INTERIM, 1757235601_500000, "10.8.0.11", "203.0.113.7", 40001, 40001, "tcp", 1),
        (RELEASE, 1757235700_000001, "10.8.0.12", "203.0.113.7", 40002, 40002, "udp", 1),
        (ALLOCATE, 1757235800_000000, "10.8.0.13", "203.0.113.7", 40003, 40003, "icmp", 1),
    ]


def test_conntrack_lines_with_accounting_and_flags_read_the_same() -> None:
    """Lines with packet counters (sysctl nf_conntrack_acct=1) between the tuples, and the
    (IPv4) family column of -o extended, take the general path and read the same."""
    lines = [
        "[1757235600.250000]\t    [NEW] ipv4     2 udp      17 30 src=10.8.0.11 dst=192.0.2.53 "
        "sport=5353 dport=53 packets=1 bytes=60 [UNREPLIED] src=192.0.2.53 dst=203.0.113.7 "
        "sport=53 dport=40002 packets=0 bytes=0 mark=0 use=1",
        "[1757235600.250000]\t [DESTROY] udp      17 src=10.8.0.11 dst=192.0.2.53 sport=5353 "
        "dport=53 packets=1 bytes=60 src=192.0.2.53 dst=203.0.113.7 sport=53 dport=40002 "
        "packets=1 bytes=92 [ASSURED] delta-time=30",
    ]
    events, refused = read("conntrack", *lines)
    assert refused == []
    assert [shape(event) for event in events] == [
        ev(ALLOCATE, 1757235600_250000, "10.8.0.11", "203.0.113.7", 40002, 40002, "udp", 1),
        ev(RELEASE, 1757235600_250000, "10.8.0.11", "203.0.113.7", 40002, 40002, "udp", 1),
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            "[NEW] tcp      6 120 SYN_SENT src=10.8.0.11 dst=10.0.1.20 sport=51234 dport=443 "
            "[UNREPLIED] src=10.0.1.20 dst=203.0.113.7 sport=443 dport=40001",
            "no time: the line has no [seconds.micros] prefix (conntrack -o timestamp)",
        ),
        (
            "[1757235600.250000]\t[NEW] tcp      6 120 SYN_SENT src=10.8.0.11 dst=10.0.1.20",
            "a tcp flow without its two tuples (src= dst= and ports or icmp id)",
        ),
        (
            "[1757235600.250000]\t[NEW] tcp      6 120 SYN_SENT src=10.8.0.11 dst=10.0.1.20 "
            "sport=51234 dport=443 src=10.0.1.20 dst=203.0.113.7 sport=443 dport=99999",
            "the reply's port '99999' is not a port (0..65535)",
        ),
        (
            "[1757235600.250000]\t[NEW] tcp      6 120 SYN_SENT src=fd00::1 dst=2001:db8::2 "
            "sport=51234 dport=443 src=2001:db8::2 dst=2001:db8::7 sport=443 dport=40001",
            "the reply's dst '2001:db8::7' is not an IPv4 address",
        ),
    ],
)
def test_conntrack_malformed_lines_are_refused_with_the_reason(line: str, reason: str) -> None:
    assert one_refusal("conntrack", line) == reason


# -- nfdump-json -------------------------------------------------------------------------------

# Published: a Brazilian portal's test fixture of nfdump-derived rows (shared formats notes 1.1).
# It names its event only in words ("NAT translation create", the historic NSEL event 1), so it
# cannot be read in either numbering and is refused, not guessed.
NFDUMP_FIXTURE = (
    '{"src4_addr":"172.16.10.17","src4_xlt_ip":"177.137.21.38","pblock_start":4096,'
    '"pblock_size":512,"proto":6,"nat_event":"NAT translation create"}'
)
# Written as phaag/nfdump src/output/output_ndjson.c writes a NAT port-block record (numbers as
# JSON numbers; t_event local time with milliseconds unpadded, "%s.%llu").
NFDUMP_NDJSON = (
    '{"cnt":1,"type":"EVENT","export_sysid":1,"proto":0,"src4_addr":"100.64.0.10",'
    '"nat_event_id":16,"nat_event":"Port block allocation","nat_pool_id":0,'
    '"t_event":"2026-12-07T11:00:00.5","src4_xlt_ip":"203.0.113.7","dst4_xlt_ip":"0.0.0.0",'
    '"pblock_start":1024,"pblock_end":1535,"pblock_step":1,"pblock_size":512,"sampled":0}'
)
# And as src/output/output_json.c writes it (-o json): an array, one field a line, numbers of
# the NAT extensions as strings.
NFDUMP_PRETTY = [
    "[",
    "{",
    '\t"type" : "EVENT",',
    '\t"sampled" : 0,',
    '\t"export_sysid" : 1,',
    '\t"src6_addr" : "2001:db8:0:0::10",',
    '\t"nat_event_id" : "17",',
    '\t"nat_event" : "Port block de-allocation",',
    '\t"nat_pool_id" : "0",',
    '\t"t_event" : "2026-12-07T12:00:00.250",',
    '\t"src4_xlt_ip" : "203.0.113.7",',
    '\t"pblock_start" : "1024",',
    '\t"pblock_end" : "2047",',
    '\t"pblock_step" : "4",',
    '\t"pblock_size" : "256"',
    "}",
    "]",
]


def test_nfdump_published_fixture_naming_its_event_only_in_words_is_refused() -> None:
    assert one_refusal("nfdump-json", NFDUMP_FIXTURE, tz="UTC") == (
        "nat_event 'NAT translation create' without nat_event_id: the name does not say its "
        "numbering"
    )


def test_nfdump_ndjson_and_pretty_array_records_with_strides() -> None:
    events, refused = read("nfdump-json", NFDUMP_NDJSON, *NFDUMP_PRETTY, tz="Europe/Berlin")
    assert refused == []
    assert [shape(event) for event in events] == [
        ev(
            ALLOCATE,
            us("2026-12-07T11:00:00.005+01:00"),
            "100.64.0.10",
            "203.0.113.7",
            1024,
            1535,
            None,
            1,
        ),
        ev(
            RELEASE,
            us("2026-12-07T12:00:00.25+01:00"),
            "2001:db8::10",
            "203.0.113.7",
            1024,
            2047,
            None,
            4,
        ),
    ]
    pretty = events[1].source
    assert pretty.line == 3  # the record's "{" (line 1 is the ndjson line, line 2 the "[")
    body = "\n".join(NFDUMP_PRETTY[1:16]).encode()
    assert pretty.sha256 == hashlib.sha256(body).hexdigest()


def test_nfdump_exporter_numbering_decides_what_an_event_is() -> None:
    juniper_alloc = NFDUMP_NDJSON.replace('"nat_event_id":16', '"nat_event_id":14')
    juniper_active = NFDUMP_NDJSON  # 16: allocation for IANA, "active" (interim) for Juniper
    events, _ = read("nfdump-json", juniper_alloc, juniper_active, tz="UTC", exporter="juniper")
    assert [event.kind for event in events] == [ALLOCATE, INTERIM]
    events, _ = read("nfdump-json", juniper_alloc, juniper_active, tz="UTC", exporter="iana")
    assert [event.kind for event in events] == [ALLOCATE]  # 14 is address binding create: skipped
    assert [event.source.line for event in events] == [2]


def test_nfdump_block_from_size_when_the_end_is_missing_and_disagreements_refused() -> None:
    no_end = (
        NFDUMP_NDJSON.replace('"pblock_end":1535,', "")
        .replace('"pblock_step":1', '"pblock_step":2')
        .replace('"pblock_size":512', '"pblock_size":4')
    )
    events, _ = read("nfdump-json", no_end, tz="UTC")
    assert [(e.port_first, e.port_last, e.port_step) for e in events] == [(1024, 1030, 2)]
    disagree = NFDUMP_NDJSON.replace('"pblock_size":512', '"pblock_size":500')
    assert one_refusal("nfdump-json", disagree, tz="UTC") == (
        "pblock_start 1024 to pblock_end 1535 every 1 is 512 ports, not pblock_size 500"
    )


@pytest.mark.parametrize(
    ("swap", "reason"),
    [
        (('"t_event":"2026-12-07T11:00:00.5",', ""), "no time: the record has no t_event"),
        (
            ("2026-12-07T11:00:00.5", "<unknown>"),
            "t_event '<unknown>' is not nfdump's YYYY-MM-DDThh:mm:ss.ms",
        ),
        (('"src4_xlt_ip":"203.0.113.7",', ""), "a port-block event without src4_xlt_ip"),
        (('"src4_addr":"100.64.0.10",', ""), "a port-block event without src4_addr or src6_addr"),
        (('"proto":0', '"proto":47'), "proto 47 is not 0 (all), 1 (icmp), 6 (tcp) or 17 (udp)"),
        (('"pblock_start":1024', '"pblock_start":"x"'), "pblock_start 'x' is not a whole number"),
        (('"pblock_end":1535', '"pblock_end":70000'), "pblock_end 70000 is not a port (0..65535)"),
        (('{"cnt"', '{"cnt" 1,'), "not JSON: Expecting ':' delimiter at column 8"),
    ],
)
def test_nfdump_malformed_records_are_refused_with_the_reason(
    swap: tuple[str, str], reason: str
) -> None:
    assert one_refusal("nfdump-json", NFDUMP_NDJSON.replace(*swap), tz="UTC") == reason


def test_nfdump_needs_the_zone_nfdump_ran_in() -> None:
    assert one_refusal("nfdump-json", NFDUMP_NDJSON) == (
        "the time '2026-12-07T11:00:00.5' has no zone: give --tz"
    )


def test_nfdump_flow_records_and_other_nat_events_are_skipped() -> None:
    flow = '{"type":"FLOW","src4_addr":"10.0.0.1","dst4_addr":"192.0.2.1","proto":6}'
    session = NFDUMP_NDJSON.replace('"nat_event_id":16', '"nat_event_id":4')
    assert read("nfdump-json", flow, session, tz="UTC") == ([], [])


def test_nfdump_a_whole_array_on_one_line_and_a_record_cut_off_by_the_end_of_file() -> None:
    events, refused = read(
        "nfdump-json", f"[{NFDUMP_NDJSON},{NFDUMP_NDJSON}]", "{", '"a" : 1,', tz="UTC"
    )
    assert len(events) == 2 and [e.source.line for e in events] == [1, 1]
    assert [(r.line, r.reason) for r in refused] == [
        (2, "a JSON record that the file ends inside (no closing '}')")
    ]


def test_nfdump_a_lone_open_brace_does_not_swallow_the_records_after_it() -> None:
    events, refused = read("nfdump-json", "{", NFDUMP_NDJSON, NFDUMP_NDJSON, tz="UTC")
    assert [e.source.line for e in events] == [2, 3]
    assert [(r.line, r.reason) for r in refused] == [
        (1, "a '{' line not followed by the fields of a record")
    ]


# -- csv ---------------------------------------------------------------------------------------

CSV_HEADER = "time,event,subscriber,public_ip,port_first,port_last,protocol"


def test_csv_each_event_kind_inside_keys_and_protocols() -> None:
    lines = [
        CSV_HEADER,
        "2026-12-07T10:00:00Z,allocate,100.64.0.10,203.0.113.7,1024,1535,",
        "2026-12-07T10:30:00+01:00,interim,2001:DB8:100::/56,203.0.113.7,2048,2111,TCP",
        "2026-12-07T11:00:00.5Z,release,2001:db8::1/128,203.0.113.7,1024,1535,all",
        '"2026-12-07T11:00:00Z","release","100.64.0.11","203.0.113.8","1","2","udp"',
        "2026-12-07T11:00:00Z,release,100.64.0.12,203.0.113.9,3,4",
        "",
    ]
    events, refused = read("csv", *lines)
    assert refused == []
    assert [shape(event) for event in events] == [
        ev(
            ALLOCATE,
            us("2026-12-07T10:00:00+00:00"),
            "100.64.0.10",
            "203.0.113.7",
            1024,
            1535,
            None,
            1,
        ),
        ev(
            INTERIM,
            us("2026-12-07T09:30:00+00:00"),
            "2001:db8:100::/56",
            "203.0.113.7",
            2048,
            2111,
            "tcp",
            1,
        ),
        ev(
            RELEASE,
            us("2026-12-07T11:00:00.5+00:00"),
            "2001:db8::1",
            "203.0.113.7",
            1024,
            1535,
            None,
            1,
        ),
        (RELEASE, us("2026-12-07T11:00:00+00:00"), "100.64.0.11", "203.0.113.8", 1, 2, "udp", 1),
        (RELEASE, us("2026-12-07T11:00:00+00:00"), "100.64.0.12", "203.0.113.9", 3, 4, None, 1),
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            "time,event,inside,public,first,last",
            "a header that is not " + CSV_HEADER + " (protocol optional)",
        ),
        ("2026-12-07T10:00:00Z,allocate,100.64.0.10", "3 cells, not 6 or 7 (" + CSV_HEADER + ")"),
        (
            "2026-12-07T10:00:00Z,grab,100.64.0.10,203.0.113.7,1,2",
            "event 'grab' is not allocate, interim or release",
        ),
        (
            "2026-12-07T10:00:00Z,allocate,100.64.0.10,203.0.113.7,1,2,sctp",
            "protocol 'sctp' is not tcp, udp, icmp or empty (all)",
        ),
        (
            "2026-12-07T10:00:00Z,allocate,2001:db8::1/56,203.0.113.7,1,2",
            "subscriber '2001:db8::1/56' is neither an IP address nor an IPv6 prefix with no host "
            "bits",
        ),
        (
            "2026-12-07T10:00:00Z,allocate,10.0.0.0/24,203.0.113.7,1,2",
            "subscriber '10.0.0.0/24' is neither an IP address nor an IPv6 prefix with no host "
            "bits",
        ),
        (
            "2026-12-07T10:00:00Z,allocate,100.64.0.10,203.0.113.7,9,2",
            "port block 9-2 ends before it starts",
        ),
        (
            "2026-12-07T10:00:00Z,allocate,100.64.0.10,203.0.113.7,-1,2",
            "port_first '-1' is not a port (0..65535)",
        ),
        (
            "2026-12-07,allocate,100.64.0.10,203.0.113.7,1,2",
            "'2026-12-07' is not an ISO-8601 time (2026-12-07T10:00:00+01:00)",
        ),
        (
            "2026-02-30T10:00:00Z,allocate,100.64.0.10,203.0.113.7,1,2",
            "'2026-02-30T10:00:00Z' is not a time of the calendar",
        ),
        (
            "2026-12-07T10:00:00,allocate,100.64.0.10,203.0.113.7,1,2",
            "the time '2026-12-07T10:00:00' has no zone: give --tz",
        ),
    ],
)
def test_csv_malformed_lines_are_refused_with_the_reason(line: str, reason: str) -> None:
    assert one_refusal("csv", line) == reason


def test_csv_naive_times_in_the_zone_given_and_dst_ambiguity_refused() -> None:
    naive = "2026-12-07T10:00:00,allocate,100.64.0.10,203.0.113.7,1,2"
    events, _ = read("csv", naive, tz="America/New_York")
    assert [event.at_us for event in events] == [us("2026-12-07T10:00:00-05:00")]
    twice = "2026-11-01T01:30:00,allocate,100.64.0.10,203.0.113.7,1,2"  # clocks go back at 2:00
    assert one_refusal("csv", twice, tz="America/New_York") == (
        "local time 2026-11-01 01:30:00 does not exist or occurs twice in America/New_York "
        "(a daylight-saving change): the line cannot say which instant"
    )


# -- every format ------------------------------------------------------------------------------

GOOD = {
    "juniper-pba": JUNIPER_SD[0],
    "a10-cef": A10_SAMPLE[0],
    "vpp-syslog": VPP_NAT44,
    "conntrack": (
        "[1757235600.250000]\t    [NEW] tcp      6 120 SYN_SENT src=10.8.0.11 dst=10.0.1.20 "
        "sport=51234 dport=443 [UNREPLIED] src=10.0.1.20 dst=203.0.113.7 sport=443 dport=40001"
    ),
    "nfdump-json": NFDUMP_NDJSON,
    "csv": "2026-12-07T10:00:00Z,allocate,100.64.0.10,203.0.113.7,1024,1535,",
}


def test_every_format_is_tested_here() -> None:
    assert set(GOOD) == set(FORMATS) - {made_format.NAME}  # the tests' own, registered for them


@pytest.mark.parametrize("name", sorted(GOOD))
def test_crlf_stray_bytes_and_blank_lines_never_stop_a_parse(name: str) -> None:
    good = GOOD[name].encode()
    stray = good.replace(b"10", b"1\xff0", 1)
    lines = [good + b"\r\n", stray + b"\n", b"\r\n", b"\xc3\x28 broken\n", good]
    out = list(parse_lines(name, lines, file="x", options=ParseOptions(tz="UTC")))
    assert [(type(item).__name__, getattr(item, "line", None)) for item in out] == [
        ("LogEvent", None),
        ("Refused", 2),
        ("Refused", 4),
        ("LogEvent", None),
    ]
    events = [item for item in out if isinstance(item, LogEvent)]
    assert [event.source.line for event in events] == [1, 5]
    assert events[0].source.sha256 == events[1].source.sha256 == hashlib.sha256(good).hexdigest()
    assert shape(events[0]) == shape(events[1])
    refused = [item for item in out if isinstance(item, Refused)]
    assert refused[1].reason == "not UTF-8 text: byte 0xc3 at column 1"
    assert refused[0].reason.startswith("not UTF-8 text: byte 0xff at column ")


@pytest.mark.parametrize("name", sorted(GOOD))
def test_options_are_validated_before_any_line_is_read(name: str) -> None:
    with pytest.raises(InvalidInput, match="'Mars/Base' is not an IANA time zone name"):
        parse_lines(name, [], file="x", options=ParseOptions(tz="Mars/Base"))
    with pytest.raises(InvalidInput, match="year 0 is not a year"):
        parse_lines(name, [], file="x", options=ParseOptions(year=0))


def test_nfdump_exporter_must_be_iana_or_juniper() -> None:
    with pytest.raises(InvalidInput, match="exporter 'cisco' is not one of iana, juniper"):
        parse_lines("nfdump-json", [], file="x", options=ParseOptions(exporter="cisco"))
