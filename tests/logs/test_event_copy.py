"""Events go straight into ``log_events`` when a chunk can hold no duplicate, and the store is the
same: each line (instant and line hash) stored once, by the first ingest that read it, and every
later reading of it counted as a duplicate, whether in the same chunk, a later chunk of the same
file or a later file; instants past what a float holds still go through the staging table.
``audit verify`` holds the digests and the intervals.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from detnat.logs.events import EventKind, LineRef, LogEvent
from detnat.service import integrity, logs
from detnat.store.db import SessionFactory, make_engine, make_sessions, unit_of_work
from tests.logs.conftest import OPS, T0_US, line_of, new_realm
from tests.store.conftest import throwaway_database

pytestmark = pytest.mark.postgres

S = 10**6
KINDS = [EventKind.ALLOCATE, EventKind.RELEASE, EventKind.INTERIM]
# instants: close together, a month on (another partition), before 1970, past 2**53 µs
INSTANTS = [T0_US, T0_US + 1, T0_US + 5 * S, T0_US + 40 * 86_400 * S, -3 * S + 7, (1 << 53) + 5]


@pytest.fixture(scope="module")
def sessions() -> Iterator[SessionFactory]:
    """A store of this module's own (a realm per example, each with its partitions)."""
    with throwaway_database() as url:
        engine = make_engine(url, pool_size=2)
        yield make_sessions(engine)
        engine.dispose()


Pool = list[tuple[EventKind, int, str, int]]  # kind, instant, inside, first port


@st.composite
def pools(draw: st.DrawFn) -> Pool:
    """A few distinct lines to read, some at the same instant."""
    return draw(
        st.lists(
            st.tuples(
                st.sampled_from(KINDS),
                st.sampled_from(INSTANTS),
                st.sampled_from(["100.64.0.1", "100.64.0.2"]),
                st.sampled_from([1024, 1536]),
            ),
            min_size=1,
            max_size=6,
            unique=True,
        )
    )


def _raw(pick: tuple[EventKind, int, str, int]) -> bytes:
    kind, at, inside, first = pick
    return line_of(kind, at, inside, "198.18.9.1", first, first + 511)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    pool=pools(),
    files=st.lists(st.lists(st.integers(0, 5), max_size=8), min_size=1, max_size=4),
    chunk=st.integers(1, 4),
)
def test_each_line_is_stored_once_by_the_first_ingest_that_read_it(
    sessions: SessionFactory, pool: Pool, files: list[list[int]], chunk: int
) -> None:
    realm = new_realm(sessions)
    seen: dict[tuple[int, bytes], tuple[int, str, int]] = {}  # (instant, line) -> first reading
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(logs, "CHUNK", chunk)  # several chunks per file
        for n, picks in enumerate(files):
            name = f"pba-{n}.log"
            raws = [_raw(pool[p % len(pool)]) for p in picks]
            events = [
                LogEvent(kind, at, inside, "198.18.9.1", first, first + 511, None, source)
                for (kind, at, inside, first), source in zip(
                    (pool[p % len(pool)] for p in picks),
                    (LineRef.of(name, k, raw) for k, raw in enumerate(raws, start=1)),
                    strict=True,
                )
            ]
            reading = logs.Reading(io.BytesIO(b"".join(raws)), name=name)
            with unit_of_work(sessions) as s:
                summary = logs.ingest(
                    s,
                    realm,
                    _fed(reading, events),
                    reading,
                    fmt="csv",
                    by=OPS,
                    request_id="t",
                    log_hold=timedelta(seconds=20),
                )
            new = 0
            for k, (e, raw) in enumerate(zip(events, raws, strict=True), start=1):
                if (e.at_us, raw) not in seen:
                    seen[e.at_us, raw] = (summary.ingest_id, name, k)
                    new += 1
            assert (summary.events_stored, summary.duplicates) == (new, len(raws) - new)
    with sessions() as s:
        stored = s.execute(
            text(
                "SELECT e.ingest_id, e.file, e.line FROM log_events e JOIN realms r "
                "ON r.id = e.realm_id WHERE r.name = :realm"
            ),
            {"realm": realm},
        ).all()
        assert sorted(tuple(row) for row in stored) == sorted(seen.values())
        assert [str(b) for b in integrity.verify(s)[0]] == []


def _fed(reading: logs.Reading, events: list[LogEvent]) -> Iterator[LogEvent]:
    lines = reading.lines()
    for e in events:
        next(lines)
        yield e
    for _ in lines:
        pass


def test_an_instant_past_a_float_in_a_later_file_keeps_its_interval(
    sessions: SessionFactory,
) -> None:
    """An instant past 2**53 µs is stored through a float (2**53 + 5 as 2**53 + 4): the later
    file's cut was taken at the instant read, after the one stored, so its allocation, read back
    before the cut, was never derived and its interval was missing (``audit verify`` named it)."""
    realm = new_realm(sessions)
    for n, at in enumerate([T0_US, (1 << 53) + 5]):
        name = f"pba-{n}.log"
        raw = line_of(EventKind.ALLOCATE, at, "100.64.0.1", "198.18.9.1", 1024, 1535)
        made = LogEvent(
            EventKind.ALLOCATE,
            at,
            "100.64.0.1",
            "198.18.9.1",
            1024,
            1535,
            None,
            LineRef.of(name, 1, raw),
        )
        reading = logs.Reading(io.BytesIO(raw), name=name)
        with unit_of_work(sessions) as s:
            logs.ingest(
                s,
                realm,
                _fed(reading, [made]),
                reading,
                fmt="csv",
                by=OPS,
                request_id="t",
                log_hold=timedelta(seconds=20),
            )
    with sessions() as s:
        assert [str(b) for b in integrity.verify(s)[0]] == []
        count = s.scalar(
            text(
                "SELECT count(*) FROM log_intervals i JOIN realms r ON r.id = i.realm_id "
                "WHERE r.name = :realm"
            ),
            {"realm": realm},
        )
    assert count == 2
