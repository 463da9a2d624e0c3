"""Sizing under constraints: known answers for constant and uniform demand, and the 5 s budget."""

from __future__ import annotations

import time

import pytest

from detnat.capacity import Demand, SizingRequest, preset, size
from detnat.engine import Ports
from detnat.errors import InvalidInput

U = 64512


def _recommended(result: dict) -> dict:  # type: ignore[type-arg]
    chosen = result["recommended"]
    assert isinstance(chosen, dict), result["notes"]
    return chosen


def test_target_picks_the_smallest_block_that_holds_a_constant_demand() -> None:
    # Everyone holds 700 ports: blocks of >= 700. 64512 // 700 = 92 blocks, so blocks of 701.
    result = size(SizingRequest(subscribers=10_000, demand=Demand.constant(700), target=0.0))
    chosen = _recommended(result)
    assert chosen["block_size"] == U // 92 == 701
    assert chosen["blocks_per_address"] == 92
    assert chosen["addresses"] == -(-10_000 // 92)
    assert chosen["exceeding_share"]["analytic"] == 0.0
    assert chosen["plan"] == {"block": {"size": 701, "dynamic_blocks": 0}}
    assert "meets target with fewest addresses" in chosen["roles"]


def test_target_on_uniform_demand_matches_the_closed_form() -> None:
    # X uniform on 1..1000: P(X > S) = (1000 - S) / 1000 <= 0.05 needs S >= 950.
    result = size(
        SizingRequest(subscribers=1000, demand=Demand.uniform(1, 1000), target=0.05, samples=0)
    )
    chosen = _recommended(result)
    assert chosen["block_size"] == U // (U // 950)
    assert chosen["block_size"] >= 950
    assert chosen["exceeding_share"]["analytic"] <= 0.05


def test_addresses_give_the_largest_block_that_still_fits() -> None:
    result = size(
        SizingRequest(subscribers=100_000, demand=preset("typical"), addresses=1000, samples=0)
    )
    chosen = _recommended(result)
    # 100 subscribers per address: 100 blocks of 645 ports.
    assert chosen["blocks_per_address"] == 100 and chosen["block_size"] == 645
    assert chosen["addresses"] == 1000 and chosen["fits_addresses"] is True


def test_both_constraints_infeasible_say_what_each_needs() -> None:
    result = size(
        SizingRequest(
            subscribers=100_000,
            demand=Demand.constant(1000),
            addresses=1000,
            target=0.0,
            samples=0,
        )
    )
    assert result["feasible"] is False and result["recommended"] is None
    note = next(n for n in result["notes"] if n.startswith("infeasible"))
    assert "at most 645 ports" in note and "1008 ports per subscriber" in note
    assert "1563 addresses (+563)" in note


def test_auto_dynamic_blocks_trade_addresses_for_overflow() -> None:
    common = {"subscribers": 100_000, "demand": preset("typical"), "target": 0.10, "samples": 0}
    without = _recommended(size(SizingRequest(**common)))  # type: ignore[arg-type]
    auto = _recommended(size(SizingRequest(**common, dynamic="auto")))  # type: ignore[arg-type]
    assert without["dynamic_blocks"] == 0 and auto["dynamic_blocks"] > 0
    assert auto["addresses"] > without["addresses"]
    assert auto["addresses_out_of_overflow"]["analytic"] <= 0.001
    assert without["addresses_out_of_overflow"]["analytic"] > 0.5


def test_excluded_ports_shrink_the_usable_ports() -> None:
    result = size(
        SizingRequest(
            subscribers=10,
            demand=Demand.constant(100),
            target=0.0,
            ports=Ports(1024, 2047, ((1500, 1599),)),
            samples=0,
        )
    )
    assert result["usable_ports_per_address"] == 924
    assert _recommended(result)["block_size"] == 924 // 9


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"subscribers": 0}, "subscribers"),
        ({"target": 1.5}, "target"),
        ({"target": None}, "target"),
        ({"dynamic": "maybe"}, "dynamic"),
        ({"samples": -1}, "samples"),
        ({"ports": Ports(2000, 1000)}, "ports.first"),
    ],
)
def test_bad_requests_name_the_field(changes: dict, field: str) -> None:  # type: ignore[type-arg]
    base = {"subscribers": 10, "demand": Demand.constant(1), "target": 0.1} | changes
    with pytest.raises(InvalidInput) as caught:
        size(SizingRequest(**base))
    assert caught.value.field == field


def test_a_million_subscribers_are_simulated_within_five_seconds() -> None:
    started = time.perf_counter()
    result = size(
        SizingRequest(
            subscribers=1_000_000,
            demand=preset("heavy"),
            target=0.01,
            dynamic="auto",
            samples=1_000_000,
        )
    )
    elapsed = time.perf_counter() - started
    assert elapsed < 5, elapsed
    chosen = _recommended(result)
    share = chosen["exceeding_share"]
    assert 0 < share["analytic"] <= 0.01
    assert abs(share["monte_carlo"] - share["analytic"]) < 5 * share["stderr"]
    assert result == size(
        SizingRequest(
            subscribers=1_000_000,
            demand=preset("heavy"),
            target=0.01,
            dynamic="auto",
            samples=1_000_000,
        )
    )


def test_a_target_that_needs_more_addresses_than_ipv4_has_is_infeasible() -> None:
    """2^40 subscribers of 5,376 ports (12 a address) need 91,625,968,982 addresses: more than
    the 2^32 IPv4 has. It was recommended as if it could be built."""
    result = size(
        SizingRequest(subscribers=1 << 40, demand=Demand.constant(5000), target=0.0, samples=1000)
    )
    assert result["feasible"] is False and result["recommended"] is None
    assert any("more than the 4294967296 IPv4 addresses" in n for n in result["notes"])


def test_a_target_that_fits_in_ipv4_is_still_recommended() -> None:
    result = size(SizingRequest(subscribers=1 << 32, demand=Demand.constant(5000), target=0.0))
    assert _recommended(result)["addresses"] == -(-(1 << 32) // 12)
