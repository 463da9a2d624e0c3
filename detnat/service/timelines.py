"""Every realm's timeline in memory, cached per worker and checked against Postgres per request.

Versions are immutable and timelines small, so lookups need no query of their own: a
:class:`Timelines` snapshot holds, per realm, its versions in effective order (``starts_us``,
microseconds since the epoch, for bisecting), the public addresses each version's plan uses, and
two store-wide indexes: which realms ever used an address (``realms_holding``) and when any plan
was in force at all (``plan_in_force_between``). Every index has a scalar and a vectorised form that
share one definition (the last start at or before a value: ``bisect_right`` on Python ints,
``numpy.searchsorted(side="right")`` on arrays), so single and batch lookups follow the same rules;
the arrays are built at their first vectorised use, so a single lookup runs without numpy.

:class:`TimelineCache` keeps one snapshot per worker. Each request reads the store-wide revision
(one row, bumped by triggers in the transaction of every change); only when it moved are the realms
whose newest version changed reloaded. So a published plan is seen by every worker at its next
request, and the app keeps no state but caches of immutable rows.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeAlias

from detnat.store import lean

if TYPE_CHECKING:  # the vectorised forms import numpy: a single lookup runs without it
    import numpy as np
    import numpy.typing as npt
    import psycopg
    from sqlalchemy.orm import Session

Ints: TypeAlias = "npt.NDArray[np.int64]"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
FOREVER_US = 2**63 - 1  # the largest int64


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch (exact: both sides are whole microseconds)."""
    return (moment - EPOCH) // US


def from_us(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(value))


@dataclass(frozen=True, eq=False)
class TimelineVersion:
    """One version of a realm's timeline, as lookups need it."""

    id: int
    seq: int
    effective_from: datetime
    plan: dict[str, Any] | None  # None: the realm is retired from effective_from on
    content_sha256: str | None
    record_sha256: str
    correction: bool
    ranges: tuple[tuple[int, int], ...]  # public addresses of the plan, inclusive, sorted
    approved_by: str | None = None  # who approved it (None: pending, or not loaded from a store)
    approved_at: datetime | None = None

    def holds(self, address: int) -> bool:
        i = bisect_right(self.ranges, address, key=lambda r: r[0]) - 1
        return i >= 0 and address <= self.ranges[i][1]

    def holds_many(self, addresses: Ints) -> npt.NDArray[np.bool_]:
        import numpy as np

        firsts, lasts = self._bounds
        pos = np.searchsorted(firsts, addresses, side="right") - 1
        inside: npt.NDArray[np.bool_] = (pos >= 0) & (addresses <= lasts[np.maximum(pos, 0)])
        return inside

    @cached_property
    def _bounds(self) -> tuple[Ints, Ints]:
        import numpy as np

        firsts = np.array([a for a, _ in self.ranges], dtype=np.int64)
        return firsts, np.array([b for _, b in self.ranges], dtype=np.int64)


def make_version(
    *,
    id: int,
    seq: int,
    effective_from: datetime,
    plan: dict[str, Any] | None,
    content_sha256: str | None,
    record_sha256: str,
    correction: bool,
    ranges: Iterable[tuple[int, int]],
    approved_by: str | None = None,
    approved_at: datetime | None = None,
) -> TimelineVersion:
    return TimelineVersion(
        id=id,
        seq=seq,
        effective_from=effective_from,
        plan=plan,
        content_sha256=content_sha256,
        record_sha256=record_sha256,
        correction=correction,
        ranges=tuple(sorted(ranges)),
        approved_by=approved_by,
        approved_at=approved_at,
    )


