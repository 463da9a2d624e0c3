"""From allocation lines to intervals, and from intervals to an answer: the one rule, pure.

The store keeps every line (``log_events``); the intervals are derived from them by
:func:`derive` (on an ingest, what its new lines can change: :func:`derive_from`), by ``audit
verify`` to check the stored ones, and by ``evidence verify`` from the lines an evidence file
embeds. The answer over the intervals that hold a port in
a window is :func:`decide`. Nothing here depends on the order the lines were read in: events are
sorted first, and the same event read twice (two lines saying the same thing) is one event.

The rule, per block (public address, port range and stride, protocol, inside key), in time order:

- ``allocate`` opens an interval at its instant (a block already open is closed there, flagged
  ``open``: its release was never seen);
- ``interim`` refreshes the open interval; with none open, it opens one of unknown start;
- ``release`` closes the open interval at its instant; with none open, it makes an interval of
  unknown start (``unknown_start``, no lower bound);
- an interval still open at the end lasts until its last line plus the realm's log hold (no hold
  declared: no end), flagged ``open``; when the realm declares an interim period (a NAT that
  re-logs every block it still holds that often, as Juniper's PBA interim logging does) and the
  next interim deadline (last line + interim period) comes before the hold runs out, it ends
  there instead, flagged ``interim_deadline``: a block still held would have been logged again.

Then, across inside keys on the same ports (:func:`bound_assumed`), what is assumed is cut where
another interval's lines begin or end.

What the lines prove of an interval is its *seen* part: from its allocation (or first line, for an
unknown start) to its release, or for an open interval to its last line. Beyond that it is assumed.

Intervals of different inside keys that share a port (and protocol, or one of them is all
protocols) at some instant are both flagged ``conflict``: kept, never merged.

Example: allocate at 10, interim at 20, no release, hold 100 -> ``[10, 120)`` open, seen ``[10,
20]``: a window inside ``[10, 20]`` is a match, one reaching past 20 is ambiguous. With an interim
period of 30 as well: ``[10, 50)``, open and ``interim_deadline``.

>>> from detnat.logs.events import EventKind, LineRef, LogEvent
>>> ref = LineRef("f", 1, "0" * 64)
>>> e = [LogEvent(EventKind.ALLOCATE, 10, "10.0.0.1", "192.0.2.1", 1024, 1535, None, ref),
...      LogEvent(EventKind.RELEASE, 50, "10.0.0.1", "192.0.2.1", 1024, 1535, None, ref)]
>>> [(i.start_us, i.end_us, i.open) for i in derive(e, hold_us=None)]
[(10, 50, False)]
>>> str(decide(derive(e, hold_us=None), 1100, 20, 30).status)
'match'
>>> [(i.end_us, i.interim_deadline) for i in derive(e[:1], hold_us=100, interim_us=30)]
[(40, True)]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from detnat.engine.results import Reason, Status
from detnat.logs.events import EventKind, LineRef, LogEvent

# At one instant, a release ends what was before it, then an allocate begins, then refreshes.
_RANK = {EventKind.RELEASE: 0, EventKind.ALLOCATE: 1, EventKind.INTERIM: 2}
_ALLOCATE, _RELEASE = EventKind.ALLOCATE, EventKind.RELEASE

MATCH, AMBIGUOUS, NO_MAPPING = Status.MATCH, Status.AMBIGUOUS, Status.NO_MAPPING
NOT_LOGGED, LOG_CONFLICT = Reason.NOT_LOGGED, Reason.LOG_CONFLICT
LOG_OPEN_ENDED, LOG_BOUNDARY = Reason.LOG_OPEN_ENDED, Reason.LOG_BOUNDARY
CANDIDATES_DIFFER = Reason.CANDIDATES_DIFFER


@dataclass(frozen=True, slots=True)
class Seen:
    """One line behind an interval: what it said, when, and where it was read."""

    kind: EventKind
    at_us: int
    source: LineRef


BlockKey = tuple[str, int, int, int, str, str]  # public, first, last, step, protocol, inside


@dataclass(frozen=True, slots=True)
class Interval:
    """A port block held by one inside key over ``[start_us, end_us)`` (None: unbounded)."""

    public: str
    port_first: int
    port_last: int
    port_step: int
    protocol: str | None
    inside: str
    start_us: int | None
    end_us: int | None
    open: bool
    unknown_start: bool
    lines: tuple[Seen, ...]
    conflict: bool = False
    interim_deadline: bool = False  # open, and its end is the next interim deadline

    @property
    def block(self) -> BlockKey:
        return (
            self.public,
            self.port_first,
            self.port_last,
            self.port_step,
            self.protocol or "all",
            self.inside,
        )

    @property
    def seen_from_us(self) -> int:
        """From when the lines prove the inside held it."""
        if self.start_us is not None and not self.unknown_start:
            return self.start_us
        return min(s.at_us for s in self.lines)

    @property
    def seen_to_us(self) -> int:
        """Until when (inclusive) the lines prove it: the release's instant is not held."""
        last = max(s.at_us for s in self.lines)
        if not self.open and self.end_us is not None:
            return self.end_us - 1
        return last

    def holds(self, port: int) -> bool:
        return self.port_first <= port <= self.port_last and (
            (port - self.port_first) % self.port_step == 0
        )

    def overlaps(self, start_us: int, end_us: int) -> bool:
        """Whether some instant of the closed window ``[start_us, end_us]`` is in the interval."""
        return (self.start_us is None or self.start_us <= end_us) and (
            self.end_us is None or start_us < self.end_us
        )

    def port_ranges(self) -> list[list[int]]:
        return port_ranges(self.port_first, self.port_last, self.port_step)


