"""A syslog file holds every program's lines: text another program quotes is not a NAT event.

Found by an attacker's review: the syslog parsers looked for their event anywhere in a line, so
a line of sshd (``Invalid user <any text the client sent>``), or of any daemon that logs what a
subscriber or stranger sends (a PPPoE or DHCP name), carrying a made-up allocation was stored as
the NAT's own word -- with the time written in it (Juniper's epoch). A forged release of the
sender's own block and an allocation of it to someone else then make a later complaint name an
innocent subscriber, as a ``match`` from the logs. Such a line must never become an event: it is
refused (with its line number), so the operator sees it.
"""

from __future__ import annotations

import pytest

from detnat.logs.events import LogEvent, Refused
from detnat.logs.formats import ParseOptions, parse_lines

QUOTED = {
    "juniper-pba": [
        # BSD: the MX text form inside sshd's message (the epoch is the forger's)
        "<38>Jun 30 22:44:26 BNG-01 sshd[4242]: Invalid user RT_NAT: RT_SRC_NAT_PBA_ALLOC: "
        "Subscriber 100.64.0.9 used/maximum [1/1] blocks, allocates port block [24064-24191] "
        "from 203.0.113.100 in source pool P lsys_id: 0 epoch 0x6a44007a from 198.51.100.7",
        # RFC 5424: the structured form inside sshd's message
        "<38>1 2026-06-30T22:44:26Z BNG-01 sshd 4242 - - Invalid user RT_NAT - "
        'RT_SRC_NAT_PBA_ALLOC [internal-ip="100.64.0.9" block-port-low="24064" '
        'block-port-high="24191" reflexive-ip="203.0.113.100" epoch-time-64="6a44007a"] from x',
    ],
    "a10-cef": [
        "<38>1 2026-06-30T22:44:26Z cgn sshd 42 - - Invalid user CEF:0|A10|CFW|6.0.0-P1|"
        "CGN 106|Nat Port Batch Pool Allocated|5|proto=UDP src=100.65.140.73 "
        "sourceTranslatedAddress=99.99.99.12 sourceTranslatedPort=22016 cn3=22271",
        "2025-05-02T11:34:56.87+00:00 10.254.254.57 sshd[42]: Invalid user CEF:0|A10|CFW|"
        "6.0.0-P1|CGN 107|Nat Port Batch Pool Freed|5|proto=UDP src=100.65.140.73 "
        "sourceTranslatedAddress=99.99.99.12 sourceTranslatedPort=22016 cn3=22271",
    ],
    "vpp-syslog": [
        "<38>1 2026-06-30T22:44:26Z h sshd 42 - - Invalid user 2026-06-30T22:44:26Z h NAT - "
        'APMADD [napmap ISADDR="10.0.0.1" XSADDR="203.0.113.1" XSPORT="1025" PROTO="6"] from x',
    ],
}


@pytest.mark.parametrize(
    ("fmt", "line"), [(fmt, line) for fmt, lines in QUOTED.items() for line in lines]
)
def test_an_event_quoted_in_another_programs_message_is_never_stored(fmt: str, line: str) -> None:
    out = list(
        parse_lines(fmt, [line.encode()], file="f.log", options=ParseOptions(year=2026, tz="UTC"))
    )
    assert [item for item in out if isinstance(item, LogEvent)] == []
    assert [item.line for item in out if isinstance(item, Refused)] == [1]


def _mx(event: str, inside: str, epoch: int, program: str = "RT_NAT") -> str:
    """A Juniper MX text-form line of block 24064-24191 on 203.0.113.100, written by
    ``program`` (the NAT's own ``RT_NAT``, or sshd quoting what a client sent as its user)."""
    said = (
        f"RT_NAT: RT_SRC_NAT_PBA_{event}: Subscriber {inside} used/maximum [1/4] blocks, "
        f"allocates port block [24064-24191] from 203.0.113.100 in source pool P lsys_id: 0 "
        f"epoch {epoch:#x}"
    )
    if program == "RT_NAT":
        return f"<14>Jun 30 22:44:25 BNG-01 {said}"
    return f"<38>Jun 30 23:59:00 BNG-01 sshd[4242]: Invalid user {said} from 198.51.100.7"


def test_three_quoted_lines_do_not_pin_a_strangers_traffic_on_an_innocent_subscriber() -> None:
    """The sender (100.64.0.5) held the block from T; afterwards it makes sshd log three lines:
    its own block released at T+100, the victim's (100.64.0.9) allocated then and released at
    T+1000. With the NAT's real release at T+1200, a complaint about T+500 must not be a match
    for the victim."""
    from detnat.logs.intervals import decide, derive

    t = 1_782_800_000
    lines = [
        _mx("ALLOC", "100.64.0.5", t),
        _mx("RELEASE", "100.64.0.5", t + 100, program="sshd"),
        _mx("ALLOC", "100.64.0.9", t + 100, program="sshd"),
        _mx("RELEASE", "100.64.0.9", t + 1000, program="sshd"),
        _mx("RELEASE", "100.64.0.5", t + 1200),
    ]
    out = parse_lines("juniper-pba", [s.encode() for s in lines], file="f.log")
    events = [item for item in out if isinstance(item, LogEvent)]
    decided = decide(derive(events, hold_us=None), 24100, (t + 500) * 10**6, (t + 500) * 10**6)
    assert decided.inside != "100.64.0.9", decided
