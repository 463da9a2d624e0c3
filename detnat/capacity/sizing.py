"""Sizing: block size, dynamic blocks and public addresses for N subscribers under a demand.

Constraints are the addresses available and/or a target share of subscribers whose peak exceeds
their block. Candidates are described by blocks per address B: for a given B the largest block is
S = floor(U / B) ports (same addresses, fewest tail ports), so every candidate uses that S.

- a **target** alone gives the smallest block whose exceedance P(X > S) is at most the target: the
  fewest addresses that meet it;
- **addresses** alone give the largest block that still fits every subscriber on them;
- **both**: the largest block that fits, if it meets the target (feasible); otherwise the answer is
  infeasible and says what each constraint needs.

Dynamic blocks: ``none`` (D = 0, as VPP det44 and Juniper deterministic port blocks, which have no
overflow), a fixed number, or ``auto`` — the fewest D so that an address's overflow runs out at peak
with probability at most ``pool_target``.

Candidates at the block sizes operators meet in vendor defaults and guides (:data:`LADDER`) are
always listed beside the constrained ones, so the recommendation can be read against them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from detnat.capacity.demand import Demand
from detnat.capacity.model import (
    DEFAULT_SAMPLES,
    Draws,
    Sharing,
    addresses_needed,
    assess,
    smallest_dynamic_blocks,
)
from detnat.engine import Ports
from detnat.engine.block import build_ports
from detnat.errors import InvalidInput, PlanError

# Block sizes of vendor defaults and published guides (docs/capacity.md says which is whose).
LADDER = (64, 128, 256, 512, 1008, 2016, 4032)
DEFAULT_POOL_TARGET = 0.001
MAX_SUBSCRIBERS = 1 << 40
IPV4_ADDRESSES = 1 << 32
MAX_SAMPLES = 20_000_000

DEFAULT_PORTS = Ports()
DynamicPolicy = Literal["auto", "none"] | int


@dataclass(frozen=True)
class SizingRequest:
    subscribers: int
    demand: Demand
    addresses: int | None = None
    target: float | None = None  # largest acceptable share of subscribers exceeding their block
    dynamic: DynamicPolicy = "none"
    pool_target: float = DEFAULT_POOL_TARGET
    ports: Ports = DEFAULT_PORTS
    seed: int = 0
    samples: int = DEFAULT_SAMPLES


def usable_ports(ports: Ports) -> int:
    """Usable ports per address (``ports.first..last`` less ``ports.exclude``), checked."""
    try:
        return build_ports(ports).count
    except PlanError as exc:
        raise InvalidInput(exc.message, field=exc.field) from None


def check_share(value: float | None, field: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise InvalidInput(f"{value!r} is not a share between 0 and 1 (e.g. 0.01)", field=field)


def check_samples(samples: int, seed: int) -> None:
    if isinstance(samples, bool) or not isinstance(samples, int) or not 0 <= samples <= MAX_SAMPLES:
        raise InvalidInput(f"samples must be within 0-{MAX_SAMPLES}", field="samples")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 1 << 63:
        raise InvalidInput("seed must be a non-negative integer", field="seed")


def _check(request: SizingRequest) -> int:
    n = request.subscribers
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SUBSCRIBERS:
        raise InvalidInput(f"must be between 1 and {MAX_SUBSCRIBERS}", field="subscribers")
    if request.addresses is not None and (
        isinstance(request.addresses, bool) or not 1 <= request.addresses <= IPV4_ADDRESSES
    ):
        raise InvalidInput(
            f"must be between 1 and {IPV4_ADDRESSES} (IPv4 addresses)", field="addresses"
        )
    check_share(request.target, "target")
    check_share(request.pool_target, "pool_target")
    if request.addresses is None and request.target is None:
        raise InvalidInput(
            "give the addresses available, a target exceedance share, or both", field="target"
        )
    dynamic = request.dynamic
    if not (dynamic in ("auto", "none") or (isinstance(dynamic, int) and 0 <= dynamic <= 65536)):
        raise InvalidInput(
            f"{str(dynamic)[:20]!r} is not auto, none or a number of blocks 0-65536",
            field="dynamic",
        )
    check_samples(request.samples, request.seed)
    return usable_ports(request.ports)


class _Sizer:
    def __init__(self, request: SizingRequest, usable: int) -> None:
        self.request = request
        self.usable = usable
        self._dynamic: dict[int, int | None] = {}

    def dynamic_blocks(self, blocks: int) -> int | None:
        """D for B blocks per address under the request's policy; None if none works."""
        if blocks not in self._dynamic:
            policy = self.request.dynamic
            size = self.usable // blocks
            d: int | None
            if policy == "none":
                d = 0
            elif policy == "auto":
                d = smallest_dynamic_blocks(
                    self.request.demand, size, blocks, self.request.pool_target
                )
            else:
                assert isinstance(policy, int)
                d = policy if policy < blocks else None
            self._dynamic[blocks] = d
        return self._dynamic[blocks]

    def addresses_for(self, blocks: int) -> int | None:
        d = self.dynamic_blocks(blocks)
        return None if d is None else addresses_needed(self.request.subscribers, blocks - d)

    def smallest_blocks(self, fits: Callable[[int], bool]) -> int | None:
        """The smallest B in 1 .. U with ``fits(B)`` (monotone), None if even B = U does not."""
        if not fits(self.usable):
            return None
        low, high = 1, self.usable
        while low < high:
            mid = (low + high) // 2
            if fits(mid):
                high = mid
            else:
                low = mid + 1
        return low


