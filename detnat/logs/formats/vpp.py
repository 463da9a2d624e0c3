"""`vpp-syslog`: VPP NAT44-ED / DS-Lite address-and-port mapping events in RFC 5424 syslog, MSGID
`APMADD` (mapping added) and `APMDEL` (deleted), SD-ID `napmap`::

    <134>1 2026-12-07T10:00:00.123456Z 192.0.2.1 NAT 4242 APMADD [napmap SSUBIX="0" SVLAN="0"
    IATYP="IPv4" ISADDR="10.0.0.1" ISPORT="1234" XATYP="IPv4" XSADDR="203.0.113.1" XSPORT="1025"
    PROTO="6"]

One mapping is one port: `XSPORT` on `XSADDR` (the public address), for `PROTO` (6 tcp, 17 udp,
1 icmp, where the port is the ICMP identifier). The inside key is `SV6ENC`, the B4's IPv6 address,
when the line has it (DS-Lite: many B4s share the same private `ISADDR`), else `ISADDR`. VPP's
session events (`SADD` / `SDEL`, SD-ID `nsess`) and anything else are skipped.

Time: the RFC 5424 timestamp, which carries its offset (VPP writes UTC, ``…Z``). A timestamp
without an offset is read in `--tz`; the nil time ``-`` is refused.

>>> from detnat.logs.formats import ParseOptions
>>> line = (b'<134>1 2026-12-07T10:00:00.123456Z 192.0.2.1 NAT 4242 APMADD [napmap SSUBIX="0" '
...         b'SV6ENC="2001:db8:0:0::1" IATYP="IPv4" ISADDR="192.168.1.2" ISPORT="1234" '
...         b'XATYP="IPv4" XSADDR="203.0.113.1" XSPORT="1025" PROTO="17"]')
>>> [event] = parse([line], "vpp.log", ParseOptions())
>>> event.kind.value, event.inside, event.public, event.port_first, event.protocol
('allocate', '2001:db8::1', '203.0.113.1', 1025, 'udp')
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from detnat.logs.events import EventKind, LineRef, LogEvent, Refused
from detnat.logs.formats import ParseOptions
from detnat.logs.formats._common import (
    PROTOCOL_NUMBERS,
    Refuse,
    drive,
    inside,
    only_header,
    port,
    public,
)

_KINDS = {"APMADD": EventKind.ALLOCATE, "APMDEL": EventKind.RELEASE}
_SD_PARAM = re.compile(r'([A-Z0-9]+)="([^"\\]*(?:\\.[^"\\]*)*)"')


def parse(lines: Iterable[bytes], file: str, options: ParseOptions) -> Iterator[LogEvent | Refused]:
    """Every APMADD / APMDEL event of `lines` (VPP's NAT syslog); other lines are skipped."""
    clock = options.clock_now()

    def read(text: str, number: int, raw: bytes) -> LogEvent | None:
        if "APM" not in text:
            return None
        msgid = "APMADD"
        at = text.find(" APMADD [napmap ")
        if at < 0:
            msgid = "APMDEL"
            at = text.find(" APMDEL [napmap ")
        close = text.find("]", at)
        head = text[:at].split()
        if at < 0 or close < 0 or len(head) < 4:
            if " APMADD " in text or " APMDEL " in text:
                raise Refuse("an APMADD/APMDEL line without the RFC 5424 header and [napmap ...]")
            return None
        if not only_header(text, at, 3):  # TIMESTAMP then HOSTNAME APP-NAME PROCID only
            raise Refuse(
                f"{msgid} is not where the line's RFC 5424 header ends: another program's text "
                "quoting it is not the NAT's word"
            )
        params = dict(_SD_PARAM.findall(text, at + 16, close))
        missing = [key for key in ("XSADDR", "XSPORT", "PROTO") if key not in params]
        if "SV6ENC" not in params and "ISADDR" not in params:
            missing.insert(0, "ISADDR")
        if missing:
            raise Refuse(f"{msgid} without {', '.join(missing)}")
        stamp = head[-4]  # TIMESTAMP HOSTNAME APP-NAME PROCID
        if stamp == "-":
            raise Refuse("no time: the RFC 5424 timestamp is '-' (nil)")
        key = params.get("SV6ENC")
        the_port = port(params["XSPORT"], "XSPORT")
        return LogEvent(
            _KINDS[msgid],
            clock.iso(stamp),
            _b4(key) if key is not None else inside(params["ISADDR"], "ISADDR"),
            public(params["XSADDR"], "XSADDR"),
            the_port,
            the_port,
            _protocol(params["PROTO"]),
            LineRef.of(file, number, raw),
        )

    return drive(lines, file, read)


def _protocol(text: str) -> str:
    name = PROTOCOL_NUMBERS.get(int(text)) if text.isascii() and text.isdigit() else None
    if name is None:
        raise Refuse(f"PROTO {text!r} is not 1 (icmp), 6 (tcp) or 17 (udp)")
    return name


def _b4(text: str) -> str:
    found = inside(text, "SV6ENC")
    if ":" not in found:
        raise Refuse(f"SV6ENC {text!r} is not an IPv6 address (the B4's)")
    return found
