"""Ingest into a real Postgres, and the one answer of plans and logs (single lookups, evidence)."""

from __future__ import annotations

import io
import random
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from detnat.engine.results import Reason, Status
from detnat.logs.events import EventKind, LineRef, Refused
from detnat.logs.intervals import decide, derive
from detnat.planfile import plan_from_data
from detnat.service import evidence, inquiry, integrity, log_answers, logs, lookups, plans
from detnat.service.timelines import TimelineCache
from detnat.store import logs as store
from detnat.store.db import SessionFactory, unit_of_work
from detnat.store.models import LogIngest
from tests.logs.conftest import OPS, T0, T0_US, as_file, event, feed, ingest, new_realm

pytestmark = pytest.mark.postgres

A, R = EventKind.ALLOCATE, EventKind.RELEASE
S = 10**6
PUBLIC = "198.18.40.1"


def _answer(sessions: SessionFactory, realm: str, ip: str, port: int, at_us: int, tol: int = 0):
    with sessions() as s:
        at = store.instant(at_us)
        answer = lookups.reverse_at(
            s,
            ip,
            port,
            at=at,
            tolerance=timedelta(microseconds=tol),
            realm=realm,
            timelines=TimelineCache(),
        )
        return log_answers.consult(s, answer, realm=realm, now=lookups.utcnow())


def _stored(sessions: SessionFactory, realm: str) -> list:
    with sessions() as s:
        realm_id = plans.get_realm(s, realm).id
        return sorted(
            (logs.interval_of(r) for r in store.all_intervals(s, realm_id)),
            key=lambda i: (i.block, i.start_us or 0),
        )


def _shape(intervals: list) -> list:
    return [
        (i.block, i.start_us, i.end_us, i.open, i.unknown_start, i.conflict, len(i.lines))
        for i in intervals
    ]


