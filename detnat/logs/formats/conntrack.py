"""`conntrack`: the Linux connection tracker's events, as ``conntrack -E -o timestamp`` prints
them, read for the flows a source NAT (nftables / iptables SNAT or masquerade) translated::

    [1765101600.250000]	    [NEW] tcp      6 120 SYN_SENT src=10.8.0.11 dst=192.0.2.80
    sport=51234 dport=443 [UNREPLIED] src=192.0.2.80 dst=203.0.113.7 sport=443 dport=40001

The first tuple is the flow as the subscriber sent it, the second the reply as it comes back from
outside. A source NAT shows in the reply: its `dst` / `dport` are the public address and port
(``203.0.113.7:40001``), where without NAT they would be the original `src` / `sport` again. So:

- `[NEW]` is an allocation, `[UPDATE]` an interim (the mapping is still held), `[DESTROY]` a
  release, each of one port, on the reply's `dst` / `dport`, for the original `src`;
- a flow whose reply `dst` and `dport` (icmp: `id`) are its original `src` and `sport` (`id`) is
  not translated and is skipped silently (a SNAT that keeps the address and rewrites the port is
  an event), as
  are flows of protocols other than tcp, udp and icmp (they hold no port), and conntrack's own
  messages;
- icmp: the "port" is the ICMP query identifier, the reply's `id` (the NAT rewrites identifiers
  as it rewrites ports, and the two share the mapping table), stored under protocol `icmp`;
- ``-o extended`` lines (``ipv4 2 tcp 6 …``) read the same.

Time: the ``[seconds.micros]`` prefix of ``-o timestamp`` (UTC); a line without it is refused
(run conntrack with ``-o timestamp``).

>>> from detnat.logs.formats import ParseOptions
>>> line = (b"[1765101600.250000]\\t    [NEW] tcp      6 120 SYN_SENT src=10.8.0.11 dst=192.0.2.80 "
...         b"sport=51234 dport=443 [UNREPLIED] src=192.0.2.80 dst=203.0.113.7 sport=443 "
...         b"dport=40001")
>>> [event] = parse([line], "ct.log", ParseOptions())
>>> event.kind.value, event.at_us, event.inside, event.public, event.port_first, event.protocol
('allocate', 1765101600250000, '10.8.0.11', '203.0.113.7', 40001, 'tcp')
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from detnat.logs.events import EventKind, LineRef, LogEvent, Refused
from detnat.logs.formats import ParseOptions
from detnat.logs.formats._common import (
    Refuse,
    drive,
    epoch_seconds,
    fraction,
    inside,
    port,
    public,
)

_KINDS = {"NEW": EventKind.ALLOCATE, "UPDATE": EventKind.INTERIM, "DESTROY": EventKind.RELEASE}
_PORTED = {"tcp": "tcp", "udp": "udp", "icmp": "icmp"}
_EVENT = re.compile(
    r"\s*(?:\[(?P<sec>\d+)(?:\.(?P<frac>\d{1,6}))?\]\s+)?\[(?P<kind>NEW|UPDATE|DESTROY)\]\s+"
    r"(?:ipv[46]\s+\d+\s+)?(?P<proto>[a-z0-9-]+)\s+\d+\s"
)
# The common layout in one anchored pattern (no accounting, no flags before the reply); any other
# line takes the general path below.
_FAST = re.compile(
    r"\[(\d+)\.(\d{6})\]\s+\[(NEW|UPDATE|DESTROY)\]\s+(?:ipv4\s+2\s+)?(tcp|udp|icmp)\s+\d+ "
    r"(?:\d+ )?(?:[A-Z_]+ )?src=(\S+) dst=\S+ (?:sport=(\d+) dport=\d+|type=\d+ code=\d+ id=(\d+)) "
    r"(?:\[UNREPLIED\] )?src=\S+ dst=(\S+) (?:sport=\d+ dport=(\d+)|type=\d+ code=\d+ id=(\d+))",
    re.ASCII,
)
_TUPLE_PORTS = re.compile(
    r"\bsrc=(?P<src>\S+) dst=(?P<dst>\S+) (?:sport=(?P<sport>\d+) dport=(?P<dport>\d+)"
    r"|type=\d+ code=\d+ id=(?P<id>\d+))"
)


def parse(lines: Iterable[bytes], file: str, options: ParseOptions) -> Iterator[LogEvent | Refused]:
    """Every SNAT port event of `lines` (``conntrack -E -o timestamp`` output)."""
    options.clock_now()  # the lines carry UTC epochs; options still checked

    def read(text: str, number: int, raw: bytes) -> LogEvent | None:
        fast = _FAST.match(text)
        if fast is not None:
            sec, micros, kind, protocol, src, sport, sent_id, reply_dst, reply_dport, reply_id = (
                fast.groups()
            )
            if reply_dst == src and (reply_dport or reply_id) == (sport or sent_id):
                return None  # neither the address nor the port was translated
            the_port = int(reply_dport or reply_id)
            if the_port > 65535:
                raise Refuse(f"the reply's port '{the_port}' is not a port (0..65535)")
            return LogEvent(
                _KINDS[kind],
                epoch_seconds(int(sec)) + int(micros),
                inside(src, "the original src"),
                public(reply_dst, "the reply's dst"),
                the_port,
                the_port,
                protocol,
                LineRef.of(file, number, raw),
            )
        head = _EVENT.match(text)
        if head is None:
            return None
        protocol = _PORTED.get(head["proto"])
        if protocol is None:
            return None
        tuples = _TUPLE_PORTS.findall(text, head.end())
        if len(tuples) != 2:
            raise Refuse(
                f"a {head['proto']} flow without its two tuples (src= dst= and ports or icmp id)"
            )
        (src, _, sport, _, sent_id), (_, reply_dst, _, reply_dport, reply_id) = tuples
        if reply_dst == src and (reply_dport or reply_id) == (sport or sent_id):
            return None  # neither the address nor the port was translated
        if head["sec"] is None:
            raise Refuse(
                "no time: the line has no [seconds.micros] prefix (conntrack -o timestamp)"
            )
        the_port = port(reply_id if protocol == "icmp" else reply_dport, "the reply's port")
        return LogEvent(
            _KINDS[head["kind"]],
            epoch_seconds(int(head["sec"])) + fraction(head["frac"]),
            inside(src, "the original src"),
            public(reply_dst, "the reply's dst"),
            the_port,
            the_port,
            protocol,
            LineRef.of(file, number, raw),
        )

    return drive(lines, file, read)