def port_ranges(first: int, last: int, step: int) -> list[list[int]]:
    """The ports ``first``, ``first + step``, ... up to ``last`` as inclusive ranges.

    >>> port_ranges(1024, 1535, 1), port_ranges(1024, 1033, 4)
    ([[1024, 1535]], [[1024, 1024], [1028, 1028], [1032, 1032]])
    """
    if step == 1:
        return [[first, last]]
    return [[p, p] for p in range(first, last + 1, step)]


@dataclass
class _Open:
    start_us: int | None
    unknown: bool
    lines: list[Seen] = field(default_factory=list)


def _key(event: LogEvent) -> BlockKey:
    return (
        event.public,
        event.port_first,
        event.port_last,
        event.port_step,
        event.protocol or "all",
        event.inside,
    )


def derive(
    events: Iterable[LogEvent], *, hold_us: int | None, interim_us: int | None = None
) -> list[Interval]:
    """Every interval the events make (see the module docstring), conflicts flagged; sorted.

    ``hold_us``: the realm's log hold; ``interim_us``: its interim period (None: not declared).
    """
    blocks: dict[BlockKey, list[LogEvent]] = defaultdict(list)
    for event in events:
        blocks[_key(event)].append(event)
    out: list[Interval] = []
    for key in sorted(blocks):
        out.extend(_block(key, blocks[key], hold_us, interim_us))
    # An assumed bound may leave an interval no instant (a release whose unknown start is bounded
    # by another block's end at that very instant): it holds nothing and is not kept (stored, an
    # empty range would read back unbounded).
    bounded = [i for i in bound_assumed(out) if not _empty(i)]
    return flag_conflicts(bounded)


def _empty(interval: Interval) -> bool:
    return (
        interval.start_us is not None
        and interval.end_us is not None
        and interval.start_us >= interval.end_us
    )


def _block(
    key: BlockKey, events: list[LogEvent], hold_us: int | None, interim_us: int | None
) -> list[Interval]:
    """The intervals of one block (:func:`_block_in_order`; an allocation and its release, the
    usual block, made directly)."""
    public, first, last, step, protocol, inside = key
    if len(events) == 2:
        one, two = events
        if one.at_us > two.at_us:
            one, two = two, one
        if one.kind is _ALLOCATE and two.kind is _RELEASE and one.at_us < two.at_us:
            return [
                Interval(
                    public,
                    first,
                    last,
                    step,
                    None if protocol == "all" else protocol,
                    inside,
                    one.at_us,
                    two.at_us,
                    False,
                    False,
                    (Seen(_ALLOCATE, one.at_us, one.source), Seen(_RELEASE, two.at_us, two.source)),
                )
            ]
    return _block_in_order(key, events, hold_us, interim_us)