@st.composite
def logged(draw: st.DrawFn) -> list:
    """Allocate / release lines of two blocks and three inside keys, some lines lost."""
    out = []
    for first in (1024, 1536):
        t = 0
        for _ in range(draw(st.integers(0, 4))):
            t += draw(st.integers(0, 30))
            inside = draw(st.sampled_from(["100.64.0.1", "100.64.0.2", "100.64.0.3"]))
            start, t = t, t + draw(st.integers(1, 30))
            for kind, at in ((A, start), (R, t)):
                if draw(st.booleans()) or draw(st.booleans()):
                    out.append(event(kind, T0_US + at * S, inside, PUBLIC, first, first + 511))
    return out


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(logged(), st.randoms(use_true_random=False))
def test_files_in_any_order_with_duplicates_store_what_the_lines_make(
    sessions: SessionFactory, events: list, rnd: random.Random
) -> None:
    one, two = new_realm(sessions), new_realm(sessions)
    ingest(sessions, one, events, hold=timedelta(seconds=20))
    parts = [events[: len(events) // 2], events[len(events) // 3 :], events[::2]]
    rnd.shuffle(parts)
    for n, part in enumerate(parts):
        ingest(sessions, two, part[::-1], name=f"part-{n}.log", hold=timedelta(seconds=20))
    ingest(sessions, two, [e for e in events if e not in parts[0] + parts[1] + parts[2]])
    want = derive(events, hold_us=20 * S)
    assert _shape(_stored(sessions, one)) == _shape(want)
    assert _shape(_stored(sessions, two)) == _shape(want)
    for at in range(-5, 130, 7):
        for port in (1030, 1600):
            expected = decide(want, port, T0_US + at * S, T0_US + (at + 2) * S)
            for realm in (one, two):
                got = _answer(sessions, realm, PUBLIC, port, T0_US + (at + 1) * S, tol=S)
                assert got["status"] == expected.status, (realm, at, port, got)
                assert got.get("reason") == expected.reason
                if expected.status == Status.MATCH:
                    assert got["subscriber"] == f"{expected.inside}/32"
                    assert got["source"] == "log"


def test_the_summary_counts_lines_events_duplicates_and_refused_lines(
    sessions: SessionFactory, realm: str
) -> None:
    made = [
        event(A, T0_US, "100.64.0.1", PUBLIC, 1024, 1535),
        event(R, T0_US + S, "100.64.0.1", PUBLIC, 1024, 1535),
    ]
    reading, renumbered = as_file(made)
    items = [*feed(reading, renumbered), Refused("made.log", 3, "no year")]
    refused: list[Refused] = []
    with unit_of_work(sessions) as s:
        summary = logs.ingest(
            s, realm, items, reading, fmt="csv", by=OPS, request_id="t", on_refused=refused.append
        )
    assert (summary.lines_read, summary.events_stored, summary.duplicates, summary.refused) == (
        2,
        2,
        0,
        1,
    )
    assert refused == [Refused("made.log", 3, "no year")]
    again = ingest(sessions, realm, made)
    assert (again.events_stored, again.duplicates) == (0, 2)
    with sessions() as s:
        assert [str(b) for b in integrity.verify(s)[0]] == []


def test_prune_drops_whole_months_audited_and_the_answers_follow(
    sessions: SessionFactory, realm: str
) -> None:
    day = 86_400 * S
    old = [
        event(A, T0_US - 40 * day, "100.64.0.1", PUBLIC, 1024, 1535),
        event(R, T0_US - 39 * day, "100.64.0.1", PUBLIC, 1024, 1535),
    ]
    new = [
        event(A, T0_US, "100.64.0.2", PUBLIC, 1024, 1535),
        event(R, T0_US + S, "100.64.0.2", PUBLIC, 1024, 1535),
    ]
    ingest(sessions, realm, old + new)
    assert _answer(sessions, realm, PUBLIC, 1100, T0_US - 40 * day + 5)["status"] == Status.MATCH
    with unit_of_work(sessions) as s:
        dropped = logs.prune(s, realm, before=T0 - timedelta(days=10), by=OPS, request_id="p")
    assert dropped == ["2026-02"]
    gone = _answer(sessions, realm, PUBLIC, 1100, T0_US - 40 * day + 5)
    assert (gone["status"], gone["reason"]) == (Status.NO_MAPPING, Reason.NOT_LOGGED)
    assert _answer(sessions, realm, PUBLIC, 1100, T0_US + 5)["subscriber"] == "100.64.0.2/32"
    with sessions() as s:
        assert [str(b) for b in integrity.verify(s)[0]] == []


def _plan_realm(sessions: SessionFactory, pool: str) -> str:
    """A realm whose plan gives 4 subscribers (10.0.0.0/30) one block each of 1008 ports on one
    address; the other 60 blocks are dynamic (ports 5056 and up): only logs answer those."""
    name = new_realm(sessions)
    plan = plan_from_data(
        {
            "algorithm": "block",
            "inside": {"prefixes": ["10.0.0.0/30"], "subscriber_prefix_length": 32},
            "outside": {"prefixes": [pool]},
            "block": {"size": 1008, "dynamic_blocks": 60},
        }
    )
    with unit_of_work(sessions) as s:
        plans.publish(
            s,
            name,
            plan,
            effective_from=T0 - timedelta(days=1),
            reason="CHG-1",
            by=OPS,
            clock=lambda: T0 - timedelta(days=2),
        )
    return name


def _ask(sessions: SessionFactory, realm: str, ip: str, port: int, at_us: int) -> inquiry.Answered:
    query = inquiry.ReverseQuery(
        ip,
        port,
        store.instant(at_us).isoformat(),
        identity=inquiry.Identity("CASE-LOGS"),
        via="cli",
        realm=realm,
    )
    with unit_of_work(sessions) as s:
        return inquiry.ask(
            s,
            OPS,
            query,
            snapshot=TimelineCache().get(s),
            kept=inquiry.Inquiries(),
            now=lookups.utcnow(),
            request_id="t",
        )


def test_a_dynamic_port_is_answered_from_the_logs_and_its_evidence_verifies_offline(
    sessions: SessionFactory,
) -> None:
    pool = "198.18.41.1/32"
    realm = _plan_realm(sessions, pool)
    ingest(
        sessions,
        realm,
        [
            event(A, T0_US, "10.0.0.2", "198.18.41.1", 6064, 7071),
            event(R, T0_US + 60 * S, "10.0.0.2", "198.18.41.1", 6064, 7071),
        ],
        hold=timedelta(hours=1),
    )
    answered = _ask(sessions, realm, "198.18.41.1", 6100, T0_US + 30 * S)
    answer = answered.answer
    assert (answer["status"], answer["source"], answer["subscriber"]) == (
        Status.MATCH,
        "log",
        "10.0.0.2/32",
    )
    assert answer["candidates"][0]["status"] == Status.NOT_DETERMINISTIC  # the plan's own word
    (logged,) = answer["log_candidates"]
    assert [line["kind"] for line in logged["lines"]] == ["allocate", "release"]
    assert logged["lines"][0]["text"].startswith(str(T0_US))
    unlogged = _ask(sessions, realm, "198.18.41.1", 8000, T0_US + 30 * S).answer
    assert (unlogged["status"], unlogged["reason"]) == (Status.NO_MAPPING, Reason.NOT_LOGGED)
    with sessions() as s:
        document = evidence.build(s, answered.answer_id)
    problems, _ = evidence.verify(document)
    assert problems == []
    forged = __import__("copy").deepcopy(document)
    forged["answer"]["log_candidates"][0]["lines"][0]["text"] += " "
    assert evidence.verify(forged)[0]


def test_plan_and_log_naming_two_subscribers_is_ambiguous_with_both(
    sessions: SessionFactory,
) -> None:
    realm = _plan_realm(sessions, "198.18.42.1/32")
    # the plan gives 1024-2031 to 10.0.0.0; the log says 10.0.0.3 had 1024-1535 then
    ingest(sessions, realm, [event(A, T0_US, "10.0.0.3", "198.18.42.1", 1024, 1535)])
    answer = _ask(sessions, realm, "198.18.42.1", 1100, T0_US).answer
    assert (answer["status"], answer["reason"]) == (Status.AMBIGUOUS, Reason.PLAN_AND_LOG_DISAGREE)
    assert answer["candidates"][0]["subscriber"] == "10.0.0.0/32"
    assert answer["log_candidates"][0]["subscriber"] == "10.0.0.3/32"
    agreeing = _ask(sessions, realm, "198.18.42.1", 1100, T0_US - 10 * S).answer
    assert (agreeing["status"], agreeing["subscriber"]) == (Status.MATCH, "10.0.0.0/32")


def test_forward_lists_the_blocks_the_logs_give_a_subscriber_beside_its_plan(
    sessions: SessionFactory,
) -> None:
    realm = _plan_realm(sessions, "198.18.43.1/32")
    ingest(
        sessions,
        realm,
        [
            event(A, T0_US, "10.0.0.2", "198.18.43.1", 6064, 7071),
            event(R, T0_US + 60 * S, "10.0.0.2", "198.18.43.1", 6064, 7071),
        ],
    )
    query = inquiry.ForwardQuery(
        "10.0.0.2",
        store.instant(T0_US + 30 * S).isoformat(),
        identity=inquiry.Identity("CASE-LOGS"),
        via="cli",
        realm=realm,
    )
    with unit_of_work(sessions) as s:
        answer = inquiry.ask(
            s,
            OPS,
            query,
            snapshot=TimelineCache().get(s),
            kept=inquiry.Inquiries(),
            now=lookups.utcnow(),
            request_id="t",
        ).answer
    assert (answer["status"], answer["port_ranges"]) == (Status.MATCH, [[3040, 4047]])
    (block,) = answer["log_blocks"]
    assert (block["public_ip"], block["port_ranges"]) == ("198.18.43.1", [[6064, 7071]])


def test_ingest_digests_hold_for_any_text_duplicates_and_far_instants(
    sessions: SessionFactory, realm: str
) -> None:
    """An ingest sums its rows' digests in Python when every row is new (and in Postgres when
    some are duplicates, or an instant is past what a float holds): ``audit verify`` recomputes
    them in Postgres, so any difference in a column's text (tabs, backslashes, NUL, non-ASCII,
    months) would be named."""
    name = "we\\ird\tné.log"
    texts = [b"a\tb\\c \xc3\xa9 \\N first", b"second \x00 nul \r", b"third"]

    def run(lines: list[bytes], picks: list[tuple[int, int]]) -> logs.IngestSummary:
        reading = logs.Reading(io.BytesIO(b"".join(t + b"\n" for t in lines)), name=name)
        made = [
            event(A, at, f"100.64.0.{n}", PUBLIC, 1024, 1535, file=name, line=n)._replace(
                source=LineRef.of(name, n, lines[n - 1])
            )
            for n, at in picks
        ]
        with unit_of_work(sessions) as s:
            return logs.ingest(
                s, realm, feed(reading, made), reading, fmt="csv", by=OPS, request_id="t"
            )

    first = run(texts, [(1, T0_US), (2, T0_US + 40 * 86_400 * S), (3, T0_US + 1)])
    assert (first.events_stored, first.duplicates) == (3, 0)
    again = run([texts[0], b"fourth"], [(1, T0_US), (2, T0_US + 2)])  # one duplicate
    assert (again.events_stored, again.duplicates) == (1, 1)
    far = run([b"far"], [(1, (1 << 53) + 12_345)])
    assert (far.events_stored, far.duplicates) == (1, 0)
    with sessions() as s:
        assert [str(b) for b in integrity.verify(s)[0]] == []
        months = s.scalars(select(LogIngest.months).where(LogIngest.id == first.ingest_id)).one()
    assert sorted(months) == ["2026-03", "2026-04"]


def test_a_release_bounded_to_its_own_instant_is_no_interval_and_the_store_verifies(
    sessions: SessionFactory,
) -> None:
    """A release with no allocation whose unknown start is bounded by an overlapping block's end
    at its own instant made an empty interval; stored, the empty range read back unbounded (held
    at every instant) and ``audit verify`` disowned it."""
    I = EventKind.INTERIM  # noqa: E741
    realm = new_realm(sessions)
    P = "198.19.0.26"
    evs = [
        event(A, T0_US + 15 * S, "100.64.0.9", P, 6064, 6575, line=1),
        event(R, T0_US + 25 * S, "10.0.0.1", P, 6064, 7087, line=2),
        event(I, T0_US + 31 * S, "10.0.0.1", P, 6064, 7087, line=3),
        event(I, T0_US + 37 * S, "10.0.0.1", P, 6064, 7087, line=4),
        event(A, T0_US + 12 * S, "10.0.0.1", P, 6576, 7087, line=5),
        event(R, T0_US + 21 * S, "10.0.0.1", P, 6576, 7087, line=6),
        event(R, T0_US + 35 * S, "10.0.0.1", P, 6576, 7087, line=7),
        event(R, T0_US + 49 * S, "10.0.0.1", P, 6576, 7087, line=8),
        event(I, T0_US + 55 * S, "100.64.0.9", P, 6576, 7087, line=9),
        event(A, T0_US + 55 * S, "100.64.0.9", P, 6576, 7087, line=10),
        event(I, T0_US + 61 * S, "100.64.0.9", P, 6576, 7087, line=11),
    ]
    made = derive(evs, hold_us=10 * S)
    assert all(i.start_us is None or i.end_us is None or i.start_us < i.end_us for i in made)
    ingest(sessions, realm, evs, hold=timedelta(seconds=10))
    with sessions() as s:
        assert [str(b) for b in integrity.verify(s)[0]] == []


def _row_versions(sessions: SessionFactory, realm: str) -> dict[tuple, str]:
    """Each stored interval row (what it is) -> the transaction that wrote it (xmin)."""
    with sessions() as s:
        realm_id = plans.get_realm(s, realm).id
        rows = s.execute(
            __import__("sqlalchemy").text(
                "SELECT xmin::text AS written, * FROM log_intervals WHERE realm_id = :r"
            ),
            {"r": realm_id},
        ).all()
    return {
        (r.public, r.port_first, r.inside, str(r.during), r.open, r.conflict, str(r.lines)): (
            r.written
        )
        for r in rows
    }


def test_a_later_file_leaves_the_rows_it_does_not_change_as_they_were_written(
    sessions: SessionFactory,
) -> None:
    """Only the intervals a file changes are written again: the others keep their rows (odd file
    names and inside keys included), and the store is what the events make."""
    realm = new_realm(sessions)
    odd = 'pba\\2026\t"q".log'
    first = [
        event(A, T0_US, "100.64.0.1", PUBLIC, 1024, 1535, file=odd),
        event(R, T0_US + 10 * S, "100.64.0.1", PUBLIC, 1024, 1535, file=odd, line=2),
        event(R, T0_US + 20 * S, "100.64.0.2", PUBLIC, 1536, 2047, file=odd, line=3),  # unknown
        event(A, T0_US + 5 * S, "100.64.0.3", PUBLIC, 2048, 2559, protocol="udp", line=4),
        event(A, T0_US + 30 * S, "100.64.0.4", PUBLIC, 3000, 3010, step=2, line=5),  # open
        event(A, T0_US + 31 * S, "100.64.0.5", PUBLIC, 3002, 3002, line=6),  # conflict
    ]
    ingest(sessions, realm, first, name=odd, hold=timedelta(hours=1))
    ingest(sessions, realm, first[:2], name="copy.log")  # the same lines again: duplicates
    before = _row_versions(sessions, realm)
    later = [event(A, T0_US + 60 * S, "100.64.0.9", PUBLIC, 1024, 1535)]  # cuts nothing
    ingest(sessions, realm, later, name="later.log")
    after = _row_versions(sessions, realm)
    assert set(before) < set(after)
    assert {k: after[k] for k in before} == before  # not one of them written again
    events = first + later
    assert _shape(_stored(sessions, realm)) == _shape(derive(events, hold_us=3600 * S))
    # a release that makes the open block meet another's: both are written again (closed, and
    # both now flagged conflict), the others stay
    released = [event(R, T0_US + 40 * S, "100.64.0.4", PUBLIC, 3000, 3010, step=2)]
    ingest(sessions, realm, released, name="release.log")
    again = _row_versions(sessions, realm)
    changed = sorted(k[2] for k in after if again.get(k) != after[k])
    assert changed == ["100.64.0.4", "100.64.0.5"]
    assert _shape(_stored(sessions, realm)) == _shape(derive(events + released, hold_us=3600 * S))
    with sessions() as s:
        assert [str(b) for b in integrity.verify(s)[0]] == []
