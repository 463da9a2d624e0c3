"""What every algorithm shares: subscriber numbering, static bindings, query parsing, answers.

An algorithm (:mod:`.block`, :mod:`.map_rule`) supplies: the subscriber key space
(``_index_of_key`` / ``_key_at``, and ``key_runs`` for whole-plan work), the allocation of
subscriber ``i`` (``_allocate``) and its vectorised twin (``pool_allocations``), reverse arithmetic
for pool addresses (``_reverse``) and its vectorised twin (``_reverse_many``), and how it shares an
address (``_sharing``, for capacity planning). :class:`Mapper` turns them into the public
operations with the statuses of the design. Which algorithm a plan uses is the business of the
registry (:mod:`.algorithms`), never of an ``isinstance``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from typing import TYPE_CHECKING

from detnat.engine.addresses import (
    V4,
    V6,
    WIDTH,
    Prefix,
    format_ipv4,
    parse_address,
    parse_ipv4,
    parse_prefix,
)
from detnat.engine.plan import Plan
from detnat.engine.results import (
    ALL_PORTS,
    ENGINE_REASONS,
    ENGINE_STATUSES,
    Allocation,
    PortRanges,
    Reason,
    ReverseAnswer,
    Status,
)
from detnat.errors import PlanError, QueryError

if TYPE_CHECKING:  # the vectorised paths import numpy: a single lookup starts without it
    import numpy as np
    import numpy.typing as npt

# Vectorised answers are small integer codes, defined from the engine's part of the one vocabulary
# (``results.ENGINE_STATUSES``, ``results.ENGINE_REASONS``); these tuples give their meaning.
STATUS_CODES: tuple[Status | None, ...] = (
    *ENGINE_STATUSES,
    None,  # INVALID: a query that is an error, not an answer (see ``non_public_reason``)
)
REASON_CODES: tuple[Reason | None, ...] = (None, *ENGINE_REASONS)
STATUS_CODE: dict[Status | None, int] = {status: code for code, status in enumerate(STATUS_CODES)}
_REASON_CODE = {reason: code for code, reason in enumerate(REASON_CODES) if reason is not None}
MATCH = STATUS_CODE[Status.MATCH]
NO_MAPPING = STATUS_CODE[Status.NO_MAPPING]
NOT_DETERMINISTIC = STATUS_CODE[Status.NOT_DETERMINISTIC]
INVALID = STATUS_CODE[None]
R_NONE = REASON_CODES.index(None)
R_NOT_IN_POOL = _REASON_CODE[Reason.NOT_IN_POOL]
R_EXCLUDED = _REASON_CODE[Reason.EXCLUDED_ADDRESS]
R_RESERVED = _REASON_CODE[Reason.RESERVED_PORT]
R_UNALLOCATED = _REASON_CODE[Reason.UNALLOCATED]
R_DYNAMIC = _REASON_CODE[Reason.DYNAMIC_BLOCK]


@cache
def _status_of_reason() -> npt.NDArray[np.uint8]:
    """The status code of each reason code (no reason: a match)."""
    import numpy as np

    return np.array(
        [STATUS_CODE[Status.MATCH if r is None else ENGINE_REASONS[r]] for r in REASON_CODES],
        dtype=np.uint8,
    )


# The per-call paths build their answers with ``tuple.__new__``, skipping the generated
# ``__new__`` of the NamedTuples (a Python function call each): same values, a third less time.
_tuple = tuple.__new__
_MATCH = Status.MATCH  # a module global is quicker to reach than an enum member

# Address space that is never public, so a reverse query for it (outside every pool of the plan)
# is a mistake of the asker, not an answer: RFC 6890 special-purpose blocks, less the
# documentation ranges that published examples use as public pools.
_NON_PUBLIC = (
    (0x00000000, 0x00FFFFFF, "'this network' (RFC 791)"),
    (0x0A000000, 0x0AFFFFFF, "private address space (RFC 1918)"),
    (0x64400000, 0x647FFFFF, "shared address space (RFC 6598), an inside CGN address"),
    (0x7F000000, 0x7FFFFFFF, "loopback (RFC 1122)"),
    (0xA9FE0000, 0xA9FEFFFF, "link-local (RFC 3927)"),
    (0xAC100000, 0xAC1FFFFF, "private address space (RFC 1918)"),
    (0xC0A80000, 0xC0A8FFFF, "private address space (RFC 1918)"),
    (0xE0000000, 0xFFFFFFFF, "multicast or reserved (RFC 5771, RFC 1112)"),
)


def non_public_reason(address: int) -> str | None:
    """What never-public space ``address`` is in (for refusing it as a public address), or None."""
    for lo, hi, what in _NON_PUBLIC:
        if lo <= address <= hi:
            return what
    return None


def non_public_many(addresses: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """:func:`non_public_reason` is not None, for many addresses at once."""
    import numpy as np

    non_public = np.zeros(addresses.shape, dtype=bool)
    for lo, hi, _ in _NON_PUBLIC:
        non_public |= (addresses >= lo) & (addresses <= hi)
    return non_public


@dataclass(frozen=True)
class BulkAnswers:
    """Vectorised reverse answers: codes into STATUS_CODES / REASON_CODES, subscriber numbers."""

    status: npt.NDArray[np.uint8]
    reason: npt.NDArray[np.uint8]
    subscriber: npt.NDArray[np.int64]  # -1 where no subscriber: exactly the rows not a match


@dataclass(frozen=True)
class PortSharing:
    """How a plan shares each public address: the figures capacity planning models."""

    usable_ports: int  # U per address
    ports_per_subscriber: int  # S
    sets_per_address: int  # B: blocks, or MAP port sets, per address
    dynamic_sets: int  # D per address, handed out by the datapath on demand
    occupancy: tuple[tuple[int, int], ...]  # (subscribers on an address, addresses), statics out
    reserved_ports: int = 0  # ports of each address nobody may use (MAP port-set index 0)


@dataclass(frozen=True)
class KeyRun:
    """Subscriber keys ``first .. last`` (prefix >> host bits) numbered from ``start``."""

    first: int
    last: int
    start: int


def parse_public_address(text: str | int, *, field: str = "address") -> int:
    """A public IPv4 address as an int; IPv6 spellings of IPv4 addresses refused with a hint."""
    if isinstance(text, int):
        if isinstance(text, bool) or not 0 <= text <= 0xFFFFFFFF:
            raise QueryError(f"{text!r} is not an IPv4 address", field=field)
        return text
    family, value = parse_address(text, field=field)
    if family == V6:
        if value >> 32 == 0xFFFF:
            hint = f"IPv4-mapped; ask for {format_ipv4(value & 0xFFFFFFFF)}"
        elif value >> 32 == 0x0064FF9B0000000000000000:
            hint = f"NAT64 well-known prefix; ask for {format_ipv4(value & 0xFFFFFFFF)}"
        else:
            hint = "public addresses are IPv4; for an IPv6 subscriber use forward"
        raise QueryError(f"{text!r} is not an IPv4 address ({hint})", field=field)
    return value


def check_port(port: int, *, field: str = "port") -> int:
    if not isinstance(port, int) or isinstance(port, bool):
        raise QueryError(f"port must be an integer, got {port!r}", field=field)
    if not 0 <= port <= 65535:
        raise QueryError(f"port {port} is outside 0-65535", field=field)
    return port


class Mapper(ABC):
    """A compiled plan: forward and reverse in O(log n), never a scan of subscribers."""

    plan: Plan
    family: int  # of the inside key space
    subscriber_prefix_length: int
    subscriber_count: int

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._static_by_index: dict[int, int] = {}
        self._static_by_address: dict[int, int] = {}

    # -- supplied by each algorithm ---------------------------------------------------------------

    @abstractmethod
    def _index_of_key(self, key: int) -> int | None:
        """The number of the subscriber with this key (address >> host bits), None if none."""

    @abstractmethod
    def _key_at(self, index: int) -> int: ...

    @abstractmethod
    def _allocate(self, index: int) -> tuple[int, PortRanges]: ...

    @abstractmethod
    def _reverse(self, address: int, port: int) -> int | Reason:
        """A subscriber number, or why there is none (static bindings already handled)."""

    @abstractmethod
    def _reverse_many(
        self, addresses: npt.NDArray[np.int64], ports: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
        """Vectorised ``_reverse``: (reason codes, subscriber numbers) for pool queries."""

    @abstractmethod
    def summary(self) -> dict[str, object]:
        """Figures for ``plan check``."""

    @abstractmethod
    def key_runs(self) -> tuple[KeyRun, ...]:
        """The whole key space as runs, in numbering order (for comparing plans, bulk output)."""

    @abstractmethod
    def pool_port_sets(self) -> tuple[PortRanges, ...]:
        """Every port set of the pool, numbered as :meth:`pool_allocations` numbers them."""

    @abstractmethod
    def pool_allocations(
        self, index: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Vectorised ``_allocate``: (public address, number into :meth:`pool_port_sets`) of
        each subscriber number; static bindings are not applied."""

    @abstractmethod
    def _sharing(self) -> tuple[PortSharing, Callable[[int], int], Callable[[int], int]]:
        """(the sharing with every subscriber in the pool, subscribers on address number a,
        address number of subscriber i)."""

    def sharing(self) -> PortSharing:
        """How the plan shares each public address; static subscribers hold their own address,
        so they are left out of the occupancy (their blocks stay unused)."""
        sharing, load, address_of = self._sharing()
        lost: Counter[int] = Counter(address_of(i) for i in self._static_by_index)
        counts = Counter(dict(sharing.occupancy))
        for address, gone in lost.items():
            before = load(address)
            counts[before] -= 1
            counts[before - gone] += 1
        occupancy = tuple(sorted((n, c) for n, c in counts.items() if c > 0))
        return replace(sharing, occupancy=occupancy)

    # -- static bindings --------------------------------------------------------------------------

    def _bind_statics(self, in_pool: object) -> None:
        """Check and index ``plan.static``; ``in_pool(address)`` tells an address of the pool."""
        assert callable(in_pool)
        for n, binding in enumerate(self.plan.static):
            field = f"static[{n}]"
            try:
                index = self._subscriber_number(binding.subscriber, field=f"{field}.subscriber")
            except QueryError as exc:
                raise PlanError(exc.message, field=exc.field) from None
            if binding.subscriber.length != self.subscriber_prefix_length:
                raise PlanError(
                    f"{binding.subscriber} is not one subscriber (subscribers are "
                    f"/{self.subscriber_prefix_length})",
                    field=f"{field}.subscriber",
                )
            if in_pool(binding.address):
                raise PlanError(
                    f"{format_ipv4(binding.address)} is in the pool's prefixes; a static address "
                    "must be outside them (excluded addresses are never used)",
                    field=f"{field}.address",
                )
            if index in self._static_by_index:
                raise PlanError(f"{binding.subscriber} has two static bindings", field=field)
            if binding.address in self._static_by_address:
                raise PlanError(
                    f"{format_ipv4(binding.address)} is bound to two subscribers",
                    field=f"{field}.address",
                )
            self._static_by_index[index] = binding.address
            self._static_by_address[binding.address] = index

    # -- subscribers ------------------------------------------------------------------------------

    def subscriber_at(self, index: int) -> Prefix:
        """The prefix of subscriber number ``index``."""
        host_bits = WIDTH[self.family] - self.subscriber_prefix_length
        return Prefix(self.family, self._key_at(index) << host_bits, self.subscriber_prefix_length)

    def _subscriber_number(self, query: Prefix, *, field: str) -> int:
        return self._subscriber_number_and_key(query, field=field)[0]

    def _subscriber_number_and_key(self, query: Prefix, *, field: str) -> tuple[int, int]:
        if query.family != self.family:
            raise QueryError(
                f"{query} is IPv{query.family}; this plan's subscribers are IPv{self.family}",
                field=field,
            )
        if query.length < self.subscriber_prefix_length:
            raise QueryError(
                f"{query} covers several subscribers (subscribers are "
                f"/{self.subscriber_prefix_length}); give one subscriber's prefix or an address",
                field=field,
            )
        key = query.network >> (WIDTH[self.family] - self.subscriber_prefix_length)
        index = self._index_of_key(key)
        if index is None:
            raise QueryError(self._why_not_a_subscriber(query), field=field)
        return index, key

    def _why_not_a_subscriber(self, query: Prefix) -> str:
        return f"{query} is not in the plan's inside key space"

    def subscriber_number(self, query: str | Prefix, *, field: str = "subscriber") -> int:
        """Parse a query (an address inside a subscriber's prefix, or a prefix) to its number."""
        prefix = parse_prefix(query, field=field) if isinstance(query, str) else query
        return self._subscriber_number(prefix, field=field)

    # -- forward ----------------------------------------------------------------------------------

    def allocation_of(self, index: int) -> Allocation:
        return self._allocation(index, self._key_at(index))

    def _allocation(self, index: int, key: int) -> Allocation:
        """The allocation of subscriber ``index``, whose key the caller already knows."""
        family, length = self.family, self.subscriber_prefix_length
        subscriber = _tuple(Prefix, (family, key << (WIDTH[family] - length), length))
        if self._static_by_index:
            static = self._static_by_index.get(index)
            if static is not None:
                return Allocation(subscriber, static, ALL_PORTS, static=True)
        public_ip, port_ranges = self._allocate(index)
        return _tuple(Allocation, (subscriber, public_ip, port_ranges, False))

    def forward(self, query: str | Prefix) -> Allocation:
        """The public address and port set of the subscriber ``query`` falls in.

        Raises :class:`QueryError` when it is not one subscriber of the key space.
        """
        prefix = parse_prefix(query, field="query") if isinstance(query, str) else query
        return self._allocation(*self._subscriber_number_and_key(prefix, field="query"))

    # -- reverse ----------------------------------------------------------------------------------

    def reverse(self, address: str | int, port: int) -> ReverseAnswer:
        """Who holds ``address:port`` under this plan, or why nobody deterministically does."""
        # The common spelling (dotted quad, int port) straight to the parser; the rest explains.
        if isinstance(address, str) and ":" not in address:
            ip = parse_ipv4(address)
        else:
            ip = parse_public_address(address)
        if type(port) is not int or not 0 <= port <= 65535:
            check_port(port)
        if self._static_by_address:
            static = self._static_by_address.get(ip)
            if static is not None:
                return ReverseAnswer(ip, port, _MATCH, allocation=self.allocation_of(static))
        found = self._reverse(ip, port)
        if isinstance(found, Reason):
            if found is Reason.NOT_IN_POOL:
                what = non_public_reason(ip)
                if what is not None:
                    raise QueryError(
                        f"{format_ipv4(ip)} is {what}, not a public address of this plan",
                        field="address",
                    )
            status = (
                Status.NOT_DETERMINISTIC if found is Reason.DYNAMIC_BLOCK else Status.NO_MAPPING
            )
            return ReverseAnswer(ip, port, status, reason=found)
        if self._static_by_index and found in self._static_by_index:
            return ReverseAnswer(ip, port, Status.NO_MAPPING, reason=Reason.UNALLOCATED)
        allocation = self._allocation(found, self._key_at(found))
        return _tuple(ReverseAnswer, (ip, port, _MATCH, None, allocation))

    def _apply_statics(
        self,
        ips: npt.NDArray[np.int64],
        reason: npt.NDArray[np.uint8],
        subscriber: npt.NDArray[np.int64],
    ) -> None:
        """In place: static subscribers' blocks are unallocated; static addresses match."""
        import numpy as np

        static_subs = np.fromiter(self._static_by_index, dtype=np.int64)
        held = np.isin(subscriber, static_subs)
        reason[held] = R_UNALLOCATED
        subscriber[held] = -1
        by_address = sorted(self._static_by_address.items())
        static_ips = np.array([ip for ip, _ in by_address], dtype=np.int64)
        static_idx = np.array([index for _, index in by_address], dtype=np.int64)
        pos = np.minimum(np.searchsorted(static_ips, ips), len(static_ips) - 1)
        hit = static_ips[pos] == ips
        reason[hit] = R_NONE
        subscriber[hit] = static_idx[pos[hit]]

    def reverse_many(self, addresses: npt.ArrayLike, ports: npt.ArrayLike) -> BulkAnswers:
        """Reverse for arrays of IPv4 addresses (as integers) and ports, all at once.

        Same answers as :meth:`reverse`; rows that :meth:`reverse` would refuse (a port outside
        0-65535, a non-public address outside the pool) get status code ``INVALID``.
        """
        import numpy as np

        ips = np.asarray(addresses, dtype=np.int64)
        prt = np.asarray(ports, dtype=np.int64)
        # Negative values are huge as unsigned: one reduction a column (no array made) tells
        # that every value is in range, the common case; else one comparison a column.
        bad: npt.NDArray[np.bool_] | None = None
        if ips.size and (
            int(ips.view(np.uint64).max()) > 0xFFFFFFFF or int(prt.view(np.uint64).max()) > 65535
        ):
            bad = (ips.view(np.uint64) > 0xFFFFFFFF) | (prt.view(np.uint64) > 65535)
            ips, prt = np.where(bad, 0, ips), np.where(bad, 0, prt)
        reason, subscriber = self._reverse_many(ips, prt)
        if self._static_by_index:
            self._apply_statics(ips, reason, subscriber)
        status = _status_of_reason()[reason]
        missing = np.flatnonzero(reason == R_NOT_IN_POOL)
        if missing.size:
            non_public = non_public_many(ips[missing])
            if non_public.any():
                if bad is None:
                    bad = np.zeros(ips.shape, dtype=bool)
                bad[missing[non_public]] = True
        if bad is not None:
            status[bad] = INVALID
            reason[bad] = R_NONE
            subscriber[bad] = -1
        return BulkAnswers(status=status, reason=reason, subscriber=subscriber)


def reason_code(reason: Reason) -> int:
    return _REASON_CODE[reason]


__all__ = [
    "V4",
    "V6",
    "BulkAnswers",
    "KeyRun",
    "Mapper",
    "PortSharing",
    "check_port",
    "parse_public_address",
]
