"""Plan evaluation: the capacity figures of a concrete, compiled plan under a demand.

The plan fixes everything sizing chooses: block size, blocks and dynamic blocks per address, the
addresses, and how subscribers land on them (``sequential`` fills addresses in turn, so the last one
may be partly used; ``staggered`` spreads them round robin). Static subscribers hold a whole address
of their own and are left out of the demand; their blocks in the pool stay unused.
"""

from __future__ import annotations

from detnat.capacity.demand import Demand
from detnat.capacity.model import DEFAULT_SAMPLES, Sharing, addresses_needed, assess
from detnat.capacity.sizing import check_samples, check_share, smallest_size
from detnat.engine import CAPACITY, Mapper, refusal
from detnat.errors import InvalidInput


def sharing_of(mapper: Mapper) -> Sharing:
    """The :class:`Sharing` of a compiled plan, static subscribers left out."""
    why_not = refusal(mapper, CAPACITY, "evaluate")
    if why_not is not None:
        raise InvalidInput(why_not, field="plan")
    s = mapper.sharing()
    return Sharing(
        s.usable_ports,
        s.ports_per_subscriber,
        s.sets_per_address,
        s.dynamic_sets,
        s.occupancy,
        reserved_ports=s.reserved_ports,
    )


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
