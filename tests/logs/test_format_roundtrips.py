"""Property: events written as each format writes them read back as the same events, on the
lines they were written to, among lines of other traffic that say nothing."""

from __future__ import annotations

import ipaddress
import itertools
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from detnat.logs.events import EventKind, LogEvent, Refused
from detnat.logs.formats import ParseOptions, parse_lines
from tests.logs.render import (
    Event,
    render_a10,
    render_conntrack,
    render_csv,
    render_juniper_structured,
    render_juniper_text,
    render_nfdump,
    render_nfdump_pretty,
    render_vpp,
    utc,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
Y2000, Y2100 = 946_684_800_000_000, 4_102_444_800_000_000
ALL_KINDS = list(EventKind)
NOISE = b"<14>Dec  7 10:00:00 host sshd[42]: Accepted publickey for ops from 192.0.2.1"

ipv4 = st.integers(1, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
ipv6 = st.integers(1, 2**128 - 1).map(lambda n: ipaddress.IPv6Address(n).compressed)
ipv6_prefix = st.builds(
    lambda n, length: ipaddress.IPv6Network((n >> (128 - length) << (128 - length), length)),
    st.integers(0, 2**128 - 1),
    st.integers(1, 127),
).map(lambda network: network.compressed)
ports = st.tuples(st.integers(0, 65535), st.integers(0, 65535)).map(sorted)
protocols = st.sampled_from(["tcp", "udp", "icmp"])
no_protocol: st.SearchStrategy[str | None] = st.none()


@st.composite
def events(
    draw: st.DrawFn,
    *,
    kinds: list[EventKind] = ALL_KINDS,
    insides: st.SearchStrategy[str] = ipv4,
    protocol: st.SearchStrategy[str | None] = no_protocol,
    single_port: bool = False,
    resolution_us: int = 1,
    strides: bool = False,
) -> Event:
    first, last = draw(ports)
    step = 1
    if single_port:
        last = first
    elif strides:
        step = draw(st.integers(1, 64))
        last = first + draw(st.integers(0, (65535 - first) // step)) * step
    at = draw(st.integers(Y2000 // resolution_us, Y2100 // resolution_us)) * resolution_us
    return Event(
        draw(st.sampled_from(kinds)),
        at,
        draw(insides),
        draw(ipv4),
        first,
        last,
        draw(protocol),
        step,
    )


def roundtrip(
    name: str,
    written: list[Event],
    lines: list[bytes],
    *,
    noise_every: int,
    crlf: bool,
    options: ParseOptions | None = None,
) -> None:
    """Interleave noise, parse, and check every event comes back on the line it was written to."""
    out: list[bytes] = []
    expected_lines: list[int] = []
    for index, line in enumerate(lines):
        if noise_every and index % noise_every == 0:
            out.append(NOISE + b"\n")
        out.append(line + (b"\r\n" if crlf else b"\n"))
        expected_lines.append(len(out))
    read = list(parse_lines(name, out, file="gen.log", options=options))
    assert [item for item in read if isinstance(item, Refused)] == []
    parsed = [item for item in read if isinstance(item, LogEvent)]
    assert [Event.of(event) for event in parsed] == written
    assert [event.source.line for event in parsed] == expected_lines


@SETTINGS
@given(
    st.lists(
        st.tuples(
            events(insides=ipv4 | ipv6, resolution_us=1_000_000), st.booleans(), st.booleans()
        ),
        max_size=12,
    ),
    st.integers(0, 3),
    st.booleans(),
)
def test_juniper_pba_round_trip(
    drawn: list[tuple[Event, bool, bool]], noise_every: int, crlf: bool
) -> None:
    written = [event for event, _, _ in drawn]
    lines = [
        render_juniper_structured(event) if structured else render_juniper_text(event)
        for event, structured, _ in drawn
    ]
    roundtrip("juniper-pba", written, lines, noise_every=noise_every, crlf=crlf)


@SETTINGS
@given(st.lists(events(resolution_us=1_000_000), max_size=8), st.booleans())
def test_juniper_pba_without_epoch_round_trip_through_the_header(
    written: list[Event], crlf: bool
) -> None:
    years = {utc(event.at_us).year for event in written}
    assume(len(years) <= 1)
    # A file is written in order, and a year-less time's year turns where the months fall back
    # by more than six (Clock.year_of): lines in order with no silence of over six months.
    written = sorted(written, key=lambda event: event.at_us)
    months = [utc(event.at_us).month for event in written]
    assume(all(b - a <= 6 for a, b in itertools.pairwise(months)))
    lines = [render_juniper_text(event, epoch=False) for event in written]
    options = ParseOptions(year=years.pop() if years else 2026, tz="UTC")
    roundtrip("juniper-pba", written, lines, noise_every=2, crlf=crlf, options=options)


@SETTINGS
@given(
    st.lists(
        events(
            kinds=[EventKind.ALLOCATE, EventKind.RELEASE], insides=ipv4 | ipv6, protocol=protocols
        ),
        max_size=12,
    ),
    st.integers(0, 3),
    st.booleans(),
)
def test_a10_cef_round_trip(written: list[Event], noise_every: int, crlf: bool) -> None:
    lines = [render_a10(event) for event in written]
    roundtrip("a10-cef", written, lines, noise_every=noise_every, crlf=crlf)


@SETTINGS
@given(
    st.lists(
        events(
            kinds=[EventKind.ALLOCATE, EventKind.RELEASE],
            insides=ipv4 | ipv6,
            protocol=protocols,
            single_port=True,
        ),
        max_size=12,
    ),
    st.integers(0, 3),
    st.booleans(),
)
def test_vpp_syslog_round_trip(written: list[Event], noise_every: int, crlf: bool) -> None:
    lines = [render_vpp(event) for event in written]
    roundtrip("vpp-syslog", written, lines, noise_every=noise_every, crlf=crlf)


@SETTINGS
@given(
    st.lists(events(protocol=protocols, single_port=True), max_size=12),
    st.integers(0, 3),
    st.booleans(),
)
def test_conntrack_round_trip(written: list[Event], noise_every: int, crlf: bool) -> None:
    assume(all(event.inside != event.public for event in written))
    lines = [render_conntrack(event) for event in written]
    roundtrip("conntrack", written, lines, noise_every=noise_every, crlf=crlf)


def unambiguous(at_us: int, tz: str) -> bool:
    local = utc(at_us).astimezone(ZoneInfo(tz)).replace(tzinfo=None)
    zone = ZoneInfo(tz)
    return (
        local.replace(tzinfo=zone, fold=0).utcoffset()
        == local.replace(tzinfo=zone, fold=1).utcoffset()
    )


@SETTINGS
@given(
    st.sampled_from(["iana", "juniper"]),
    st.sampled_from(["UTC", "Europe/Berlin", "Asia/Kolkata", "America/New_York"]),
    st.lists(
        events(
            insides=ipv4 | ipv6,
            protocol=st.none() | protocols,
            resolution_us=1000,
            strides=True,
        ),
        max_size=10,
    ),
    st.booleans(),
)
def test_nfdump_json_round_trip_in_both_of_its_shapes(
    exporter: str, tz: str, written: list[Event], crlf: bool
) -> None:
    if exporter == "iana":
        written = [event for event in written if event.kind is not EventKind.INTERIM]
    assume(all(unambiguous(event.at_us, tz) for event in written))
    options = ParseOptions(tz=tz, exporter=exporter)
    lines = [render_nfdump(event, exporter=exporter, tz=tz) for event in written]
    roundtrip("nfdump-json", written, lines, noise_every=0, crlf=crlf, options=options)
    if tz == "UTC":
        pretty = render_nfdump_pretty(written, exporter=exporter)
        read = list(parse_lines("nfdump-json", pretty, file="gen.json", options=options))
        assert [Event.of(item) for item in read if isinstance(item, LogEvent)] == written
        assert len(read) == len(written)


@SETTINGS
@given(
    st.lists(
        st.tuples(
            events(insides=ipv4 | ipv6 | ipv6_prefix, protocol=st.none() | protocols),
            st.integers(-48, 56).map(lambda quarters: quarters * 15),
        ),
        max_size=12,
    ),
    st.booleans(),
    st.booleans(),
)
def test_csv_round_trip_with_any_offset(
    drawn: list[tuple[Event, int]], header: bool, crlf: bool
) -> None:
    written = [event for event, _ in drawn]
    lines = [render_csv(event, offset_minutes=offset) for event, offset in drawn]
    if header:
        lines.insert(0, b"time,event,subscriber,public_ip,port_first,port_last,protocol")
    read = list(parse_lines("csv", [line + b"\r\n" if crlf else line for line in lines], file="x"))
    assert [item for item in read if isinstance(item, Refused)] == []
    assert [Event.of(item) for item in read if isinstance(item, LogEvent)] == written
    assert [item.source.line for item in read if isinstance(item, LogEvent)] == [
        number + 1 + header for number in range(len(written))
    ]


OPTIONS = ParseOptions(year=2000, tz="UTC")
GOOD_LINES = {
    "juniper-pba": render_juniper_text(
        Event(EventKind.ALLOCATE, Y2000, "10.0.0.1", "192.0.2.1", 1024, 1279, None)
    ),
    "a10-cef": render_a10(
        Event(EventKind.ALLOCATE, Y2000, "10.0.0.1", "192.0.2.1", 1024, 1279, "udp")
    ),
    "vpp-syslog": render_vpp(
        Event(EventKind.RELEASE, Y2000, "2001:db8::1", "192.0.2.1", 1024, 1024, "tcp")
    ),
    "conntrack": render_conntrack(
        Event(EventKind.INTERIM, Y2000, "10.0.0.1", "192.0.2.1", 1024, 1024, "icmp")
    ),
    "nfdump-json": render_nfdump(
        Event(EventKind.ALLOCATE, Y2000, "10.0.0.1", "192.0.2.1", 1024, 1279, None)
    ),
    "csv": render_csv(
        Event(EventKind.ALLOCATE, Y2000, "2001:db8::/56", "192.0.2.1", 1024, 1279, None)
    ),
}


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(GOOD_LINES)),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 3), st.binary(max_size=3)), max_size=4),
    st.booleans(),
)
def test_a_damaged_line_is_read_refused_or_skipped_and_never_stops_the_parse(
    name: str, edits: list[tuple[int, int, bytes]], tail: bool
) -> None:
    line = GOOD_LINES[name]
    for at, cut, insert in edits:  # splice: cut some bytes at `at`, put others in
        at = at % (len(line) + 1)
        line = line[:at] + insert + line[at + cut :]
    lines = [line, GOOD_LINES[name]] if tail else [line]
    read = list(parse_lines(name, lines, file="x", options=OPTIONS))
    assert all(isinstance(item, LogEvent | Refused) for item in read)
    assert all(item.line == 1 for item in read if isinstance(item, Refused))
    if tail:  # the good line after it is read whatever became of the first
        assert isinstance(read[-1], LogEvent) and read[-1].source.line == 2
        alone = list(parse_lines(name, [GOOD_LINES[name]], file="x", options=OPTIONS))
        assert isinstance(alone[0], LogEvent) and Event.of(read[-1]) == Event.of(alone[0])
