"""Algorithm ``block``: contiguous port blocks (RFC 7422 deterministic NAT).

VPP det44, Juniper, A10 and Nokia all compute the same thing with different parameters:

- U usable ports (``ports.first..last`` less ``ports.exclude``), numbered ascending;
- ``block.size`` S gives B = U // S blocks per address, ``block.ratio`` R gives B = R and
  S = U // R; the U - B*S ports of the tail are unused;
- the last D = ``dynamic_blocks`` blocks of each address are overflow, not deterministic;
- subscriber i of the key space gets, over A usable pool addresses,
  ``sequential``: address i // (B-D), block i % (B-D);  ``staggered``: address i % A, block i // A;
- block b is usable ports b*S .. b*S+S-1, several ranges when an excluded port falls inside.

Worked example (VPP ``det44 add in 10.0.0.0/18 out 1.1.1.0/30``, ratio 4096): U = 64512, S = 15;
10.0.0.2 is subscriber 2, address 1.1.1.0, block 2, ports 1024+30 .. 1024+44 = 1054-1068.

One module at this size: the block algorithm's plan, layout arithmetic and mapper (scalar and
vectorised) are one algorithm.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise
from typing import TYPE_CHECKING, Literal

from detnat.engine.addresses import OCTET, V4, WIDTH, Prefix, parse_prefix
from detnat.engine.algorithms import Algorithm, Capabilities
from detnat.engine.mapper import (
    R_DYNAMIC,
    R_EXCLUDED,
    R_NONE,
    R_NOT_IN_POOL,
    R_RESERVED,
    R_UNALLOCATED,
    KeyRun,
    Mapper,
    PortSharing,
)
from detnat.engine.plan import Block, Inside, Outside, Plan, Ports
from detnat.engine.ranges import NumberedRanges, Tables
from detnat.engine.results import Allocation, PortRanges, Reason, ReverseAnswer, Status
from detnat.errors import PlanError

if TYPE_CHECKING:  # the vectorised paths import numpy: a single lookup starts without it
    import numpy as np
    import numpy.typing as npt

    from detnat.engine.bulk import IndexOfMany

_tuple = tuple.__new__  # answers built without the NamedTuples' generated __new__ (as mapper.py)
_MATCH = Status.MATCH


def check_disjoint(prefixes: Sequence[Prefix], field: str) -> None:
    """One family, no two prefixes overlapping; the error names both, later one first."""
    if not prefixes:
        raise PlanError("at least one prefix is needed", field=field)
    family = prefixes[0].family
    for n, p in enumerate(prefixes):
        if p.family != family:
            raise PlanError(
                f"{p} is IPv{p.family} but {field}[0] is IPv{family}; one family per side",
                field=f"{field}[{n}]",
            )
    order = sorted(range(len(prefixes)), key=lambda n: (prefixes[n].network, -prefixes[n].last))
    for x, y in pairwise(order):
        if prefixes[x].overlaps(prefixes[y]):
            first, second = sorted((x, y))
            raise PlanError(
                f"{prefixes[second]} overlaps {field}[{first}] {prefixes[first]}",
                field=f"{field}[{second}]",
            )


def check_within(
    exclude: Sequence[Prefix], prefixes: Sequence[Prefix], field: str, side: str
) -> None:
    for n, ex in enumerate(exclude):
        if not any(
            ex.family == p.family and p.network <= ex.network and ex.last <= p.last
            for p in prefixes
        ):
            raise PlanError(f"{ex} is not inside any {side} prefix", field=f"{field}[{n}]")


def build_key_space(inside: Inside) -> NumberedRanges:
    """Subscriber keys (address >> host bits) numbered in list order, exclusions skipped."""
    check_disjoint(inside.prefixes, "inside.prefixes")
    family = inside.prefixes[0].family
    length = inside.subscriber_prefix_length
    width = WIDTH[family]
    if not 0 <= length <= width:
        raise PlanError(
            f"{length} is not a prefix length of IPv{family} (0-{width})",
            field="inside.subscriber_prefix_length",
        )
    for n, p in enumerate(inside.prefixes):
        if p.length > length:
            raise PlanError(
                f"{p} is smaller than one subscriber (/{length})", field=f"inside.prefixes[{n}]"
            )
    for n, ex in enumerate(inside.exclude):
        if ex.family != family:
            raise PlanError(f"{ex} is not IPv{family}", field=f"inside.exclude[{n}]")
        if ex.length > length:
            raise PlanError(
                f"{ex} is part of one subscriber (/{length}); exclude whole subscribers",
                field=f"inside.exclude[{n}]",
            )
    check_within(inside.exclude, inside.prefixes, "inside.exclude", "inside")
    shift = width - length
    keys = NumberedRanges.build(
        [(p.network >> shift, p.last >> shift) for p in inside.prefixes],
        [(ex.network >> shift, ex.last >> shift) for ex in inside.exclude],
    )
    if keys.count == 0:
        raise PlanError("every subscriber is excluded", field="inside.exclude")
    return keys


def build_pool(outside: Outside) -> tuple[NumberedRanges, NumberedRanges]:
    """(usable addresses numbered in list order, the whole span of the outside prefixes)."""
    check_disjoint(outside.prefixes, "outside.prefixes")
    for n, p in enumerate(outside.prefixes):
        if p.family != V4:
            raise PlanError(
                f"{p} is not IPv4; public pools are IPv4", field=f"outside.prefixes[{n}]"
            )
    check_within(outside.exclude, outside.prefixes, "outside.exclude", "outside")
    blocks = [(p.first, p.last) for p in outside.prefixes]
    pool = NumberedRanges.build(blocks, [(ex.first, ex.last) for ex in outside.exclude])
    if pool.count == 0:
        raise PlanError("every pool address is excluded", field="outside.exclude")
    return pool, NumberedRanges.build(blocks)


def build_ports(ports: Ports) -> NumberedRanges:
    for name in ("first", "last"):
        value = getattr(ports, name)
        if not 0 <= value <= 65535:
            raise PlanError(f"{value} is outside 0-65535", field=f"ports.{name}")
    if ports.first > ports.last:
        raise PlanError(
            f"first port {ports.first} is above last port {ports.last}", field="ports.first"
        )
    for n, (lo, hi) in enumerate(ports.exclude):
        if lo > hi:
            raise PlanError(f"range {lo}-{hi} is reversed", field=f"ports.exclude[{n}]")
        if lo < ports.first or hi > ports.last:
            shown = f"{lo}" if lo == hi else f"{lo}-{hi}"
            raise PlanError(
                f"{shown} is outside the port range {ports.first}-{ports.last}",
                field=f"ports.exclude[{n}]",
            )
    usable = NumberedRanges.build([(ports.first, ports.last)], ports.exclude)
    if usable.count == 0:
        raise PlanError("every port is excluded", field="ports.exclude")
    return usable


@dataclass(frozen=True)
class BlockPlan(Plan):
    """A ``block`` plan: its sections ``inside``, ``outside``, ``ports`` (default 1024-65535)
    and ``block``; a missing one is named when the plan is compiled."""

    algorithm: Literal["block"] = "block"
    inside: Inside | None = None
    outside: Outside | None = None
    ports: Ports | None = None
    block: Block | None = None

    def __post_init__(self) -> None:
        # A block plan without ``ports`` means the default range; say so, so both are equal.
        if self.ports is None:
            object.__setattr__(self, "ports", Ports())

    def _pool_ranges(self) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        if self.outside is None:
            return spans
        cuts = sorted((p.first, p.last) for p in self.outside.exclude)
        for prefix in self.outside.prefixes:
            start = prefix.first
            for lo, hi in cuts:
                if hi < start or lo > prefix.last:
                    continue
                if lo > start:
                    spans.append((start, lo - 1))
                start = max(start, hi + 1)
            if start <= prefix.last:
                spans.append((start, prefix.last))
        return spans


class BlockMapper(Mapper):
    plan: BlockPlan

    def __init__(self, plan: Plan) -> None:
        if not isinstance(plan, BlockPlan):
            raise PlanError(f"not a block plan: algorithm {plan.algorithm}", field="algorithm")
        super().__init__(plan)
        if plan.inside is None or plan.outside is None or plan.block is None:
            missing = [k for k in ("inside", "outside", "block") if getattr(plan, k) is None]
            raise PlanError(f"algorithm block needs {', '.join(missing)}", field=missing[0])
        self._keys = build_key_space(plan.inside)
        self.family = plan.inside.prefixes[0].family
        self.subscriber_prefix_length = plan.inside.subscriber_prefix_length
        self.subscriber_count = self._keys.count
        self._pool, self._span = build_pool(plan.outside)
        self._ports = build_ports(plan.ports or Ports())
        self.block = plan.block
        self._size_blocks(plan.block)
        # Excluded addresses are never used, so a static address must be outside every prefix.
        self._bind_statics(lambda ip: self._span.index_of(ip) is not None)
        self._block_ports: dict[int, PortRanges] = {}  # at most B entries
        # What the per-call paths read, each in one unpacking (see ``forward`` and ``reverse``).
        key_lows, key_spans, key_starts, key_firsts = self._keys.search_tables()
        pool_lows, pool_spans, pool_starts, pool_firsts = self._pool.search_tables()
        port_lows, port_spans, _, _ = self._ports.search_tables()
        subscriber = (
            self.det_blocks,
            self.addresses,
            self.sequential,
            self.family,
            WIDTH[self.family] - self.subscriber_prefix_length,
            self.subscriber_prefix_length,
            self._static_by_index,
            self._block_ports,
        )
        self._forward_tables = (key_lows, key_spans, pool_starts, pool_firsts, *subscriber)
        self._reverse_tables = (
            pool_lows,
            pool_spans,
            port_lows,
            port_spans,
            key_starts,
            key_firsts,
            self.size,
            self.subscriber_count,
            *subscriber,
        )

    def _size_blocks(self, block: Block) -> None:
        usable = self._ports.count
        if (block.size is None) == (block.ratio is None):
            raise PlanError("give exactly one of block.size and block.ratio", field="block")
        if block.size is not None:
            if block.size < 1:
                raise PlanError("block size must be at least 1", field="block.size")
            if block.size > usable:
                raise PlanError(
                    f"block size {block.size} is larger than the {usable} usable ports",
                    field="block.size",
                )
            size, blocks = block.size, usable // block.size
        else:
            assert block.ratio is not None
            if block.ratio < 1:
                raise PlanError("ratio must be at least 1", field="block.ratio")
            if usable // block.ratio < 1:
                raise PlanError(
                    f"ratio {block.ratio} leaves empty blocks: only {usable} usable ports",
                    field="block.ratio",
                )
            size, blocks = usable // block.ratio, block.ratio
        if block.assignment not in ("sequential", "staggered"):
            raise PlanError(
                f"{block.assignment!r} is not sequential or staggered", field="block.assignment"
            )
        if block.dynamic_blocks < 0:
            raise PlanError("must not be negative", field="block.dynamic_blocks")
        if block.dynamic_blocks >= blocks:
            raise PlanError(
                f"{block.dynamic_blocks} dynamic blocks leave no deterministic block "
                f"({blocks} blocks per address)",
                field="block.dynamic_blocks",
            )
        self.size = size  # S
        self.blocks = blocks  # B
        self.det_blocks = blocks - block.dynamic_blocks  # B - D
        self.addresses = self._pool.count  # A
        self.sequential = block.assignment == "sequential"
        capacity = self.addresses * self.det_blocks
        if capacity < self.subscriber_count:
            self._refuse_capacity(capacity)

    def _refuse_capacity(self, capacity: int) -> None:
        n, a, per = self.subscriber_count, self.addresses, self.det_blocks
        need_addresses = -(-n // per)
        need_blocks = -(-n // a) + self.block.dynamic_blocks
        fixes = [f"{need_addresses} usable addresses (+{need_addresses - a})"]
        if self._ports.count // need_blocks >= 1:
            fixes.append(
                f"{need_blocks} blocks per address (ratio {need_blocks}, or size "
                f"{self._ports.count // need_blocks})"
            )
        raise PlanError(
            f"{a} addresses x {per} deterministic blocks = {capacity} subscribers, but the inside "
            f"key space has {n}: short by {n - capacity}; fix with {' or '.join(fixes)}",
            field="block",
        )

    # -- the algorithm ----------------------------------------------------------------------------

    def _index_of_key(self, key: int) -> int | None:
        return self._keys.index_of(key)

    def _why_not_a_subscriber(self, query: Prefix) -> str:
        assert self.plan.inside is not None
        for n, excluded in enumerate(self.plan.inside.exclude):
            if excluded.contains(query.family, query.network):
                return (
                    f"{query} is excluded by inside.exclude[{n}] {excluded}: it has no allocation"
                )
        return f"{query} is not in the plan's inside key space"

    def _key_at(self, index: int) -> int:
        return self._keys.value_at(index)

    def _allocate(self, index: int) -> tuple[int, PortRanges]:
        if self.sequential:
            address, block = divmod(index, self.det_blocks)
        else:
            block, address = divmod(index, self.addresses)
        ports = self._block_ports.get(block)
        if ports is None:
            ports = self._ports_of_block(block)
        return self._pool.value_at(address), ports

    def _ports_of_block(self, block: int) -> PortRanges:
        """The port set of a block, the same on every address: computed once (at most B)."""
        first = block * self.size
        ports = tuple(self._ports.ranges_between(first, first + self.size - 1))
        self._block_ports[block] = ports
        return ports

    # -- the per-call paths, specialised ------------------------------------------------------
    # :meth:`Mapper.forward` and :meth:`Mapper.reverse` with this algorithm's arithmetic inlined:
    # a query one subscriber answers costs a few integer operations and two or three
    # ``bisect_right`` over small tuples. Anything else (another spelling, an error, an answer
    # naming nobody, a static binding) goes to the general path, which says why; the property
    # tests hold both to the same answers.

    def forward(self, query: str | Prefix) -> Allocation:
        prefix = parse_prefix(query, field="query") if isinstance(query, str) else query
        (
            key_lows, key_spans, pool_starts, pool_firsts,
            det, addresses, sequential, family, host_bits, length, statics, ports_of,
        ) = self._forward_tables  # fmt: skip
        asked_family, network, asked_length = prefix
        if asked_family == family and asked_length >= length:
            key = network >> host_bits
            lo, hi, start = key_spans[bisect_right(key_lows, key) - 1]
            index = start + key - lo
            if key <= hi and not (statics and index in statics):
                if sequential:
                    number = index // det
                    block = index - number * det
                else:
                    block = index // addresses
                    number = index - block * addresses
                run = bisect_right(pool_starts, number) - 1
                ports = ports_of.get(block)
                if ports is None:
                    ports = self._ports_of_block(block)
                subscriber = _tuple(Prefix, (family, key << host_bits, length))
                public_ip = pool_firsts[run] + number - pool_starts[run]
                return _tuple(Allocation, (subscriber, public_ip, ports, False))
        return Mapper.forward(self, prefix)

    def reverse(self, address: str | int, port: int) -> ReverseAnswer:
        try:
            a, b, c, d = address.split(".")  # type: ignore[union-attr]
            ip = (OCTET[a] << 24) | (OCTET[b] << 16) | (OCTET[c] << 8) | OCTET[d]
        except (AttributeError, TypeError, ValueError, KeyError):  # not a dotted quad
            return Mapper.reverse(self, address, port)
        if type(port) is int and 0 <= port <= 65535:
            (
                pool_lows, pool_spans, port_lows, port_spans, key_starts, key_firsts, size, count,
                det, addresses, sequential, family, host_bits, length, statics, ports_of,
            ) = self._reverse_tables  # fmt: skip
            lo, hi, start = pool_spans[bisect_right(pool_lows, ip) - 1]
            if ip <= hi:
                number = start + ip - lo
                lo, hi, start = port_spans[bisect_right(port_lows, port) - 1]
                if port <= hi:
                    block = (start + port - lo) // size
                    if block < det:
                        index = number * det + block if sequential else block * addresses + number
                        if index < count and not (statics and index in statics):
                            run = bisect_right(key_starts, index) - 1
                            key = key_firsts[run] + index - key_starts[run]
                            ports = ports_of.get(block)
                            if ports is None:
                                ports = self._ports_of_block(block)
                            subscriber = _tuple(Prefix, (family, key << host_bits, length))
                            allocation = _tuple(Allocation, (subscriber, ip, ports, False))
                            return _tuple(ReverseAnswer, (ip, port, _MATCH, None, allocation))
        return Mapper.reverse(self, address, port)

    def _reverse(self, address: int, port: int) -> int | Reason:
        a = self._pool.index_of(address)
        if a is None:
            if self._span.index_of(address) is not None:
                return Reason.EXCLUDED_ADDRESS
            return Reason.NOT_IN_POOL
        p = self._ports.index_of(port)
        if p is None:
            return Reason.RESERVED_PORT
        block = p // self.size
        if block >= self.blocks:
            return Reason.UNALLOCATED
        if block >= self.det_blocks:
            return Reason.DYNAMIC_BLOCK
        index = a * self.det_blocks + block if self.sequential else block * self.addresses + a
        if index >= self.subscriber_count:
            return Reason.UNALLOCATED
        return index

    # The vectorised paths' tables, built at their first use (numpy arrays).

    @cached_property
    def _tables(self) -> tuple[Tables, Tables, Tables]:
        return self._pool.arrays(), self._span.arrays(), self._ports.arrays()

    @cached_property
    def _pool_runs(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        import numpy as np

        return (
            np.array([lo for lo, _ in self._pool.runs], dtype=np.int64),
            np.array(self._pool.starts, dtype=np.int64),
        )

    def _reverse_many(
        self, addresses: npt.NDArray[np.int64], ports: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
        import numpy as np

        pool, span, port_reason, port_block = self._bulk
        a = pool.many(addresses)
        # What the port alone says (reserved, a tail or overflow block), and its block.
        reason = port_reason[ports]
        block = port_block[ports]
        index = a * self.det_blocks + block if self.sequential else block * self.addresses + a
        # Checks from the least to the most specific: a port's reason beats a missing subscriber.
        beyond = np.flatnonzero(index >= self.subscriber_count)
        if beyond.size:
            reason[beyond[reason[beyond] == R_NONE]] = R_UNALLOCATED
        missing = np.flatnonzero(a < 0)
        if missing.size:
            reason[missing] = R_NOT_IN_POOL
            if self._span.count != self._pool.count:
                excluded = span.many(addresses[missing]) >= 0
                reason[missing[excluded]] = R_EXCLUDED
        return reason, np.where(reason == R_NONE, index, -1)

    @cached_property
    def _bulk(
        self,
    ) -> tuple[IndexOfMany, IndexOfMany, npt.NDArray[np.uint8], npt.NDArray[np.int32]]:
        """The vectorised path's tables, made on its first call: the pool and the span by /16,
        and for each of the 65,536 ports its reason (reserved, tail, overflow) and block."""
        import numpy as np

        from detnat.engine.bulk import IndexOfMany

        number = np.full(65536, -1, dtype=np.int64)
        lo, hi, start = self._ports.arrays()
        for first, last, at in zip(lo.tolist(), hi.tolist(), start.tolist(), strict=True):
            if first <= 65535:
                last = min(last, 65535)
                number[first : last + 1] = np.arange(at, at + last - first + 1)
        block = number // self.size
        reason = np.zeros(65536, dtype=np.uint8)  # R_NONE
        reason[block >= self.det_blocks] = R_DYNAMIC
        reason[block >= self.blocks] = R_UNALLOCATED
        reason[number < 0] = R_RESERVED
        return (
            IndexOfMany(self._tables[0]),
            IndexOfMany(self._tables[1]),
            reason,
            np.where(reason == R_NONE, block, 0).astype(np.int32),
        )

    def key_runs(self) -> tuple[KeyRun, ...]:
        return tuple(
            KeyRun(lo, hi, start)
            for (lo, hi), start in zip(self._keys.runs, self._keys.starts, strict=True)
        )

    def pool_port_sets(self) -> tuple[PortRanges, ...]:
        runs, size = self._ports.runs, self.size
        if len(runs) == 1:  # nothing excluded: one range per block
            return tuple(
                ((runs[0][0] + b * size, runs[0][0] + b * size + size - 1),)
                for b in range(self.blocks)
            )
        return tuple(
            tuple(self._ports.ranges_between(b * size, b * size + size - 1))
            for b in range(self.blocks)
        )

    def pool_allocations(
        self, index: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        import numpy as np

        if self.sequential:
            address, block = np.divmod(index, self.det_blocks)
        else:
            block, address = np.divmod(index, self.addresses)
        pool_lo, pool_start = self._pool_runs
        run = np.searchsorted(pool_start, address, side="right") - 1
        return pool_lo[run] + address - pool_start[run], block

    def _sharing(self) -> tuple[PortSharing, Callable[[int], int], Callable[[int], int]]:
        n, a, det = self.subscriber_count, self.addresses, self.det_blocks
        if self.sequential:
            full, rest = divmod(n, det)

            def load(address: int) -> int:
                return det if address < full else (rest if address == full else 0)

            def address_of(index: int) -> int:
                return index // det

            counts: Counter[int] = Counter({det: full})
            counts[rest] += 1 if full < a else 0
            counts[0] += max(a - full - 1, 0)
        else:
            q, r = divmod(n, a)

            def load(address: int) -> int:
                return q + (1 if address < r else 0)

            def address_of(index: int) -> int:
                return index % a

            counts = Counter({q + 1: r, q: a - r})
        sharing = PortSharing(
            self._ports.count, self.size, self.blocks, self.blocks - det, tuple(counts.items())
        )
        return sharing, load, address_of

    def summary(self) -> dict[str, object]:
        usable = self._ports.count
        capacity = self.addresses * self.det_blocks
        return {
            "algorithm": "block",
            "subscribers": self.subscriber_count,
            "subscriber_prefix_length": self.subscriber_prefix_length,
            "usable_addresses": self.addresses,
            "usable_ports_per_address": usable,
            "ports_per_subscriber": self.size,
            "blocks_per_address": self.blocks,
            "deterministic_blocks_per_address": self.det_blocks,
            "dynamic_blocks_per_address": self.blocks - self.det_blocks,
            "dynamic_share": (self.blocks - self.det_blocks) / self.blocks,
            "unused_tail_ports_per_address": usable - self.blocks * self.size,
            "capacity": capacity,
            "utilisation": self.subscriber_count / capacity,
            "static_bindings": len(self._static_by_index),
            "assignment": self.block.assignment,
        }


ALGORITHM = Algorithm(
    "block",
    BlockPlan,
    BlockMapper,
    Capabilities(
        exports={"det44", "nftables"},
        enforce={"nftables", "dslite"},
        capacity={"evaluate", "compare"},
        refusals={
            "snabb": "Snabb's lwAFTR port sets are MAP PSIDs (RFC 7597); contiguous blocks with "
            "an AFTR doing the NAT are DS-Lite (export nftables, or run the detnat AFTR)",
        },
    ),
    description="RFC 7422 port blocks (VPP det44, VyOS, nftables, Juniper, A10, Nokia...)",
)
