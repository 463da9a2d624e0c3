"""What the engine answers: allocations (forward) and reverse answers with honest statuses."""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from detnat.engine.addresses import Prefix, format_ipv4

PortRanges = tuple[tuple[int, int], ...]
ALL_PORTS: PortRanges = ((0, 65535),)


class Status(StrEnum):
    """The status of an answer: match, ambiguous, no_mapping, not_deterministic,
    no_plan_in_force or future.

    One vocabulary from the engine to every edge (the engine answers match, no_mapping and
    not_deterministic). Each status carries the words the pages show beside it: ``words`` for
    a batch's counts, ``headline`` for an explained answer. Spelled as its value everywhere
    (``f"{Status.MATCH}" == "match"``).
    """

    words: str
    headline: str

    def __new__(cls, value: str, words: str = "", headline: str = "") -> Status:
        member = str.__new__(cls, value)
        member._value_ = value
        member.words = words
        member.headline = headline
        return member

    MATCH = "match", "one subscriber named", "Match: one subscriber"
    AMBIGUOUS = "ambiguous", "ambiguous (plans disagree)", "Ambiguous: the plans disagree"
    NO_MAPPING = "no_mapping", "nobody held it", "No subscriber held it"
    NOT_DETERMINISTIC = (
        "not_deterministic",
        "only the NAT's logs can tell",
        "Not deterministic: only the NAT's own logs can tell",
    )
    NO_PLAN_IN_FORCE = "no_plan_in_force", "no plan in force", "No plan was in force"
    FUTURE = "future", "time in the future", "That time is in the future"


class Reason(StrEnum):
    """Why an answer names nobody, or nobody alone (the engine gives the first five)."""

    NOT_IN_POOL = "not_in_pool"  # the address is in no outside prefix of the plan
    EXCLUDED_ADDRESS = "excluded_address"  # in an outside prefix, but excluded from the pool
    RESERVED_PORT = "reserved_port"  # outside ports.first..last, excluded, or MAP port-set 0
    UNALLOCATED = "unallocated"  # tail ports, or a block no subscriber of the key space owns
    DYNAMIC_BLOCK = "dynamic_block"  # overflow blocks: only the datapath's logs can answer
    # Only a timeline can say these (the service's verdicts over candidate versions):
    CANDIDATES_DIFFER = "candidates_differ"  # ambiguous: versions in the window disagree
    SEVERAL_REALMS = "several_realms"  # ambiguous forward: the subscriber is in several realms
    MIXED = "mixed"  # no_mapping: the candidates refuse it for different reasons
    NO_PLAN = "no_plan"  # no_plan_in_force
    AFTER_NOW = "after_now"  # future
    # Only the datapath's own logs can say these (detnat.logs.intervals.decide):
    NOT_LOGGED = "not_logged"  # no_mapping: no log interval holds the port (logs can be partial)
    LOG_CONFLICT = "log_conflict"  # ambiguous: two inside keys logged for the same port and time
    LOG_OPEN_ENDED = "log_open_ended"  # ambiguous: the window reaches past what the lines show
    LOG_BOUNDARY = "log_boundary"  # ambiguous: the window crosses an allocation's start or end
    PLAN_AND_LOG_DISAGREE = "plan_and_log_disagree"  # ambiguous: the plan names one, a log another


# What the plan arithmetic answers, in the order of the vectorised codes (``mapper.STATUS_CODES``,
# ``mapper.REASON_CODES``); each engine reason with the status it gives.
ENGINE_STATUSES: tuple[Status, ...] = (Status.MATCH, Status.NO_MAPPING, Status.NOT_DETERMINISTIC)
ENGINE_REASONS: dict[Reason, Status] = {
    Reason.NOT_IN_POOL: Status.NO_MAPPING,
    Reason.EXCLUDED_ADDRESS: Status.NO_MAPPING,
    Reason.RESERVED_PORT: Status.NO_MAPPING,
    Reason.UNALLOCATED: Status.NO_MAPPING,
    Reason.DYNAMIC_BLOCK: Status.NOT_DETERMINISTIC,
}


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
