"""Plan evaluation: the figures of concrete plans, statics and both assignments."""

from __future__ import annotations

import pytest

from detnat.capacity import Demand, evaluate, sharing_of
from tests.capacity.conftest import block_plan, compiled


def test_vpp_plan_figures_under_a_constant_demand() -> None:
    # VPP det44 10.0.0.0/18 -> 1.1.1.0/30, ratio 4096: 15 ports each; 12 ports of tail.
    mapper = compiled(block_plan(inside=["10.0.0.0/18"], outside=["1.1.1.0/30"], ratio=4096))
    result = evaluate(mapper, Demand.constant(20), target=0.01, samples=100_000)
    f = result["figures"]
    assert (f["block_size"], f["addresses"], f["subscribers"]) == (15, 4, 16384)
    assert f["unused_tail_ports_per_address"] == 64512 - 4096 * 15
    assert f["exceeding_share"]["analytic"] == 1.0
    assert f["overflow_ports"]["analytic"] == 16384 * 5
    assert result["meets_target"] is False
    # 20 ports meet it: 64512 // 20 = 3225 blocks of 20 ports, 16384 subscribers on 6 addresses.
    assert any(
        "blocks of 20 ports (ratio 3225) meet it, on 6 addresses" in n for n in result["notes"]
    )
    assert any("no dynamic blocks" in n for n in result["notes"])


def test_sequential_plans_fill_addresses_in_turn() -> None:
    mapper = compiled(block_plan(inside=["10.0.0.0/25"], outside=["192.0.2.0/30"], ratio=64))
    assert sharing_of(mapper).occupancy == ((0, 2), (64, 2))


def test_staggered_plans_spread_subscribers_round_robin() -> None:
    mapper = compiled(
        block_plan(
            inside=["10.0.0.0/25"],
            outside=["192.0.2.0/30"],
            ratio=64,
            assignment="staggered",
            inside_exclude=["10.0.0.127/32"],
        )
    )
    assert sharing_of(mapper).occupancy == ((31, 1), (32, 3))


def test_static_subscribers_leave_the_demand_and_their_block() -> None:
    mapper = compiled(block_plan(static=[{"subscriber": "10.0.0.5/32", "address": "203.0.113.7"}]))
    sharing = sharing_of(mapper)
    assert sharing.occupancy == ((63, 1), (64, 3))
    assert sharing.subscribers == 255
    assert evaluate(mapper, Demand.constant(1), samples=0)["static_subscribers"] == 1


def test_dynamic_blocks_of_a_plan_absorb_overflow() -> None:
    mapper = compiled(block_plan(ratio=72, dynamic_blocks=8))  # 64 deterministic + 8 dynamic
    f = evaluate(mapper, Demand.uniform(800, 1000), samples=50_000)["figures"]
    assert (f["block_size"], f["dynamic_blocks"]) == (896, 8)
    # P(X > 896) = 104 / 201 per subscriber; 64 per address; 8 dynamic blocks rarely suffice.
    assert f["exceeding_share"]["analytic"] == pytest.approx(104 / 201)
    assert f["addresses_out_of_overflow"]["analytic"] > 0.99
    assert f["overflow_blocks_unmet"]["monte_carlo"] > 0


def test_map_plans_have_fixed_port_sets_and_reserved_ports() -> None:
    mapper = compiled(
        {
            "algorithm": "map",
            "map": {
                "rule_ipv6_prefix": "2001:db8::/40",
                "rule_ipv4_prefix": "192.0.2.0/24",
                "ea_bits_length": 16,
                "psid_offset": 6,
            },
        }
    )
    f = evaluate(mapper, Demand.constant(300), samples=0)["figures"]
    assert (f["block_size"], f["addresses"], f["subscribers_per_address"]) == (252, 256, 256)
    assert f["reserved_ports_per_address"] == 1024
    assert f["exceeding_share"]["analytic"] == 1.0