@dataclass(frozen=True, eq=False)
class RealmTimeline:
    """A realm's versions in effective order; ``head`` identifies what was loaded."""

    id: int
    name: str
    session_drain: timedelta
    versions: tuple[TimelineVersion, ...]  # approved: the timeline lookups use
    pending: tuple[TimelineVersion, ...] = ()  # published, awaiting a second admin's approval
    head: tuple[int, int] = (0, 0)
    starts: tuple[int, ...] = field(init=False, repr=False)  # each version's, µs since the epoch
    drain_us: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "starts", tuple(to_us(v.effective_from) for v in self.versions))
        object.__setattr__(self, "drain_us", self.session_drain // US)

    @cached_property
    def starts_us(self) -> Ints:
        """:attr:`starts` as an array, for the vectorised forms."""
        import numpy as np

        return np.array(self.starts, dtype=np.int64)

    @cached_property
    def derived(self) -> dict[object, Any]:
        """Parts the lookups derive from this realm alone and keep (the trace excerpt of a
        candidate range, a version's evidence): they live and die with this immutable object, so
        a realm reloaded at another revision starts with none. Never mutate what is kept."""
        return {}

    def pending_between(self, lo_us: int, hi_us: int) -> list[TimelineVersion]:
        """Pending versions that would be candidates for [lo, hi] were they approved."""
        if not self.pending:
            return []
        merged = sorted((*self.versions, *self.pending), key=lambda v: v.effective_from)
        starts = [to_us(v.effective_from) for v in merged]
        first, last = candidate_range(starts, self.drain_us, lo_us, hi_us)
        waiting = {v.id for v in self.pending}
        return [v for v in merged[int(first) : int(last) + 1] if v.id in waiting]

    def until(self, index: int) -> datetime | None:
        """When version ``index`` stops being in force (the next change), None if it has not."""
        return self.versions[index + 1].effective_from if index + 1 < len(self.versions) else None

    def plan_ended_by(self, index: int) -> TimelineVersion | None:
        """For a retirement (version ``index`` without a plan): the last version before it that
        had one, i.e. the plan whose addresses it left without a plan in force."""
        for i in range(index - 1, -1, -1):
            if self.versions[i].plan is not None:
                return self.versions[i]
        return None

    def in_force_at(self, moment: datetime) -> int:
        """The index of the version in force at ``moment``; -1 before the first."""
        return bisect_right(self.starts, to_us(moment)) - 1

    def address_ranges(self) -> list[tuple[int, int]]:
        """Every public address the realm's plans (approved or pending) ever used."""
        return merge(r for v in (*self.versions, *self.pending) for r in v.ranges)


def candidate_range(
    starts_us: Sequence[int] | Ints, drain_us: int, lo_us: Any, hi_us: Any
) -> tuple[Any, Any]:
    """Indexes ``first..last`` of the versions that are candidates for the window [lo, hi].

    A version is a candidate when it is in force at some instant of the window, or when its
    successor took over less than ``drain`` before the window opens (its sessions live on): the
    window widened backwards by the drain. ``last < 0``: no version yet. Python ints (then
    ``starts_us`` may be :attr:`RealmTimeline.starts`) or arrays.
    """
    if isinstance(lo_us, int) and isinstance(hi_us, int):
        return (
            max(bisect_right(starts_us, lo_us - drain_us) - 1, 0),
            bisect_right(starts_us, hi_us) - 1,
        )
    import numpy as np

    first = np.maximum(np.searchsorted(starts_us, lo_us - drain_us, side="right") - 1, 0)
    last = np.searchsorted(starts_us, hi_us, side="right") - 1
    return first, last


def merge(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Inclusive integer ranges merged where they overlap or touch."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


class Timelines:
    """A snapshot of every realm's timeline at store revision ``revision``."""

    def __init__(self, revision: int, realms: Sequence[RealmTimeline]) -> None:
        self.revision = revision
        self.realms = tuple(sorted(realms, key=lambda r: r.name))
        self.by_name = {r.name: r for r in self.realms}
        self.by_id = {r.id: r for r in self.realms}
        self._build_address_index()
        self._build_coverage()

    def _build_address_index(self) -> None:
        # Elementary address segments, each with the realms whose plans ever used it.
        edges: set[int] = set()
        unions = [(n, r.address_ranges()) for n, r in enumerate(self.realms)]
        for _, spans in unions:
            for lo, hi in spans:
                edges.update((lo, hi + 1))
        bounds = sorted(edges)
        owners: list[list[int]] = [[] for _ in bounds]
        for n, spans in unions:
            for lo, hi in spans:
                for k in range(bisect_right(bounds, lo) - 1, bisect_right(bounds, hi)):
                    owners[k].append(n)
        self._seg_bounds = tuple(bounds)
        self._seg_realms: list[tuple[int, ...]] = [tuple(o) for o in owners]

    def _build_coverage(self) -> None:
        spans: list[tuple[int, int]] = []
        for realm in self.realms:
            for i, version in enumerate(realm.versions):
                if version.plan is None:
                    continue
                until = realm.until(i)
                spans.append((realm.starts[i], to_us(until) - 1 if until else FOREVER_US - 1))
        merged = merge(spans)
        self._cov_starts = tuple(a for a, _ in merged)
        self._cov_lasts = tuple(b for _, b in merged)

    @cached_property
    def _arrays(self) -> tuple[Ints, Ints, Ints]:
        """The indexes as arrays, for the vectorised forms: segment starts, coverage spans."""
        import numpy as np

        return (
            np.array(self._seg_bounds, dtype=np.int64),
            np.array(self._cov_starts, dtype=np.int64),
            np.array(self._cov_lasts, dtype=np.int64),
        )

    def realms_holding(self, address: int) -> list[RealmTimeline]:
        """Realms whose plans ever used ``address`` (at any time)."""
        return [self.realms[n] for n in self._realms_at(int(self.segment_of(address)))]

    def segment_of(self, addresses: Any) -> Any:
        """The address segment of each address (-1: below every pool). Scalar or array."""
        if isinstance(addresses, int):
            return bisect_right(self._seg_bounds, addresses) - 1
        import numpy as np

        return np.searchsorted(self._arrays[0], addresses, side="right") - 1

    def _realms_at(self, segment: int) -> tuple[int, ...]:
        return self._seg_realms[segment] if segment >= 0 else ()

    def realms_of_segment(self, segment: int) -> tuple[int, ...]:
        return self._realms_at(segment)

    @property
    def segment_count(self) -> int:
        return len(self._seg_realms)

    def plan_in_force_between(self, lo_us: Any, hi_us: Any) -> Any:
        """Whether some realm had a plan in force at some instant of [lo, hi]. Scalar or array."""
        if isinstance(lo_us, int) and isinstance(hi_us, int):
            at = bisect_right(self._cov_starts, hi_us) - 1
            return at >= 0 and self._cov_lasts[at] >= lo_us
        import numpy as np

        if not self._cov_starts:
            return np.zeros(np.shape(lo_us), dtype=np.bool_) if np.ndim(lo_us) else False
        _, starts, lasts = self._arrays
        pos = np.searchsorted(starts, hi_us, side="right") - 1
        return (pos >= 0) & (lasts[np.maximum(pos, 0)] >= lo_us)


def _load_realm(
    conn: psycopg.Connection[Any], realm_id: int, head: tuple[int, int]
) -> RealmTimeline:
    realm = lean.timeline_rows(conn, realm_id)
    # Who approved each version goes into the trace of every answer (and so its evidence file).
    loaded = [
        (
            make_version(
                id=v.id,
                seq=v.seq,
                effective_from=v.effective_from,
                plan=v.plan,
                content_sha256=v.content_sha256,
                record_sha256=v.record_sha256,
                correction=v.correction,
                ranges=realm.ranges.get(v.id, ()),
                approved_by=v.approved_by,
                approved_at=v.approved_at,
            ),
            v.approved,
        )
        for v in realm.versions
    ]
    return RealmTimeline(
        realm.id,
        realm.name,
        realm.session_drain,
        tuple(v for v, ok in loaded if ok),
        tuple(v for v, ok in loaded if not ok),
        head=head,
    )


class TimelineCache:
    """One :class:`Timelines` snapshot per worker, refreshed when the store revision moves."""

    def __init__(self) -> None:
        self._snapshot: Timelines | None = None
        self._lock = threading.Lock()

    def current(self, revision: int) -> Timelines | None:
        """The snapshot if it is at ``revision`` (no query); None when it must be reloaded."""
        snapshot = self._snapshot
        return snapshot if snapshot is not None and snapshot.revision == revision else None

    def get(self, session: Session, revision: int | None = None) -> Timelines:
        """The snapshot for the store as ``session`` sees it (``revision``: already read)."""
        from detnat.store import repo  # the sessions' side

        return self.load(repo.driver(session), revision)

    def load(self, conn: psycopg.Connection[Any], revision: int | None = None) -> Timelines:
        """The snapshot for the store as ``conn`` (psycopg, in the transaction the caller reads
        the rest in) sees it (``revision``: already read)."""
        if revision is None:
            revision = lean.store_revision(conn)
        snapshot = self._snapshot
        if snapshot is not None and snapshot.revision == revision:
            return snapshot
        with self._lock:
            snapshot = self._snapshot
            if snapshot is not None and snapshot.revision == revision:
                return snapshot
            heads = lean.realm_heads(conn)
            realms = []
            for realm_id, head in heads.items():
                old = snapshot.by_id.get(realm_id) if snapshot is not None else None
                if old is not None and old.head == head:
                    realms.append(old)
                else:
                    realms.append(_load_realm(conn, realm_id, head))
            fresh = Timelines(revision, realms)
            if snapshot is None or revision >= snapshot.revision:
                self._snapshot = fresh
            return fresh


__all__ = [
    "RealmTimeline",
    "TimelineCache",
    "TimelineVersion",
    "Timelines",
    "candidate_range",
    "from_us",
    "to_us",
]
