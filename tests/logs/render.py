"""Lines of each log format written from events, as the datapaths write them: what the property
tests parse back, and what the parse benchmark reads.

Each `render_*` takes an `Event` (a LogEvent without its source line) and returns the line's
bytes, without a line ending. The shapes follow the sources named in tests/logs/test_formats.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from detnat.logs.events import EventKind, LogEvent

JUNIPER_NAMES = {
    EventKind.ALLOCATE: "ALLOC",
    EventKind.RELEASE: "RELEASE",
    EventKind.INTERIM: "INTERIM",
}
JUNIPER_VERBS = {
    EventKind.ALLOCATE: "allocates",
    EventKind.RELEASE: "releases",
    EventKind.INTERIM: "interim",
}
A10_IDS = {EventKind.ALLOCATE: "CGN 106", EventKind.RELEASE: "CGN 107"}
A10_NAMES = {EventKind.ALLOCATE: "Allocated", EventKind.RELEASE: "Freed"}
VPP_IDS = {EventKind.ALLOCATE: "APMADD", EventKind.RELEASE: "APMDEL"}
CONNTRACK_IDS = {
    EventKind.ALLOCATE: "NEW",
    EventKind.INTERIM: "UPDATE",
    EventKind.RELEASE: "DESTROY",
}
NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1, None: 0}
NAT_EVENT_IDS = {
    "iana": {EventKind.ALLOCATE: 16, EventKind.RELEASE: 17},
    "juniper": {EventKind.ALLOCATE: 14, EventKind.RELEASE: 15, EventKind.INTERIM: 16},
}


@dataclass(frozen=True)
class Event:
    """What a line says, without where it was read."""

    kind: EventKind
    at_us: int
    inside: str
    public: str
    port_first: int
    port_last: int
    protocol: str | None
    port_step: int = 1

    @classmethod
    def of(cls, event: LogEvent) -> Event:
        return cls(
            event.kind,
            event.at_us,
            event.inside,
            event.public,
            event.port_first,
            event.port_last,
            event.protocol,
            event.port_step,
        )


def utc(at_us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=at_us)


def render_juniper_structured(event: Event) -> bytes:
    name = JUNIPER_NAMES[event.kind]
    return (
        f'RT_NAT - RT_SRC_NAT_PBA_{name} [internal-ip="{event.inside}" block-used="1" '
        f'block-max-per-host="4" block-port-low="{event.port_first}" '
        f'block-port-high="{event.port_last}" reflexive-ip="{event.public}" '
        f'nat-pool-name="guest" logical-system-id="0" '
        f'epoch-time-64="{event.at_us // 1_000_000:x}"]'
    ).encode()


def render_juniper_text(event: Event, *, epoch: bool = True) -> bytes:
    """The MX BSD form; the header in UTC so that a test may read it with --tz UTC."""
    name = JUNIPER_NAMES[event.kind]
    when = utc(event.at_us)
    tail = f" epoch 0x{event.at_us // 1_000_000:08x}" if epoch else ""
    return (
        f"<14>{when:%b} {when.day:2d} {when:%H:%M:%S} BNG-01 RT_NAT: RT_SRC_NAT_PBA_{name}: "
        f"Subscriber {event.inside} used/maximum [1/15] blocks, {JUNIPER_VERBS[event.kind]} "
        f"port block [{event.port_first}-{event.port_last}] from {event.public} in source pool "
        f"POOL lsys_id: 0{tail}"
    ).encode()


def render_a10(event: Event) -> bytes:
    when = utc(event.at_us).isoformat(timespec="microseconds")
    protocol = (event.protocol or "").upper()
    return (
        f"{when} 10.254.254.57 cgn0  CEF:0|A10|CFW|6.0.0-P1|{A10_IDS[event.kind]}|"
        f"Nat Port Batch Pool {A10_NAMES[event.kind]}|5|proto={protocol} src={event.inside} "
        f"sourceTranslatedAddress={event.public} sourceTranslatedPort={event.port_first} "
        f"cn3={event.port_last} cn3Label=Last Nat Port"
    ).encode()


def render_vpp(event: Event) -> bytes:
    when = utc(event.at_us).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if ":" in event.inside:
        key = f'SV6ENC="{event.inside}" IATYP="IPv4" ISADDR="192.168.1.2"'
    else:
        key = f'SVLAN="0" IATYP="IPv4" ISADDR="{event.inside}"'
    return (
        f'<134>1 {when} 192.0.2.1 NAT 4242 {VPP_IDS[event.kind]} [napmap SSUBIX="0" {key} '
        f'ISPORT="1234" XATYP="IPv4" XSADDR="{event.public}" XSPORT="{event.port_first}" '
        f'PROTO="{NUMBERS[event.protocol]}"]'
    ).encode()


def render_conntrack(event: Event) -> bytes:
    seconds, micros = divmod(event.at_us, 1_000_000)
    name = CONNTRACK_IDS[event.kind]
    protocol = event.protocol or "tcp"
    if protocol == "icmp":
        original = f"src={event.inside} dst=192.0.2.80 type=8 code=0 id=777"
        reply = f"src=192.0.2.80 dst={event.public} type=0 code=0 id={event.port_first}"
    else:
        original = f"src={event.inside} dst=192.0.2.80 sport=51234 dport=443"
        reply = f"src=192.0.2.80 dst={event.public} sport=443 dport={event.port_first}"
    number = NUMBERS[protocol]
    timeout = "" if event.kind is EventKind.RELEASE else " 120"
    return (
        f"[{seconds}.{micros:06d}]\t{'[' + name + ']':>12} {protocol:<8} {number}{timeout} "
        f"{original} [UNREPLIED] {reply}"
    ).encode()


def nfdump_record(event: Event, *, exporter: str = "iana", tz: str = "UTC") -> dict[str, object]:
    local = utc(event.at_us).astimezone(ZoneInfo(tz))
    size = (event.port_last - event.port_first) // event.port_step + 1
    inside_key = "src6_addr" if ":" in event.inside else "src4_addr"
    return {
        "type": "EVENT",
        "export_sysid": 1,
        "proto": NUMBERS[event.protocol],
        inside_key: event.inside,
        "nat_event_id": NAT_EVENT_IDS[exporter][event.kind],
        "nat_event": "Port block event",
        "nat_pool_id": 0,
        # nfdump's "%s.%llu": milliseconds unpadded
        "t_event": f"{local:%Y-%m-%dT%H:%M:%S}.{local.microsecond // 1000}",
        "src4_xlt_ip": event.public,
        "pblock_start": event.port_first,
        "pblock_end": event.port_last,
        "pblock_step": event.port_step,
        "pblock_size": size,
    }


def render_nfdump(event: Event, *, exporter: str = "iana", tz: str = "UTC") -> bytes:
    """One ndjson line (nfdump -o ndjson: numbers as JSON numbers, no spaces)."""
    return json.dumps(
        nfdump_record(event, exporter=exporter, tz=tz), separators=(",", ":")
    ).encode()


def render_nfdump_pretty(events: list[Event], *, exporter: str = "iana") -> list[bytes]:
    """The lines of nfdump -o json: an array, one field a line, numbers as strings."""
    lines: list[bytes] = [b"["]
    for index, event in enumerate(events):
        items = list(nfdump_record(event, exporter=exporter).items())
        lines.append(b"{")
        for n, (key, value) in enumerate(items):
            shown = str(value) if key == "export_sysid" else json.dumps(str(value))
            comma = "," if n < len(items) - 1 else ""
            lines.append(f'\t"{key}" : {shown}{comma}'.encode())
        lines.append(b"}," if index < len(events) - 1 else b"}")
    lines.append(b"]")
    return lines


def render_csv(event: Event, *, offset_minutes: int = 0) -> bytes:
    zone = timezone(timedelta(minutes=offset_minutes))
    when = utc(event.at_us).astimezone(zone).isoformat(timespec="microseconds")
    return (
        f"{when},{event.kind.value},{event.inside},{event.public},{event.port_first},"
        f"{event.port_last},{event.protocol or ''}"
    ).encode()
