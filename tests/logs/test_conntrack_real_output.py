"""The ``conntrack`` parser on lines the real tool printed, in each of its output options.

Source of every line: conntrack-tools v1.4.7 (``conntrack -E -o timestamp[,extended][,id]
[,ktimestamp]``) on Linux 6.18, in a network namespace whose nftables chain did
``snat ip to 10.9.0.3:3000-3010`` (or, for the last test, ``snat ip to 10.9.0.1:3000-3010``, the
address the flow already had), with ``net.netfilter.nf_conntrack_acct=1`` and
``nf_conntrack_timestamp=1``; the ICMP lines are from
``tests/datapath/test_nftables_overflow_netns`` (``snat ... map`` to 192.0.2.1). ``[DESTROY]``
lines carry what the tool adds to a flow it ends: counters, ``delta-time``, the kernel's
``[start=...] [stop=...]``, ``id=``, and ``[USERSPACE] portid=... progname=conntrack`` when
``conntrack -F`` ended it.
"""

from __future__ import annotations

import pytest

from detnat.logs.events import EventKind, LogEvent, Refused
from detnat.logs.formats import ParseOptions, parse_lines

ALLOCATE, INTERIM, RELEASE = EventKind.ALLOCATE, EventKind.INTERIM, EventKind.RELEASE


def _read(*lines: str) -> tuple[list[tuple[object, ...]], list[Refused]]:
    out = list(
        parse_lines("conntrack", [x.encode() for x in lines], file="ct.log", options=ParseOptions())
    )
    return (
        [
            (e.kind, e.at_us, e.inside, e.public, e.port_first, e.port_last, e.protocol)
            for e in out
            if isinstance(e, LogEvent)
        ],
        [r for r in out if isinstance(r, Refused)],
    )


@pytest.mark.parametrize(
    ("line", "event"),
    [
        (  # -o timestamp,extended,id
            "[1796644758.545798]\t    [NEW] ipv4     2 udp      17 30 src=10.9.0.1 dst=10.9.0.2 "
            "sport=5555 dport=9 [UNREPLIED] src=10.9.0.2 dst=10.9.0.3 sport=9 dport=3001 "
            "id=3382361159",
            (ALLOCATE, 1796644758545798, "10.9.0.1", "10.9.0.3", 3001, 3001, "udp"),
        ),
        (  # -o timestamp,extended,id,ktimestamp, accounting on
            "[1796644732.636580]\t[DESTROY] ipv4     2 tcp      6 120 CLOSE src=10.9.0.1 "
            "dst=10.9.0.2 sport=5556 dport=80 packets=1 bytes=60 [UNREPLIED] src=10.9.0.2 "
            "dst=10.9.0.3 sport=80 dport=3008 packets=1 bytes=40 delta-time=0 "
            "[start=Mon Dec  7 11:58:52 2026] [stop=Mon Dec  7 11:58:52 2026] id=2478662782",
            (RELEASE, 1796644732636580, "10.9.0.1", "10.9.0.3", 3008, 3008, "tcp"),
        ),
        (  # the same, ended by conntrack -F
            "[1796644732.960214]\t[DESTROY] ipv4     2 udp      17 29 src=10.9.0.1 dst=10.9.0.2 "
            "sport=5555 dport=9 packets=1 bytes=29 [UNREPLIED] src=10.9.0.2 dst=10.9.0.3 sport=9 "
            "dport=3000 packets=0 bytes=0 delta-time=0 [start=Mon Dec  7 11:58:52 2026] "
            "[stop=Mon Dec  7 11:58:52 2026] id=3192646475 [USERSPACE] portid=21996 "
            "progname=conntrack",
            (RELEASE, 1796644732960214, "10.9.0.1", "10.9.0.3", 3000, 3000, "udp"),
        ),
        (  # -o timestamp,id
            "[1796644723.145033]\t[DESTROY] tcp      6 120 CLOSE src=10.9.0.1 dst=10.9.0.2 "
            "sport=5556 dport=80 packets=1 bytes=60 [UNREPLIED] src=10.9.0.2 dst=10.9.0.3 "
            "sport=80 dport=3000 packets=1 bytes=40 delta-time=0 id=3512308383",
            (RELEASE, 1796644723145033, "10.9.0.1", "10.9.0.3", 3000, 3000, "tcp"),
        ),
        (  # -o timestamp: icmp, the reply's id is the identifier the outside saw
            "[1796644538.909304]\t [UPDATE] icmp     1 30 src=10.0.0.5 dst=203.0.113.1 type=8 "
            "code=0 id=28675 src=203.0.113.1 dst=192.0.2.1 type=0 code=0 id=2091",
            (INTERIM, 1796644538909304, "10.0.0.5", "192.0.2.1", 2091, 2091, "icmp"),
        ),
        (
            "[1796644538.929568]\t[DESTROY] icmp     1 29 src=10.0.0.5 dst=203.0.113.1 type=8 "
            "code=0 id=28675 src=203.0.113.1 dst=192.0.2.1 type=0 code=0 id=2091 [USERSPACE] "
            "portid=17492",
            (RELEASE, 1796644538929568, "10.0.0.5", "192.0.2.1", 2091, 2091, "icmp"),
        ),
    ],
)
def test_real_lines_of_each_output_option_read_as_the_port_the_outside_saw(
    line: str, event: tuple[object, ...]
) -> None:
    assert _read(line) == ([event], [])


def test_the_tools_own_messages_say_nothing() -> None:
    assert _read(
        "nfct_labelmap_new: No such file or directory",
        "conntrack v1.4.7 (conntrack-tools): 4 flow events have been shown.",
    ) == ([], [])


def test_a_translation_of_the_port_alone_is_a_port_event() -> None:
    """``snat ip to 10.9.0.1:3000-3010`` of a flow from 10.9.0.1:5556: the outside sees
    10.9.0.1:3004, which only this line explains (the same happens when netfilter remaps a
    clashing source port, or masquerades the NAT's own traffic)."""
    line = (
        "[1796644717.485266]\t    [NEW] tcp      6 120 SYN_SENT src=10.9.0.1 dst=10.9.0.2 "
        "sport=5556 dport=80 [UNREPLIED] src=10.9.0.2 dst=10.9.0.1 sport=80 dport=3004"
    )
    assert _read(line) == (
        [(ALLOCATE, 1796644717485266, "10.9.0.1", "10.9.0.1", 3004, 3004, "tcp")],
        [],
    )


@pytest.mark.parametrize(
    "line",
    [
        "[1796644717.485266]\t    [NEW] tcp      6 120 SYN_SENT src=10.9.0.1 dst=10.9.0.2 "
        "sport=5556 dport=80 [UNREPLIED] src=10.9.0.2 dst=10.9.0.1 sport=80 dport=5556",
        "[1796644717.485266]\t [DESTROY] icmp     1 src=10.9.0.1 dst=10.9.0.2 type=8 code=0 id=7 "
        "src=10.9.0.2 dst=10.9.0.1 type=0 code=0 id=7",
        # accounting before the reply: the general path
        "[1796644717.485266]\t [DESTROY] udp      17 src=10.9.0.1 dst=10.9.0.2 sport=53 dport=53 "
        "packets=1 bytes=60 src=10.9.0.2 dst=10.9.0.1 sport=53 dport=53 packets=1 bytes=80",
    ],
)
def test_a_flow_with_address_and_port_unchanged_is_not_an_event(line: str) -> None:
    assert _read(line) == ([], [])
