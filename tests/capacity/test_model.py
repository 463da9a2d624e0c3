"""The figures of one way of sharing addresses: exact answers, Monte Carlo beside them, monotony."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detnat.capacity.demand import Demand
from detnat.capacity.model import (
    Draws,
    Sharing,
    assess,
    simulate,
    smallest_dynamic_blocks,
    sum_tail,
)

U = 64512


def test_deterministic_demand_gives_exact_figures_in_both_columns() -> None:
    # 1,000 subscribers each holding 300 ports, blocks of 256 (252 per address, no dynamic).
    sharing = Sharing.sequential(1000, U, 252, 0)
    figures = assess(sharing, Demand.constant(300), samples=10_000)
    assert sharing.addresses == 4 and sharing.occupancy == ((252, 3), (244, 1))
    assert figures["exceeding_share"] == {"analytic": 1.0, "monte_carlo": 1.0, "stderr": 0.0}
    assert figures["overflow_ports"] == {"analytic": 44_000.0, "monte_carlo": 44_000.0}
    assert figures["overflow_blocks"] == {"analytic": 1000.0, "monte_carlo": 1000.0}
    assert figures["addresses_out_of_overflow"]["analytic"] == 1.0
    assert figures["unused_tail_ports_per_address"] == U - 252 * 256
    assert figures["spare_blocks"] == 4 * 252 - 1000


def test_a_block_at_the_constant_demand_is_never_exceeded() -> None:
    figures = assess(Sharing.sequential(1000, U, 215, 0), Demand.constant(300))
    assert figures["block_size"] == 300
    assert figures["exceeding_share"]["analytic"] == 0.0
    assert figures["exceeding_share"]["monte_carlo"] == 0.0
    assert figures["overflow_ports"] == {"analytic": 0.0, "monte_carlo": 0.0}


def test_uniform_demand_monte_carlo_agrees_with_the_exact_figures() -> None:
    demand = Demand.uniform(1, 1000)
    figures = assess(Sharing.sequential(100_000, U, 126, 0), demand, samples=1_000_000)
    share = figures["exceeding_share"]
    assert share["analytic"] == pytest.approx((1000 - 512) / 1000)
    assert abs(share["monte_carlo"] - share["analytic"]) < 5 * share["stderr"]
    ports = figures["overflow_ports"]
    exact = 100_000 * (1000 - 512) * (1001 - 512) / 2000
    assert ports["analytic"] == pytest.approx(exact, rel=1e-6)
    assert ports["monte_carlo"] == pytest.approx(exact, rel=0.01)


def test_sum_tail_is_exact_against_the_binomial() -> None:
    # Each subscriber needs one extra block with p = 0.1: the sum over 40 is Binomial(40, 0.1).
    pmf = np.array([0.9, 0.1])
    for d in (0, 2, 4, 8):
        exact = sum(math.comb(40, k) * 0.1**k * 0.9 ** (40 - k) for k in range(d + 1, 41))
        got, method = sum_tail(pmf, 40, d)
        assert method == "exact"
        assert got == pytest.approx(exact, abs=1e-12)


def test_without_dynamic_blocks_an_address_runs_out_when_anyone_exceeds() -> None:
    demand = Demand.uniform(1, 1000)
    figures = assess(Sharing.sequential(126 * 10, U, 126, 0), demand, samples=0)
    p = demand.survival(512)
    assert figures["addresses_out_of_overflow"]["analytic"] == pytest.approx(1 - (1 - p) ** 126)
    assert figures["exceeding_share"]["monte_carlo"] is None


def test_dynamic_blocks_chosen_meet_the_pool_target_and_one_fewer_does_not() -> None:
    demand = Demand.from_percentiles({50: 200, 90: 500, 99: 1500, 100: 5000})
    blocks, target = 64, 0.001
    d = smallest_dynamic_blocks(demand, U // blocks, blocks, target)
    assert d is not None and d > 0
    pmf = demand.overflow_blocks_pmf(U // blocks)
    assert sum_tail(pmf, blocks - d, d)[0] <= target
    assert sum_tail(pmf, blocks - d + 1, d - 1)[0] > target


def test_monte_carlo_is_reproducible_by_seed_and_differs_between_seeds() -> None:
    sharing = Sharing.sequential(50_000, U, 64, 2)
    demand = Demand.uniform(1, 2000)
    a = simulate(sharing, demand, seed=3, samples=100_000)
    assert a == simulate(sharing, demand, seed=3, samples=100_000)
    assert a != simulate(sharing, demand, seed=4, samples=100_000)


def test_shared_draws_are_the_same_stream_however_they_grow() -> None:
    demand = Demand.uniform(0, 99)
    grown = Draws(demand, 5)
    grown.first(10)
    assert np.array_equal(grown.first(1000), Draws(demand, 5).first(1000))


def test_more_subscribers_than_samples_draws_a_share_of_each_kind_of_address() -> None:
    sharing = Sharing.sequential(10_000_000, U, 64, 0)  # 156,250 full addresses
    figures = simulate(sharing, Demand.constant(2000), seed=0, samples=64_000)
    assert figures["simulated_subscribers"] == 64_000
    assert figures["exceeding_subscribers"] == pytest.approx(10_000_000)
    assert figures["overflow_ports"] == pytest.approx(10_000_000 * (2000 - 1008))


demands = st.one_of(
    st.builds(Demand.constant, st.integers(0, 5000)),
    st.tuples(st.integers(0, 3000), st.integers(0, 3000)).map(
        lambda t: Demand.uniform(min(t), max(t))
    ),
    st.lists(st.integers(0, 6000), min_size=1, max_size=6).map(
        lambda vs: Demand.from_percentiles(
            [(100 * (i + 1) / len(vs), v) for i, v in enumerate(sorted(vs))]
        )
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(demand=demands, sizes=st.lists(st.integers(1, 8000), min_size=2, max_size=5))
def test_more_ports_per_subscriber_never_raise_exceedance(demand: Demand, sizes: list[int]) -> None:
    sizes = sorted(sizes)
    exact = [demand.survival(s) for s in sizes]
    excess = [demand.expected_excess(s) for s in sizes]
    assert all(a >= b for a, b in itertools.pairwise(exact))
    assert all(a >= b - 1e-9 for a, b in itertools.pairwise(excess))
    # Monte Carlo with common random numbers keeps the order too.
    draws = Draws(demand, 11)
    simulated = [
        simulate(
            Sharing.sequential(2000, U, max(U // s, 1), 0),
            demand,
            seed=11,
            samples=2000,
            draws=draws,
        )["exceeding_share"]
        for s in sizes
    ]
    assert all(a >= b for a, b in itertools.pairwise(simulated))
