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

import numpy as np
import numpy.typing as npt

from detnat.engine import CAPACITY, Mapper, refusal
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


class Allocations:
    """Vectorised allocations of one compiled plan (any algorithm that declares ``compare``)."""

    def __init__(self, mapper: Mapper, port_sets: PortSets) -> None:
        self.mapper = mapper
        self.port_sets = port_sets
        self.subscriber_count = mapper.subscriber_count
        self.family = mapper.family
        self.prefix_length = mapper.subscriber_prefix_length
        why_not = refusal(mapper, CAPACITY, "compare")
        if why_not is not None:
            raise InvalidInput(why_not, field="plan")
        self.key_runs = mapper.key_runs()
        self._set_ids = np.array(
            [port_sets.id_of(ranges) for ranges in mapper.pool_port_sets()], dtype=np.int64
        )
        statics = sorted(
            (mapper.subscriber_number(s.subscriber), s.address) for s in mapper.plan.static
        )
        self._static_index = np.array([i for i, _ in statics], dtype=np.int64)
        self._static_ip = np.array([ip for _, ip in statics], dtype=np.int64)
        self._all_ports = port_sets.id_of(ALL_PORTS)

    def of(self, index: IntArray) -> tuple[IntArray, IntArray]:
        """(public IPv4 address, port set id) of each subscriber number in ``index``."""
        ip, number = self.mapper.pool_allocations(index)
        ids = self._set_ids[number]
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
