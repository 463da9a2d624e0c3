"""Plan evaluation: the capacity figures of a concrete, compiled plan under a demand.

The plan fixes everything sizing chooses: block size, blocks and dynamic blocks per address, the
addresses, and how subscribers land on them (``sequential`` fills addresses in turn, so the last one
may be partly used; ``staggered`` spreads them round robin). Static subscribers hold a whole address
of their own and are left out of the demand; their blocks in the pool stay unused.
"""

from __future__ import annotations

from collections import Counter

from detnat.capacity.demand import Demand
from detnat.capacity.model import DEFAULT_SAMPLES, Sharing, addresses_needed, assess
from detnat.capacity.sizing import check_samples, check_share, smallest_size
from detnat.engine import Mapper
from detnat.engine.block import BlockMapper
from detnat.engine.map_rule import MapMapper
from detnat.errors import InvalidInput


def sharing_of(mapper: Mapper) -> Sharing:
    """The :class:`Sharing` of a compiled plan (block or map), static subscribers left out."""
    statics = [mapper.subscriber_number(s.subscriber) for s in mapper.plan.static]
    if isinstance(mapper, BlockMapper):
        n, a, det = mapper.subscriber_count, mapper.addresses, mapper.det_blocks
        usable = _whole(mapper.summary(), "usable_ports_per_address")

        if mapper.sequential:
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
        occupancy = _without_statics(counts, statics, load, address_of)
        return Sharing(
            usable, mapper.size, mapper.blocks, mapper.blocks - mapper.det_blocks, occupancy
        )
    if isinstance(mapper, MapMapper):
        k = mapper.psid_length
        summary = mapper.summary()
        per_address = 1 << k
        addresses = _whole(summary, "usable_addresses")
        reserved = _whole(summary, "reserved_ports_per_address")
        ports = _whole(summary, "ports_per_subscriber")
        occupancy = _without_statics(
            Counter({per_address: addresses}),
            statics,
            lambda address: per_address,
            lambda index: index >> k,
        )
        return Sharing(65536 - reserved, ports, per_address, 0, occupancy, reserved_ports=reserved)
    raise InvalidInput(f"cannot evaluate a {type(mapper).__name__}", field="plan")


def _whole(summary: dict[str, object], key: str) -> int:
    value = summary[key]
    assert isinstance(value, int)
    return value


def _without_statics(
    counts: Counter[int],
    statics: list[int],
    load: object,
    address_of: object,
) -> tuple[tuple[int, int], ...]:
    assert callable(load) and callable(address_of)
    lost: Counter[int] = Counter(address_of(i) for i in statics)
    for address, gone in lost.items():
        before = int(load(address))
        counts[before] -= 1
        counts[before - gone] += 1
    return tuple(sorted((n, c) for n, c in counts.items() if c > 0))


def evaluate(
    mapper: Mapper,
    demand: Demand,
    *,
    target: float | None = None,
    seed: int = 0,
    samples: int = DEFAULT_SAMPLES,
) -> dict[str, object]:
    """The plan's summary and its capacity figures under ``demand`` (see :func:`.model.assess`)."""
    check_share(target, "target")
    check_samples(samples, seed)
    sharing = sharing_of(mapper)
    figures = assess(sharing, demand, seed=seed, samples=samples)
    notes = list(demand.warnings)
    meets: bool | None = None
    if target is not None:
        meets = demand.survival(sharing.block_size) <= target
        if not meets:
            note = (
                f"{demand.survival(sharing.block_size):.4g} of subscribers exceed their "
                f"{sharing.block_size} ports at peak, above the target {target:g}"
            )
            need = smallest_size(demand, target, sharing.usable_ports)
            if need is not None and sharing.dynamic_blocks == 0:
                blocks = sharing.usable_ports // need
                note += (
                    f"; blocks of {sharing.usable_ports // blocks} ports (ratio {blocks}) meet it, "
                    f"on {addresses_needed(sharing.subscribers, blocks)} addresses"
                )
            notes.append(note)
    if sharing.dynamic_blocks == 0 and demand.survival(sharing.block_size) > 0:
        notes.append(
            "no dynamic blocks: subscribers whose peak exceeds their block are refused the extra "
            "ports (new connections fail until some close)"
        )
    loads = [n for n, _ in sharing.occupancy]
    return {
        "plan": mapper.summary(),
        "demand": demand.to_json(),
        "static_subscribers": len(mapper.plan.static),
        "subscribers_per_address": {"min": min(loads, default=0), "max": max(loads, default=0)},
        "figures": figures,
        "target": target,
        "meets_target": meets,
        "notes": notes,
        "monte_carlo": {"seed": seed, "samples": samples},
    }
