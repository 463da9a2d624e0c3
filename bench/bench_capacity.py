"""Capacity benchmarks (run by hand): Monte Carlo sizing and plan diffs at scale.

    .venv/bin/python bench/bench_capacity.py [--quick]

Prints one line per case: what was measured, the wall time (best of 3) and the rate. Targets from
issue 5: Monte Carlo over 1,000,000 subscribers in under 5 s; a 2^16-subscriber diff well under a
second; larger diffs stream (constant memory per chunk of 2^20 subscribers).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from detnat.capacity import SizingRequest, diff_plans, preset, size
from detnat.engine import compile_plan
from detnat.planfile import plan_from_data


def best_of(runs: int, work: Callable[[], Any]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def block(inside: str, outside: list[str], ratio: int) -> Any:
    return compile_plan(
        plan_from_data(
            {
                "algorithm": "block",
                "inside": {"prefixes": [inside], "subscriber_prefix_length": 32},
                "outside": {"prefixes": outside},
                "block": {"ratio": ratio},
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="skip the 2^24 diff")
    args = parser.parse_args()

    for dynamic in ("none", "auto"):
        request = SizingRequest(
            subscribers=1_000_000,
            demand=preset("typical"),
            target=0.01,
            addresses=30_000,
            dynamic=dynamic,  # type: ignore[arg-type]
            samples=1_000_000,
        )
        result = size(request)
        n = len(result["candidates"])  # type: ignore[arg-type]
        t = best_of(3, lambda r=request: size(r))  # type: ignore[misc]
        print(
            f"size: 1,000,000 subscribers, {n} candidates x 1,000,000 Monte Carlo draws, "
            f"dynamic {dynamic}: {t:.3f} s"
        )

    cases = [(16, "10.0.0.0/16", 256), (20, "10.0.0.0/12", 4096)]
    if not args.quick:
        cases.append((24, "10.0.0.0/8", 16384))
    for bits, inside, ratio in cases:
        addresses = (1 << bits) // ratio
        prefix = 32 - (addresses - 1).bit_length()
        old = block(inside, [f"192.0.0.0/{prefix}"], ratio)
        front = block(inside, ["198.18.0.0/30", f"192.0.0.0/{prefix}"], ratio)
        t = best_of(3, lambda o=old, f=front: diff_plans(o, f).report())  # type: ignore[misc]
        print(
            f"plan diff: 2^{bits} subscribers, address inserted in front (with the computed "
            f"alternative): {t:.3f} s ({(1 << bits) / t / 1e6:.1f} M subscribers/s)"
        )
    old = block("10.0.0.0/16", ["192.0.2.0/24"], 256)
    front = block("10.0.0.0/16", ["198.18.0.0/30", "192.0.2.0/24"], 256)
    compared = diff_plans(old, front)
    t = best_of(3, lambda: sum(len(rows) for rows in compared.rows()))
    print(f"plan diff --subscribers: 2^16 CSV rows formatted: {t:.3f} s ({65536 / t:,.0f} rows/s)")


if __name__ == "__main__":
    main()
