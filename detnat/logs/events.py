"""What one log line says, in one shape for every format.

A parser turns the lines of a file into `LogEvent`s (a port block, or one port, allocated, refreshed
or released at an instant) and `Refused` lines (with the reason, never guessed). Every event keeps
where it came from (`LineRef`: file, line number, SHA-256 of the line's bytes as read), so an answer
can show, and an evidence file re-derive, the exact lines behind it.
"""

from __future__ import annotations

import enum
import hashlib
from typing import NamedTuple

_sha256 = hashlib.sha256
_tuple = tuple.__new__


class EventKind(enum.StrEnum):
    ALLOCATE = "allocate"  # a block (or port) is given to an inside key from this instant
    INTERIM = "interim"  # the block is still held at this instant (Juniper PBA_INTERIM)
    RELEASE = "release"  # the block is given back at this instant


# Tuples, not dataclasses: an ingest makes one of each per line, and a frozen dataclass costs
# three times a tuple to build (bench/README.md, issue 13). Fields, order and defaults are the
# contract; they are read by name.


class LineRef(NamedTuple):
    """Where an event was read: the file name as given, its 1-based line number, its hash."""

    file: str
    line: int
    sha256: str  # hex SHA-256 of the line's bytes without its line ending

    @classmethod
    def of(cls, file: str, line: int, raw: bytes) -> LineRef:
        return _tuple(cls, (file, line, _sha256(raw.rstrip(b"\r\n")).hexdigest()))


class _Event(NamedTuple):
    kind: EventKind
    at_us: int
    inside: str
    public: str
    port_first: int
    port_last: int
    protocol: str | None
    source: LineRef
    port_step: int = 1


class LogEvent(_Event):
    """One allocation event.

    `inside` is the inside key in canonical text: an IPv4 address (`100.64.0.10`), an IPv6 B4
    address (`2001:db8::1`) or an IPv6 prefix (`2001:db8:100::/56`). `public` is the public IPv4
    address. Ports are `port_first`, `port_first + port_step`, … up to `port_last` inclusive.
    `protocol` is `tcp`, `udp`, `icmp` or None when the line names none (the block then holds for
    every protocol). `at_us` is the event instant in UTC microseconds since the epoch.

    >>> LogEvent(EventKind.ALLOCATE, 0, "100.64.0.1", "192.0.2.1", 1024, 1023, None,
    ...          LineRef("f", 1, "0" * 64))
    Traceback (most recent call last):
        ...
    ValueError: ports 1024-1023 are not a range
    """

    __slots__ = ()

    def __new__(
        cls,
        kind: EventKind,
        at_us: int,
        inside: str,
        public: str,
        port_first: int,
        port_last: int,
        protocol: str | None,
        source: LineRef,
        port_step: int = 1,
    ) -> LogEvent:
        if not (0 <= port_first <= port_last <= 65535):
            raise ValueError(f"ports {port_first}-{port_last} are not a range")
        if port_step < 1:
            raise ValueError(f"port step {port_step} must be at least 1")
        return _tuple(
            cls, (kind, at_us, inside, public, port_first, port_last, protocol, source, port_step)
        )


class Refused(NamedTuple):
    """A line that says nothing we can store, and why (in words an operator can act on)."""

    file: str
    line: int
    reason: str
