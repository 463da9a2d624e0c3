"""Files ingested one after another store, row for row, what one ingest of all their lines stores.

An ingest re-derives the intervals its new lines can change; this holds it to the whole derivation
on random allocate / interim / release lines: lost lines (releases and allocations), the same
event read from two lines, blocks of several shapes sharing ports (a range, a part of it, one
port, a strided block, per protocol), several inside keys on the same ports (conflicts), holds and
interim periods, over two public addresses; the lines cut into files by time and ingested in
time order, in a random order, or dealt at random into files.
"""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import Iterator, Sequence
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from detnat.logs.events import EventKind, LineRef, LogEvent
from detnat.service import integrity, logs, plans
from detnat.store.db import SessionFactory, make_engine, make_sessions, unit_of_work
from tests.logs.conftest import OPS, T0_US, line_of, new_realm
from tests.store.conftest import throwaway_database

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def sessions() -> Iterator[SessionFactory]:
    """A store of this module's own: its examples make two realms each (a partition of
    ``log_events`` per realm), which would slow every later lookup of a shared store (the
    planner and JIT over hundreds of partitions)."""
    with throwaway_database() as url:
        engine = make_engine(url, pool_size=2)
        yield make_sessions(engine)
        engine.dispose()


A, INTERIM, R = EventKind.ALLOCATE, EventKind.INTERIM, EventKind.RELEASE
S = 10**6
PUBLICS = ["198.18.70.1", "198.18.70.2"]
INSIDES = ["100.64.0.1", "100.64.0.2", "100.64.0.3"]
# (first, last, step, protocol): blocks that share ports with one another in several ways
SHAPES = [
    (1024, 1535, 1, None),
    (1024, 1031, 1, None),
    (1030, 1030, 1, "udp"),
    (1024, 1535, 2, "tcp"),
    (1536, 2047, 1, None),
]


@st.composite
def histories(draw: st.DrawFn) -> list[LogEvent]:
    """Holders of random blocks one after the other per (address, shape), each allocated,
    refreshed by interims and released, some lines lost, some read twice, and some holders
    overlapping another's (conflicts)."""
    events: list[LogEvent] = []
    # a line written twice is one line (its instant and hash), read twice: the store keeps the
    # line it read first, so it has one place in the files whatever their order
    places: dict[tuple[str, bytes], LineRef] = {}

    def place(file: str, raw: bytes, sha: str) -> LineRef:
        found = places.get((file, raw))
        if found is None:
            found = places[file, raw] = LineRef(file, len(places) + 1, sha)
        return found

    def add(kind: EventKind, at: int, inside: str, public: str, shape: tuple) -> None:
        first, last, step, protocol = shape
        raw = line_of(kind, T0_US + at * S, inside, public, first, last, step, protocol)
        source = place("pba.log", raw, hashlib.sha256(raw.rstrip(b"\n")).hexdigest())
        made = LogEvent(kind, T0_US + at * S, inside, public, first, last, protocol, source, step)
        events.append(made)
        if draw(st.integers(0, 9)) == 0:  # the same event from another line (another exporter)
            copy = place("copy.log", raw, hashlib.sha256(raw + b"#copy").hexdigest())
            events.append(made._replace(source=copy))

    for _ in range(draw(st.integers(1, 7))):
        public = draw(st.sampled_from(PUBLICS))
        shape = draw(st.sampled_from(SHAPES))
        t = draw(st.integers(0, 150))
        for _ in range(draw(st.integers(1, 3))):
            inside = draw(st.sampled_from(INSIDES))
            start = t
            t += draw(st.integers(1, 40))
            if draw(st.integers(0, 5)):  # else: the allocation line is lost
                add(A, start, inside, public, shape)
            for at in draw(st.lists(st.integers(start, t), max_size=2, unique=True)):
                add(INTERIM, at, inside, public, shape)
            if draw(st.integers(0, 4)):  # else: the release line is lost
                add(R, t, inside, public, shape)
            t += draw(st.integers(-10, 30))  # below 0: the next holder overlaps this one
            t = max(t, 0)
    return events


