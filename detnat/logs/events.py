"""What one log line says, in one shape for every format.

A parser turns the lines of a file into `LogEvent`s (a port block, or one port, allocated, refreshed
or released at an instant) and `Refused` lines (with the reason, never guessed). Every event keeps
where it came from (`LineRef`: file, line number, SHA-256 of the line's bytes as read), so an answer
can show, and an evidence file re-derive, the exact lines behind it.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass


class EventKind(enum.StrEnum):
    ALLOCATE = "allocate"  # a block (or port) is given to an inside key from this instant
    INTERIM = "interim"  # the block is still held at this instant (Juniper PBA_INTERIM)
    RELEASE = "release"  # the block is given back at this instant


@dataclass(frozen=True, slots=True)
class LineRef:
    """Where an event was read: the file name as given, its 1-based line number, its hash."""

    file: str
    line: int
    sha256: str  # hex SHA-256 of the line's bytes without its line ending

    @classmethod
    def of(cls, file: str, line: int, raw: bytes) -> LineRef:
        return cls(file, line, hashlib.sha256(raw.rstrip(b"\r\n")).hexdigest())


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One allocation event.

    `inside` is the inside key in canonical text: an IPv4 address (`100.64.0.10`), an IPv6 B4
    address (`2001:db8::1`) or an IPv6 prefix (`2001:db8:100::/56`). `public` is the public IPv4
    address. Ports are `port_first`, `port_first + port_step`, … up to `port_last` inclusive.
    `protocol` is `tcp`, `udp`, `icmp` or None when the line names none (the block then holds for
    every protocol). `at_us` is the event instant in UTC microseconds since the epoch.
    """

    kind: EventKind
    at_us: int
    inside: str
    public: str
    port_first: int
    port_last: int
    protocol: str | None
    source: LineRef
    port_step: int = 1

    def __post_init__(self) -> None:
        if not (0 <= self.port_first <= self.port_last <= 65535):
            raise ValueError(f"ports {self.port_first}-{self.port_last} are not a range")
        if self.port_step < 1:
            raise ValueError(f"port step {self.port_step} must be at least 1")


@dataclass(frozen=True, slots=True)
class Refused:
    """A line that says nothing we can store, and why (in words an operator can act on)."""

    file: str
    line: int
    reason: str