def _block_in_order(
    key: BlockKey, events: list[LogEvent], hold_us: int | None, interim_us: int | None
) -> list[Interval]:
    """The intervals of one block: its events in time order, by the rule (module docstring)."""
    public, first, last, step, protocol, inside = key
    events.sort(key=lambda e: (e.at_us, _RANK[e.kind], e.source.sha256))
    made: list[Interval] = []

    def emit(
        start: int | None,
        end: int | None,
        lines: list[Seen],
        *,
        opened: bool,
        unknown: bool,
        deadline: bool = False,
    ) -> None:
        made.append(
            Interval(
                public,
                first,
                last,
                step,
                None if protocol == "all" else protocol,
                inside,
                start,
                end,
                opened,
                unknown,
                tuple(lines),
                interim_deadline=deadline,
            )
        )

    def close_open(current: _Open, next_start: int | None) -> None:
        seen_last = current.lines[-1].at_us
        end = None if hold_us is None else seen_last + hold_us
        deadline = False
        if interim_us is not None and (hold_us is None or interim_us < hold_us):
            end, deadline = seen_last + interim_us, True
        if next_start is not None and (end is None or next_start < end):
            end, deadline = next_start, False
        emit(
            current.start_us,
            end,
            current.lines,
            opened=True,
            unknown=current.unknown,
            deadline=deadline,
        )

    current: _Open | None = None
    prior: tuple[EventKind, int] | None = None
    for event in events:
        seen = Seen(event.kind, event.at_us, event.source)
        if prior == (event.kind, event.at_us):
            # the same event read from another line (another format, a copy): one event, both lines
            if current is not None:
                current.lines.append(seen)
            elif made:
                done = made[-1]
                made[-1] = replace(done, lines=(*done.lines, seen))
            continue
        prior = (event.kind, event.at_us)
        if event.kind is EventKind.ALLOCATE:
            if current is not None:
                close_open(current, event.at_us)
            current = _Open(event.at_us, False, [seen])
        elif event.kind is EventKind.INTERIM:
            if current is None:
                current = _Open(None, True, [seen])
            else:
                current.lines.append(seen)
        else:
            if current is None:
                emit(None, event.at_us, [seen], opened=False, unknown=True)
            else:
                emit(
                    current.start_us,
                    event.at_us,
                    [*current.lines, seen],
                    opened=False,
                    unknown=current.unknown,
                )
                current = None
    if current is not None:
        close_open(current, None)
    return made


def ports_meet(a: Interval, b: Interval) -> bool:
    """Whether two blocks (ranges with strides) share a port."""
    lo, hi = max(a.port_first, b.port_first), min(a.port_last, b.port_last)
    if lo > hi:
        return False
    if a.port_step == 1 and b.port_step == 1:
        return True
    wide, other = (a, b) if a.port_step >= b.port_step else (b, a)
    port = lo + (wide.port_first - lo) % wide.port_step
    for _ in range(other.port_step):  # the residues of `other` repeat within its step
        if port > hi:
            return False
        if (port - other.port_first) % other.port_step == 0:
            return True
        port += wide.port_step
    return False


def _meet(a: Interval, b: Interval) -> bool:
    if a.inside == b.inside or a.public != b.public:
        return False
    if a.protocol is not None and b.protocol is not None and a.protocol != b.protocol:
        return False
    before = a.end_us is not None and b.start_us is not None and a.end_us <= b.start_us
    after = b.end_us is not None and a.start_us is not None and b.end_us <= a.start_us
    return not before and not after and ports_meet(a, b)


def _sharing(intervals: list[Interval]) -> Iterable[tuple[int, int]]:
    """Pairs (n, m) of intervals of one public address whose port ranges overlap."""
    order = sorted(
        range(len(intervals)), key=lambda n: (intervals[n].public, intervals[n].port_first)
    )
    active: list[int] = []
    for n in order:
        a = intervals[n]
        active = [
            m
            for m in active
            if intervals[m].public == a.public and intervals[m].port_last >= a.port_first
        ]
        for m in active:
            yield n, m
        active.append(n)


def bound_assumed(intervals: list[Interval]) -> list[Interval]:
    """Cut what is assumed of an interval where the lines of another interval on one of its ports
    begin or end (the NAT gives a port to one inside key at a time): an unknown start begins at
    the latest end before its first line (else it stays unbounded); an open interval ends at the
    first start of another after its last line, if that is before its hold (or interim
    deadline) runs out, and is then no longer ``interim_deadline``. What the lines show is never
    cut: intervals whose seen parts overlap are flagged, not trimmed."""
    starts: dict[int, int] = {}
    ends: dict[int, int] = {}
    for n, m in _sharing(intervals):
        for x, y in ((n, m), (m, n)):
            a, b = intervals[x], intervals[y]
            if (
                a.unknown_start
                and b.end_us is not None
                and b.end_us <= a.seen_from_us
                and ports_meet(a, b)
            ):
                starts[x] = max(starts.get(x, b.end_us), b.end_us)
            if (
                a.open
                and b.start_us is not None
                and not b.unknown_start
                and a.seen_to_us < b.start_us
                and (a.end_us is None or b.start_us < a.end_us)
                and ports_meet(a, b)
            ):
                ends[x] = min(ends.get(x, b.start_us), b.start_us)
    return [
        replace(
            i,
            start_us=starts.get(n, i.start_us),
            end_us=ends.get(n, i.end_us),
            interim_deadline=i.interim_deadline and n not in ends,
        )
        if n in starts or n in ends
        else i
        for n, i in enumerate(intervals)
    ]


