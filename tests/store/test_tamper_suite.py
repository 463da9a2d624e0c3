"""Every single-row change to every table is refused or reported, generated from the schema.

For each table of the migrated schema (read from Postgres' catalog, so a new table cannot be
forgotten), for a few rows of it, every column is changed, the row is deleted, and the table is
truncated:

- as the database owner with the triggers on, the change must be refused, or ``audit verify``
  must report it;
- as a superuser with the triggers off (``session_replication_role = replica``), ``audit verify``
  (given the checkpoint exported before) must report it.

Each change runs in its own transaction and is rolled back. Tables and columns left out say why.
The store is a database of its own, so other tests' rows cannot hide or cause a report.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from detnat.logs.events import EventKind
from detnat.service import audit, directory, integrity, logs, plans, tokens
from detnat.store.db import SessionFactory, make_engine, make_sessions, unit_of_work
from tests.store.conftest import T0, clock_at, small_plan, throwaway_database

pytestmark = pytest.mark.postgres

# What no answer and no record depends on; everything else must be covered.
EXEMPT_TABLES = {
    "alembic_version": "Alembic's own revision marker",
    "store_revision": "a cache key: workers reload when it changes, it decides no answer",
}
EXEMPT_COLUMNS = {
    ("plan_version_ranges", "id"): "a surrogate key nothing reads",
    ("plan_approvals", "id"): "a surrogate key (only a cache key of the timelines)",
}
ROWS_PER_TABLE = 3

CHANGE = {  # information_schema data_type -> SQL that makes a different value of the column
    "integer": "coalesce({c} + 1, 1)",
    "bigint": "coalesce({c} + 1, 1)",
    "boolean": "coalesce(NOT {c}, true)",
    "text": "CASE WHEN {c} IS NULL OR {c} = '' THEN 'x' WHEN left({c}, 1) = '0' "
    "THEN '1' || substr({c}, 2) ELSE '0' || substr({c}, 2) END",
    "timestamp with time zone": "coalesce({c} + interval '1 second', now())",
    "interval": "coalesce({c} + interval '1 second', interval '1 second')",
    "jsonb": "coalesce({c} || '{{\"tampered\": 1}}'::jsonb, '{{}}'::jsonb)",
    "int8range": "int8range(lower({c}), upper({c}) + 1)",
    "tstzrange": "tstzrange(lower({c}) - interval '1 second', upper({c}))",
    "cidr": "set_masklen({c}, masklen({c}) - 1)",
}
CHANGE["character varying"] = CHANGE["text"]


@dataclass(frozen=True)
class Store:
    sessions: SessionFactory
    checkpoint: integrity.Checkpoint


def _populate(sessions: SessionFactory) -> integrity.Checkpoint:
    """Two realms (one four-eyes with a correction, a later plan, a retirement and a pending
    version; one single-approver), tokens (one revoked), a case, lookups, a directory ingest,
    checkpoints."""
    operator = audit.Actor("ops", "admin")
    early = clock_at(T0 - timedelta(days=1))
    with unit_of_work(sessions) as s:
        _, alice = tokens.create_token(s, name="alice", role="admin", by=operator)
        _, bob = tokens.create_token(s, name="bob", role="admin", by=operator)
        _, desk = tokens.create_token(s, name="desk", role="abuse", by=operator)
        _, gone = tokens.create_token(s, name="gone", role="legal", by=operator)
        tokens.revoke_token(s, gone.id, by=operator)
        ids = (alice.id, bob.id, desk.id)
    by_alice = audit.Actor("alice", "admin", ids[0])
    by_bob = audit.Actor("bob", "admin", ids[1])
    with unit_of_work(sessions) as s:
        plans.create_realm(s, "four", by=by_alice, session_drain=timedelta(minutes=5))
        plans.create_realm(s, "lab", by=by_alice, session_drain=timedelta(0), single_approver=True)
    steps = [
        (small_plan("198.18.0.0/30"), T0, False),
        (small_plan("198.18.0.0/30", ratio=2048, inside="10.0.0.0/19"), T0, True),
        (small_plan("198.18.0.4/30"), T0 + timedelta(hours=1), False),
        (None, T0 + timedelta(hours=2), False),
        (small_plan("198.18.0.8/30"), T0 + timedelta(hours=3), False),
    ]
    for n, (plan, at, correction) in enumerate(steps, start=1):
        with unit_of_work(sessions) as s:
            plans.publish(
                s,
                "four",
                plan,
                effective_from=at,
                reason=f"CHG-{n}",
                by=by_alice,
                correction=correction,
                clock=early,
            )
            if n < len(steps):  # the last stays pending
                plans.approve(s, "four", n, by=by_bob, clock=early)
    with unit_of_work(sessions) as s:
        plans.publish(
            s,
            "lab",
            small_plan("198.18.1.0/30"),
            effective_from=T0,
            reason="LAB",
            by=by_alice,
            clock=early,
        )
    owners = audit.CaseOwners()
    by_desk = audit.Actor("desk", "abuse", ids[2])
    for n in range(3):
        with unit_of_work(sessions) as s:
            owners.claim(s, "CASE-1", by_desk, request_id=f"r{n}")
            audit.record(
                s, by_desk, "lookup.reverse", request_id=f"r{n}", detail={"n": n}, case="CASE-1"
            )
    _ingest_logs(sessions, by_alice)
    with unit_of_work(sessions) as s:
        rows = (
            "subscriber,account,from,to\n2001:db8:1:100::/56,CUST-1,2026-03-01T00:00:00Z,\n"
            "10.0.0.5,CUST-2,2026-03-01T00:00:00Z,2026-03-02T00:00:00Z\n"
            "10.0.0.6,CUST-3,2026-03-01T00:00:00Z,2026-03-02T00:00:00Z\n"
            "10.0.0.7,CUST-4,2026-03-01T00:00:00Z,2026-03-02T00:00:00Z\n"
        )
        files = [directory.InputFile("dir.csv", rows.encode())]
        directory.ingest(s, operator, "csv", files, tz=None, request_id="dir")
    with unit_of_work(sessions) as s:
        mark = audit.checkpoint(s, operator, request_id="cp")
    with unit_of_work(sessions) as s:
        audit.record(s, by_desk, "lookup.reverse", request_id="late", detail={}, case="CASE-1")
    with sessions() as s:
        assert [str(b) for b in integrity.verify(s)[0]] == []
    return integrity.Checkpoint(mark["seq"], mark["sha256"], mark["plan_heads"])


def _ingest_logs(sessions: SessionFactory, by: audit.Actor) -> None:
    """Log lines in two months of realm "lab" (two blocks, one released), the first pruned, then
    an interim period declared."""
    from tests.logs.conftest import T0_US, event, ingest

    day = 86_400 * 10**6
    made = [
        event(kind, T0_US + at, inside, "198.18.1.1", first, first + 511)
        for kind, at, inside, first in [
            (EventKind.ALLOCATE, -40 * day, "10.0.0.9", 1024),
            (EventKind.ALLOCATE, 0, "10.0.0.1", 1024),
            (EventKind.RELEASE, 60 * 10**6, "10.0.0.1", 1024),
            (EventKind.ALLOCATE, 30 * 10**6, "10.0.0.2", 2048),
        ]
    ]
    ingest(sessions, "lab", made, hold=timedelta(hours=1), by=by)
    with unit_of_work(sessions) as s:
        logs.prune(s, "lab", before=T0 - timedelta(days=14), by=by, request_id="prune")
    # duplicates only: an ingest that stores nothing, but declares an interim period (every
    # interval re-derived; the open one now ends at its interim deadline)
    ingest(sessions, "lab", made[1:], hold=timedelta(hours=1), interim=timedelta(minutes=10), by=by)


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    with throwaway_database() as url:
        engine = make_engine(url, pool_size=2)
        sessions = make_sessions(engine)
        yield Store(sessions, _populate(sessions))
        engine.dispose()


def _tables(s: Session) -> list[str]:
    return list(
        s.scalars(
            text(
                "select table_name from information_schema.tables where table_schema = 'public' "
                "and table_type = 'BASE TABLE' order by table_name"
            )
        )
    )


def _columns(s: Session, table: str) -> list[tuple[str, str]]:
    rows = s.execute(
        text(
            "select column_name, data_type, udt_name from information_schema.columns "
            "where table_schema = 'public' and table_name = :t order by ordinal_position"
        ),
        {"t": table},
    ).all()
    return [(name, udt if kind == "USER-DEFINED" else kind) for name, kind, udt in rows]


def _rows(s: Session, table: str) -> list[str]:
    ctids = [str(c) for c in s.scalars(text(f"select ctid from {table} order by ctid"))]
    if len(ctids) <= ROWS_PER_TABLE:
        return ctids
    return [ctids[0], ctids[len(ctids) // 2], ctids[-1]]


def _mutations(s: Session) -> Iterator[tuple[str, str]]:
    """(what, SQL) for every table and column of the schema."""
    for table in _tables(s):
        if table in EXEMPT_TABLES:
            continue
        rows = _rows(s, table)
        assert rows, f"the populated store has no row in {table}: extend _populate"
        for ctid in rows:
            where = f"where ctid = '{ctid}'"
            for column, kind in _columns(s, table):
                if (table, column) in EXEMPT_COLUMNS:
                    continue
                assert kind in CHANGE, f"no change for {table}.{column} ({kind}): add one"
                change = CHANGE[kind].format(c=column)
                yield f"{table}.{column} {ctid}", f"update {table} set {column} = {change} {where}"
            yield f"{table} delete {ctid}", f"delete from {table} {where}"
        yield f"{table} truncate", f"truncate {table} cascade"


def _outcome(store: Store, statement: str, *, triggers_off: bool) -> str:
    """'refused', 'reported: ...', or 'UNNOTICED'."""
    with store.sessions() as s:
        if triggers_off:
            s.execute(text("set local session_replication_role = replica"))
        try:
            with s.begin_nested():
                s.execute(text(statement))
        except DBAPIError:
            s.rollback()
            return "refused"
        broken, _ = integrity.verify(s, checkpoint=store.checkpoint)
        s.rollback()
    return f"reported: {broken[0]}" if broken else "UNNOTICED"


def _check_all(store: Store, *, triggers_off: bool) -> dict[str, str]:
    with store.sessions() as s:
        mutations = list(_mutations(s))
    assert len(mutations) > 100
    return {what: _outcome(store, sql, triggers_off=triggers_off) for what, sql in mutations}


def test_as_the_owner_with_triggers_on_every_change_is_refused_or_reported(store: Store) -> None:
    outcomes = _check_all(store, triggers_off=False)
    unnoticed = sorted(w for w, o in outcomes.items() if o == "UNNOTICED")
    assert unnoticed == [], unnoticed
    # what decides answers is refused outright, not merely reported afterwards
    for what in (
        "realms.session_drain",
        "realms.single_approver",
        "plan_versions.superseded",
        "audit_head truncate",
        "cases truncate",
        "plan_approvals truncate",
    ):
        hits = [o for w, o in outcomes.items() if w.startswith(what)]
        assert hits and all(o == "refused" for o in hits), (what, hits)


def test_as_a_superuser_with_triggers_off_every_change_is_reported(store: Store) -> None:
    outcomes = _check_all(store, triggers_off=True)
    unnoticed = sorted(w for w, o in outcomes.items() if o == "UNNOTICED")
    assert unnoticed == [], unnoticed
