"""Vectorised forward for whole plans: subscriber numbers in, public addresses and port sets out.

:class:`Allocations` computes, for arrays of subscriber numbers, what
:meth:`detnat.engine.Mapper.allocation_of` computes one at a time, so comparing two plans costs a
few array operations per million subscribers. Port sets are *interned* in a :class:`PortSets`
shared by the plans being compared: equal sets get equal ids, so "same ports" is an integer
comparison, whatever exclusions split the ranges.

The subscriber key space is kept as runs of keys (Python ints, so /128 keys need no int64): two
plans' subscribers are matched by intersecting runs, which gives pieces where subscriber ``o + j``
of one plan is subscriber ``n + j`` of the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detnat.engine import Mapper
from detnat.engine.addresses import WIDTH
from detnat.engine.block import BlockMapper, build_key_space, build_pool, build_ports
from detnat.engine.map_rule import MapMapper, port_set
from detnat.engine.results import ALL_PORTS, PortRanges
from detnat.errors import InvalidInput

IntArray = npt.NDArray[np.int64]


class PortSets:
    """Port sets interned to small integers; equal sets (as ranges) get equal ids."""

    def __init__(self) -> None:
        self._ids: dict[PortRanges, int] = {}
        self.sets: list[PortRanges] = []
        self._counts: list[int] = []
        self._texts: dict[int, str] = {}

    def id_of(self, ranges: PortRanges) -> int:
        found = self._ids.get(ranges)
        if found is None:
            found = self._ids[ranges] = len(self.sets)
            self.sets.append(ranges)
            self._counts.append(sum(b - a + 1 for a, b in ranges))
        return found

    def counts(self) -> IntArray:
        """Ports in each set, indexed by id."""
        return np.array(self._counts, dtype=np.int64)

    def text(self, set_id: int) -> str:
        """``1024-1039 2000-2003`` (as ``plan table`` writes port ranges)."""
        found = self._texts.get(set_id)
        if found is None:
            found = " ".join(f"{a}-{b}" for a, b in self.sets[set_id])
            if len(self._texts) < 1 << 16:
                self._texts[set_id] = found
        return found


@dataclass(frozen=True)
class KeyRun:
    first: int  # first subscriber key (prefix >> host bits) of the run
    last: int
    start: int  # subscriber number of ``first``


class Allocations:
    """Vectorised allocations of one compiled plan (block or map)."""

    def __init__(self, mapper: Mapper, port_sets: PortSets) -> None:
        self.mapper = mapper
        self.port_sets = port_sets
        self.subscriber_count = mapper.subscriber_count
        self.family = mapper.family
        self.prefix_length = mapper.subscriber_prefix_length
        plan = mapper.plan
        if isinstance(mapper, BlockMapper):
            assert plan.inside is not None and plan.outside is not None and plan.ports is not None
            keys = build_key_space(plan.inside)
            self.key_runs = tuple(
                KeyRun(lo, hi, start)
                for (lo, hi), start in zip(keys.runs, keys.starts, strict=True)
            )
            pool = build_pool(plan.outside)[0]
            self._pool_lo = np.array([lo for lo, _ in pool.runs], dtype=np.int64)
            self._pool_start = np.array(pool.starts, dtype=np.int64)
            ports = build_ports(plan.ports)
            size = mapper.size
            single = ports.runs[0][0] if len(ports.runs) == 1 else None
            ids = []
            for block in range(mapper.blocks):
                if single is not None:
                    low = single + block * size
                    ranges: PortRanges = ((low, low + size - 1),)
                else:
                    ranges = tuple(ports.ranges_between(block * size, block * size + size - 1))
                ids.append(port_sets.id_of(ranges))
            self._block_ids = np.array(ids, dtype=np.int64)
            self._sequential = mapper.sequential
            self._det = mapper.det_blocks
            self._addresses = mapper.addresses
            self._map = False
        elif isinstance(mapper, MapMapper):
            shift = WIDTH[mapper.family] - mapper.subscriber_prefix_length
            first = mapper.rule.rule_ipv6_prefix.network >> shift
            self.key_runs = (KeyRun(first, first + mapper.subscriber_count - 1, 0),)
            k, a = mapper.psid_length, mapper.psid_offset
            self._psid_bits = k
            self._v4 = mapper.rule.rule_ipv4_prefix.network
            self._psid_ids = np.array(
                [port_sets.id_of(port_set(psid, a, k)) for psid in range(1 << k)], dtype=np.int64
            )
            self._map = True
        else:
            raise InvalidInput(f"cannot compare a {type(mapper).__name__}", field="plan")
        statics = sorted((mapper.subscriber_number(s.subscriber), s.address) for s in plan.static)
        self._static_index = np.array([i for i, _ in statics], dtype=np.int64)
        self._static_ip = np.array([ip for _, ip in statics], dtype=np.int64)
        self._all_ports = port_sets.id_of(ALL_PORTS)

    def of(self, index: IntArray) -> tuple[IntArray, IntArray]:
        """(public IPv4 address, port set id) of each subscriber number in ``index``."""
        if self._map:
            ip = self._v4 | (index >> self._psid_bits)
            ids = self._psid_ids[index & ((1 << self._psid_bits) - 1)]
        else:
            if self._sequential:
                address, block = np.divmod(index, self._det)
            else:
                block, address = np.divmod(index, self._addresses)
            run = np.searchsorted(self._pool_start, address, side="right") - 1
            ip = self._pool_lo[run] + address - self._pool_start[run]
            ids = self._block_ids[block]
        if len(self._static_index):
            pos = np.minimum(
                np.searchsorted(self._static_index, index), len(self._static_index) - 1
            )
            hit = self._static_index[pos] == index
            if hit.any():
                ip = np.where(hit, self._static_ip[pos], ip)
                ids = np.where(hit, self._all_ports, ids)
        return ip, ids


def common_pieces(old: Allocations, new: Allocations) -> list[tuple[int, int, int]]:
    """Pieces ``(o, n, length)``: old subscriber ``o + j`` is new subscriber ``n + j``.

    Subscribers are the same when their keys are: same family, same subscriber prefix length and
    same prefix. Pieces come in old numbering order.
    """
    if old.family != new.family or old.prefix_length != new.prefix_length:
        return []
    a = sorted(old.key_runs, key=lambda r: r.first)
    b = sorted(new.key_runs, key=lambda r: r.first)
    pieces: list[tuple[int, int, int]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i].first, b[j].first), min(a[i].last, b[j].last)
        if lo <= hi:
            pieces.append((a[i].start + lo - a[i].first, b[j].start + lo - b[j].first, hi - lo + 1))
        if a[i].last < b[j].last:
            i += 1
        else:
            j += 1
    return sorted(pieces)


def uncovered(total: int, covered: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Runs ``(start, length)`` of 0 .. total-1 that no ``(start, length)`` of ``covered`` holds."""
    out: list[tuple[int, int]] = []
    at = 0
    for start, length in sorted(covered):
        if start > at:
            out.append((at, start - at))
        at = max(at, start + length)
    if at < total:
        out.append((at, total - at))
    return out