def flag_conflicts(intervals: list[Interval]) -> list[Interval]:
    """``intervals`` with ``conflict`` set on each one that meets another inside key's.

    Swept per public address in order of the first port: only blocks whose ranges overlap are
    compared.
    """
    order = sorted(
        range(len(intervals)), key=lambda n: (intervals[n].public, intervals[n].port_first)
    )
    hit: set[int] = set()
    active: list[int] = []
    for n in order:
        a = intervals[n]
        active = [
            m
            for m in active
            if intervals[m].public == a.public and intervals[m].port_last >= a.port_first
        ]
        for m in active:
            if _meet(a, intervals[m]):
                hit.update((n, m))
        active.append(n)
    out = []
    for n, interval in enumerate(intervals):
        flagged = n in hit
        if interval.conflict != flagged:
            interval = replace(interval, conflict=flagged)
        out.append(interval)
    return sorted(out, key=_order)


def _order(i: Interval) -> tuple[object, ...]:
    return (i.block, -1 if i.start_us is None else i.start_us, i.end_us or 0)


def _proven(found: Sequence[Interval], start_us: int, end_us: int) -> bool:
    """Whether the seen parts of ``found`` together cover every instant of the window."""
    reach = start_us - 1  # every instant up to here is proven
    for interval in sorted(found, key=lambda i: i.seen_from_us):
        if interval.seen_from_us > reach + 1:
            break
        reach = max(reach, interval.seen_to_us)
    return reach >= end_us


@dataclass(frozen=True, slots=True)
class Decided:
    """The logs' answer for one port over one window: status, reason, the intervals behind it."""

    status: Status
    reason: Reason | None
    intervals: tuple[Interval, ...]
    inside: str | None = None  # a match: the one inside key


def decide(
    intervals: Sequence[Interval],
    port: int,
    start_us: int,
    end_us: int,
    *,
    holder: Callable[[Interval], Hashable] | None = None,
) -> Decided:
    """The answer of the logs for ``port`` over the closed window ``[start_us, end_us]``.

    ``intervals`` may hold any intervals of the public address; those that hold the port at some
    instant of the window are the candidates. ``match`` only when every candidate names the same
    inside key, none is flagged ``conflict``, and their seen parts together cover every instant
    of the window; else ``ambiguous``: ``log_conflict``; ``candidates_differ`` (each proven,
    different keys: another protocol); ``log_open_ended`` (the window reaches into an assumed part);
    ``log_boundary`` (the window crosses a start or an end). ``no_mapping`` / ``not_logged`` when
    no interval holds the port in the window. ``holder``: who an interval's inside key is (by
    default the key itself; intervals of several realms: the realm with the key, as the same
    private address behind two NATs is two subscribers).
    """
    found = tuple(
        sorted((i for i in intervals if i.holds(port) and i.overlaps(start_us, end_us)), key=_order)
    )
    if not found:
        return Decided(NO_MAPPING, NOT_LOGGED, found)
    if any(i.conflict for i in found):
        return Decided(AMBIGUOUS, LOG_CONFLICT, found)
    insides = {i.inside for i in found} if holder is None else {holder(i) for i in found}
    covered = [i for i in found if i.seen_from_us <= start_us and end_us <= i.seen_to_us]
    if len(insides) == 1 and _proven(found, start_us, end_us):
        # one inside key, proven at every instant of the window by the lines of its intervals
        return Decided(MATCH, None, found, found[0].inside)
    if len(covered) == len(found):  # e.g. tcp for one, udp for another: no protocol was asked
        return Decided(AMBIGUOUS, CANDIDATES_DIFFER, found)
    if any(i.open or i.unknown_start for i in found if i not in covered):
        return Decided(AMBIGUOUS, LOG_OPEN_ENDED, found)
    return Decided(AMBIGUOUS, LOG_BOUNDARY, found)


# -- deriving again from a cut ---------------------------------------------------------------------


