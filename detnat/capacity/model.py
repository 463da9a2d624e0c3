"""The figures of one way of sharing addresses: exact where arithmetic gives them, and Monte Carlo.

A :class:`Sharing` is what capacity needs to know about a plan or a candidate: usable ports per
address U, block size S, blocks per address B, dynamic blocks D and how many subscribers sit on
each address (its *occupancy*). :func:`assess` turns it and a :class:`~.demand.Demand` into the
figures planners read:

- the share of subscribers whose peak exceeds their block, P(X > S), and how many that is;
- overflow ports E[(X - S)+] and overflow blocks E[max(ceil(X/S) - 1, 0)] they need — served from
  the dynamic blocks of *their own* address (RFC 6888 REQ-2, paired address pooling), and logged by
  the datapath;
- the share of addresses whose dynamic blocks run out at peak, P(sum of overflow blocks of its
  subscribers > D): exact by FFT convolution where the support is small enough, otherwise a normal
  approximation (named in ``method``);
- unused tail ports U - B*S and spare deterministic blocks.

The Monte Carlo run draws every subscriber's peak independently (seeded: the same inputs give the
same figures) and adds what arithmetic does not give: overflow blocks that find no free dynamic
block. Runs of different candidates with the same seed share their random numbers, so comparisons
between candidates are not blurred by sampling noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from detnat.capacity.demand import Demand, FloatArray, IntArray

EXACT_LIMIT = 1 << 20  # largest convolution support computed exactly (FFT of up to 2^21 points)
DEFAULT_SAMPLES = 1_000_000


@dataclass(frozen=True)
class Sharing:
    """How one plan or candidate shares public addresses among subscribers."""

    usable_ports: int  # U per address
    block_size: int  # S
    blocks: int  # B per address
    dynamic_blocks: int  # D per address
    occupancy: tuple[tuple[int, int], ...]  # (subscribers on an address, number of such addresses)
    reserved_ports: int = 0  # ports of each address no subscriber may use (MAP port-set 0)

    @property
    def addresses(self) -> int:
        return sum(count for _, count in self.occupancy)

    @property
    def subscribers(self) -> int:
        return sum(n * count for n, count in self.occupancy)

    @property
    def deterministic_blocks(self) -> int:
        return self.blocks - self.dynamic_blocks

    @property
    def tail_ports(self) -> int:
        return self.usable_ports - self.blocks * self.block_size

    @classmethod
    def sequential(
        cls, subscribers: int, usable_ports: int, blocks: int, dynamic_blocks: int
    ) -> Sharing:
        """Subscribers filling addresses one after the other (``assignment: sequential``)."""
        per = blocks - dynamic_blocks
        full, rest = divmod(subscribers, per)
        occupancy: tuple[tuple[int, int], ...] = ((per, full),) if full else ()
        if rest:
            occupancy += ((rest, 1),)
        return cls(usable_ports, usable_ports // blocks, blocks, dynamic_blocks, occupancy)


def addresses_needed(subscribers: int, deterministic_blocks: int) -> int:
    return -(-subscribers // deterministic_blocks)


def sum_tail(pmf: FloatArray, n: int, threshold: int) -> tuple[float, str]:
    """P(Y1 + ... + Yn > threshold) for independent Yi ~ ``pmf``, and how it was computed."""
    support = len(pmf) - 1
    if n <= 0 or support == 0 or float(pmf[0]) >= 1.0:
        return 0.0, "exact"
    dist = sum_distribution(pmf, n)
    if dist is not None:
        return min(max(float(dist[threshold + 1 :].sum()), 0.0), 1.0), "exact"
    values = np.arange(len(pmf))
    mean = float((values * pmf).sum())
    var = float((values**2 * pmf).sum()) - mean**2
    if var <= 0:
        return (1.0 if n * mean > threshold else 0.0), "exact"
    z = (threshold + 0.5 - n * mean) / math.sqrt(2 * n * var)
    return 0.5 * math.erfc(z), "normal approximation"


def address_exhaustion(demand: Demand, sharing: Sharing) -> tuple[float, str]:
    """Share of addresses (with subscribers) whose overflow need exceeds their dynamic blocks."""
    pmf = demand.overflow_blocks_pmf(sharing.block_size)
    weighted, total, method = 0.0, 0, "exact"
    for n, count in sharing.occupancy:
        if n == 0:
            continue
        p, how = sum_tail(pmf, n, sharing.dynamic_blocks)
        if how != "exact":
            method = how
        weighted += p * count
        total += count
    return (weighted / total if total else 0.0), method


def sum_distribution(pmf: FloatArray, n: int) -> FloatArray | None:
    """The distribution of Y1 + ... + Yn (independent, each ~ ``pmf``), None if too large."""
    support = len(pmf) - 1
    if support * n + 1 > EXACT_LIMIT:
        return None
    size = 1 << (support * n).bit_length()
    dist = np.clip(np.fft.irfft(np.fft.rfft(pmf, size) ** n, size)[: support * n + 1], 0.0, None)
    total = float(dist.sum())
    return dist / total if total > 0 else dist


def smallest_dynamic_blocks(
    demand: Demand, block_size: int, blocks: int, target: float
) -> int | None:
    """The fewest dynamic blocks D so that an address full of subscribers (B - D of them) runs out
    of overflow blocks at peak with probability <= ``target``; None if no D < B does."""
    pmf = demand.overflow_blocks_pmf(block_size)
    if len(pmf) == 1:
        return 0

    def enough(d: int) -> bool:
        return sum_tail(pmf, blocks - d, d)[0] <= target

    # An upper bound from B subscribers (more than will share the address): one convolution.
    full = sum_distribution(pmf, blocks)
    if full is not None:
        above = 1.0 - np.cumsum(full)  # P(sum > d)
        fitting = np.flatnonzero(above <= target)
        high = int(fitting[0]) if len(fitting) else blocks - 1
        high = min(high, blocks - 1)
    else:
        high = blocks - 1
    if not enough(high):
        return None
    low = 0  # with D blocks dynamic only B - D subscribers share the address: search below
    while low < high:
        mid = (low + high) // 2
        if enough(mid):
            high = mid
        else:
            low = mid + 1
    return low


def _figure(
    analytic: float | None, monte_carlo: float | None, **extra: object
) -> dict[str, object]:
    out: dict[str, object] = {
        "analytic": None if analytic is None else _round(analytic),
        "monte_carlo": None if monte_carlo is None else _round(monte_carlo),
    }
    out.update(extra)
    return out


def _round(x: float) -> float:
    return float(f"{x:.6g}")


def assess(
    sharing: Sharing,
    demand: Demand,
    *,
    seed: int = 0,
    samples: int = DEFAULT_SAMPLES,
    draws: Draws | None = None,
) -> dict[str, object]:
    """Every figure of ``sharing`` under ``demand``: exact beside Monte Carlo (``samples``)."""
    S, D = sharing.block_size, sharing.dynamic_blocks
    n_total = sharing.subscribers
    p = demand.survival(S)
    excess = demand.expected_excess(S)
    blocks_pmf = demand.overflow_blocks_pmf(S)
    mean_blocks = float((np.arange(len(blocks_pmf)) * blocks_pmf).sum())
    exhausted, method = address_exhaustion(demand, sharing)
    mc = simulate(sharing, demand, seed=seed, samples=samples, draws=draws) if samples > 0 else None
    unmet_exact = n_total * mean_blocks if D == 0 else None
    addresses = sharing.addresses
    return {
        "block_size": S,
        "ports_per_subscriber": S,
        "blocks_per_address": sharing.blocks,
        "dynamic_blocks": D,
        "deterministic_blocks_per_address": sharing.deterministic_blocks,
        "addresses": addresses,
        "subscribers": n_total,
        "subscribers_per_address": max((n for n, _ in sharing.occupancy), default=0),
        "sharing_ratio": _round(n_total / addresses) if addresses else None,
        "usable_ports_per_address": sharing.usable_ports,
        "unused_tail_ports_per_address": sharing.tail_ports,
        "unused_tail_ports": sharing.tail_ports * addresses,
        "reserved_ports_per_address": sharing.reserved_ports,
        "spare_blocks": addresses * sharing.deterministic_blocks - n_total,
        "exceeding_share": _figure(
            p,
            None if mc is None else mc["exceeding_share"],
            stderr=None if mc is None else _round(mc["exceeding_share_stderr"]),
        ),
        "exceeding_subscribers": _figure(
            n_total * p, None if mc is None else mc["exceeding_subscribers"]
        ),
        "overflow_ports": _figure(n_total * excess, None if mc is None else mc["overflow_ports"]),
        "overflow_blocks": _figure(
            n_total * mean_blocks, None if mc is None else mc["overflow_blocks"]
        ),
        "addresses_out_of_overflow": _figure(
            exhausted, None if mc is None else mc["addresses_out_of_overflow"], method=method
        ),
        "overflow_blocks_unmet": _figure(
            unmet_exact, None if mc is None else mc["overflow_blocks_unmet"]
        ),
    }


class Draws:
    """Peaks drawn from one seeded stream and shared by every candidate (common random numbers).

    ``first(k)`` is always the first k draws of the stream, however often it grows.
    """

    def __init__(self, demand: Demand, seed: int) -> None:
        self.demand = demand
        self._rng = np.random.default_rng(seed)
        self._drawn: IntArray = np.empty(0, dtype=np.int64)

    def first(self, count: int) -> IntArray:
        if count > len(self._drawn):
            more = self.demand.sample(self._rng, count - len(self._drawn))
            self._drawn = np.concatenate([self._drawn, more])
        return self._drawn[:count]


def simulate(
    sharing: Sharing,
    demand: Demand,
    *,
    seed: int,
    samples: int,
    draws: Draws | None = None,
) -> dict[str, float]:
    """Monte Carlo: draw each subscriber's peak, address by address; figures for the whole plan.

    With N subscribers and ``samples`` >= N, the whole population is drawn ``samples // N`` times;
    with more subscribers than samples, a proportional share of each kind of address is drawn
    (at least one of each). Figures are scaled back to the whole population.
    """
    if draws is None or draws.demand is not demand:
        draws = Draws(demand, seed)
    n_total = sharing.subscribers
    if n_total == 0:
        zero = {"exceeding_share": 0.0, "exceeding_share_stderr": 0.0}
        return zero | dict.fromkeys(
            (
                "exceeding_subscribers",
                "overflow_ports",
                "overflow_blocks",
                "addresses_out_of_overflow",
                "overflow_blocks_unmet",
            ),
            0.0,
        )
    runs = samples // n_total
    S, D = sharing.block_size, sharing.dynamic_blocks
    exceeding = overflow_ports = overflow_blocks = unmet = out_of = 0.0
    drawn_subscribers = 0
    loaded_addresses = 0
    plan = [
        (n, count, count * runs if runs >= 1 else max(1, math.ceil(count * samples / n_total)))
        for n, count in sharing.occupancy
        if n > 0
    ]
    stream = draws.first(sum(n * drawn for n, _, drawn in plan))
    for n, count, drawn in plan:
        loaded_addresses += count
        weight = count / drawn  # each drawn address stands for this many real ones
        peaks = stream[drawn_subscribers : drawn_subscribers + drawn * n].reshape(drawn, n)
        over = peaks > S
        extra_blocks = np.where(over, -(-peaks // S) - 1, 0)
        need = extra_blocks.sum(axis=1)
        n_over = int(over.sum())
        drawn_subscribers += drawn * n
        exceeding += n_over * weight
        overflow_ports += float(np.where(over, peaks - S, 0).sum()) * weight
        overflow_blocks += float(need.sum()) * weight
        unmet += float(np.maximum(need - D, 0).sum()) * weight
        out_of += float((need > D).sum()) * weight
    share = exceeding / n_total
    return {
        "exceeding_share": share,
        "exceeding_share_stderr": math.sqrt(share * (1 - share) / drawn_subscribers),
        "exceeding_subscribers": exceeding,
        "overflow_ports": overflow_ports,
        "overflow_blocks": overflow_blocks,
        "addresses_out_of_overflow": out_of / loaded_addresses,
        "overflow_blocks_unmet": unmet,
        "simulated_subscribers": float(drawn_subscribers),
    }
