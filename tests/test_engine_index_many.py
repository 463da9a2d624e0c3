"""The /16 table of :class:`~detnat.engine.bulk.IndexOfMany` against bisection.

Runs are drawn close together (several starts inside one /16, which take the correction steps
or bisection) and far apart; values at every run's edges and around them.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detnat.engine.bulk import MAX_CORRECTIONS, IndexOfMany
from detnat.engine.ranges import NumberedRanges, index_of_many

gaps = st.one_of(st.integers(1, 4), st.integers(1, 600), st.integers(1, 200_000))
sizes = st.one_of(st.integers(0, 3), st.integers(0, 700), st.integers(0, 150_000))


@st.composite
def runs(draw: st.DrawFn) -> list[tuple[int, int]]:
    at = draw(st.integers(0, (1 << 32) - 1))
    out: list[tuple[int, int]] = []
    for _ in range(draw(st.integers(1, 8))):
        lo = at + draw(gaps)
        hi = lo + draw(sizes)
        if hi >= 1 << 32:
            break
        out.append((lo, hi))
        at = hi + 1
    return out or [(0, 0)]


@settings(max_examples=300, deadline=None)
@given(runs(), st.integers(0, 7))
def test_index_of_many_by_table_is_bisection(found: list[tuple[int, int]], turn: int) -> None:
    order = found[turn % len(found) :] + found[: turn % len(found)]  # numbered out of order
    ranges = NumberedRanges.build(order)
    edges = [v + d for lo, hi in found for v in (lo, hi) for d in (-1, 0, 1)]
    spread = np.random.default_rng(turn).integers(found[0][0] - 70_000, found[-1][1] + 70_000, 300)
    values = np.clip(np.array([*edges, *spread.tolist(), 0, (1 << 32) - 1]), 0, (1 << 32) - 1)
    values = values.astype(np.int64)
    table = IndexOfMany(ranges.arrays())
    assert table.steps <= MAX_CORRECTIONS
    assert table.many(values).tolist() == index_of_many(ranges.arrays(), values).tolist()
    assert table.many(values).tolist() == [
        -1 if ranges.index_of(v) is None else ranges.index_of(v) for v in values.tolist()
    ]


def test_the_table_takes_the_correction_steps_and_falls_back() -> None:
    two = NumberedRanges.build([(0x0A000001, 0x0A0000FE), (0x0A000101, 0x0A0001FE)])
    assert IndexOfMany(two.arrays()).steps == 2
    many = NumberedRanges.build([(0x0A000000 + 4 * k, 0x0A000000 + 4 * k + 1) for k in range(9)])
    assert IndexOfMany(many.arrays()).steps == -1  # bisection
    values = np.arange(0x0A000000 - 2, 0x0A000030, dtype=np.int64)
    for r in (two, many):
        got = IndexOfMany(r.arrays()).many(values).tolist()
        assert got == index_of_many(r.arrays(), values).tolist()


@settings(max_examples=100, deadline=None)
@given(runs())
def test_contains_is_index_of_many_not_minus_one(found: list[tuple[int, int]]) -> None:
    ranges = NumberedRanges.build(found)
    edges = [v + d for lo, hi in found for v in (lo, hi) for d in (-1, 0, 1)]
    values = np.clip(np.array(edges), 0, (1 << 32) - 1).astype(np.int64)
    want = index_of_many(ranges.arrays(), values) >= 0
    assert IndexOfMany(ranges.arrays()).contains(values).tolist() == want.tolist()
