"""The vectorised allocations agree with the engine's forward, subscriber by subscriber."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings

from detnat.capacity.layout import Allocations, PortSets, common_pieces, uncovered
from detnat.engine import Plan, compile_plan
from tests.capacity.conftest import block_plan, compiled
from tests.strategies import plans


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=plans(max_usable_ports=4096, max_ea_bits=10))
def test_allocations_equal_forward_for_every_subscriber(plan: Plan) -> None:
    mapper = compile_plan(plan)
    port_sets = PortSets()
    alloc = Allocations(mapper, port_sets)
    index = np.arange(mapper.subscriber_count, dtype=np.int64)
    ips, ids = alloc.of(index)
    for i in range(mapper.subscriber_count):
        expected = mapper.allocation_of(i)
        assert int(ips[i]) == expected.public_ip
        assert port_sets.sets[int(ids[i])] == expected.port_ranges


def test_pieces_match_subscribers_by_key_across_reordered_prefixes() -> None:
    two = block_plan(inside=["10.0.0.0/24", "10.0.1.0/24"], ratio=128)
    old = Allocations(compiled(two), PortSets())
    new_mapper = compiled(block_plan(inside=["10.0.1.0/24", "10.0.0.0/25"], ratio=128))
    new = Allocations(new_mapper, PortSets())
    # old 0..127 (10.0.0.0/25) are new 256..383; old 256..511 (10.0.1.0/24) are new 0..255.
    assert common_pieces(old, new) == [(0, 256, 128), (256, 0, 256)]
    assert uncovered(512, [(0, 128), (256, 256)]) == [(128, 128)]


def test_keys_of_different_prefix_lengths_are_never_the_same_subscriber() -> None:
    old = Allocations(compiled(block_plan()), PortSets())
    new = Allocations(
        compiled(block_plan(inside=["10.0.0.0/24"], prefix_length=31, ratio=32)), PortSets()
    )
    assert common_pieces(old, new) == []
