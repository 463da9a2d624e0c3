"""Numbered ranges: an ordered union of disjoint integer runs, numbered 0, 1, 2 ... in list order.

Subscriber keys, pool addresses and usable ports are all the same shape: some blocks of integers
taken in the order the operator listed them, minus exclusions. :class:`NumberedRanges` answers
both directions in O(log n) in the number of runs, never by enumerating the members:

>>> r = NumberedRanges.build([(100, 109), (0, 4)], exclude=[(103, 104)])
>>> r.count, r.value_at(3), r.index_of(105), r.index_of(103)
(13, 105, 3, None)
>>> r.ranges_between(2, 9)
[(102, 102), (105, 109), (0, 1)]
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Run = tuple[int, int]


def subtract(block: Run, exclude: Sequence[Run]) -> list[Run]:
    """The parts of inclusive ``block`` not covered by any of the (sorted, disjoint) ``exclude``."""
    lo, hi = block
    out: list[Run] = []
    for ex_lo, ex_hi in exclude:
        if ex_hi < lo or ex_lo > hi:
            continue
        if ex_lo > lo:
            out.append((lo, ex_lo - 1))
        lo = max(lo, ex_hi + 1)
        if lo > hi:
            return out
    out.append((lo, hi))
    return out


def merge(runs: Iterable[Run]) -> list[Run]:
    """Sort and merge overlapping or adjacent runs."""
    out: list[Run] = []
    for lo, hi in sorted(runs):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


@dataclass(frozen=True)
class NumberedRanges:
    """Disjoint runs in numbering order; member ``i`` is the i-th value walking the runs."""

    runs: tuple[Run, ...]
    starts: tuple[int, ...]  # index of each run's first member
    count: int
    # The same runs sorted by value, for value -> index.
    _by_value_lo: tuple[int, ...] = field(repr=False)
    _by_value_run: tuple[int, ...] = field(repr=False)
    # (lo, hi, index of lo) of each run in the order of _by_value_lo: one lookup per query.
    _by_value_span: tuple[tuple[int, int, int], ...] = field(repr=False)

    @classmethod
    def build(cls, blocks: Sequence[Run], exclude: Sequence[Run] = ()) -> NumberedRanges:
        cut = merge(exclude)
        runs = tuple(part for block in blocks for part in subtract(block, cut))
        starts: list[int] = []
        total = 0
        for lo, hi in runs:
            starts.append(total)
            total += hi - lo + 1
        order = sorted(range(len(runs)), key=lambda i: runs[i][0])
        return cls(
            runs=runs,
            starts=tuple(starts),
            count=total,
            _by_value_lo=tuple(runs[i][0] for i in order),
            _by_value_run=tuple(order),
            _by_value_span=tuple((*runs[i], starts[i]) for i in order),
        )

    def value_at(self, index: int) -> int:
        """The value numbered ``index`` (0 <= index < count)."""
        if not 0 <= index < self.count:
            raise IndexError(index)
        run = bisect_right(self.starts, index) - 1
        return self.runs[run][0] + index - self.starts[run]

    def index_of(self, value: int) -> int | None:
        """The number of ``value``, or None if it is not a member."""
        pos = bisect_right(self._by_value_lo, value) - 1
        if pos < 0:
            return None
        lo, hi, start = self._by_value_span[pos]
        if value > hi:
            return None
        return start + value - lo

    def ranges_between(self, first: int, last: int) -> list[Run]:
        """Values numbered ``first`` ... ``last`` (inclusive) as runs, adjacent ones merged."""
        run = bisect_right(self.starts, first) - 1
        lo, hi = self.runs[run]
        start = self.starts[run]
        if last - start <= hi - lo:  # the common case: all inside one run
            return [(lo + first - start, lo + last - start)]
        out: list[Run] = []
        while first <= last:
            lo, hi = self.runs[run]
            start = self.starts[run]
            a = lo + first - start
            b = min(hi, lo + last - start)
            if out and out[-1][1] + 1 == a:
                out[-1] = (out[-1][0], b)
            else:
                out.append((a, b))
            first = start + (b - lo) + 1
            run += 1
        return out

    def search_tables(
        self,
    ) -> tuple[tuple[int, ...], tuple[tuple[int, int, int], ...], tuple[int, ...], tuple[int, ...]]:
        """Plain tuples for inlined lookups on a per-call path, ``bisect_right`` over each:

        - ``(lows, spans)``: value -> index. ``spans[bisect_right(lows, v) - 1]`` is the
          ``(lo, hi, index of lo)`` of the only run that can hold ``v``; it does when ``v <= hi``.
          A sentinel run ``(-1, -1, 0)`` comes first, so every value >= 0 lands on some run.
        - ``(starts, firsts)``: index -> value. With ``r = bisect_right(starts, i) - 1``,
          member ``i`` is ``firsts[r] + i - starts[r]`` (for 0 <= i < count).

        >>> lows, spans, starts, firsts = NumberedRanges.build([(100, 109), (0, 4)]).search_tables()
        >>> lows, spans[bisect_right(lows, 105) - 1], starts, firsts
        ((-1, 0, 100), (100, 109, 0), (0, 10), (100, 0))
        """
        return (
            (-1, *self._by_value_lo),
            ((-1, -1, 0), *self._by_value_span),
            self.starts,
            tuple(lo for lo, _ in self.runs),
        )

    # -- vectorised (values must fit in int64: ports and IPv4 addresses) --------------------------

    def arrays(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(sorted run starts, their run ends, the index of each such run's first member)."""
        order = list(self._by_value_run)
        lo = np.array([self.runs[i][0] for i in order], dtype=np.int64)
        hi = np.array([self.runs[i][1] for i in order], dtype=np.int64)
        start = np.array([self.starts[i] for i in order], dtype=np.int64)
        return lo, hi, start