def _ingest(
    sessions: SessionFactory,
    realm: str,
    events: Sequence[LogEvent],
    name: str,
    hold: timedelta | None,
    interim: timedelta | None,
) -> None:
    """Ingest ``events`` as they are (their own file names and line numbers, so the intervals'
    line references do not depend on how the lines were cut into files)."""
    raws = [
        line_of(
            e.kind, e.at_us, e.inside, e.public, e.port_first, e.port_last, e.port_step, e.protocol
        )
        for e in events
    ]
    reading = logs.Reading(io.BytesIO(b"".join(raws)), name=name)

    def fed():
        lines = reading.lines()
        for e in events:
            next(lines)
            yield e

    with unit_of_work(sessions) as s:
        logs.ingest(
            s,
            realm,
            fed(),
            reading,
            fmt="csv",
            by=OPS,
            request_id="test",
            log_hold=hold,
            log_interim=interim,
        )


def _rows(sessions: SessionFactory, realm: str) -> list[tuple]:
    """Every column of the realm's interval rows but the realm, in one order."""
    with sessions() as s:
        realm_id = plans.get_realm(s, realm).id
        found = s.execute(
            text(
                "SELECT public, port_first, port_last, port_step, protocol, inside, "
                "during::text, ports::text, open, unknown_start, conflict, lines::text, "
                "interim_deadline FROM log_intervals WHERE realm_id = :r ORDER BY 1, 2, 3, 4, "
                "5, 6, 7"
            ),
            {"r": realm_id},
        ).all()
    return [tuple(r) for r in found]


def _cut(events: list[LogEvent], parts: int, how: str, rnd: random.Random) -> list[list]:
    """``events`` as ``parts`` files: by time (in time order or shuffled), or dealt at random."""
    if how == "dealt":
        files: list[list] = [[] for _ in range(parts)]
        for e in events:
            files[rnd.randrange(parts)].append(e)
        return files
    ordered = sorted(events, key=lambda e: e.at_us)
    size = -(-len(ordered) // parts)
    files = [ordered[n * size : (n + 1) * size] for n in range(parts)]
    if how == "shuffled":
        rnd.shuffle(files)
    return files


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    histories(),
    st.integers(2, 5),
    st.sampled_from(["in time order", "shuffled", "dealt"]),
    st.sampled_from([None, 5, 20, 60]),
    st.sampled_from([None, 7, 30]),
    st.randoms(use_true_random=False),
)
def test_files_one_after_another_store_the_rows_of_one_ingest_of_all_their_lines(
    sessions: SessionFactory,
    events: list[LogEvent],
    parts: int,
    how: str,
    hold: int | None,
    interim: int | None,
    rnd: random.Random,
) -> None:
    held = None if hold is None else timedelta(seconds=hold)
    period = None if interim is None else timedelta(seconds=interim)
    whole, cut = new_realm(sessions), new_realm(sessions)
    _ingest(sessions, whole, events, "all.log", held, period)
    for n, part in enumerate(_cut(events, parts, how, rnd)):
        _ingest(sessions, cut, part, f"part-{n}.log", held, period)
    assert _rows(sessions, cut) == _rows(sessions, whole)


def test_the_cut_files_verify(sessions: SessionFactory) -> None:
    """The store an incremental ingest leaves passes ``audit verify`` (intervals re-derived from
    all the events and compared)."""
    realm = new_realm(sessions)
    rnd = random.Random(13)
    events = _fixed(rnd)
    for n, part in enumerate(_cut(events, 4, "in time order", rnd)):
        _ingest(sessions, realm, part, f"part-{n}.log", timedelta(seconds=20), None)
    with sessions() as s:
        assert [str(b) for b in integrity.verify(s)[0]] == []


