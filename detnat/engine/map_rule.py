"""Algorithm ``map``: MAP-E / MAP-T port sets (RFC 7597 section 5.1, RFC 7599), the GMA.

With rule IPv6 prefix length r6, rule IPv4 prefix length r4, EA-bits length o and PSID offset a:
p = 32 - r4 IPv4 suffix bits, k = o - p PSID bits, m = 16 - a - k. A subscriber is one
``/(r6 + o)`` inside the rule IPv6 prefix; its EA bits are its suffix (high p bits) and PSID (low
k bits). Its ports are every port ``A << (16-a) | PSID << m | j`` with A the port-set index
(1 .. 2^a - 1 when a > 0, so ports below 2^(16-a) are never used; 0 when a = 0) and 0 <= j < 2^m.

RFC 7599 Appendix A: rule 2001:db8::/40 -> 192.0.2.0/24, o = 16, a = 6 (so k = 8, m = 2);
2001:db8:12:3400::/56 has EA bits 0x1234: address 192.0.2.18, PSID 0x34, ports 1232-1235,
2256-2259, ... 64720-64723.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from socket import AF_INET6, inet_pton
from typing import TYPE_CHECKING, Literal

from detnat.engine.addresses import IPV6_CHARS, OCTET, V4, V6, Prefix, parse_prefix
from detnat.engine.algorithms import Algorithm, Capabilities
from detnat.engine.mapper import (
    R_NONE,
    R_NOT_IN_POOL,
    R_RESERVED,
    KeyRun,
    Mapper,
    PortSharing,
)
from detnat.engine.plan import MapRule, Plan
from detnat.engine.results import Allocation, PortRanges, Reason, ReverseAnswer, Status
from detnat.errors import PlanError

if TYPE_CHECKING:  # the vectorised paths import numpy: a single lookup starts without it
    import numpy as np
    import numpy.typing as npt

_from_bytes = int.from_bytes  # big-endian by default; bound once (half the cost of the lookup)
_tuple = tuple.__new__  # answers built without the NamedTuples' generated __new__ (as mapper.py)
_MATCH = Status.MATCH


def port_set(psid: int, psid_offset: int, psid_length: int) -> PortRanges:
    """The ports of one PSID as ascending inclusive ranges, adjacent ranges merged."""
    a, k = psid_offset, psid_length
    m = 16 - a - k
    span = 1 << m
    base = psid << m
    ranges: list[tuple[int, int]] = []
    for index in range(1 if a > 0 else 0, 1 << a):
        low = (index << (16 - a)) | base
        if ranges and ranges[-1][1] + 1 == low:
            ranges[-1] = (ranges[-1][0], low + span - 1)
        else:
            ranges.append((low, low + span - 1))
    return tuple(ranges)


@dataclass(frozen=True)
class MapPlan(Plan):
    """A ``map`` plan: one section, ``map``, the MAP rule (it defines subscribers and ports)."""

    algorithm: Literal["map"] = "map"
    map: MapRule | None = None

    def _pool_ranges(self) -> list[tuple[int, int]]:
        if self.map is None:
            return []
        return [(self.map.rule_ipv4_prefix.first, self.map.rule_ipv4_prefix.last)]


class MapMapper(Mapper):
    plan: MapPlan

    def __init__(self, plan: Plan) -> None:
        if not isinstance(plan, MapPlan):
            raise PlanError(f"not a map plan: algorithm {plan.algorithm}", field="algorithm")
        super().__init__(plan)
        rule = plan.map
        if rule is None:
            raise PlanError("algorithm map needs map", field="map")
        if rule.rule_ipv6_prefix.family != V6:
            raise PlanError(f"{rule.rule_ipv6_prefix} is not IPv6", field="map.rule_ipv6_prefix")
        if rule.rule_ipv4_prefix.family != V4:
            raise PlanError(f"{rule.rule_ipv4_prefix} is not IPv4", field="map.rule_ipv4_prefix")
        o, a = rule.ea_bits_length, rule.psid_offset
        suffix_bits = 32 - rule.rule_ipv4_prefix.length
        if not 0 <= a <= 16:
            raise PlanError(f"psid_offset {a} is outside 0-16", field="map.psid_offset")
        if o < suffix_bits:
            raise PlanError(
                f"{o} EA bits cannot hold the {suffix_bits}-bit IPv4 suffix of "
                f"{rule.rule_ipv4_prefix} (IPv4 prefix delegation is not supported)",
                field="map.ea_bits_length",
            )
        k = o - suffix_bits
        if a + k > 16:
            raise PlanError(
                f"psid_offset {a} + PSID length {k} (= {o} EA bits - {suffix_bits} suffix bits) "
                f"exceeds 16",
                field="map.ea_bits_length",
            )
        if rule.rule_ipv6_prefix.length + o > 128:
            raise PlanError(
                f"{rule.rule_ipv6_prefix} + {o} EA bits is longer than 128 bits",
                field="map.ea_bits_length",
            )
        self.rule = rule
        self.family = V6
        self.subscriber_prefix_length = rule.rule_ipv6_prefix.length + o
        self.subscriber_count = 1 << o
        self.psid_length = k
        self.psid_offset = a
        self._m = 16 - a - k
        self._shift = 128 - self.subscriber_prefix_length
        self._rule_key = rule.rule_ipv6_prefix.network >> self._shift
        self._v4 = rule.rule_ipv4_prefix
        self._v4_first, self._v4_last = self._v4.first, self._v4.last  # read on every reverse
        self._psid_mask = (1 << k) - 1
        self._port_set = lru_cache(maxsize=4096)(lambda psid: port_set(psid, a, k))
        self._bind_statics(lambda ip: self._v4.first <= ip <= self._v4.last)
        # What the per-call paths read, in one unpacking (see ``forward`` and ``reverse``).
        self._per_call = (
            self._rule_key,
            self.subscriber_count,
            self._shift,
            self.subscriber_prefix_length,
            k,
            self._psid_mask,
            self._m,
            1 << (16 - a) if a > 0 else 0,  # the first port not reserved (port-set index 0)
            self._v4_first,
            self._v4_last,
            self._static_by_index,
            self._port_set,
        )
        # A subscriber's own spelling ("2001:db8:12:3400::/56"): its length as written.
        self._length_text = str(self.subscriber_prefix_length)

    def _index_of_key(self, key: int) -> int | None:
        index = key - self._rule_key
        return index if 0 <= index < self.subscriber_count else None

    def _key_at(self, index: int) -> int:
        return self._rule_key + index

    def _why_not_a_subscriber(self, query: object) -> str:
        return f"{query} is not inside the MAP rule prefix {self.rule.rule_ipv6_prefix}"

    def _allocate(self, index: int) -> tuple[int, PortRanges]:
        suffix, psid = divmod(index, 1 << self.psid_length)
        ports: PortRanges = self._port_set(psid)
        return self._v4.network | suffix, ports

    def _reverse(self, address: int, port: int) -> int | Reason:
        if not self._v4_first <= address <= self._v4_last:
            return Reason.NOT_IN_POOL
        if self.psid_offset > 0 and port >> (16 - self.psid_offset) == 0:
            return Reason.RESERVED_PORT
        psid = (port >> self._m) & self._psid_mask
        return ((address - self._v4_first) << self.psid_length) | psid

    # -- the per-call paths, specialised ------------------------------------------------------
    # :meth:`Mapper.forward` and :meth:`Mapper.reverse` with the GMA inlined: a query one
    # subscriber answers costs a few shifts and masks. Anything else (another spelling, an error,
    # an answer naming nobody, a static binding) goes to the general path, which says why; the
    # property tests hold both to the same answers.

    def forward(self, query: str | Prefix) -> Allocation:
        (
            rule_key, count, shift, length, k, psid_mask, _, _, v4_first, _, statics, port_sets,
        ) = self._per_call  # fmt: skip
        if type(query) is str:
            # A subscriber written as itself, its length the subscribers' length: parse_prefix's
            # IPv6 case inlined (the same characters, inet_pton, no host bits), no Prefix made
            # for the query. Any other text takes parse_prefix below.
            address, _, length_text = query.partition("/")
            if length_text == self._length_text and IPV6_CHARS.issuperset(address):
                try:
                    network = _from_bytes(inet_pton(AF_INET6, address))
                except OSError:
                    network = -1  # parse_prefix explains (or takes it another way)
                key = network >> shift
                index = key - rule_key
                if (
                    key << shift == network
                    and 0 <= index < count
                    and not (statics and index in statics)
                ):
                    subscriber = _tuple(Prefix, (V6, network, length))
                    ports = port_sets(index & psid_mask)
                    return _tuple(Allocation, (subscriber, v4_first | (index >> k), ports, False))
        prefix = parse_prefix(query, field="query") if isinstance(query, str) else query
        asked_family, network, asked_length = prefix
        if asked_family == V6 and asked_length >= length:
            key = network >> shift
            index = key - rule_key
            if 0 <= index < count and not (statics and index in statics):
                subscriber = _tuple(Prefix, (V6, key << shift, length))
                ports = port_sets(index & psid_mask)
                return _tuple(Allocation, (subscriber, v4_first | (index >> k), ports, False))
        return Mapper.forward(self, prefix)

    def reverse(self, address: str | int, port: int) -> ReverseAnswer:
        try:
            a, b, c, d = address.split(".")  # type: ignore[union-attr]
            ip = (OCTET[a] << 24) | (OCTET[b] << 16) | (OCTET[c] << 8) | OCTET[d]
        except (AttributeError, TypeError, ValueError, KeyError):  # not a dotted quad
            return Mapper.reverse(self, address, port)
        (
            rule_key, _, shift, length, k, psid_mask, m, first_port, v4_first, v4_last,
            statics, port_sets,
        ) = self._per_call  # fmt: skip
        if type(port) is int and first_port <= port <= 65535 and v4_first <= ip <= v4_last:
            psid = (port >> m) & psid_mask
            index = ((ip - v4_first) << k) | psid
            if not (statics and index in statics):
                subscriber = _tuple(Prefix, (V6, (rule_key + index) << shift, length))
                allocation = _tuple(Allocation, (subscriber, ip, port_sets(psid), False))
                return _tuple(ReverseAnswer, (ip, port, _MATCH, None, allocation))
        return Mapper.reverse(self, address, port)

    def _reverse_many(
        self, addresses: npt.NDArray[np.int64], ports: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
        import numpy as np

        psid = (ports >> self._m) & ((1 << self.psid_length) - 1)
        index = ((addresses - self._v4.network) << self.psid_length) | psid
        reason = np.full(addresses.shape, R_NONE, dtype=np.uint8)
        if self.psid_offset > 0:
            reason[(ports >> (16 - self.psid_offset)) == 0] = R_RESERVED
        reason[(addresses < self._v4.first) | (addresses > self._v4.last)] = R_NOT_IN_POOL
        return reason, np.where(reason == R_NONE, index, -1)

    def key_runs(self) -> tuple[KeyRun, ...]:
        return (KeyRun(self._rule_key, self._rule_key + self.subscriber_count - 1, 0),)

    def pool_port_sets(self) -> tuple[PortRanges, ...]:
        a, k = self.psid_offset, self.psid_length
        return tuple(port_set(psid, a, k) for psid in range(1 << k))

    def pool_allocations(
        self, index: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        k = self.psid_length
        return self._v4.network | (index >> k), index & ((1 << k) - 1)

    def _sharing(self) -> tuple[PortSharing, Callable[[int], int], Callable[[int], int]]:
        k, a = self.psid_length, self.psid_offset
        per_address = 1 << k
        reserved = (1 << (16 - a)) if a > 0 else 0
        ports = ((1 << a) - 1 if a > 0 else 1) << self._m
        addresses = 1 << (32 - self._v4.length)
        sharing = PortSharing(
            65536 - reserved, ports, per_address, 0, ((per_address, addresses),), reserved
        )
        return sharing, lambda address: per_address, lambda index: index >> k

    def summary(self) -> dict[str, object]:
        a, k = self.psid_offset, self.psid_length
        ports = ((1 << a) - 1 if a > 0 else 1) << self._m
        addresses = 1 << (32 - self._v4.length)
        return {
            "algorithm": "map",
            "subscribers": self.subscriber_count,
            "subscriber_prefix_length": self.subscriber_prefix_length,
            "usable_addresses": addresses,
            "ports_per_subscriber": ports,
            "port_sets_per_address": 1 << k,
            "psid_length": k,
            "psid_offset": a,
            "ranges_per_subscriber": len(port_set(0, a, k)),
            "reserved_ports_per_address": (1 << (16 - a)) if a > 0 else 0,
            "capacity": self.subscriber_count,
            "utilisation": 1.0,
            "static_bindings": len(self._static_by_index),
        }


ALGORITHM = Algorithm(
    "map",
    MapPlan,
    MapMapper,
    Capabilities(
        exports={"snabb"},
        enforce={"dslite"},
        capacity={"evaluate", "compare"},
        refusals={
            "det44": "det44 has contiguous port blocks only, not MAP port sets",
            "nftables": "a MAP port set (RFC 7597) is enforced by the CE and a border relay, not "
            "by source NAT (export a Snabb binding table instead)",
        },
    ),
    description="RFC 7597/7599 MAP port sets (MAP-E, MAP-T)",
    unused_hint=" (the MAP rule defines subscribers and ports)",
)
