"""A batch answers every row as the single lookup does, over random logs (with and without a plan).

The batch decides most rows by array operations (:class:`detnat.service.log_answers.BatchLogs`);
the single lookup by :func:`detnat.service.log_answers.combine` over the full intervals. For random
allocate / interim / release lines (some lost, some of a block the plan gives another subscriber,
some refreshed past the hold), random questions near every boundary (to the microsecond) and a
random tolerance, each row's status, reason and subscriber must be the single answer's.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detnat.logs.events import EventKind
from detnat.logs.settle import subscriber_of
from detnat.service import batch_lookups, log_answers, lookups, plans
from detnat.service.timelines import TimelineCache
from detnat.store import logs as store
from detnat.store.db import SessionFactory, make_engine, make_sessions
from tests.logs.conftest import T0_US, event, ingest, new_realm
from tests.logs.test_store_answers import _plan_realm
from tests.store.conftest import throwaway_database

pytestmark = pytest.mark.postgres

A, INTERIM, R = EventKind.ALLOCATE, EventKind.INTERIM, EventKind.RELEASE
S = 10**6
INSIDES = ["10.0.0.0", "10.0.0.1", "10.0.0.3", "100.64.0.9"]
# 1024-1535: in the plan's block of 10.0.0.0 (1024-2031); 6064-6575 and 6576-7087: dynamic.
BLOCKS = [(1024, 1535), (6064, 6575), (6576, 7087), (6064, 7087)]
PORTS = [1024, 1100, 1535, 1536, 2500, 6064, 6100, 6575, 6576, 7000, 7087, 9000]
_addresses = itertools.count(1)


@pytest.fixture(scope="module")
def sessions() -> Iterator[SessionFactory]:
    """A store of this module's own: its random logs stay out of the other log tests' store
    (whose tests check the whole store with ``audit verify``)."""
    # (its plan versions are numbered from 1 again: every cache of compiled plans in this module
    # is its own, not lookups.DEFAULT_MAPPERS, which keys them by version id alone)
    with throwaway_database() as url:
        engine = make_engine(url, pool_size=2)
        yield make_sessions(engine)
        engine.dispose()


@st.composite
def logged(draw: st.DrawFn) -> list[tuple[EventKind, int, str, int, int]]:
    """Lines of a few blocks: (kind, second, inside, first, last), some lost."""
    out = []
    for first, last in draw(st.lists(st.sampled_from(BLOCKS), min_size=1, max_size=3)):
        t = draw(st.integers(0, 20))
        for _ in range(draw(st.integers(1, 3))):
            inside = draw(st.sampled_from(INSIDES))
            kinds = draw(st.lists(st.sampled_from([A, INTERIM, R]), min_size=1, max_size=3))
            for kind in kinds:
                t += draw(st.integers(0, 15))
                out.append((kind, t, inside, first, last))
    return out


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    logged(),
    st.lists(st.sampled_from(PORTS), min_size=1, max_size=3, unique=True),
    st.lists(st.integers(-2, 80), max_size=5),
    st.sampled_from([0, 1, 5 * S, 20 * S]),
    st.booleans(),
    st.booleans(),
    st.sampled_from([None, 10 * S]),
    st.none() | logged(),
)
def test_a_batch_row_is_the_single_lookup_of_the_same_question(
    sessions: SessionFactory,
    lines: list[tuple[EventKind, int, str, int, int]],
    ports: list[int],
    seconds: list[int],
    tolerance_us: int,
    with_plan: bool,
    realm_named: bool,
    hold_us: int | None,
    strangers: list[tuple[EventKind, int, str, int, int]] | None,
) -> None:
    """``strangers``: lines of another realm's logs (no plan) on the same address: they answer
    only where no plan holds it, or when that realm is asked about."""
    n = next(_addresses)
    public = f"198.19.{n >> 8}.{n & 255}"
    realm = _plan_realm(sessions, f"{public}/32") if with_plan else new_realm(sessions)
    hold = None if hold_us is None else timedelta(microseconds=hold_us)
    ingest(
        sessions,
        realm,
        [event(k, T0_US + t * S, inside, public, f, la) for k, t, inside, f, la in lines],
        hold=hold,
    )
    if strangers is not None:
        other = [event(k, T0_US + t * S, i, public, f, la) for k, t, i, f, la in strangers]
        ingest(sessions, new_realm(sessions), other, hold=hold)
    asked = realm if realm_named else None
    tolerance = timedelta(microseconds=tolerance_us)
    now = lookups.utcnow()
    # every port asked a microsecond before, at and after every line's instant, and at others
    instants = sorted({t for _, t, *_ in lines} | set(seconds))
    rows = [
        (port, T0_US + second * S + nudge)
        for port in ports
        for second in instants
        for nudge in (-1, 0, 1)
    ]
    text = "ip,port,time\n" + "".join(
        f"{public},{port},{store.instant(at).isoformat().replace('+00:00', 'Z')}\n"
        for port, at in rows
    )
    mappers = plans.MapperCache()
    with sessions() as s:
        query = batch_lookups.BatchQuery(
            snapshot=TimelineCache().get(s),
            now=now,
            mappers=mappers,
            tolerance=tolerance,
            realm=asked,
            logs=log_answers.BatchLogs(s, asked),
        )
        out: list[str] = []
        batch_lookups.reverse_csv_at(query, io.StringIO(text, newline=""), out.append)
        got = [r[3:6] for r in list(csv.reader(io.StringIO("".join(out))))[1:]]
        singles = []
        for port, at in rows:
            answer = lookups.reverse_at(
                s,
                public,
                port,
                at=store.instant(at),
                tolerance=tolerance,
                realm=asked,
                mappers=mappers,
                timelines=TimelineCache(),
            )
            answer = log_answers.consult(s, answer, realm=asked, now=now)
            singles.append(
                [str(answer["status"]), str(answer.get("reason", "")), answer.get("subscriber", "")]
            )
    assert got == singles


def test_rows_the_logs_answer_otherwise_are_written_with_their_own_answer(
    sessions: SessionFactory,
) -> None:
    """In one block: a port the plan gives 10.0.0.0 while a log gives it 10.0.0.1 (ambiguous,
    no subscriber left of the plan's), a dynamic port a log gives 100.64.0.9 (its subscriber),
    a dynamic port no log holds, and a plan's match the logs leave alone (the plan's 10.0.0.1)."""
    n = next(_addresses)
    public = f"198.19.{n >> 8}.{n & 255}"
    realm = _plan_realm(sessions, f"{public}/32")
    ingest(
        sessions,
        realm,
        [
            event(A, T0_US, "10.0.0.1", public, 1024, 1535),
            event(R, T0_US + 60 * S, "10.0.0.1", public, 1024, 1535, line=2),
            event(A, T0_US, "100.64.0.9", public, 6064, 6575, line=3),
            event(R, T0_US + 60 * S, "100.64.0.9", public, 6064, 6575, line=4),
        ],
    )
    at = store.instant(T0_US + 5 * S).isoformat().replace("+00:00", "Z")
    text = "ip,port,time\n" + "".join(f"{public},{p},{at}\n" for p in (1100, 6100, 7000, 2500))
    with sessions() as s:
        query = batch_lookups.BatchQuery(
            snapshot=TimelineCache().get(s),
            now=lookups.utcnow(),
            mappers=plans.MapperCache(),
            realm=realm,
            logs=log_answers.BatchLogs(s, realm),
        )
        out: list[str] = []
        batch_lookups.reverse_csv_at(query, io.StringIO(text, newline=""), out.append)
    assert "".join(out).splitlines()[1:] == [
        f"{public},1100,{at},ambiguous,plan_and_log_disagree,",
        f"{public},6100,{at},match,,100.64.0.9/32",
        f"{public},7000,{at},no_mapping,not_logged,",
        f"{public},2500,{at},match,,10.0.0.1/32",
    ]


@given(
    st.ip_addresses(v=4).map(str)
    | st.lists(st.text("0123456789", min_size=1, max_size=3), min_size=3, max_size=5).map(".".join)
    | st.text(alphabet="0123456789./", min_size=7, max_size=18)
    | st.ip_addresses(v=6).map(str)
)
def test_an_inside_key_reads_as_the_subscriber_the_single_lookup_names(inside: str) -> None:
    """The batch's shortcut for dotted quads gives the subscriber of ``subscriber_of`` (and
    refuses what it refuses)."""
    try:
        expected = subscriber_of(inside)
    except ValueError:
        with pytest.raises(ValueError):
            log_answers.subscriber_text(inside)
        return
    assert log_answers.subscriber_text(inside) == expected
