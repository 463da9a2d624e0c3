"""What the engine answers: allocations (forward) and reverse answers with honest statuses."""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from detnat.engine.addresses import Prefix, format_ipv4

PortRanges = tuple[tuple[int, int], ...]
ALL_PORTS: PortRanges = ((0, 65535),)


class Status(StrEnum):
    MATCH = "match"
    NO_MAPPING = "no_mapping"
    NOT_DETERMINISTIC = "not_deterministic"


class Reason(StrEnum):
    NOT_IN_POOL = "not_in_pool"  # the address is in no outside prefix of the plan
    EXCLUDED_ADDRESS = "excluded_address"  # in an outside prefix, but excluded from the pool
    RESERVED_PORT = "reserved_port"  # outside ports.first..last, excluded, or MAP port-set 0
    UNALLOCATED = "unallocated"  # tail ports, or a block no subscriber of the key space owns
    DYNAMIC_BLOCK = "dynamic_block"  # overflow blocks: only the datapath's logs can answer


class Allocation(NamedTuple):
    """One subscriber's public IPv4 address and port set under one plan.

    ``port_ranges`` are inclusive ``(first, last)`` pairs in ascending order, adjacent runs merged.
    ``static`` is true for a subscriber with a dedicated address (all ports).
    """

    subscriber: Prefix
    public_ip: int
    port_ranges: PortRanges
    static: bool = False

    @property
    def port_count(self) -> int:
        return sum(last - first + 1 for first, last in self.port_ranges)

    def holds(self, port: int) -> bool:
        return any(first <= port <= last for first, last in self.port_ranges)

    def to_json(self) -> dict[str, object]:
        return {
            "subscriber": str(self.subscriber),
            "public_ip": format_ipv4(self.public_ip),
            "port_ranges": [list(r) for r in self.port_ranges],
        }


class ReverseAnswer(NamedTuple):
    """The answer to "who holds public_ip:port under this plan"."""

    public_ip: int
    port: int
    status: Status
    reason: Reason | None = None
    allocation: Allocation | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"status": self.status.value}
        if self.reason is not None:
            out["reason"] = self.reason.value
        if self.allocation is not None:
            out.update(self.allocation.to_json())
        return out