def reach_us(hold_us: int | None, interim_us: int | None) -> int | None:
    """How long after its last line an open interval may last at most: the interim period when
    it comes before the hold, else the hold (None: neither declared, no bound)."""
    if interim_us is not None and (hold_us is None or interim_us < hold_us):
        return interim_us
    return hold_us


class CutTooLate(Exception):
    """The lines from a cut cannot be derived apart from those before it; ``earlier``: a cut to
    try instead (None: none will do, derive the whole address)."""

    def __init__(self, earlier: int | None) -> None:
        super().__init__(earlier)
        self.earlier = earlier


def _rank(event: LogEvent) -> tuple[int, int, str]:
    return (event.at_us, _RANK[event.kind], event.source.sha256)


def joined_across(events: Iterable[LogEvent], cut_us: int) -> list[BlockKey]:
    """The blocks whose first line at or after ``cut_us`` is not an allocation: such a line
    continues the block's interval before the cut if that one is still open (not released)."""
    first: dict[BlockKey, LogEvent] = {}
    for event in events:
        if event.at_us >= cut_us:
            key = _key(event)
            seen = first.get(key)
            if seen is None or _rank(event) < _rank(seen):
                first[key] = event
    return sorted(k for k, e in first.items() if e.kind is not _ALLOCATE)


def derive_from(
    events: Iterable[LogEvent], cut_us: int, *, hold_us: int | None, interim_us: int | None
) -> list[Interval]:
    """The intervals :func:`derive` makes of all an address's lines whose lines are all at or
    after ``cut_us``, from the lines at or after ``cut_us - reach_us(...)`` only (``events``: at
    least those of the address). :class:`CutTooLate` when that cannot be told from them.

    An ingest derives again only from a cut before its first new line: the intervals stored
    whose lines are all before the cut stay as they are, those at or after it are replaced by
    these. That gives what :func:`derive` gives from all the lines when, with every new line at
    or after the cut and the stored intervals what :func:`derive` made of the old lines:

    (a) no stored interval spans the cut (each one ending at or after it, or open-ended, starts
        at or after it: the caller checks, and lowers the cut to the start of one that does);
    (b) the blocks of :func:`joined_across` had their last interval before the cut released
        (the caller checks the one stored; an open one: the cut goes to its start);
    (c) every unknown start made here (of an interval kept) is bounded, at or after the cut
        (checked here: else :class:`CutTooLate`, with that start).

    Why. Per block, the rule's state at the cut is then empty, or an interval open until the
    allocation that comes next ((a) and (b): no line at or after the cut continues one before),
    so the block's intervals split at the cut, the ones after made of lines after it alone.
    Across blocks, an interval depends on others only through :func:`bound_assumed` and
    :func:`flag_conflicts`:

    - an open interval's end is its hold (interim deadline) from its last line, or the first
      known start on its ports after its last line: for those after the cut, starts after the
      cut, all among these lines; for those before, already at or before the cut by (a), so a
      start after the cut changes nothing (nor their ``interim_deadline``);
    - an unknown start is the latest assumed end on its ports at or before its first line: for
      an interval before the cut, ends of intervals before the cut (those after it end after
      it); for one after the cut, the lines before ``cut - reach`` make intervals that ended
      (assumed end included) before the cut, so by (c) the latest end comes from these lines,
      which give every interval from ``cut - reach`` on its true end (an end depends on the
      last line, the hold and the next allocation only, never on the lines before);
    - conflicts need a shared instant: the intervals before the cut end at or before it ((a)),
      those after start at or after it (a known start, or (c)), so none spans the cut both
      ways; a flag depends on intervals of its own side only.

    Without a hold or an interim period an open interval has no bound: the caller derives the
    whole address. An interval kept with lines on both sides of the cut cannot happen when
    (a) and (b) hold; it is refused here all the same (``CutTooLate(None)``).
    """
    reach = reach_us(hold_us, interim_us)
    if reach is None:
        raise CutTooLate(None)
    since = cut_us - reach
    made = derive([e for e in events if e.at_us >= since], hold_us=hold_us, interim_us=interim_us)
    kept: list[Interval] = []
    earlier = cut_us
    for interval in made:
        if min(s.at_us for s in interval.lines) < cut_us:
            if max(s.at_us for s in interval.lines) >= cut_us:
                raise CutTooLate(None)
            continue
        if interval.unknown_start and (interval.start_us is None or interval.start_us < cut_us):
            if interval.start_us is None:
                raise CutTooLate(None)
            earlier = min(earlier, interval.start_us)
        kept.append(interval)
    if earlier < cut_us:
        raise CutTooLate(earlier)
    return kept
