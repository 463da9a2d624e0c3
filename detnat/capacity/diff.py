"""Change impact: what a new plan does to every subscriber of the old one.

For each subscriber (the same key in both plans): it **keeps** its allocation, changes **ports**
only (same public address), or changes **address**; subscribers only in the old plan are
**removed**, only in the new one **added**. Sessions of a subscriber whose allocation changes break
at the switch (and its abuse record changes), so a change that moves most subscribers gets a
warning — and where a variant of the new plan with the same pool, key space and parameters moves
far fewer (appending new prefixes instead of inserting them in front of a sequential pool, leaving
an excluded subscriber in the key space), the warning names it with its own count, computed, not
guessed.

Everything is vectorised over subscribers in chunks of :data:`CHUNK`, so a diff costs a few array
operations per million subscribers and memory stays flat however large the key space.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import numpy as np

from detnat.capacity.layout import Allocations, IntArray, PortSets, common_pieces, uncovered
from detnat.engine import Inside, Mapper, Outside, Plan, compile_plan, format_ipv4
from detnat.errors import DetnatError

T = TypeVar("T")
CHUNK = 1 << 20
MOST = 0.5  # "most subscribers": warn above this share moved
KEPT, PORTS, ADDRESS, ADDED, REMOVED = "kept", "ports", "address", "added", "removed"
CSV_HEADER = (
    "subscriber",
    "change",
    "old_public_ip",
    "old_port_ranges",
    "new_public_ip",
    "new_port_ranges",
)


@dataclass
class Counts:
    old: int = 0
    new: int = 0
    common: int = 0
    kept: int = 0
    ports_changed: int = 0
    address_changed: int = 0
    ports_gained: int = 0
    ports_lost: int = 0
    subscribers_gaining_ports: int = 0
    subscribers_losing_ports: int = 0
    pieces: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def moved(self) -> int:
        return self.ports_changed + self.address_changed

    @property
    def added(self) -> int:
        return self.new - self.common

    @property
    def removed(self) -> int:
        return self.old - self.common


def _chunks(pieces: list[tuple[int, int, int]]) -> Iterator[tuple[IntArray, IntArray]]:
    for o, n, length in pieces:
        for at in range(0, length, CHUNK):
            old_index = np.arange(o + at, o + min(length, at + CHUNK), dtype=np.int64)
            yield old_index, old_index + (n - o)


def count_changes(old: Allocations, new: Allocations) -> Counts:
    """How many subscribers keep, change ports, change address; ports gained and lost."""
    counts = Counts(old=old.subscriber_count, new=new.subscriber_count)
    counts.pieces = common_pieces(old, new)
    assert old.port_sets is new.port_sets, "compare allocations that share their PortSets"
    port_counts = old.port_sets.counts()
    for old_index, new_index in _chunks(counts.pieces):
        ip_o, ps_o = old.of(old_index)
        ip_n, ps_n = new.of(new_index)
        same_ip = ip_o == ip_n
        same_ports = ps_o == ps_n
        counts.common += len(old_index)
        counts.kept += int((same_ip & same_ports).sum())
        counts.ports_changed += int((same_ip & ~same_ports).sum())
        counts.address_changed += int((~same_ip).sum())
        delta = port_counts[ps_n] - port_counts[ps_o]
        counts.ports_gained += int(delta[delta > 0].sum())
        counts.ports_lost += int(-delta[delta < 0].sum())
        counts.subscribers_gaining_ports += int((delta > 0).sum())
        counts.subscribers_losing_ports += int((delta < 0).sum())
    return counts


def _capacity(mapper: Mapper) -> dict[str, object]:
    summary = mapper.summary()
    keys = (
        "algorithm",
        "subscribers",
        "usable_addresses",
        "ports_per_subscriber",
        "blocks_per_address",
        "dynamic_blocks_per_address",
        "capacity",
        "utilisation",
        "assignment",
    )
    return {k: summary[k] for k in keys if k in summary}


def _list_changes(old: Plan, new: Plan) -> list[str]:
    """What differs between the two plans' canonical content, in the plan file's words."""
    a, b = old.to_dict(), new.to_dict()
    out: list[str] = []
    for section in sorted(set(a) | set(b)):
        x, y = a.get(section), b.get(section)
        if x == y:
            continue
        if not isinstance(x, dict) or not isinstance(y, dict):
            out.append(f"{section}: {_short(x)} -> {_short(y)}")
            continue
        for key in sorted(set(x) | set(y)):
            u, v = x.get(key), y.get(key)
            if u == v:
                continue
            if isinstance(u, list) and isinstance(v, list):
                gone = [item for item in u if item not in v]
                came = [item for item in v if item not in u]
                parts = [f"+{_short(item)}" for item in came] + [f"-{_short(i)}" for i in gone]
                if not parts:
                    parts = ["reordered"]
                elif [i for i in u if i in v] != [i for i in v if i in u]:
                    parts.append("reordered")
                elif came and [i for i in v if i in u] != v[: len(v) - len(came)]:
                    first = min(v.index(item) for item in came)
                    parts.append(f"inserted at position {first}")
                out.append(f"{section}.{key}: {', '.join(parts)}")
            else:
                out.append(f"{section}.{key}: {_short(u)} -> {_short(v)}")
    return out


def _short(value: object) -> str:
    text = str(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def _reordered(old: Sequence[T], new: Sequence[T]) -> list[T]:
    """``new``'s items with the ones ``old`` had first, in ``old``'s order; new ones appended."""
    kept = [item for item in old if item in new]
    return kept + [item for item in new if item not in kept]


def _pool_and_key_space(plan: Plan) -> tuple[Outside | None, Inside | None]:
    """The ``outside`` and ``inside`` sections of a plan whose algorithm has them (the shared
    section types of :mod:`detnat.engine.plan`), else None: what :func:`alternatives` reorders."""
    outside, inside = getattr(plan, "outside", None), getattr(plan, "inside", None)
    return (
        outside if isinstance(outside, Outside) else None,
        inside if isinstance(inside, Inside) else None,
    )


def _replace(plan: Plan, **sections: Inside | Outside) -> Plan:
    """``plan`` with sections that :func:`_pool_and_key_space` found in it replaced."""
    replaced: Plan = dataclasses.replace(cast(Any, plan), **sections)
    return replaced


def alternatives(old: Plan, new: Plan) -> list[tuple[str, Plan]]:
    """Variants of ``new`` that keep its pool, key space and parameters but renumber less."""
    out: list[tuple[str, Plan]] = []
    old_outside, old_inside = _pool_and_key_space(old)
    outside, inside = _pool_and_key_space(new)
    appended_outside = appended_inside = None
    if old_outside is not None and outside is not None:
        order = _reordered(old_outside.prefixes, outside.prefixes)
        if order != list(outside.prefixes):
            added = [str(p) for p in outside.prefixes if p not in old_outside.prefixes]
            appended_outside = dataclasses.replace(outside, prefixes=tuple(order))
            out.append(
                (
                    f"append the new outside prefixes ({', '.join(added) or 'none'}) after the "
                    "existing ones, in their old order",
                    _replace(new, outside=appended_outside),
                )
            )
    if old_inside is not None and inside is not None:
        order = _reordered(old_inside.prefixes, inside.prefixes)
        if order != list(inside.prefixes):
            added = [str(p) for p in inside.prefixes if p not in old_inside.prefixes]
            appended_inside = dataclasses.replace(inside, prefixes=tuple(order))
            out.append(
                (
                    f"append the new inside prefixes ({', '.join(added) or 'none'}) after the "
                    "existing ones, in their old order",
                    _replace(new, inside=appended_inside),
                )
            )
        new_excludes = [p for p in inside.exclude if p not in old_inside.exclude]
        if new_excludes:
            kept = tuple(p for p in inside.exclude if p in old_inside.exclude)
            base = appended_inside or inside
            out.append(
                (
                    f"leave {', '.join(str(p) for p in new_excludes)} in the key space instead of "
                    "excluding it (its block simply goes unused; nobody after it is renumbered)",
                    _replace(new, inside=dataclasses.replace(base, exclude=kept)),
                )
            )
    if appended_outside is not None and appended_inside is not None:
        out.append(
            (
                "append the new outside and inside prefixes after the existing ones",
                _replace(new, outside=appended_outside, inside=appended_inside),
            )
        )
    return out


@dataclass
class PlanDiff:
    """Two compiled plans, compared; ``report`` is the summary, ``rows`` the per-subscriber CSV."""

    old: Mapper
    new: Mapper
    port_sets: PortSets
    old_alloc: Allocations
    new_alloc: Allocations
    counts: Counts

    def report(self) -> dict[str, object]:
        c = self.counts
        warnings: list[dict[str, object]] = []
        if self.old.family != self.new.family or (
            self.old.subscriber_prefix_length != self.new.subscriber_prefix_length
        ):
            warnings.append(
                {
                    "code": "subscribers_not_comparable",
                    "message": (
                        f"subscribers are IPv{self.old.family} /{self.old.subscriber_prefix_length}"
                        f" in the old plan and IPv{self.new.family} "
                        f"/{self.new.subscriber_prefix_length} in the new one: no subscriber is "
                        "the same in both"
                    ),
                }
            )
        if c.common and c.moved / c.common > MOST:
            warnings.append(self._moves_most())
        return {
            "subscribers": {
                "old": c.old,
                "new": c.new,
                "common": c.common,
                "kept": c.kept,
                "ports_changed": c.ports_changed,
                "address_changed": c.address_changed,
                "added": c.added,
                "removed": c.removed,
                "moved_share": round(c.moved / c.common, 6) if c.common else 0.0,
            },
            "ports": {
                "gained": c.ports_gained,
                "lost": c.ports_lost,
                "subscribers_gaining": c.subscribers_gaining_ports,
                "subscribers_losing": c.subscribers_losing_ports,
            },
            "capacity": {"before": _capacity(self.old), "after": _capacity(self.new)},
            "changes": _list_changes(self.old.plan, self.new.plan),
            "warnings": warnings,
        }

    def _moves_most(self) -> dict[str, object]:
        c = self.counts
        message = (
            f"this change moves {c.moved:,} of {c.common:,} subscribers "
            f"({c.moved / c.common:.1%}): their public address or ports change, so their open "
            "sessions break at the switch"
        )
        best: tuple[int, str, Plan] | None = None
        for description, plan in alternatives(self.old.plan, self.new.plan):
            try:
                mapper = compile_plan(plan)
            except DetnatError:
                continue  # e.g. keeping an excluded subscriber no longer fits the capacity
            moved = count_changes(self.old_alloc, Allocations(mapper, self.port_sets)).moved
            if moved * 2 <= c.moved and (best is None or moved < best[0]):
                best = (moved, description, plan)
        out: dict[str, object] = {"code": "moves_most_subscribers", "message": message}
        if best is not None:
            moved, description, plan = best
            out["message"] = f"{message}; instead, {description}: that moves {moved:,}"
            out["alternative"] = {
                "description": description,
                "moved": moved,
                "plan": plan.to_dict(),
            }
        else:
            out["message"] = f"{message}; {self._why()}"
        return out

    def _why(self) -> str:
        old, new = self.old.summary(), self.new.summary()
        if old.get("ports_per_subscriber") != new.get("ports_per_subscriber"):
            return (
                f"the block size changes ({old.get('ports_per_subscriber')} -> "
                f"{new.get('ports_per_subscriber')} ports), which moves every subscriber's ports "
                "whatever the order; no reordering avoids it"
            )
        if "staggered" in (old.get("assignment"), new.get("assignment")):
            return (
                "staggered assignment spreads subscribers round robin over the addresses, so "
                "changing how many there are renumbers nearly everyone; a sequential plan grows "
                "without moving anyone by appending addresses"
            )
        return "no reordering of the new plan's prefixes moves fewer"

    def rows(self, *, changed_only: bool = False) -> Iterator[list[tuple[str, ...]]]:
        """Per-subscriber CSV rows (after :data:`CSV_HEADER`), in chunks, old numbering first."""
        c = self.counts
        ps = self.port_sets
        old, new = self.old, self.new
        for old_index, new_index in _chunks(c.pieces):
            ip_o, ps_o = self.old_alloc.of(old_index)
            ip_n, ps_n = self.new_alloc.of(new_index)
            change = np.where(ip_o != ip_n, 2, np.where(ps_o != ps_n, 1, 0))
            picked = np.flatnonzero(change) if changed_only else np.arange(len(old_index))
            names = (KEPT, PORTS, ADDRESS)
            yield [
                (
                    str(old.subscriber_at(int(old_index[j]))),
                    names[change[j]],
                    format_ipv4(int(ip_o[j])),
                    ps.text(int(ps_o[j])),
                    format_ipv4(int(ip_n[j])),
                    ps.text(int(ps_n[j])),
                )
                for j in picked
            ]
        for mapper, alloc, kind, side in (
            (old, self.old_alloc, REMOVED, 0),
            (new, self.new_alloc, ADDED, 1),
        ):
            covered = [(p[side], p[2]) for p in c.pieces]
            for start, length in uncovered(mapper.subscriber_count, covered):
                for at in range(0, length, CHUNK):
                    index = np.arange(start + at, start + min(length, at + CHUNK), dtype=np.int64)
                    ip, ids = alloc.of(index)
                    rows: list[tuple[str, ...]] = []
                    for j in range(len(index)):
                        where = (format_ipv4(int(ip[j])), ps.text(int(ids[j])))
                        pair = (*where, "", "") if side == 0 else ("", "", *where)
                        rows.append((str(mapper.subscriber_at(int(index[j]))), kind, *pair))
                    yield rows


def diff_plans(old: Mapper, new: Mapper) -> PlanDiff:
    """Compare two compiled plans subscriber by subscriber."""
    port_sets = PortSets()
    old_alloc, new_alloc = Allocations(old, port_sets), Allocations(new, port_sets)
    return PlanDiff(old, new, port_sets, old_alloc, new_alloc, count_changes(old_alloc, new_alloc))