def index_of_many(
    tables: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]],
    values: npt.NDArray[np.int64],
) -> npt.NDArray[np.int64]:
    """Vectorised :meth:`NumberedRanges.index_of`: -1 where a value is not a member."""
    lo, hi, start = tables
    if len(lo) == 0:
        return np.full(values.shape, -1, dtype=np.int64)
    if len(lo) == 1:  # the common case (one pool prefix, one port range): no search at all
        offset = values - lo[0]
        return np.where((offset >= 0) & (offset <= hi[0] - lo[0]), offset + start[0], -1)
    pos = np.searchsorted(lo, values, side="right") - 1
    safe = np.maximum(pos, 0)
    inside = (pos >= 0) & (values <= hi[safe])
    return np.where(inside, start[safe] + values - lo[safe], -1)


BUCKET_BITS = 16  # an IPv4 address's bucket: its /16
MAX_CORRECTIONS = 3  # more run starts than this inside one bucket: bisection instead


class IndexOfMany:
    """:func:`index_of_many` for IPv4 addresses (values in ``[0, 2**32)``), by a table of /16s.

    For each /16, the table holds the position of the last run begun by its last address; a
    value's run is that one or, when run starts lie inside its /16 after the value, an earlier
    one: one step back per such start (at most :data:`MAX_CORRECTIONS`, else bisection for all).
    Bisection in a short array of run starts costs about twice these gathers.

    >>> r = NumberedRanges.build([(0x0A000005, 0x0A000009), (0x0A000100, 0x0A0001FF)])
    >>> IndexOfMany(r.arrays()).many(np.array([0x0A000004, 0x0A000005, 0x0A000101, 7]))
    array([-1,  0,  6, -1])
    """

    def __init__(
        self, tables: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]
    ) -> None:
        lo, hi, start = tables
        self.tables = tables
        self.steps = -1  # bisection
        if not len(lo) or int(hi[-1]) >= 1 << 32:
            return
        ends = (np.arange(1 << (32 - BUCKET_BITS), dtype=np.int64) << BUCKET_BITS) + (
            (1 << BUCKET_BITS) - 1
        )
        # Position 0 is a sentinel run (never holds a value): positions are run numbers + 1.
        last = np.searchsorted(lo, ends, side="right")
        inner = np.bincount((lo[(lo & ((1 << BUCKET_BITS) - 1)) != 0] >> BUCKET_BITS), minlength=1)
        steps = int(inner.max()) if len(inner) else 0
        if steps > MAX_CORRECTIONS:
            return
        self.steps = steps
        self._last = last.astype(np.int16 if len(lo) < np.iinfo(np.int16).max else np.int32)
        self._lo = np.concatenate([[np.iinfo(np.int64).min], lo])
        self._hi = np.concatenate([[-1], hi])
        self._shift = np.concatenate([[0], start - lo])  # index = value + shift

    def many(self, values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The index of each value, -1 where it is not a member (values in ``[0, 2**32)``)."""
        if self.steps < 0:
            return index_of_many(self.tables, values)
        pos = self._run(values)
        return np.where(values <= self._hi[pos], values + self._shift[pos], -1)

    def contains(self, values: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Which values are members (values in ``[0, 2**32)``)."""
        if self.steps < 0:
            found: npt.NDArray[np.bool_] = index_of_many(self.tables, values) >= 0
            return found
        inside: npt.NDArray[np.bool_] = values <= self._hi[self._run(values)]
        return inside

    def _run(self, values: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
        """The position of the last run begun at or before each value (0: none)."""
        pos: npt.NDArray[np.intp] = self._last[values >> BUCKET_BITS].astype(np.intp)
        for _ in range(self.steps):
            pos -= values < self._lo[pos]
        return pos
