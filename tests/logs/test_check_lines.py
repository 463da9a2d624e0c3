"""Property: a log candidate shown as its line says is accepted by ``check_lines``; one field
changed -- subscriber, public address, ports, stride, protocol, instant or kind -- is refused,
naming the candidate and the line, whatever the format the line was written in.

Pure: no store. The lines are written as each datapath writes them (``tests/logs/render.py``).
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from detnat.logs.events import EventKind
from detnat.logs.formats import ParseOptions
from detnat.logs.intervals import port_ranges
from detnat.logs.settle import subscriber_of
from detnat.service.log_answers import LineReading, check_lines
from detnat.service.times import format_instant
from detnat.store.logs import instant
from tests.logs.render import (
    Event,
    render_csv,
    render_juniper_structured,
    render_nfdump,
    render_nfdump_pretty,
)
from tests.logs.test_format_roundtrips import events, ipv4, ipv6, ipv6_prefix, protocols

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _shown(event: Event, text: bytes) -> dict[str, Any]:
    """The answer's ``log_candidates`` as an answer shows one interval of this one line."""
    return {
        "log_candidates": [
            {
                "subscriber": subscriber_of(event.inside),
                "public_ip": event.public,
                "port_ranges": port_ranges(event.port_first, event.port_last, event.port_step),
                "port_step": event.port_step,
                "protocol": event.protocol,
                "lines": [
                    {
                        "kind": event.kind.value,
                        "at": format_instant(instant(event.at_us)),
                        "file": "gen.log",
                        "line": 7,
                        "sha256": hashlib.sha256(text).hexdigest(),
                        "text": text.decode(),
                    }
                ],
            }
        ]
    }


def _other_address(text: str) -> str:
    address = ipaddress.ip_address(text.split("/")[0])
    return str(address + 1 if int(address) < (2**address.max_prefixlen) - 1 else address - 1)


def _changes(event: Event, resolution_us: int) -> dict[str, Callable[[dict[str, Any]], None]]:
    """One field of the candidate or its line changed, by name."""
    later = format_instant(instant(event.at_us + resolution_us))
    other_kind = EventKind.RELEASE if event.kind is EventKind.ALLOCATE else EventKind.ALLOCATE

    def at(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
        def change(shown: dict[str, Any]) -> None:
            candidate = shown["log_candidates"][0]
            target = candidate["lines"][0] if path in ("kind", "at") else candidate
            target[path] = value

        return change

    if event.port_last < 65535:
        ports = [[event.port_first, event.port_last + 1]]
    else:
        ports = [[event.port_first + (1 if event.port_first < 65535 else -1), 65535]]
    return {
        "subscriber": at("subscriber", subscriber_of(_other_address(event.inside))),
        "public_ip": at("public_ip", _other_address(event.public)),
        "port_ranges": at("port_ranges", ports),
        "port_step": at("port_step", event.port_step + 1),
        "protocol": at("protocol", "udp" if event.protocol != "udp" else "tcp"),
        "at": at("at", later),
        "kind": at("kind", other_kind.value),
        "port_step as true": at("port_step", True) if event.port_step == 1 else at("kind", "x"),
    }


def _holds(
    event: Event, text: bytes, reading: LineReading, resolution_us: int, change: str
) -> None:
    shown = _shown(event, text)
    assert check_lines(shown, [[reading]]) == []
    forged = copy.deepcopy(shown)
    _changes(event, resolution_us)[change](forged)
    problems = check_lines(forged, [[reading]])
    assert len(problems) == 1, (change, problems)
    assert problems[0].startswith("answer.log_candidates[0].lines[0]: line gen.log:7 "), problems
    assert check_lines(forged, [[None]]) == []  # a line not read again: the caller says why


CHANGES = st.sampled_from(sorted(_changes(Event(EventKind.ALLOCATE, 0, "1.1.1.1", "1.1.1.2",
                                                1, 2, None), 1)))  # fmt: skip


@SETTINGS
@given(events(insides=ipv4 | ipv6 | ipv6_prefix, protocol=st.none() | protocols), CHANGES)
def test_csv_lines_say_exactly_their_candidate(event: Event, change: str) -> None:
    reading = LineReading("csv", ParseOptions())
    _holds(event, render_csv(event), reading, 1, change)


@SETTINGS
@given(events(insides=ipv4 | ipv6, resolution_us=1_000_000), CHANGES)
def test_juniper_lines_say_exactly_their_candidate(event: Event, change: str) -> None:
    assume(change != "protocol")  # Juniper's blocks hold for every protocol: none to change
    reading = LineReading("juniper-pba", ParseOptions())
    _holds(event, render_juniper_structured(event), reading, 1_000_000, change)


@SETTINGS
@given(
    events(
        kinds=[EventKind.ALLOCATE, EventKind.RELEASE, EventKind.INTERIM],
        protocol=st.none() | protocols,
        resolution_us=1000,
        strides=True,
    ),
    st.booleans(),
    CHANGES,
)
def test_nfdump_lines_say_exactly_their_candidate(event: Event, pretty: bool, change: str) -> None:
    reading = LineReading("nfdump-json", ParseOptions(tz="UTC", exporter="juniper"))
    if pretty:
        text = b"\n".join(render_nfdump_pretty([event], exporter="juniper")[1:-1])
    else:
        text = render_nfdump(event, exporter="juniper")
    _holds(event, text, reading, 1000, change)


def test_a_line_with_another_line_hidden_in_its_text_is_refused() -> None:
    """A forger who writes a second line (saying another subscriber) after the real one in the
    same text, and hashes the two together: the text is no line the format reads as one event."""
    at = 1_773_518_400_000_000
    real = Event(EventKind.ALLOCATE, at, "100.64.7.9", "198.18.1.1", 1024, 1535, None)
    forged = Event(EventKind.ALLOCATE, at, "100.64.7.10", "198.18.1.1", 1024, 1535, None)
    text = render_csv(real) + b"\n" + render_csv(forged)
    shown = _shown(forged, text)
    problems = check_lines(shown, [[LineReading("csv", ParseOptions())]])
    assert len(problems) == 1 and "as an event of its own text" in problems[0], problems