def size(request: SizingRequest) -> dict[str, object]:
    """Candidates, the recommendation and why, for ``request`` (see the module docstring)."""
    usable = _check(request)
    sizer = _Sizer(request, usable)
    demand, n = request.demand, request.subscribers
    notes: list[str] = list(demand.warnings)
    roles: dict[int, list[str]] = {}

    target_blocks: int | None = None
    if request.target is not None:
        target = request.target
        # Smallest S meeting the target, then the largest S with as many blocks per address.
        need = smallest_size(demand, target, usable)
        if need is None:
            notes.append(
                f"no block of up to {usable} ports keeps exceedance at or below {target:g}: "
                f"{demand.survival(usable):.4g} of subscribers peak above a whole address"
            )
        else:
            target_blocks = usable // need
            roles.setdefault(target_blocks, []).append("meets target with fewest addresses")

    address_blocks: int | None = None
    if request.addresses is not None:
        available = request.addresses

        def fits(blocks: int) -> bool:
            needed = sizer.addresses_for(blocks)
            return needed is not None and needed <= available

        address_blocks = sizer.smallest_blocks(fits)
        if address_blocks is None:
            notes.append(
                f"{n} subscribers do not fit on {available} addresses even at 1 port each "
                f"(at most {available * usable} subscribers)"
            )
        else:
            roles.setdefault(address_blocks, []).append(
                f"largest block that fits {available} addresses"
            )

    recommended: int | None = None
    feasible = True
    if request.target is not None and request.addresses is not None:
        if target_blocks is None or address_blocks is None:
            feasible = False
        elif address_blocks <= target_blocks:
            recommended = address_blocks
        else:
            feasible = False
            needed = sizer.addresses_for(target_blocks)
            notes.append(
                f"infeasible: on {request.addresses} addresses blocks can be at most "
                f"{usable // address_blocks} ports, but exceedance <= {request.target:g} needs "
                f"{usable // target_blocks} ports per subscriber"
                + (
                    f", which needs {needed} addresses (+{needed - request.addresses})"
                    if needed is not None
                    else ""
                )
            )
    else:
        recommended = target_blocks if request.target is not None else address_blocks
        feasible = recommended is not None
        if recommended is not None:
            needed = sizer.addresses_for(recommended)
            if needed is not None and needed > IPV4_ADDRESSES:
                notes.append(
                    f"infeasible: blocks of {usable // recommended} ports need {needed} "
                    f"addresses, more than the {IPV4_ADDRESSES} IPv4 addresses there are"
                )
                recommended, feasible = None, False

    for blocks in (usable // s for s in LADDER if s <= usable):
        roles.setdefault(blocks, [])
    candidates = []
    draws = Draws(demand, request.seed)
    for blocks in sorted(roles, reverse=True):  # ascending block size
        d = sizer.dynamic_blocks(blocks)
        if d is None:
            if roles[blocks]:
                notes.append(
                    f"blocks of {usable // blocks} ports: no number of dynamic blocks keeps the "
                    f"overflow within {request.pool_target:g}; use larger blocks"
                )
            continue
        sharing = Sharing.sequential(n, usable, blocks, d)
        figures = assess(sharing, demand, seed=request.seed, samples=request.samples, draws=draws)
        figures["roles"] = (["recommended"] if blocks == recommended else []) + roles[blocks]
        figures["meets_target"] = (
            None if request.target is None else demand.survival(usable // blocks) <= request.target
        )
        figures["fits_addresses"] = (
            None if request.addresses is None else sharing.addresses <= request.addresses
        )
        figures["plan"] = {"block": {"size": usable // blocks, "dynamic_blocks": d}}
        candidates.append(figures)

    chosen = next((c for c in candidates if "recommended" in _roles(c)), None)
    return {
        "subscribers": n,
        "usable_ports_per_address": usable,
        "demand": demand.to_json(),
        "constraints": {
            "addresses": request.addresses,
            "target": request.target,
            "dynamic": request.dynamic,
            "pool_target": request.pool_target,
        },
        "feasible": feasible and chosen is not None,
        "recommended": chosen,
        "candidates": candidates,
        "notes": notes,
        "monte_carlo": {"seed": request.seed, "samples": request.samples},
    }


def _roles(candidate: dict[str, object]) -> list[str]:
    roles = candidate["roles"]
    assert isinstance(roles, list)
    return roles


def smallest_size(demand: Demand, target: float, usable: int) -> int | None:
    """The smallest S in 1 .. U with P(X > S) <= target (survival never rises with S)."""
    if demand.survival(usable) > target:
        return None
    low, high = 1, usable
    while low < high:
        mid = (low + high) // 2
        if demand.survival(mid) <= target:
            high = mid
        else:
            low = mid + 1
    return low


def addresses_curve(subscribers: int, usable: int, sizes: list[int]) -> list[tuple[int, int]]:
    """(block size, addresses needed without dynamic blocks) for charts."""
    return [(s, addresses_needed(subscribers, usable // s)) for s in sizes if 1 <= s <= usable]