def _fixed(rnd: random.Random) -> list[LogEvent]:
    """A day of a busy block, by hand: holders one after the other, one release lost, one
    allocation lost, one overlap."""
    out = []
    t = 0
    for n in range(30):
        inside = INSIDES[n % 3]
        first, last, step, protocol = SHAPES[n % len(SHAPES)]
        for kind, at in ((A, t), (INTERIM, t + 3), (R, t + 9)):
            if (n, kind) in {(7, R), (12, A)}:
                continue
            raw = line_of(kind, T0_US + at * S, inside, PUBLICS[0], first, last, step, protocol)
            out.append(
                LogEvent(
                    kind,
                    T0_US + at * S,
                    inside,
                    PUBLICS[0],
                    first,
                    last,
                    protocol,
                    LineRef.of("pba.log", len(out) + 1, raw),
                    step,
                )
            )
        t += 7 + rnd.randrange(5)
    return out


def _lines(*spec: tuple) -> list[LogEvent]:
    """Events from (kind, second, inside, first port, last port) on PUBLICS[0]."""
    out = []
    for kind, at, inside, first, last in spec:
        raw = line_of(kind, T0_US + at * S, inside, PUBLICS[0], first, last)
        source = LineRef.of("pba.log", len(out) + 1, raw)
        out.append(LogEvent(kind, T0_US + at * S, inside, PUBLICS[0], first, last, None, source))
    return out


def _as_whole_and_in_files(
    sessions: SessionFactory, files: list[list[LogEvent]], hold: int
) -> tuple[list, list]:
    whole, cut = new_realm(sessions), new_realm(sessions)
    held = timedelta(seconds=hold)
    _ingest(sessions, whole, [e for f in files for e in f], "all.log", held, None)
    for n, part in enumerate(files):
        _ingest(sessions, cut, part, f"part-{n}.log", held, None)
    return _rows(sessions, cut), _rows(sessions, whole)


def test_a_release_that_ends_an_interval_open_since_before_the_cut_is_derived_with_it(
    sessions: SessionFactory,
) -> None:
    """100.64.0.1's allocation (held 5 s) is past its hold when its release comes in the next
    file, at the instant another key's allocation of the same ports is released: the release
    closes the old interval, which then meets the other key's (both flagged conflict). The
    first new line is after the old interval's assumed end: the cut must go back to its start
    (condition (b))."""
    one = [(A, 0, "100.64.0.1", 1024, 1535)]
    two = [
        (A, 28, "100.64.0.2", 1024, 1535),
        (R, 30, "100.64.0.2", 1024, 1535),
        (R, 30, "100.64.0.1", 1024, 1535),
    ]
    events = _lines(*one, *two)
    got, want = _as_whole_and_in_files(sessions, [events[:1], events[1:]], hold=5)
    assert got == want
    assert [r[10] for r in want] == [True, True]  # conflict


def test_an_unknown_start_after_the_cut_is_bounded_by_an_assumed_end_before_it(
    sessions: SessionFactory,
) -> None:
    """100.64.0.1's interval (last line at 8 s, held 20 s) is cut at 10 s by 100.64.0.2's
    allocation, but its assumed end (28 s) still bounds the unknown start of a later release
    (at 30 s): the lines of a hold before the cut are read with the new ones."""
    events = _lines(
        (A, 0, "100.64.0.1", 1024, 1535),
        (INTERIM, 8, "100.64.0.1", 1024, 1535),
        (A, 10, "100.64.0.2", 1024, 1535),
        (R, 12, "100.64.0.2", 1024, 1535),
        (A, 15, "100.64.0.4", 1024, 1535),
        (R, 16, "100.64.0.4", 1024, 1535),
        (R, 30, "100.64.0.3", 1024, 1535),
    )
    got, want = _as_whole_and_in_files(sessions, [events[:4], events[4:]], hold=20)
    assert got == want
    (released,) = [r for r in want if r[5] == "100.64.0.3"]
    assert released[6].startswith('["2026-03-14 20:00:28')
