"""Random timelines in memory (the lookups' own :class:`Timelines`), and snapshots of them.

The store keeps timelines in Postgres; lookups answer from a :class:`Timelines` view of them. These
factories build that view directly, so property tests can draw thousands of timelines and ask the
single lookup (:func:`detnat.service.lookups.reverse_in`) as the oracle.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from detnat.planfile import plan_from_data
from detnat.service import snapshots
from detnat.service.timelines import RealmTimeline, Timelines, make_version
from detnat.snapshot import file

T0 = datetime(2026, 3, 14, 20, 0, 0, tzinfo=UTC)
POOLS = ("192.0.2.0/29", "192.0.2.8/30", "198.51.100.0/29")
STATIC = "203.0.113.7"


def block_plan(
    pool: str, *, ratio: int, dynamic: int, static: bool, first_port: int
) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "algorithm": "block",
        "inside": {"prefixes": ["10.0.0.0/24"], "subscriber_prefix_length": 32},
        "outside": {"prefixes": [pool]},
        "ports": {"first": first_port, "last": 65535},
        "block": {"ratio": ratio, "dynamic_blocks": dynamic},
    }
    if static:
        plan["static"] = [{"subscriber": "10.0.0.5/32", "address": STATIC}]
    return plan_from_data(plan).to_dict()


@dataclass(frozen=True)
class Change:
    realm: int
    at_s: int  # seconds after T0
    plan: dict[str, Any] | None


@st.composite
def plans(draw: st.DrawFn) -> dict[str, Any]:
    pool = draw(st.sampled_from(POOLS))
    addresses = 8 if pool.endswith("/29") else 4
    ratio = draw(st.sampled_from([64, 128, 256]))
    dynamic = draw(st.sampled_from([0, 0, 2, 8]))
    # capacity: 256 inside addresses over the pool
    while addresses * (ratio - dynamic) < 256:
        ratio *= 2
    return block_plan(
        pool,
        ratio=ratio,
        dynamic=dynamic,
        static=draw(st.booleans()),
        first_port=draw(st.sampled_from([1024, 1024, 2000])),
    )


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[int], list[Change]]:
    """(drain seconds per realm, changes): 1-3 realms, 1-4 changes each, retirements among them."""
    realms = draw(st.integers(1, 3))
    drains = [draw(st.sampled_from([0, 0, 30, 300])) for _ in range(realms)]
    changes = []
    for r in range(realms):
        times = sorted(
            draw(st.sets(st.integers(-600, 1200).map(lambda s: s * 2), min_size=1, max_size=4))
        )
        for k, at in enumerate(times):
            retire = k > 0 and draw(st.integers(0, 3)) == 0
            changes.append(Change(r, at, None if retire else draw(plans())))
    return drains, changes


def timelines_of(drains: list[int], changes: list[Change]) -> Timelines:
    realms = []
    next_id = 1
    for r, drain in enumerate(drains):
        versions = []
        for seq, change in enumerate(
            sorted((c for c in changes if c.realm == r), key=lambda c: c.at_s), 1
        ):
            plan = change.plan
            ranges = plan_from_data(plan).public_ranges() if plan is not None else []
            versions.append(
                make_version(
                    id=next_id,
                    seq=seq,
                    effective_from=T0 + timedelta(seconds=change.at_s),
                    plan=plan,
                    content_sha256=file.content_sha256(plan) if plan is not None else None,
                    record_sha256=hashlib.sha256(f"{r}:{seq}".encode()).hexdigest(),
                    correction=False,
                    ranges=ranges,
                )
            )
            next_id += 1
        realms.append(
            RealmTimeline(
                r + 1, f"realm-{r}", timedelta(seconds=drain), tuple(versions), head=(r, 0)
            )
        )
    return Timelines(1, realms)


def snapshot_bytes(
    view: Timelines,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    realms: list[str] | None = None,
) -> bytes:
    names = realms if realms is not None else [r.name for r in view.realms]
    return file.encode(snapshots.build(view, names, start=start, end=end, now=now, case="TEST-1"))
