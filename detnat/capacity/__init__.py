"""Capacity planning: port budgets, exhaustion risk, and the impact of a plan change.

Pure computation (standard library and numpy; no I/O, clock or environment), over the engine's
compiled plans:

- :mod:`.demand` — peak concurrent ports per subscriber: presets, percentiles, measured histograms;
- :mod:`.model` — the figures of one way of sharing addresses, exact beside Monte Carlo;
- :mod:`.sizing` — block size, dynamic blocks and addresses for N subscribers under constraints;
- :mod:`.evaluate` — the same figures for a concrete plan;
- :mod:`.layout` and :mod:`.diff` — vectorised allocations, and what a plan change does to every
  subscriber;
- :mod:`.charts` — the charts, as SVG text (no dependency) or PNG bytes (matplotlib).
"""

from __future__ import annotations

from detnat.capacity.demand import (
    PRESETS,
    Demand,
    histogram_from_csv,
    parse_demand,
    parse_percentiles,
    preset,
)
from detnat.capacity.diff import CSV_HEADER, PlanDiff, diff_plans
from detnat.capacity.evaluate import evaluate, sharing_of
from detnat.capacity.model import DEFAULT_SAMPLES, Sharing, assess
from detnat.capacity.sizing import SizingRequest, size

__all__ = [
    "CSV_HEADER",
    "DEFAULT_SAMPLES",
    "PRESETS",
    "Demand",
    "PlanDiff",
    "Sharing",
    "SizingRequest",
    "assess",
    "diff_plans",
    "evaluate",
    "histogram_from_csv",
    "parse_demand",
    "parse_percentiles",
    "preset",
    "sharing_of",
    "size",
]
