"""Datapath backends: enforce a plan on a real datapath and prove that it agrees with the lookups.

The seam is :class:`Datapath` (render, apply, read live state, verify); backends are found by name
through the ``detnat.datapath`` entry-point group (:func:`load_backend`). Shipped here:

- ``nftables`` (:mod:`.nftables`): NAT44 / CGNAT in the Linux kernel for IPv4 ``block`` plans;
- ``recording`` (:mod:`.testing`): the test double;
- :mod:`.exports`: VPP det44 commands, Snabb lwAFTR binding tables, the nftables ruleset file;
- :mod:`.dslite`: a user-space DS-Lite AFTR (RFC 6333) and B4 that allocate outside ports only
  from each B4's deterministic port set.

This package may use the engine, the error tree and plan files; nothing here imports the store,
the service, the API or the CLI.
"""

from __future__ import annotations

from detnat.datapath.base import (
    Datapath,
    Drift,
    DriftReport,
    Holding,
    LiveState,
    NotExpressible,
    compare,
    planned_state,
)
from detnat.datapath.registry import GROUP, Backend, available, load_backend

__all__ = [
    "GROUP",
    "Backend",
    "Datapath",
    "Drift",
    "DriftReport",
    "Holding",
    "LiveState",
    "NotExpressible",
    "available",
    "compare",
    "load_backend",
    "planned_state",
]
