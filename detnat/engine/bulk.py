"""The vectorised index of IPv4 ranges by a table of /16s (numpy): :class:`IndexOfMany`.

Its own module, imported by the bulk paths when they first run: a single lookup imports the
engine without numpy (:mod:`detnat.engine.ranges` holds the scalar forms and the bisection).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from detnat.engine.ranges import index_of_many

BUCKET_BITS = 16  # an IPv4 address's bucket: its /16
MAX_CORRECTIONS = 3  # more run starts than this inside one bucket: bisection instead


class IndexOfMany:
    """:func:`index_of_many` for IPv4 addresses (values in ``[0, 2**32)``), by a table of /16s.

    For each /16, the table holds the position of the last run begun by its last address; a
    value's run is that one or, when run starts lie inside its /16 after the value, an earlier
    one: one step back per such start (at most :data:`MAX_CORRECTIONS`, else bisection for all).
    Bisection in a short array of run starts costs about twice these gathers.

    >>> from detnat.engine.ranges import NumberedRanges
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
